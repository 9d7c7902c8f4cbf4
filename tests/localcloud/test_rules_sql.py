from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from event_fixtures import load_event
from hypothesis import given
from hypothesis import strategies as st

from iot_dr_local.rules_sql import MessageContext, RuleSqlError, parse, topic_matches, validate_topic_filter

REGISTRY_SQL = (
    "SELECT *, newuuid() AS uuid, (timestamp() / 1000) + 172800 AS expires FROM '$aws/events/#' "
    "WHERE topic(3) = 'thing' OR topic(3) = 'thingGroup'"
)
SHADOW_SQL = (
    "SELECT *, newuuid() AS uuid, (timestamp() / 1000) + 172800 AS expires, 'SHADOW_EVENT' AS eventType, "
    "topic() AS topic FROM '$aws/things/+/shadow/#' "
    "WHERE endswith(topic(), '/update/documents') OR endswith(topic(), '/delete/accepted')"
)
JITR_SQL = "SELECT * FROM '$aws/events/certificates/registered/#' WHERE certificateStatus = 'PENDING_ACTIVATION'"
NOW_MS = 1_700_000_000_123


def evaluate(sql: str, payload: Any, topic: str = "t", client_id: str | None = None) -> dict[str, Any] | None:
    return parse(sql).evaluate(MessageContext(topic, payload, NOW_MS, client_id))


def select(expression: str, payload: Any = None, topic: str = "t") -> Any:
    result = evaluate(f"SELECT {expression} AS v FROM '{topic}'", payload or {}, topic)
    assert result is not None
    return result.get("v", "<undefined>")


# -------------------------------------------------------------------------------- the solution's SQL


def test_registry_rule_adds_uuid_and_expiry_to_the_whole_event() -> None:
    event = load_event("registry/thing_created.json")

    result = evaluate(REGISTRY_SQL, event, "$aws/events/thing/MyThing/created")

    assert result is not None
    assert {key: result[key] for key in event} == event
    assert set(result) == set(event) | {"uuid", "expires"}
    assert uuid.UUID(result["uuid"])
    assert result["expires"] == NOW_MS // 1000 + 172800
    assert isinstance(result["expires"], int)


def test_registry_rule_uuid_differs_per_message() -> None:
    event = load_event("registry/thing_created.json")
    first = evaluate(REGISTRY_SQL, event, "$aws/events/thing/MyThing/created")
    second = evaluate(REGISTRY_SQL, event, "$aws/events/thing/MyThing/created")
    assert first is not None and second is not None
    assert first["uuid"] != second["uuid"]


@pytest.mark.parametrize(
    ("topic", "matched"),
    [
        ("$aws/events/thing/MyThing/created", True),
        ("$aws/events/thingGroup/Tg_level5/updated", True),
        ("$aws/events/thingType/MyThingType/updated", False),
        ("$aws/events/certificates/registered/abc", False),
        ("$aws/events/presence", False),
    ],
)
def test_registry_rule_matches_only_the_event_kinds_in_its_where_clause(topic: str, matched: bool) -> None:
    assert (evaluate(REGISTRY_SQL, {"eventType": "X"}, topic) is not None) is matched


@pytest.mark.parametrize(
    ("topic", "matched"),
    [
        ("$aws/things/dev-1/shadow/update/documents", True),
        ("$aws/things/dev-1/shadow/name/config/update/documents", True),
        ("$aws/things/dev-1/shadow/delete/accepted", True),
        ("$aws/things/dev-1/shadow/name/config/delete/accepted", True),
        ("$aws/things/dev-1/shadow/update/accepted", False),
        ("$aws/things/dev-1/shadow/update/delta", False),
        ("$aws/things/dev-1/jobs/notify", False),
    ],
)
def test_shadow_rule_selects_documents_and_deletions_of_classic_and_named_shadows(topic: str, matched: bool) -> None:
    document = load_event("shadow/update_documents.json")

    result = evaluate(SHADOW_SQL, document, topic)

    assert (result is not None) is matched
    if result is not None:
        assert result["eventType"] == "SHADOW_EVENT"
        assert result["topic"] == topic
        assert result["current"] == document["current"]


def test_jitr_rule_matches_certificates_pending_activation_only() -> None:
    event = load_event("registry/certificate_registered.json")
    topic = f"$aws/events/certificates/registered/{event['caCertificateId']}"

    assert evaluate(JITR_SQL, event, topic) == event
    assert evaluate(JITR_SQL, event | {"certificateStatus": "ACTIVE"}, topic) is None
    assert evaluate(JITR_SQL, {"certificateId": "x"}, topic) is None


# ---------------------------------------------------------------------------------------- semantics


def test_missing_fields_are_left_out_of_the_select_result() -> None:
    result = evaluate("SELECT a, b.c, missing, b.missing.deeper FROM '#'", {"a": 1, "b": {"c": [1, 2]}})
    assert result == {"a": 1, "c": [1, 2]}


