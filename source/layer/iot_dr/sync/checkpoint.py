"""Which devices a run has started and finished, so a stopped or crashed run continues where it left off.

``open_checkpoint`` takes a file path (``FileCheckpoint``) or ``dynamodb://<table>/<key>`` (``DynamoCheckpoint``,
for runs as a task).

``FileCheckpoint`` appends ``started <name>`` before a device and ``done <name>`` after it, flushing each line: a
run killed at any point leaves the devices in flight as started and not done. The next run skips the done ones and
copies the interrupted ones again in full (a half-copied device is already in the secondary, so smart mode's
"already there" test cannot be trusted for it); every write is idempotent, so nothing is duplicated.

A checkpoint resumes an interrupted run only: a run that synced every device without a failure records ``complete``,
and the next run with that checkpoint starts a fresh pass over the whole fleet (devices deleted from the secondary
since are copied again). ``pass_kind`` says which of ``NEW``, ``RESUMED`` or ``FRESH_PASS`` a run is.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from iot_dr.core.aws import error_code
from iot_dr.sync.settings import SettingsError

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

STARTED, DONE, COMPLETE = "started", "done", "complete"
# What ``load`` found: no earlier run, an interrupted run to continue, or a completed run (so a fresh pass starts).
NEW, RESUMED, FRESH_PASS = "new", "resumed", "fresh pass"


class Checkpoint(Protocol):
    """Where a sync run records its progress, so an interrupted run resumes where it stopped; ``pass_kind`` is set
    by ``load``."""

    pass_kind: str

    def load(self) -> tuple[set[str], set[str]]:
        """(finished, interrupted): devices finished by earlier runs, and those started but not finished."""

    def start(self, thing_name: str) -> None:
        """Record that ``thing_name`` is being synced."""

    def mark(self, thing_name: str) -> None:
        """Record ``thing_name`` as finished."""

    def complete(self) -> None:
        """Every device was synced: the next run starts a fresh pass instead of skipping them."""

    def release(self) -> None:
        """The run is over: let the next one use the checkpoint."""


class NoCheckpoint:
    """A checkpoint that remembers nothing (every run starts from scratch)."""

    pass_kind = NEW

    def load(self) -> tuple[set[str], set[str]]:
        """No devices finished or interrupted."""
        return set(), set()

    def start(self, thing_name: str) -> None:
        """Record nothing."""
        return None

    def mark(self, thing_name: str) -> None:
        """Record nothing."""
        return None

    def complete(self) -> None:
        """Record nothing."""
        return None

    def release(self) -> None:
        """Nothing to give back: a file or no checkpoint holds no lease."""
        return None


class FileCheckpoint:
    """Lines ``started <name>`` and ``done <name>`` in ``path`` (created if absent), and ``complete`` at the end of a
    run that synced every device."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self.pass_kind = NEW

    def _lines(self) -> list[str]:
        """The file's whole lines (a line cut short by a crash has no newline: it is ignored)."""
        if not self._path.exists():
            return []
        return self._path.read_text(encoding="utf-8").split("\n")[:-1]

    @staticmethod
    def _states(lines: list[str]) -> tuple[set[str], set[str]]:
        started: set[str] = set()
        finished: set[str] = set()
        for line in lines:
            state, _, name = line.partition(" ")
            (finished if state == DONE else started).add(name)
        return finished, started - finished

    def load(self) -> tuple[set[str], set[str]]:
        """(finished, interrupted) of the run to continue; a missing file means a new run, and a file that ends
        with ``complete`` a fresh pass (the file is emptied for it). OSError propagates."""
        lines = self._lines()
        if lines and lines[-1] == COMPLETE:
            self._path.write_text("", encoding="utf-8")
            self.pass_kind = FRESH_PASS
            return set(), set()
        finished, interrupted = self._states(lines)
        self.pass_kind = RESUMED if finished or interrupted else NEW
        return finished, interrupted

    def finished(self) -> set[str]:
        """Devices finished by the latest run (the one to continue, or the one that completed)."""
        lines = self._lines()
        return self._states(lines[:-1] if lines and lines[-1] == COMPLETE else lines)[0]

    def _append(self, state: str, thing_name: str) -> None:
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write(f"{state} {thing_name}\n")
            out.flush()

    def start(self, thing_name: str) -> None:
        """Append ``started <thing_name>``; OSError propagates."""
        self._append(STARTED, thing_name)

    def mark(self, thing_name: str) -> None:
        """Append ``done <thing_name>``; OSError propagates."""
        self._append(DONE, thing_name)

    def complete(self) -> None:
        """Append ``complete``; OSError propagates."""
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write(f"{COMPLETE}\n")

    def release(self) -> None:
        """Nothing to give back: a file or no checkpoint holds no lease."""
        return None


