"""How long a device's first connection takes with just-in-time registration, against an ordinary connection.

Runs on the local cloud: deploys the solution, starts the failover services (brokers, device gateways), creates a
Private CA and registers it in both regions with the notebooks' functions, issues device certificates, and connects
each device (MQTT 5, awsiotsdk) to the primary's gateway twice: the first connection goes through JITR (refused,
registered PENDING_ACTIVATION, the rule invokes the JITR function, the client retries), the second is an ordinary
connection of an ACTIVE certificate. Prints medians, the 90th percentile and the ratio.

    .venv/bin/python benchmarks/jitr_first_connect.py --devices 10
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from iot_dr_local.cloud import LocalCloud
from iot_dr_local.failover_plan import FailoverSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "source" / "jupyter"))
import iot_dr_pca


def timed_connect(gateway: tuple[str, int], ca_path: str, device: iot_dr_pca.DeviceFiles) -> tuple[float, int]:
    started = time.monotonic()
    client, refusals = iot_dr_pca.connect_device(*gateway, ca_path, device, timeout=60.0, on_refused=lambda _: None)
    elapsed = time.monotonic() - started
    iot_dr_pca.disconnect(client)
    return elapsed, len(refusals)


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{name}: median {statistics.median(values):.2f} s, p90 {p90:.2f} s, max {ordered[-1]:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="iot-dr-jitr-bench-"))
    directory.chmod(0o755)
    cloud = LocalCloud()
    cloud.start()
    try:
        cloud.prepare_account()
        cloud.deploy()
        services = cloud.start_failover(
            directory / "failover", FailoverSettings(request_interval=600.0, mqtt_port=0, dns_port=0)
        )
        subject = {"Organization": "IoT DR benchmark"}
        config = iot_dr_pca.Config(
            pca_region=cloud.primary_region,
            primary_region=cloud.primary_region,
            secondary_region=cloud.secondary_region,
            work_dir=str(directory / "pca"),
            root_subject={**subject, "CommonName": "Benchmark Root"},
            subordinate_subject={**subject, "CommonName": "Benchmark Device CA"},
        )
        acm_pca = cloud.client("acm-pca", config.pca_region)
        pca_arn = iot_dr_pca.ensure_pca(acm_pca, config, iot_dr_pca.ensure_root_ca(config))
        for region in config.regions:
            iot_dr_pca.ensure_ca_registered(cloud.client("iot", region), acm_pca, pca_arn, region, config)
        devices = [
            iot_dr_pca.ensure_device_certificate(acm_pca, pca_arn, f"bench-jitr-{index:03d}", config)
            for index in range(args.devices)
        ]
        endpoint = services.gateways[cloud.primary_region].endpoint
        gateway, ca_path = (endpoint.address, endpoint.port), str(services.ca.cert_path)
        first, again, attempts = [], [], []
        for device in devices:
            elapsed, refused = timed_connect(gateway, ca_path, device)
            first.append(elapsed)
            attempts.append(refused)
            again.append(timed_connect(gateway, ca_path, device)[0])
        print(f"{args.devices} devices, primary region's device gateway (timings on a shared machine are noisy)")
        print(summary("first connection through JITR", first))
        print(f"refused attempts before admission: median {statistics.median(attempts):g}, max {max(attempts)}")
        print(summary("ordinary connection of an ACTIVE certificate", again))
        print(f"ratio of medians (JITR / ordinary): {statistics.median(first) / statistics.median(again):.1f}")
    finally:
        cloud.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
