"""Health-check answer time, cold and warm (p50/p99), and under a flood of unauthenticated requests.

Runs the real health-checker handler against a real mosquitto broker with mutual TLS on 127.0.0.2 (the port given
by --mqtt-port, 0 picks a free one), with its credentials from files (as the local cloud's checker) or, with
--credentials secret, from Secrets Manager (as on AWS; a moto server on loopback):

- cold: a new Python process per sample imports the handler and answers one request (import + first call, as a
  Lambda cold start without the runtime's own start-up), split into the handler's import and the first call;
- warm: one process answers --warm requests in a row;
- flood: --flood-threads threads send requests without the secret for --flood-seconds (bounded, in-process) while
  the main thread sends an authenticated probe every 100 ms; prints the probes' answer times and the flood's codes.
  This measures the handler: API Gateway's throttle and AWS WAF are not in the local path (README, "Health check").

    .venv/bin/python benchmarks/health_check_latency.py --cold 20 --warm 200 --mqtt-port 18817
    .venv/bin/python benchmarks/health_check_latency.py --cold 20 --warm 200 --credentials secret

Where the import time goes: ``python -X importtime -c "import health_checker"`` in
source/lambda/iot-dr-r53-health-checker with PYTHONPATH=../../layer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from iot_dr_local.mqtt_broker import PRIMARY_BROKER_ADDRESS, MosquittoBroker
from iot_dr_local.pki import LocalCA

REPO = Path(__file__).resolve().parents[1]
HANDLER = REPO / "source/lambda/iot-dr-r53-health-checker/health_checker.py"
SECRET = "benchmark-secret-0123456789abcdef0123456789"
COLD = """
import importlib.util, json, sys, time
started = time.monotonic()
spec = importlib.util.spec_from_file_location("health_checker", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.monotonic()
status = module.handler(json.loads(sys.argv[2]), None)["statusCode"]
done = time.monotonic()
print(json.dumps({"ms": (done - started) * 1000, "import_ms": (imported - started) * 1000,
                  "call_ms": (done - imported) * 1000, "status": status}))
"""


def request(secret: str | None) -> dict[str, Any]:
    event = json.loads((REPO / "tests/events/apigateway/health-check-get.json").read_text())
    event["headers"] = {"Host": event["headers"].get("Host", "localhost")}
    if secret:
        event["headers"]["X-Health-Check-Secret"] = secret
    return event


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<26} n={len(values):<5} p50 {statistics.median(values):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms"
        f"   max {max(values):7.1f} ms"
    )


def load_handler() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("health_checker", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def timed(handler: Any, event: dict[str, Any]) -> tuple[float, int]:
    started = time.monotonic()
    status = handler(event, None)["statusCode"]
    return (time.monotonic() - started) * 1000, status


def free_port(address: str) -> int:
    """A port free on ``address`` now (mosquitto reads port 0 as a unix socket, so one must be chosen here)."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def secret_environment(identity: Any) -> tuple[dict[str, str], Any]:
    """A Secrets Manager (moto server on loopback) holding the checker's credentials; its environment and server."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port("127.0.0.1"), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=env["AWS_ENDPOINT_URL"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    value = {"certificatePem": identity.cert_pem, "privateKey": identity.key_pem, "healthCheckSecret": SECRET}
    arn = secrets.create_secret(Name="iot-dr-bench-checker", SecretString=json.dumps(value))["ARN"]
    return {**env, "CREDENTIALS_SECRET_ARN": arn}, server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--flood-threads", type=int, default=4)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--mqtt-port", type=int, default=0)
    parser.add_argument("--credentials", choices=("files", "secret"), default="files")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="iot-dr-bench-"))
    work.chmod(0o755)  # mosquitto drops privileges before reading its files
    ca = LocalCA(work / "ca")
    identity = ca.issue_device("iot-dr-r53-checker-bench")
    port = args.mqtt_port or free_port(PRIMARY_BROKER_ADDRESS)
    broker = MosquittoBroker("bench", PRIMARY_BROKER_ADDRESS, port, work / "broker", ca, [])
    broker.start()
    secrets_server = None
    try:
        env = {
            "IOT_ENDPOINT": broker.endpoint.address,
            "IOT_PORT": str(broker.endpoint.port),
            "CA_PATH": str(broker.endpoint.ca_path),
            "CLIENT_ID": "iot-dr-r53-checker-bench",
            "AWS_REGION": "us-east-1",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "ERROR"),
        }
        if args.credentials == "secret":
            secret_env, secrets_server = secret_environment(identity)
            env.update(secret_env)
        else:
            env.update(CERT_PATH=str(identity.cert_path), KEY_PATH=str(identity.key_path), HEALTH_CHECK_SECRET=SECRET)
        os.environ.update(env)
        cold, cold_import, cold_call = [], [], []
        for _ in range(args.cold):
            out = subprocess.run(
                [sys.executable, "-c", COLD, str(HANDLER), json.dumps(request(SECRET))],
                stdout=subprocess.PIPE,
                text=True,
                check=True,
                env={**os.environ, **env},
            ).stdout
            sample = json.loads(out.strip().splitlines()[-1])
            if sample["status"] != 200:
                print(f"cold sample answered {sample['status']} after {sample['ms']:.0f} ms", file=sys.stderr)
            cold.append(sample["ms"])
            cold_import.append(sample["import_ms"])
            cold_call.append(sample["call_ms"])
        handler = load_handler()
        warm = [timed(handler, request(SECRET)) for _ in range(args.warm)]
        assert {status for _, status in warm} == {200}

        flood_codes: Counter[int] = Counter()
        flood_ms: list[float] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.flood_seconds

        def flood() -> None:
            while time.monotonic() < deadline:
                ms, status = timed(handler, request(None))
                with lock:
                    flood_codes[status] += 1
                    flood_ms.append(ms)

        threads = [threading.Thread(target=flood) for _ in range(args.flood_threads)]
        for thread in threads:
            thread.start()
        probes = [timed(handler, request(SECRET))]
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.1)
            probes.append(timed(handler, request(SECRET)))
        for thread in threads:
            thread.join()

        print(f"credentials from {args.credentials}")
        print(summary("cold (import + 1st call)", cold))
        print(summary("  cold: handler import", cold_import))
        print(summary("  cold: 1st call", cold_call))
        print(summary("warm", [ms for ms, _ in warm]))
        rate = len(flood_ms) / args.flood_seconds
        print(summary("flood: unauthenticated", flood_ms) + f"   codes {dict(flood_codes)}   {rate:.0f} requests/s")
        print(
            summary("flood: Route 53 probes", [ms for ms, _ in probes])
            + f"   codes {dict(Counter(s for _, s in probes))}"
        )
        print(f"probes over 2000 ms: {sum(ms > 2000 for ms, _ in probes)} of {len(probes)}")
    finally:
        if secrets_server is not None:
            secrets_server.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
