"""Build the deployment artifacts: one zip per Lambda function, the layer zip and the templates.

The zips are reproducible (sorted entries, fixed timestamps and permissions), so two builds of the same
sources are byte-identical and an artifact's SHA-256 identifies its content. Secrets never ship: the build
fails, naming the file, on anything ``secret_scan`` refuses (key files, PEM private key blocks, AWS secret access
keys, notebooks with outputs) in what it packs and in the folders the solution zip and the launcher ship
(``source/tools``, ``source/jupyter``).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import shutil
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from iot_dr_cli.secret_scan import secret_in

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
SOLUTION_NAME = "disaster-recovery-for-aws-iot"
LAYER_ZIP_NAME = "iot-dr-layer.zip"
LAYER_PACKAGE = "iot_dr"

# 1980-01-01 is the earliest date a zip entry can hold; any fixed value makes the archive reproducible.
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644
_EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_EXCLUDED_SUFFIXES = frozenset({".pyc", ".pyo"})
# Shipped as sources (in iot-dr-solution.zip and uploaded by the launcher) rather than packed into a Lambda zip.
SHIPPED_SOURCE_FOLDERS = ("source/tools", "source/jupyter")
_VERSION_PATTERN = re.compile(r"^v\d+\.\d+\.\d+$")
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class PackagingError(Exception):
    """The sources cannot be packaged safely (a private key, an empty function directory, a bad version)."""


@dataclass(frozen=True)
class Artifact:
    """One built file and the SHA-256 of its bytes."""

    name: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class BuildResult:
    """What a build produced; ``prefix`` is the ArtifactPrefix the templates expect for these files."""

    output_dir: Path
    prefix: str
    artifacts: tuple[Artifact, ...]

    def by_name(self) -> dict[str, Artifact]:
        """Artifacts keyed by file name, for deployers looking up one zip or template."""
        return {artifact.name: artifact for artifact in self.artifacts}


def build_artifacts(
    output_dir: Path,
    version: str = "v2.0.0",
    *,
    source_root: Path = REPO_ROOT,
    solution_name: str = SOLUTION_NAME,
    vendored: Mapping[str, Path] | None = None,
) -> BuildResult:
    """Package every Lambda directory, the layer and the templates under ``output_dir/<prefix>``.

    Uploading ``output_dir`` to the root of the artifact bucket puts each file where the templates look for it
    with ``ArtifactPrefix`` = ``prefix``. ``vendored`` maps a function directory name to a directory of
    installed third-party packages added at that zip's root (the Lambda runtime lacks them); ``iot-dr-layer``
    names the layer, whose packages go under ``python/`` next to ``iot_dr``. Every source is
    checked before anything is written, so a refused build leaves no partial artifact set behind.
    """
    if not _VERSION_PATTERN.match(version):
        raise PackagingError(f"version {version!r} must look like v2.0.0")
    if not _NAME_PATTERN.match(solution_name):
        raise PackagingError(f"solution name {solution_name!r} must be lower-case letters, digits and hyphens")
    zips = {
        **_function_zip_entries(source_root / "source" / "lambda"),
        LAYER_ZIP_NAME: _layer_zip_entries(source_root / "source" / "layer" / LAYER_PACKAGE),
    }
    for function, site_dir in (vendored or {}).items():
        if f"{function}.zip" not in zips:
            raise PackagingError(f"cannot vendor packages into unknown function {function}")
        # The layer's packages go where its own package is, under python/ (on sys.path as /opt/python).
        root = "python/" if f"{function}.zip" == LAYER_ZIP_NAME else ""
        zips[f"{function}.zip"] = [*zips[f"{function}.zip"], *_vendored_entries(site_dir, root)]
    templates = sorted((source_root / "deployment").glob("*.template"))
    for template in templates:
        _refuse_key_material(template)
    for folder in SHIPPED_SOURCE_FOLDERS:
        if (source_root / folder).is_dir():
            _package_files(source_root / folder)

    prefix = f"{solution_name}/{version}/"
    target = output_dir / prefix
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    built = [_write_zip(target / name, entries) for name, entries in sorted(zips.items())]
    for template in templates:
        copy = target / template.name
        copy.write_bytes(template.read_bytes())
        built.append(copy)

    artifacts = tuple(Artifact(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in built)
    logger.info("built artifacts", extra={"prefix": prefix, "count": len(artifacts)})
    return BuildResult(output_dir=output_dir, prefix=prefix, artifacts=artifacts)


def read_artifacts(output_dir: Path, prefix: str) -> BuildResult:
    """A build made earlier (for example by build-s3-dist.sh, shipped in the CodeBuild source), read back."""
    files = sorted(p for p in (output_dir / prefix).iterdir() if p.is_file()) if (output_dir / prefix).is_dir() else []
    if not files:
        raise PackagingError(f"no artifacts under {output_dir / prefix}")
    artifacts = tuple(Artifact(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files)
    return BuildResult(output_dir=output_dir, prefix=prefix, artifacts=artifacts)


def _vendored_entries(site_dir: Path, root: str = "") -> list[tuple[str, Path]]:
    """Installed packages under ``root`` in the zip (its root by default), without caches and the ``bin`` scripts
    that the runtime never reads."""
    if not site_dir.is_dir():
        raise PackagingError(f"vendored packages directory {site_dir} does not exist")
    return [
        (root + path.relative_to(site_dir).as_posix(), path)
        for path in sorted(site_dir.rglob("*"))
        if path.is_file()
        and path.suffix not in _EXCLUDED_SUFFIXES
        and not {*_EXCLUDED_DIRS, "bin"} & set(path.relative_to(site_dir).parts[:-1])
    ]


def _function_zip_entries(lambda_root: Path) -> dict[str, list[tuple[str, Path]]]:
    """One zip per function directory, the directory's files at the zip root (where Lambda looks)."""
    zips = {}
    for function_dir in sorted(p for p in lambda_root.iterdir() if p.is_dir() and p.name not in _EXCLUDED_DIRS):
        entries = [(f.relative_to(function_dir).as_posix(), f) for f in _package_files(function_dir)]
        if not entries:
            raise PackagingError(f"{function_dir} holds no files to package")
        zips[f"{function_dir.name}.zip"] = entries
    return zips


