"""The sync's concurrency comes from the rate limits: workers = ceil(devices/s x calls per device x seconds per call),
capped by MAX_WORKERS, and the run uses exactly that many."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
from fleet_support import seed_fleet
from local_cloud_support import PRIMARY, SECONDARY

from iot_dr.fleet.rate_limit import DEFAULT_QUOTAS, RateLimiter
from iot_dr.sync.engine import SYNC_SHARE, Endpoints, run
from iot_dr.sync.settings import SyncSettings
from iot_dr.sync.sizing import CALL_SECONDS, COSTS, size_workers
from iot_dr_cli.main import main
from iot_dr_local.cloud import LocalCloud


def rates(**overrides: float) -> RateLimiter:
    return RateLimiter({**DEFAULT_QUOTAS, **overrides}, SYNC_SHARE)


def test_default_quotas_need_more_workers_than_the_default_cap() -> None:
    sizing = size_workers("region-to-region", "smart", rates().rate, cap=10)
    # 10 devices/s at 98 %, 31 calls of 0.1 s each: 31 workers would keep the quota busy.
    assert math.ceil(9.8 * COSTS[("region-to-region", "smart")].calls * CALL_SECONDS) > 10
    assert sizing.workers == 10
    assert sizing.devices_per_second == pytest.approx(9.8)


def test_a_shards_share_of_the_quota_needs_fewer_workers() -> None:
    sizing = size_workers("region-to-region", "smart", rates(RegisterCertificateWithoutCA=2.5).rate, cap=10)
    assert sizing.binding == "RegisterCertificateWithoutCA"
    assert sizing.workers == math.ceil(2.5 * 0.98 * 31 * CALL_SECONDS) == 8


def test_a_raised_certificate_quota_leaves_the_primarys_reads_binding() -> None:
    sizing = size_workers("region-to-region", "smart", rates(RegisterCertificateWithoutCA=100).rate, cap=50)
    assert sizing.binding in {"DescribeCertificate", "ListThingGroupsForThing", "ListNamedShadowsForThing"}
    assert sizing.devices_per_second == pytest.approx(9.8)
    raised = dict.fromkeys(("DescribeCertificate", "ListThingGroupsForThing", "ListNamedShadowsForThing"), 100.0)
    assert (
        size_workers("region-to-region", "smart", rates(RegisterCertificateWithoutCA=100, **raised).rate, 50).workers
        == 50
    )


def test_region_to_ddb_and_tiny_rates_size_down_but_never_below_one() -> None:
    ddb = size_workers("region-to-ddb", "smart", rates(DescribeCertificate=1).rate, cap=10)
    assert ddb.workers == math.ceil(0.98 * 12 * CALL_SECONDS) == 2
    assert size_workers("region-to-ddb", "smart", rates(DescribeCertificate=0.01).rate, cap=10).workers == 1


def test_the_summary_prints_the_workers_and_the_run_never_exceeds_them(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), "sized", 3)
    flags = ["--primary-region", PRIMARY, "--secondary-region", SECONDARY, "--query-string", fleet.query]

    code = main(["sync", "region-to-region", *flags, "--max-workers", "10", "--rate", "RegisterCertificateWithoutCA=1"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert summary["workers"] == math.ceil(0.98 * 31 * CALL_SECONDS) == 4
    assert summary["sizing"]["binding"] == "RegisterCertificateWithoutCA"

    # The engine runs at most that many devices at once.
    settings = SyncSettings(PRIMARY, SECONDARY, mode="smart", max_workers=10)
    sizing = size_workers("region-to-region", "smart", rates(RegisterCertificateWithoutCA=0.5).rate, 10)
    busy, peak, lock = [0], [0], threading.Lock()

    class Slow:
        def apply(self, name: str, existing: bool) -> None:
            with lock:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.2)
            with lock:
                busy[0] -= 1

    names = iter([f"sized-absent-{i}" for i in range(8)])
    result = run(settings, Endpoints.open(settings), Slow(), names=names, sizing=sizing)
    assert sizing.workers == 2
    assert (result.created, result.workers, peak[0]) == (8, 2, 2)