def test_where_on_a_missing_field_does_not_match() -> None:
    assert evaluate("SELECT * FROM '#' WHERE status = 'x'", {"other": 1}) is None
    assert evaluate("SELECT * FROM '#' WHERE NOT (status = 'x')", {"other": 1}) is None


def test_integer_division_truncates_toward_zero_and_decimals_divide_exactly() -> None:
    assert select("7 / 2") == 3
    assert select("-7 / 2") == -3
    assert select("7.0 / 2") == 3.5
    assert select("n / 4", {"n": 10}) == 2


def test_division_by_zero_and_arithmetic_on_text_are_undefined() -> None:
    assert select("1 / 0") == "<undefined>"
    assert select("'a' + 1") == "<undefined>"
    assert select("'4' + 1") == 5


def test_operator_precedence_and_parentheses() -> None:
    assert select("1 + 2 * 3") == 7
    assert select("(1 + 2) * 3") == 9
    assert select("10 - 2 - 3") == 5
    assert select("-(2 + 3)") == -5


@pytest.mark.parametrize(
    ("condition", "payload", "matched"),
    [
        ("n = 1", {"n": 1.0}, True),
        ("n = 1", {"n": "1"}, False),
        ("n <> 1", {"n": 2}, True),
        ("n != 1", {"n": 1}, False),
        ("n >= 2 AND n < 3", {"n": 2}, True),
        ("s = 'on' OR s = 'off'", {"s": "off"}, True),
        ("flag = true", {"flag": True}, True),
        ("flag = null", {"flag": None}, True),
        ("doc = other", {"doc": {"a": [1]}, "other": {"a": [1]}}, True),
        ("s < 'b'", {"s": "a"}, False),
        ("'TRUE' AND true", {}, True),
        ("true OR 'yes'", {}, False),
        ("NOT false", {}, True),
        ("startswith(s, 'dev-') AND endswith(s, '-1')", {"s": "dev-1"}, True),
        ("startswith(n, 'x')", {"n": 1}, False),
    ],
)
def test_conditions_follow_aws_iot_sql_semantics(condition: str, payload: dict[str, Any], matched: bool) -> None:
    assert (evaluate(f"SELECT * FROM '#' WHERE {condition}", payload) is not None) is matched


def test_topic_function_returns_whole_topic_or_one_based_segment() -> None:
    topic = "$aws/events/thing/dev-1/created"
    assert select("topic()", topic=topic) == topic
    assert select("topic(1)", topic=topic) == "$aws"
    assert select("topic(4)", topic=topic) == "dev-1"
    assert select("topic(6)", topic=topic) == "<undefined>"
    assert select("topic(0)", topic=topic) == "<undefined>"


def test_clientid_is_n_a_for_messages_not_sent_over_mqtt() -> None:
    assert evaluate("SELECT clientid() AS c FROM '#'", {}) == {"c": "n/a"}
    assert evaluate("SELECT clientid() AS c FROM '#'", {}, client_id="dev-1") == {"c": "dev-1"}


def test_timestamp_is_the_message_receipt_time_in_milliseconds() -> None:
    assert select("timestamp()") == NOW_MS


def test_keywords_and_functions_are_case_insensitive() -> None:
    result = evaluate("select *, NewUuid() as id from 'a/b' where A = TRUE and not b", {"A": True, "b": False}, "a/b")
    assert result is not None and "id" in result


def test_select_star_on_a_non_object_payload_yields_only_computed_items() -> None:
    assert evaluate("SELECT *, 'x' AS kind FROM '#'", None) == {"kind": "x"}


def test_later_items_overwrite_payload_keys_of_the_same_name() -> None:
    assert evaluate("SELECT *, 'SHADOW_EVENT' AS eventType FROM '#'", {"eventType": "old"}) == {
        "eventType": "SHADOW_EVENT"
    }


@pytest.mark.parametrize(
    ("sql", "position"),
    [
        ("SELECT a % b AS c FROM 'x'", 9),
        ("SELECT lower(a) AS c FROM 'x'", 7),
        ("SELECT 1 FROM 'x'", 7),
        ("SELECT a + 1 FROM 'x'", 7),
        ("SELECT * FROM 'a/#/b'", 14),
        ("SELECT * FROM 'a/b+'", 14),
        ("SELECT * FROM ''", 14),
        ("SELECT * FROM x", 14),
        ("SELECT *", 8),
        ("SELECT * FROM 'x' WHERE a = 1 = 2", 30),
        ("SELECT * FROM 'x' WHERE a IN (1)", 26),
        ("SELECT * FROM 'x' WHERE s = 'it''s'", 32),
        ("SELECT * FROM 'x' WHERE s = 'a\\'", 28),
        ("SELECT * FROM 'x' WHERE s = 'open", 28),
        ("SELECT topic(1, 2) AS t FROM 'x'", 7),
        ("SELECT newuuid(1) AS t FROM 'x'", 7),
        ("SELECT a AS FROM FROM 'x'", 12),
        ("SELECT a.1 AS b FROM 'x'", 9),
        ("UPDATE x", 0),
    ],
)
def test_unsupported_or_malformed_sql_is_rejected_with_its_position(sql: str, position: int) -> None:
    with pytest.raises(RuleSqlError) as raised:
        parse(sql)
    assert raised.value.position == position


