"""``iot-dr-shadow-cmp.py``: are shadows written in the primary replicated to the secondary?

Creates ``--num-tests`` test things in the primary, updates each one's shadow (classic, or ``--shadow-name``) with a
random temperature, then reads the shadow in the secondary, retrying with backoff while it is not replicated yet,
and compares the reported state. Deletes the shadows and things it created in the primary afterwards (replication
deletes them in the secondary), also after a failure. Exit 1 when any shadow did not match or could not be checked.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from iot_dr.core import aws
from iot_dr.fleet.device import CLASSIC_SHADOW, shadow_state
from iot_dr.fleet.rate_limit import LimitedClient, RateLimiter
from iot_dr.secondary.replicate.context import is_not_found
from iot_dr_cli.arguments import max_workers, positive
from iot_dr_cli.tooling import EXIT_FAILURE, EXIT_OK, region_pair, run

PROG = "iot-dr-shadow-cmp.py"
LOG = logging.getLogger(PROG)
# The archived tool waited 4, 6, 8, 10, 12 s; replication usually takes seconds, so start shorter.
FIRST_DELAY, MAX_DELAY = 1.0, 12.0


@dataclass
class ShadowResult:
    thing: str
    outcome: str  # "match", "mismatch", "not replicated" or "error"
    detail: str = ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--primary-region", help="default: PRIMARY_REGION from toolsrc")
    parser.add_argument("--secondary-region", help="default: SECONDARY_REGION from toolsrc")
    parser.add_argument("--num-tests", type=positive, default=10, help="shadows to test (default 10)")
    parser.add_argument("--max-workers", type=max_workers, default=10, help="parallel tests, 1-50 (default 10)")
    parser.add_argument("--shadow-name", help="test this named shadow instead of the classic shadow")
    parser.add_argument("--retries", type=positive, default=5, help="reads in the secondary per shadow (default 5)")
    return parser


def delays(retries: int) -> list[float]:
    """Seconds to wait before each retry: doubling from FIRST_DELAY, capped at MAX_DELAY."""
    return [min(MAX_DELAY, FIRST_DELAY * 2**attempt) for attempt in range(retries - 1)]


class ShadowTest:
    def __init__(
        self,
        primary: tuple[Any, Any],
        secondary_data: Any,
        shadow: str | None,
        retries: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        (self.iot, self.data), self.secondary_data = primary, secondary_data
        self.shadow, self.retries, self.sleep = shadow, retries, sleep

    def create(self, thing: str) -> int:
        temperature = random.randint(20, 39)
        self.iot.create_thing(thingName=thing)
        named = {"shadowName": self.shadow} if self.shadow else {}
        payload = json.dumps({"state": {"reported": {"temperature": temperature}}})
        self.data.update_thing_shadow(thingName=thing, payload=payload, **named)
        return temperature

    def compare(self, index: int, thing: str, temperature: int) -> ShadowResult:
        waits = delays(self.retries)
        for attempt in range(self.retries):
            state = shadow_state(self.secondary_data, thing, self.shadow)
            if state is not None:
                found = state.get("reported", {}).get("temperature")
                if found == temperature:
                    print(
                        f"compare_shadow: i: {index} thing_name: {thing} shadows match: temperature: {temperature} "
                        f"temperature_secondary: {found}",
                        flush=True,
                    )
                    return ShadowResult(thing, "match")
                return ShadowResult(thing, "mismatch", f"primary {temperature}, secondary {found}")
            if attempt < len(waits):
                print(
                    f"compare_shadow: n: {attempt + 1} thing_name: {thing}: no shadow payload, "
                    f"retrying in {waits[attempt]:g} secs.",
                    flush=True,
                )
                self.sleep(waits[attempt])
        return ShadowResult(thing, "not replicated", f"no shadow in the secondary after {self.retries} reads")

    def run_one(self, index: int, thing: str) -> ShadowResult:
        try:
            return self.compare(index, thing, self.create(thing))
        except Exception as err:  # counted and reported with the thing; the other tests go on
            return ShadowResult(thing, "error", f"{type(err).__name__}: {err}")

    def cleanup(self, thing: str) -> str | None:
        """Delete the shadow and the thing in the primary; the error text if that failed."""
        named = {"shadowName": self.shadow} if self.shadow else {}
        try:
            if shadow_state(self.data, thing, self.shadow) is not None:
                self.data.delete_thing_shadow(thingName=thing, **named)
            self.iot.delete_thing(thingName=thing)
        except Exception as err:
            if is_not_found(err):  # never created: the test failed before
                return None
            return f"{type(err).__name__}: {err}"
        return None


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    primary, secondary = region_pair(args.primary_region, args.secondary_region)
    limiter = RateLimiter()
    test = ShadowTest(
        (LimitedClient(aws.client("iot", primary), limiter), LimitedClient(aws.client("iot-data", primary), limiter)),
        LimitedClient(aws.client("iot-data", secondary), RateLimiter()),
        args.shadow_name,
        args.retries,
    )
    things = [f"iot-dr-shadow-cmp-{uuid.uuid4()}" for _ in range(args.num_tests)]
    print(
        f"cmp: start: {args.num_tests} {args.shadow_name or CLASSIC_SHADOW} shadows, {primary} -> {secondary}",
        flush=True,
    )
    results: list[ShadowResult] = []
    with ThreadPoolExecutor(max_workers=args.max_workers) as pool:
        try:
            results = list(pool.map(test.run_one, range(len(things)), things))
        finally:
            cleanup_errors = [e for e in pool.map(test.cleanup, things) if e]
    for result in results:
        if result.outcome != "match":
            print(f"replication: {result.thing}: {result.outcome}: {result.detail}", flush=True)
    for error in cleanup_errors:
        print(f"cleanup: {error}", flush=True)
    mismatched = sum(r.outcome in ("mismatch", "not replicated") for r in results)
    errors = sum(r.outcome == "error" for r in results) + len(cleanup_errors)
    print(
        f"cmp: stats: NUM_SHADOWS_COMPARED: {len(results)} NUM_SHADOWS_NOTSYNCED: {mismatched} NUM_ERRORS: {errors}",
        flush=True,
    )
    return EXIT_OK if not mismatched and not errors else EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