LEASE_SECONDS = 30.0
OWNER = "#owner"  # the lease item's sort key: '#' is not allowed in thing names, so no device can collide


class CheckpointBusy(SettingsError):
    """Another run holds the checkpoint (it advanced it less than the lease ago)."""


class CheckpointLost(Exception):
    """Another run took the checkpoint over: this run must stop advancing it."""


class DynamoCheckpoint:
    """A checkpoint in a DynamoDB table (partition key ``checkpoint``, sort key ``thing``, both strings), for runs
    as a task whose disk does not outlive them: ``dynamodb://<table>/<key>``.

    Each device is an item ``{checkpoint: key, thing: name, state: started|done, pass: N}``, with the resume
    semantics of ``FileCheckpoint``: ``complete`` moves the lease item's ``pass`` (0 when absent) on by one and sets
    its ``completedAt``, so the next run ignores the items of the completed pass and starts a fresh one.
    The item ``{checkpoint: key, thing: "#owner"}`` is a lease: ``load`` claims it for this run
    (refused with ``CheckpointBusy`` while another run advanced the checkpoint less than ``lease_seconds`` ago), and
    every ``start`` and ``mark`` is one transaction that renews the lease on the condition that this run still holds
    it, with the device's item; a run that lost it gets ``CheckpointLost`` and writes nothing. So two runs on the same
    key never both advance it. ``release`` gives the lease back at the end of a run; a killed run's lease expires.
    Conditional writes and transactions: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        key: str,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dynamodb, self._table, self._key = dynamodb, table, key
        self._lease, self._clock = lease_seconds, clock
        self._run = str(uuid.uuid4())
        self._claimed = False
        self._pass = 0
        self.pass_kind = NEW

    def _item_key(self, thing: str) -> dict[str, Any]:
        return {"checkpoint": {"S": self._key}, "thing": {"S": thing}}

    def _claim(self) -> dict[str, Any]:
        """Take the lease; the lease item's attributes."""
        now = self._clock()
        try:
            response = self._dynamodb.update_item(
                TableName=self._table,
                Key=self._item_key(OWNER),
                UpdateExpression="SET #owner = :run, renewedAt = :now",
                ConditionExpression="attribute_not_exists(thing) OR attribute_not_exists(#owner) OR renewedAt < :stale",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":run": {"S": self._run},
                    ":now": {"N": repr(now)},
                    ":stale": {"N": repr(now - self._lease)},
                },
                ReturnValues="ALL_NEW",
            )
            self._claimed = True
            return dict(response["Attributes"])
        except Exception as err:
            if error_code(err) == "ResourceNotFoundException":
                raise SettingsError(f"checkpoint table {self._table!r} does not exist") from None
            if error_code(err) == "ConditionalCheckFailedException":
                raise CheckpointBusy(
                    f"checkpoint dynamodb://{self._table}/{self._key} is in use by another run; a stopped run's "
                    f"lease expires {self._lease:.0f} s after its last device"
                ) from None
            raise

    def load(self) -> tuple[set[str], set[str]]:
        """Claim the lease, then ``(finished, interrupted)`` thing names; raises ``CheckpointBusy`` while another run
        holds the lease and ``SettingsError`` when the table does not exist."""
        lease = self._claim()
        self._pass = int(lease.get("pass", {}).get("N", "0"))
        started: set[str] = set()
        finished: set[str] = set()
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="#checkpoint = :key",
            ExpressionAttributeNames={"#checkpoint": "checkpoint"},
            ExpressionAttributeValues={":key": {"S": self._key}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page["Items"]:
                name, state = item["thing"]["S"], item.get("state", {}).get("S")
                if state in (STARTED, DONE) and int(item.get("pass", {}).get("N", "0")) == self._pass:
                    (finished if state == DONE else started).add(name)
        if finished or started:
            self.pass_kind = RESUMED
        else:
            self.pass_kind = FRESH_PASS if "completedAt" in lease else NEW
        return finished, started - finished

    def _advance(self, state: str, thing_name: str) -> None:
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": self._item_key(OWNER),
                            "UpdateExpression": "SET renewedAt = :now",
                            "ConditionExpression": "#owner = :run",
                            "ExpressionAttributeNames": {"#owner": "owner"},
                            "ExpressionAttributeValues": {":now": {"N": repr(self._clock())}, ":run": {"S": self._run}},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **self._item_key(thing_name),
                                "state": {"S": state},
                                "pass": {"N": str(self._pass)},
                            },
                        }
                    },
                ]
            )
        except Exception as err:
            if error_code(err) == "TransactionCanceledException":
                raise CheckpointLost(
                    f"checkpoint dynamodb://{self._table}/{self._key} was taken over by another run"
                ) from None
            raise

    def start(self, thing_name: str) -> None:
        """Record that ``thing_name`` is being synced, renewing the lease; raises ``CheckpointLost``."""
        self._advance(STARTED, thing_name)

    def mark(self, thing_name: str) -> None:
        """Record that ``thing_name`` is done, renewing the lease; raises ``CheckpointLost``."""
        self._advance(DONE, thing_name)

    def complete(self) -> None:
        """Start the next pass for the next run, if this run still holds the lease; raises ``CheckpointLost``."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=self._item_key(OWNER),
                UpdateExpression="SET #pass = :next, completedAt = :now",
                ConditionExpression="#owner = :run",
                ExpressionAttributeNames={"#owner": "owner", "#pass": "pass"},
                ExpressionAttributeValues={
                    ":next": {"N": str(self._pass + 1)},
                    ":now": {"N": repr(self._clock())},
                    ":run": {"S": self._run},
                },
            )
        except Exception as err:
            if error_code(err) == "ConditionalCheckFailedException":
                raise CheckpointLost(
                    f"checkpoint dynamodb://{self._table}/{self._key} was taken over by another run"
                ) from None
            raise

    def release(self) -> None:
        """Give the lease back (if this run still holds it) so the next run need not wait for it to expire."""
        if not self._claimed:
            return
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=self._item_key(OWNER),
                UpdateExpression="REMOVE #owner",
                ConditionExpression="#owner = :run",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":run": {"S": self._run}},
            )
        except Exception as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise


DYNAMODB_SCHEME = "dynamodb://"
_TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")


def open_checkpoint(location: str, dynamodb: Callable[[], DynamoDBClient]) -> Checkpoint:
    """A file path, or ``dynamodb://<table>/<key>`` (the key may hold slashes; ``dynamodb()`` gives a client in the
    table's region). Raises ``SettingsError`` for a malformed location."""
    if not location.startswith(DYNAMODB_SCHEME):
        path = Path(location)
        try:  # checked before the run, so an unusable path is one usage error, not a failure for every device
            with path.open("a", encoding="utf-8"):
                pass
        except OSError as err:
            raise SettingsError(f"checkpoint {location}: cannot write it: {err.strerror or err}") from None
        return FileCheckpoint(path)
    table, slash, key = location.removeprefix(DYNAMODB_SCHEME).partition("/")
    if not slash or not key or not _TABLE_NAME.fullmatch(table):
        raise SettingsError(f"checkpoint must be a file path or dynamodb://<table>/<key>, got {location!r}")
    return DynamoCheckpoint(dynamodb(), table, key)
