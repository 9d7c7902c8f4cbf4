"""The subject common name of a PEM certificate, read with a minimal DER walk.

JITR names a new thing after the certificate's CN. A full X.509 library would need native code built for
the Lambda runtime inside the layer; the subject is reachable with a few lines of DER parsing instead.
"""

from __future__ import annotations

import base64

_COMMON_NAME_OID = bytes([0x06, 0x03, 0x55, 0x04, 0x03])
_SEQUENCE, _SET = 0x30, 0x31


def _read(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``offset``."""
    tag = data[offset]
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("truncated DER element")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    while start < end:
        element = _read(data, start)
        children.append(element)
        start = element[2]
    return children


def pem_to_der(pem: str) -> bytes:
    """The DER bytes of a PEM certificate (the base64 between the ``-----`` lines); raises ``binascii.Error`` for
    a body whose base64 is cut short (other characters are skipped)."""
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    return base64.b64decode(body)


def subject_common_name(pem: str) -> str | None:
    """The CN of the certificate's subject, or None if it has none. Raises ValueError for non-certificates."""
    der = pem_to_der(pem)
    tag, start, _ = _read(der, 0)
    if tag != _SEQUENCE:
        raise ValueError("not an X.509 certificate")
    _, tbs_start, tbs_end = _read(der, start)
    fields = _children(der, tbs_start, tbs_end)
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    if len(fields) < 5:
        raise ValueError("certificate has no subject")
    _, subject_start, subject_end = fields[4]
    for rdn_tag, rdn_start, rdn_end in _children(der, subject_start, subject_end):
        if rdn_tag != _SET:
            continue
        for _, attr_start, _ in _children(der, rdn_start, rdn_end):
            _, _, oid_end = _read(der, attr_start)
            if der[attr_start:oid_end] == _COMMON_NAME_OID:
                _, value_start, value_end = _read(der, oid_end)
                return der[value_start:value_end].decode("utf-8")
    return None
