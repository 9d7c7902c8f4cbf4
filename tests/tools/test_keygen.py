"""Keys and CSRs for bulk registration: each CSR carries its key's public key and the thing name."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from iot_dr_cli.keygen import CHUNK, generate_batch


@pytest.mark.parametrize(("algorithm", "key_type"), [("ec", ec.EllipticCurvePrivateKey), ("rsa", rsa.RSAPrivateKey)])
def test_each_csr_matches_its_private_key(tmp_path: Path, algorithm: str, key_type: type) -> None:
    names = ["dev-1", "dev-2"]
    csrs = generate_batch(names, tmp_path, algorithm, workers=1)
    for name, pem in zip(names, csrs, strict=True):
        key = serialization.load_pem_private_key((tmp_path / f"{name}.key").read_bytes(), None)
        request = x509.load_pem_x509_csr(pem.encode())
        assert isinstance(key, key_type)
        assert request.public_key() == key.public_key() and request.is_signature_valid
        assert request.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == name
        assert (tmp_path / f"{name}.key").stat().st_mode & 0o777 == 0o600


def test_parallel_generation_keeps_the_order_of_the_names(tmp_path: Path) -> None:
    names = [f"dev-{i}" for i in range(CHUNK + 3)]
    csrs = generate_batch(names, tmp_path, "ec", workers=2)
    subjects = [x509.load_pem_x509_csr(c.encode()).subject.rfc4514_string() for c in csrs]
    assert subjects == [f"CN={name}" for name in names]


def test_unknown_algorithm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="algorithm must be one of"):
        generate_batch(["x"], tmp_path, "dsa")
