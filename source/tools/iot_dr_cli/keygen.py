"""Private keys and certificate signing requests for many devices, in parallel on every core.

``generate_batch`` makes one device's key and CSR per name (subject CN = thing name), writes each key to
``<directory>/<name>.key`` (mode 0600) and returns the CSRs in PEM, in the order of the names. EC P-256 keys by
default (fast, and accepted by AWS IoT); RSA 2048 with ``algorithm="rsa"``. The archived bulk tool ran one openssl
process per device: about 2.7 keys and CSRs per second.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ALGORITHMS = ("ec", "rsa")
# The archived openssl loop: 30,000 keys and CSRs in 11,086 s (implementation guide, "Performance testing").
ARCHIVED_RATE = 30_000 / 11_086
CHUNK = 250


def _key(algorithm: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if algorithm == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _generate_chunk(names: Sequence[str], directory: str, algorithm: str) -> list[str]:
    csrs = []
    for name in names:
        key = _key(algorithm)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        descriptor = os.open(os.path.join(directory, f"{name}.key"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256())
        )
        csrs.append(request.public_bytes(serialization.Encoding.PEM).decode())
    return csrs


def _chunks(names: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(names), size):
        yield names[start : start + size]


def generate_batch(
    names: Sequence[str], directory: Path, algorithm: str = "ec", workers: int | None = None
) -> list[str]:
    """CSRs for ``names`` (keys written to ``directory``), using ``workers`` processes (default: every core)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    directory.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(names) <= CHUNK:
        return _generate_chunk(names, str(directory), algorithm)
    chunks = list(_chunks(names, CHUNK))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_generate_chunk, chunks, [str(directory)] * len(chunks), [algorithm] * len(chunks))
        return [csr for chunk in results for csr in chunk]