def _layer_zip_entries(package_dir: Path) -> list[tuple[str, Path]]:
    """The layer's files; Lambda adds ``/opt/python`` to ``sys.path``, hence the ``python/`` prefix."""
    return [(f"python/{LAYER_PACKAGE}/{f.relative_to(package_dir).as_posix()}", f) for f in _package_files(package_dir)]


def _package_files(root: Path) -> list[Path]:
    """Files under ``root`` that belong in a package, in a stable order, each checked for key material."""
    files = []
    for path in sorted(root.rglob("*")):
        relative_parts = path.relative_to(root).parts
        if any(part in _EXCLUDED_DIRS for part in relative_parts):
            continue
        if not path.is_file() or path.suffix in _EXCLUDED_SUFFIXES:
            continue
        _refuse_key_material(path)
        files.append(path)
    return files


def _refuse_key_material(path: Path) -> None:
    found = secret_in(path)
    if found:
        raise PackagingError(f"refusing to package {path}: it contains {found}")


def _write_zip(destination: Path, entries: Iterable[tuple[str, Path]]) -> Path:
    with zipfile.ZipFile(destination, "w") as archive:
        for arcname, source in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _FILE_MODE << 16
            info.create_system = 3  # Unix, so the mode bits above are honoured wherever the build runs
            archive.writestr(info, source.read_bytes(), compresslevel=9)
    return destination


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m iot_dr_cli.build OUTPUT_DIR [--version v2.0.0]``."""
    parser = argparse.ArgumentParser(description="Build the Lambda zips, the layer zip and the templates.")
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--version", default="v2.0.0")
    parser.add_argument("--solution-name", default=SOLUTION_NAME)
    parser.add_argument(
        "--vendor",
        action="append",
        default=[],
        metavar="FUNCTION=DIR",
        help="add the installed packages in DIR to FUNCTION's zip, or to the layer's for iot-dr-layer (repeatable)",
    )
    args = parser.parse_args(argv)
    vendored = {}
    for spec in args.vendor:
        function, separator, directory = spec.partition("=")
        if not separator:
            parser.error(f"--vendor expects FUNCTION=DIR, got {spec!r}")
        vendored[function] = Path(directory)
    try:
        result = build_artifacts(args.output_dir, args.version, solution_name=args.solution_name, vendored=vendored)
    except (PackagingError, OSError) as err:
        print(f"build: error: {err}", file=sys.stderr)
        return 1
    for artifact in result.artifacts:
        print(f"{artifact.sha256}  {result.prefix}{artifact.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
