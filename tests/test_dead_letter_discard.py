"""``iot-dr dead-letters --discard ID``: a parked event stays until it is replayed or deliberately discarded."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from iot_dr.core import aws
from iot_dr.parking.dead_letters import DeadLetters
from iot_dr_cli.main import main


@pytest.fixture
def dead_letters(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DeadLetters, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"discard-{port}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    dynamodb = aws.client("dynamodb", "us-west-2")
    # moto keeps its backends per process, so each test gets a table of its own.
    table = f"IoTDRSecondaryDeadLetters-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "deadLetterId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "deadLetterId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield DeadLetters(dynamodb, table), table
    server.stop()


def test_discard_removes_exactly_the_named_parked_events(
    dead_letters: tuple[DeadLetters, str], capsys: pytest.CaptureFixture[str]
) -> None:
    letters, table = dead_letters
    for n in range(3):
        letters.park(f"workflow#{n}", "workflow", "thing type missing", "MalformedEvent", {"eventType": "THING"})
    capsys.readouterr()

    code = main(["dead-letters", "--region", "us-west-2", "--table", table, "--discard", "workflow#1"])

    assert code == 0
    out = capsys.readouterr().out
    # The in-process moto server's request log shares standard output; the command's answer is its JSON block.
    assert json.loads(out[out.index('{\n  "discarded"') :].split("\n}\n")[0] + "}") == {"discarded": ["workflow#1"]}
    assert sorted(letter.dead_letter_id for letter in letters) == ["workflow#0", "workflow#2"]


def test_discarding_an_unknown_id_removes_nothing(dead_letters: tuple[DeadLetters, str]) -> None:
    letters, table = dead_letters
    letters.park("workflow#0", "workflow", "reason", "MalformedEvent", {})

    code = main(
        [
            "dead-letters",
            "--region",
            "us-west-2",
            "--table",
            table,
            "--discard",
            "workflow#0",
            "--discard",
            "x",
        ]
    )

    assert code == 1
    assert [letter.dead_letter_id for letter in letters] == ["workflow#0"]