# ------------------------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matched"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a//c", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("#", "a/b", True),
        ("#", "$aws/events/thing/x/created", False),
        ("+/events/#", "$aws/events/x", False),
        ("$aws/events/#", "$aws/events/thing/x/created", True),
        ("$aws/things/+/shadow/#", "$aws/things/t/shadow/name/n/update/documents", True),
        ("$aws/things/+/shadow/#", "$aws/things/t/jobs/notify", False),
    ],
)
def test_mqtt_topic_filter_matching(topic_filter: str, topic: str, matched: bool) -> None:
    assert topic_matches(topic_filter, topic) is matched


LEVEL = st.text(alphabet="ab$-_0", max_size=3)
TOPICS = st.lists(LEVEL, min_size=1, max_size=6).map("/".join).filter(bool)


@st.composite
def topic_and_derived_filter(draw: st.DrawFn) -> tuple[str, str]:
    """A topic and a filter built from it by wildcarding levels and maybe cutting it with '#'."""
    levels = draw(st.lists(LEVEL, min_size=1, max_size=6).filter(lambda found: any(found)))
    filter_levels = [("+" if draw(st.booleans()) else level) for level in levels]
    if levels[0].startswith("$"):
        filter_levels[0] = levels[0]
    cut = draw(st.integers(min_value=1, max_value=len(levels) + 1))
    if cut <= len(levels) and draw(st.booleans()):
        filter_levels = [*filter_levels[:cut], "#"]
    return "/".join(levels), "/".join(filter_levels)


@given(topic_and_derived_filter())
def test_filters_derived_from_a_topic_match_it(pair: tuple[str, str]) -> None:
    topic, topic_filter = pair
    validate_topic_filter(topic_filter)
    assert topic_matches(topic_filter, topic)


@given(TOPICS, TOPICS)
def test_a_filter_without_wildcards_matches_only_the_identical_topic(topic_filter: str, topic: str) -> None:
    assert topic_matches(topic_filter, topic) is (topic_filter == topic)


@given(topic_and_derived_filter(), st.data())
def test_changing_a_literal_level_of_the_filter_stops_the_match(pair: tuple[str, str], data: st.DataObject) -> None:
    topic, topic_filter = pair
    levels = topic_filter.split("/")
    literal = [i for i, level in enumerate(levels) if level not in ("+", "#")]
    if not literal:
        return
    index = data.draw(st.sampled_from(literal))
    levels[index] += "x"
    assert not topic_matches("/".join(levels), topic)


# ---------------------------------------------------------------------------------- evaluator laws

INTS = st.integers(min_value=-(10**12), max_value=10**12)


@given(INTS, INTS.filter(lambda n: n != 0))
def test_int_division_is_truncated_toward_zero(a: int, b: int) -> None:
    quotient = select("a / b", {"a": a, "b": b})
    assert isinstance(quotient, int)
    assert abs(quotient) == abs(a) // abs(b)
    assert quotient * b + (a - quotient * b) == a
    assert abs(a - quotient * b) < abs(b)


@given(INTS, INTS)
def test_integer_arithmetic_matches_python(a: int, b: int) -> None:
    payload = {"a": a, "b": b}
    assert select("a + b", payload) == a + b
    assert select("a - b", payload) == a - b
    assert select("a * b", payload) == a * b


@given(st.one_of(INTS, st.floats(allow_nan=False, allow_infinity=False)), INTS)
def test_each_pair_of_numbers_satisfies_exactly_one_ordering(a: float, b: int) -> None:
    payload = {"a": a, "b": b}
    outcomes = [select(f"a {op} b", payload) for op in ("<", "=", ">")]
    assert outcomes.count(True) == 1
    assert select("a <> b", payload) is (not select("a = b", payload))
    assert select("a <= b", payload) is (not select("a > b", payload))


@given(st.text(alphabet=st.characters(blacklist_characters="'\\", blacklist_categories=("Cs",))))
def test_string_literals_are_taken_verbatim(text: str) -> None:
    assert select(f"'{text}'") == text


def test_encode_star_base64_keeps_the_published_bytes_exactly() -> None:
    raw = b'{"state":{"reported":{"big":123456789012345678901234567890123456789012,"f":1e200,"on":true}}}'
    context = MessageContext("t", None, NOW_MS, None, raw)
    result = parse("SELECT encode(*, 'base64') AS document FROM 't'").evaluate(context)
    assert result is not None
    assert base64.b64decode(result["document"]) == raw


def test_encode_of_a_value_converts_it_to_a_string_first_and_other_schemes_are_undefined() -> None:
    assert base64.b64decode(select("encode(name, 'base64')", {"name": "dévice"})).decode() == "dévice"
    assert select("encode(name, 'hex')", {"name": "x"}) == "<undefined>"
    assert select("encode(missing, 'base64')", {"name": "x"}) == "<undefined>"
