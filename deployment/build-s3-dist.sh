#!/usr/bin/env bash
# Builds the distributable assets of Disaster Recovery for AWS IoT the way AWS Solutions are published:
#   global-s3-assets/    the templates, with the bucket prefix and the version filled in
#   regional-s3-assets/  one zip per Lambda function, the layer zip, and iot-dr-solution.zip (the CodeBuild source:
#                        buildspec.yml, the tools, and every artifact the launcher uploads to the solution's buckets)
# The layer gets Powertools for AWS Lambda (its structured logging), the health checker's zip gets awsiotsdk/awscrt,
# and its credentials function's zip gets cryptography (it makes the checker's key and CSR), for the Lambda runtime
# (python3.12, x86_64 manylinux wheels).
set -euo pipefail

# function directory=requirement, one per zip that carries packages the Lambda runtime lacks (iot-dr-layer: the
# layer every function uses); the versions are the ones pinned in pyproject.toml
readonly VENDORED=(
    "iot-dr-layer=aws-lambda-powertools==3.37.0"
    "iot-dr-r53-health-checker=awsiotsdk==1.31.0"
    "iot-dr-r53-checker-credentials=cryptography==48.0.0"
)
WORK_DIR=""

usage() {
    cat <<'USAGE'
usage: deployment/build-s3-dist.sh <bucket-prefix> <solution-name> <version> [--no-vendor] [--output DIR]

  bucket-prefix  artifacts are read from s3://<bucket-prefix>-<region>/<solution-name>/<version>/
  solution-name  for example disaster-recovery-for-aws-iot
  version        for example v2.0.0
  --no-vendor    leave the vendored packages (Powertools for AWS Lambda in the layer, awsiotsdk/awscrt and
                 cryptography in the health checker's zips) out (offline builds, tests: the local cloud's functions
                 import them from the project's environment)
  --output DIR   where global-s3-assets/ and regional-s3-assets/ go (default: deployment/)

Then upload:
  aws s3 cp --recursive global-s3-assets/   s3://<bucket-prefix>-<region>/<solution-name>/<version>/
  aws s3 cp --recursive regional-s3-assets/ s3://<bucket-prefix>-<region>/<solution-name>/<version>/
and launch disaster-recovery-for-aws-iot.template from there in <region>.
USAGE
}

fail() {
    echo "build-s3-dist.sh: $*" >&2
    exit 1
}

python_bin() {
    local root="$1"
    if [ -x "$root/.venv/bin/python" ]; then
        echo "$root/.venv/bin/python"
    else
        command -v python3
    fi
}

vendor_packages() {
    local python="$1" target="$2" requirement="$3"
    "$python" -m pip install --quiet --disable-pip-version-check --no-compile --target "$target" \
        --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 --only-binary=:all: \
        "$requirement"
}

fill_in() {
    local bucket="$1" name="$2" version="$3" file="$4"
    sed -i \
        -e "s|%%BUCKET_NAME%%|$bucket|g" \
        -e "s|%%SOLUTION_NAME%%|$name|g" \
        -e "s|%%VERSION%%|$version|g" \
        -e "s|disaster-recovery-for-aws-iot/v2\.0\.0/|$name/$version/|g" \
        "$file"
    if grep -q '%%' "$file"; then
        fail "$file still holds a placeholder: $(grep -m1 '%%' "$file")"
    fi
}

solution_zip() {
    local python="$1" root="$2" staging="$3" destination="$4"
    "$python" - "$root" "$staging" "$destination" <<'PYTHON'
import sys
import zipfile
from pathlib import Path

root, staging, destination = (Path(arg) for arg in sys.argv[1:4])
entries = [("buildspec.yml", root / "buildspec.yml")]
for folder in ("source/layer", "source/tools", "source/lambda", "source/jupyter"):
    for path in sorted((root / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            entries.append((path.relative_to(root).as_posix(), path))
for path in sorted(staging.rglob("*")):
    if path.is_file():
        entries.append(("artifacts/" + path.relative_to(staging).as_posix(), path))
with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
    for name, path in entries:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, path.read_bytes())
PYTHON
}

main() {
    local vendor=yes output="" positional=()
    while [ "$#" -gt 0 ]; do
        case "$1" in
            -h | --help) usage; return 0 ;;
            --no-vendor) vendor=no ;;
            --output) [ "$#" -ge 2 ] || fail "--output needs a directory"; output="$2"; shift ;;
            -*) usage >&2; fail "unknown option $1" ;;
            *) positional+=("$1") ;;
        esac
        shift
    done
    [ "${#positional[@]}" -eq 3 ] || { usage >&2; exit 2; }
    local bucket="${positional[0]}" name="${positional[1]}" version="${positional[2]}"
    [[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]$ ]] || fail "bucket prefix $bucket is not a valid bucket name start"
    [[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || fail "solution name $name must be lower-case letters, digits, hyphens"
    [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "version $version must look like v2.0.0"

    local root python
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    python="$(python_bin "$root")"
    output="${output:-$root/deployment}"
    local global="$output/global-s3-assets" regional="$output/regional-s3-assets"
    WORK_DIR="$(mktemp -d)"
    trap 'rm -rf "$WORK_DIR"' EXIT
    local work="$WORK_DIR"

    local build_args=("$work/build" --version "$version" --solution-name "$name")
    if [ "$vendor" = yes ]; then
        local entry function requirement
        for entry in "${VENDORED[@]}"; do
            function="${entry%%=*}" requirement="${entry#*=}"
            echo "vendoring $requirement for $function"
            vendor_packages "$python" "$work/vendor-$function" "$requirement"
            build_args+=(--vendor "$function=$work/vendor-$function")
        done
    fi
    echo "building artifacts"
    PYTHONPATH="$root/source/layer:$root/source/tools" "$python" -m iot_dr_cli.build "${build_args[@]}" >/dev/null

    local prefix_dir="$work/build/$name/$version"
    rm -rf "$global" "$regional"
    mkdir -p "$global" "$regional"
    local template
    for template in "$prefix_dir"/*.template; do
        fill_in "$bucket" "$name" "$version" "$template"
        cp "$template" "$global/"
    done
    cp "$prefix_dir"/*.zip "$regional/"
    solution_zip "$python" "$root" "$work/build" "$regional/iot-dr-solution.zip"
    echo "global assets:   $global ($(find "$global" -type f | wc -l) files)"
    echo "regional assets: $regional ($(find "$regional" -type f | wc -l) files)"
}

main "$@"
