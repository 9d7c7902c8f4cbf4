"""Refuse to ship key material: every file the build packs or the launcher uploads passes through here first.

What counts as a secret: key files by suffix (.pem, .key, .p12, .pfx), a PEM private key block with a real body
(also inside JSON or Python strings, with escaped newlines), an AWS access key id next to a 40-character secret
access key, and any Jupyter notebook stored with outputs (outputs can hold anything a cell printed, keys
included, so notebooks are stored without them).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

KEY_FILE_SUFFIXES = frozenset({".pem", ".key", ".p12", ".pfx"})
# A body of 40 or more base64 characters: code that merely names the header does not match.
_PRIVATE_KEY_BLOCK = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----[A-Za-z0-9+/=\s\\]{40,}-----END [A-Z ]*PRIVATE KEY-----"
)
# Long-term (AKIA) and temporary (ASIA) access key ids, then a secret access key within a few lines: an id alone
# (as in AWS's documented examples) does not fail the build, the pair does.
_ACCESS_KEY_PAIR = re.compile(
    rb"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b[\s\S]{0,300}?(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
_SECRET_ASSIGNMENT = re.compile(
    rb"(?i)aws_secret_access_key\s*[=:]\s*[\"']?(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)


class SecretFound(Exception):
    """A file would ship a private key or secret; the message names the file and what was found."""


def secret_in(path: Path) -> str | None:
    """What kind of secret ``path`` holds (a short phrase), or None when it is safe to ship; zips are read member by
    member.

    Raises OSError when the file cannot be read: an unreadable file is not known to be safe.
    """
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                found = _secret_in_content(member, archive.read(member))
                if found:
                    return f"{found} in {member}"
        return None
    return _secret_in_content(path.name, path.read_bytes())


def _secret_in_content(name: str, content: bytes) -> str | None:
    if Path(name).suffix.lower() in KEY_FILE_SUFFIXES:
        return "a key file"
    if _PRIVATE_KEY_BLOCK.search(content):
        return "a private key"
    if _SECRET_ASSIGNMENT.search(content) or _ACCESS_KEY_PAIR.search(content):
        return "an AWS secret access key"
    if name.endswith(".ipynb") and _notebook_has_outputs(content):
        return "notebook outputs (store notebooks without outputs)"
    return None


def _notebook_has_outputs(content: bytes) -> bool:
    try:
        cells = json.loads(content).get("cells", [])
    except (ValueError, AttributeError):
        return False
    return any(cell.get("outputs") for cell in cells if isinstance(cell, dict))


def refuse_secrets(paths: Iterable[Path]) -> None:
    """Raise SecretFound for the first file of ``paths`` that holds a secret."""
    for path in paths:
        found = secret_in(path)
        if found:
            raise SecretFound(f"refusing to ship {path}: it contains {found}")


def refuse_secret_text(name: str, text: str) -> None:
    """The same check for generated content (such as ``toolsrc``) before it is uploaded."""
    found = _secret_in_content(name, text.encode())
    if found:
        raise SecretFound(f"refusing to upload {name}: it contains {found}")
