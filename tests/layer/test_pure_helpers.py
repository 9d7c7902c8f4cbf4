"""Order keys, DynamoDB JSON, shadow differences and certificate subjects."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from iot_dr.core.dynamo_json import from_item, to_item
from iot_dr.core.x509_subject import subject_common_name
from iot_dr.secondary.ledger import order_key, order_parts
from iot_dr.secondary.replicate.shadows import difference, same_json

parts = st.lists(st.integers(min_value=0, max_value=10**18), min_size=1, max_size=4)


@given(parts, parts)
def test_order_keys_sort_like_their_tuples(a: list[int], b: list[int]) -> None:
    if len(a) == len(b):
        assert (order_key(a) < order_key(b)) == (tuple(a) < tuple(b))
    assert order_parts(order_key(a)) == tuple(a)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=5))
def test_dynamodb_items_round_trip_plain_json(values: dict) -> None:
    assert from_item(to_item(values)) == values


def test_strings_that_look_like_dates_or_type_tags_stay_strings() -> None:
    values = {"when": "2021-03-31T12:00:00.000", "map": {"S": "not a type tag"}, "n": Decimal("1.5")}
    assert from_item(to_item(values)) == {"when": "2021-03-31T12:00:00.000", "map": {"S": "not a type tag"}, "n": 1.5}


def _apply(current: dict, patch: dict) -> dict:
    """AWS shadow merge semantics: objects merge, null deletes, everything else replaces."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _apply(merged[key], value)
        else:
            merged[key] = value
    return merged


# Values that Python's == confuses (True == 1 == 1.0, 0 == False) but JSON tells apart.
scalars = st.sampled_from([0, 1, True, False, 1.0, 0.0, "1", "", [1], [True]])
shadow_docs = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    scalars | st.dictionaries(st.sampled_from(["x", "y"]), scalars, min_size=1, max_size=2),
    max_size=4,
)


@given(shadow_docs, shadow_docs)
def test_shadow_difference_turns_current_into_exactly_target(current: dict, target: dict) -> None:
    assert same_json(_apply(current, difference(current, target)), target)


def _certificate(subject: x509.Name) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_common_name_is_read_from_the_subject_not_the_issuer() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fleet"),
            x509.NameAttribute(NameOID.COMMON_NAME, "sensor-0042"),
        ]
    )
    assert subject_common_name(_certificate(subject)) == "sensor-0042"


def test_certificate_without_common_name_has_none() -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fleet")])
    assert subject_common_name(_certificate(subject)) is None


def test_stream_images_with_base64_binaries_become_plain_values() -> None:
    """Lambda delivers B and BS base64-encoded:
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_AttributeValue.html"""
    image = {
        "b": {"B": "aGk="},
        "bs": {"BS": ["YQ==", "Yg=="]},
        "m": {"M": {"l": {"L": [{"B": "eA=="}, {"N": "2"}]}}},
        "raw": {"B": b"ok"},
    }
    plain = from_item(image)
    assert plain["b"] == "hi"
    assert sorted(plain["bs"]) == ["a", "b"]
    assert plain["m"] == {"l": ["x", 2]}
    assert plain["raw"] == "ok"


def test_a_binary_that_is_not_base64_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not base64"):
        from_item({"b": {"B": "not base64!"}})
