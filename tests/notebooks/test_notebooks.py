"""The private-CA notebooks 01-05, executed with nbclient in fresh kernels against the local cloud with the solution
deployed, then the device of notebook 04 through a failover.

What the local cloud emulates here, and how (``docs/local-cloud.md``, "Private CA and just-in-time registration"):
- AWS Private CA: moto's acm-pca backend (create, CSR, import, issue, get certificate, get CA certificate, list,
  describe; issued certificates are signed by the CA's key), with ``iot_dr_local.acm_pca`` adding idempotency tokens,
  ``Validity``/``SigningAlgorithm``, the ACTIVE check on issue and the key check on import.
- CA registration: moto's IoT backend with ``iot_dr_local.ca_registration`` (stable registration code, verification
  certificate check, ``ResourceAlreadyExistsException``, auto-registration status, ``ListCACertificates``).
- The device's first connection: ``iot_dr_local.device_gateway`` in front of each region's mosquitto broker asks
  ``iot_dr_local.jitr_emulation``, which registers the certificate as PENDING_ACTIVATION (publishing
  ``$aws/events/certificates/registered/<caCertificateId>`` to the rules engine, where the deployed JITR rule invokes
  the JITR function) and refuses the connection until the certificate is ACTIVE.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from waiting import eventually

from iot_dr_local.cloud import LocalCloud
from iot_dr_local.failover import DeviceCertificate, FailoverServices
from iot_dr_local.failover_plan import FailoverSettings
from iot_dr_local.local_up import failover_state
from iot_dr_local.process_refs import ProcessRef
from iot_dr_local.processes import find_binary
from iot_dr_local.run_state import LocalState, StateFile

PRIMARY, SECONDARY = "us-east-1", "us-west-2"
JUPYTER_DIR = Path(__file__).resolve().parents[2] / "source" / "jupyter"
NOTEBOOKS = [
    "01_IoTDR_Shared",
    "02_IoTDR_ACM_PCA",
    "03_IoTDR_Reg_PCA",
    "04_IoTDR_Device_Certs",
    "05_IoTDR_JITR_Device",
]
# The thing notebook 05 connects before the failover, and one that first connects after it.
THING, LATE_THING = "dr-pca-04", "dr-pca-late"
THRESHOLD = 2
KERNEL_TIMEOUT = 240

pytestmark = pytest.mark.skipif(
    find_binary("mosquitto") is None or find_binary("knotd") is None,
    reason="mosquitto and knot are needed (apt-get install --no-install-recommends mosquitto knot)",
)


@dataclass
class Setup:
    cloud: LocalCloud
    services: FailoverServices
    directory: Path

    def gateway(self, region: str) -> tuple[str, int]:
        endpoint = self.services.gateways[region].endpoint
        return endpoint.address, endpoint.port

    @property
    def ca_path(self) -> str:
        return str(self.services.ca.cert_path)

    def local_outage(self, region: str, device: Any) -> subprocess.CompletedProcess[str]:
        """Run ``iot-dr local outage <region>`` against this cloud, recorded in a state file as ``local up`` records
        itself (this process stands for the ``local up`` server)."""
        state_file = StateFile(self.directory / "state")
        state_file.directory.mkdir(exist_ok=True)
        served = LocalState(self.cloud.endpoint, PRIMARY, SECONDARY, ProcessRef.this_process())
        certificate = DeviceCertificate(device.thing_name, device.cert_path, device.key_path, device.certificate_id)
        with state_file.locked():
            state_file.write(failover_state(served, self.services, certificate, self.directory / "failover"))
        try:
            return subprocess.run(
                [sys.executable, "-m", "iot_dr_cli.main", "local", "outage", region, "--state-dir",
                 str(state_file.directory)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        finally:
            state_file.remove()

    def notebook_directory(self) -> Path:
        """A fresh copy of source/jupyter, as the launcher uploads it, to run the notebooks in."""
        target = Path(tempfile.mkdtemp(prefix="notebooks-", dir=self.directory))
        for path in JUPYTER_DIR.iterdir():
            if path.suffix in (".ipynb", ".py"):
                shutil.copy(path, target / path.name)
        return target


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    # Not pytest's tmp_path: its parent is 0700, and mosquitto drops root privileges before reading its files.
    directory = Path(tempfile.mkdtemp(prefix="iot-dr-notebooks-"))
    directory.chmod(0o755)
    cloud = LocalCloud(PRIMARY, SECONDARY)
    cloud.start()
    try:
        cloud.prepare_account()
        cloud.deploy()
        services = cloud.start_failover(
            directory / "failover",
            FailoverSettings(request_interval=600.0, failure_threshold=THRESHOLD, mqtt_port=0, dns_port=0),
        )
        yield Setup(cloud, services, directory)
    finally:
        cloud.stop()
        shutil.rmtree(directory, ignore_errors=True)


def run_notebook(directory: Path, name: str, **parameters: Any) -> str:
    """Execute ``name`` in ``directory`` in a fresh kernel, ``parameters`` injected after its ``parameters`` cell
    (as papermill does); returns the text of every output. Raises ``CellExecutionError``."""
    book = nbformat.read(directory / f"{name}.ipynb", as_version=4)
    tagged = [i for i, cell in enumerate(book.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged parameters"
    if parameters:
        source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
        injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
        book.cells.insert(tagged[0] + 1, injected)
    # The kernel inherits this process's environment: AWS_ENDPOINT_URL points it at the local cloud.
    NotebookClient(
        book, timeout=KERNEL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(directory)}}
    ).execute()
    texts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(str(value) for value in output.get("data", {}).values())
            texts.extend(output.get("traceback", []))
    return "\n".join(texts)


def run_all(setup: Setup, directory: Path, **notebook_05: Any) -> dict[str, str]:
    address, port = setup.gateway(PRIMARY)
    outputs = {
        "01_IoTDR_Shared": run_notebook(
            directory, "01_IoTDR_Shared", pca_region=PRIMARY, primary_region=PRIMARY, secondary_region=SECONDARY
        ),
        "02_IoTDR_ACM_PCA": run_notebook(directory, "02_IoTDR_ACM_PCA"),
        "03_IoTDR_Reg_PCA": run_notebook(directory, "03_IoTDR_Reg_PCA"),
        "04_IoTDR_Device_Certs": run_notebook(directory, "04_IoTDR_Device_Certs", thing_names=[THING, LATE_THING]),
    }
    outputs["05_IoTDR_JITR_Device"] = run_notebook(
        directory,
        "05_IoTDR_JITR_Device",
        thing_name=THING,
        endpoint=address,
        port=port,
        root_ca=setup.ca_path,
        connect_timeout=60.0,
        replication_timeout=60.0,
        **notebook_05,
    )
    return outputs


@dataclass
class FirstRun:
    directory: Path
    outputs: dict[str, str]


@pytest.fixture(scope="module")
def first_run(setup: Setup) -> FirstRun:
    directory = setup.notebook_directory()
    return FirstRun(directory, run_all(setup, directory))


def config_of(run: FirstRun) -> dict[str, Any]:
    return dict(json.loads((run.directory / "iot-dr-pca.json").read_text()))


def device_files(run: FirstRun, thing: str) -> Any:
    """The files notebook 04 wrote, through the notebooks' own module (as notebook 05 reads them)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("iot_dr_pca_under_test", run.directory / "iot_dr_pca.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    config = module.Config(**{**config_of(run), "work_dir": str(run.directory / config_of(run)["work_dir"])})
    return module, module.device_files(config, thing)


def certificate(cloud: LocalCloud, region: str, certificate_id: str) -> dict[str, Any] | None:
    iot = cloud.client("iot", region)
    try:
        return dict(iot.describe_certificate(certificateId=certificate_id)["certificateDescription"])
    except iot.exceptions.ResourceNotFoundException:
        return None


def attached_policies(cloud: LocalCloud, region: str, arn: str) -> list[str]:
    policies = cloud.client("iot", region).list_attached_policies(target=arn)["policies"]
    return [policy["policyName"] for policy in policies]


def test_the_notebooks_run_in_order_and_the_device_registers_just_in_time_in_the_primary(
    setup: Setup, first_run: FirstRun
) -> None:
    outputs = first_run.outputs
    assert "registered now" in outputs["03_IoTDR_Reg_PCA"]
    refused = re.search(r"connected after (\d+) refused attempt", outputs["05_IoTDR_JITR_Device"])
    assert refused is not None and int(refused.group(1)) >= 1
    assert "as PENDING_ACTIVATION; connect again once it is activated" in outputs["05_IoTDR_JITR_Device"]
    _, files = device_files(first_run, THING)
    description = certificate(setup.cloud, PRIMARY, files.certificate_id)
    assert description is not None and description["status"] == "ACTIVE"
    assert attached_policies(setup.cloud, PRIMARY, description["certificateArn"]) == ["IoTDR-JITR_Policy"]
    principals = setup.cloud.client("iot", PRIMARY).list_thing_principals(thingName=THING)["principals"]
    assert principals == [description["certificateArn"]]
    admissions = setup.services.gateways[PRIMARY].admissions
    first = next(a for a in admissions if a.certificate_id == files.certificate_id)
    assert first.registered_just_in_time and not first.allowed
    assert any(a.allowed for a in admissions if a.certificate_id == files.certificate_id)
    # The thing the JITR function created in the primary replicates to the secondary.
    assert f"{SECONDARY} {{'thingName': '{THING}'" in outputs["05_IoTDR_JITR_Device"]


def test_the_private_ca_is_signed_by_the_local_root_and_registered_in_both_regions(
    setup: Setup, first_run: FirstRun
) -> None:
    from cryptography import x509

    acm_pca = setup.cloud.client("acm-pca", PRIMARY)
    authorities = acm_pca.list_certificate_authorities()["CertificateAuthorities"]
    assert [(ca["Type"], ca["Status"]) for ca in authorities] == [("SUBORDINATE", "ACTIVE")]
    ca_pem = acm_pca.get_certificate_authority_certificate(CertificateAuthorityArn=authorities[0]["Arn"])["Certificate"]
    root = x509.load_pem_x509_certificate((first_run.directory / "iot-dr-pca/root-ca/ca.crt.pem").read_bytes())
    x509.load_pem_x509_certificate(ca_pem.encode()).verify_directly_issued_by(root)
    _, files = device_files(first_run, THING)
    device = x509.load_pem_x509_certificate(files.cert_path.read_bytes())
    device.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    for region in (PRIMARY, SECONDARY):
        iot = setup.cloud.client("iot", region)
        [registered] = iot.list_ca_certificates()["certificates"]
        description = iot.describe_ca_certificate(certificateId=registered["certificateId"])["certificateDescription"]
        assert (description["status"], description["autoRegistrationStatus"]) == ("ACTIVE", "ENABLE")
        assert description["certificatePem"].strip() == ca_pem.strip()
    # Each region's verification certificate carries that region's registration code: two different certificates.
    verification = {
        region: x509.load_pem_x509_certificate(
            (first_run.directory / f"iot-dr-pca/pca/registration_cert_{region}.pem").read_bytes()
        )
        for region in (PRIMARY, SECONDARY)
    }
    assert verification[PRIMARY].serial_number != verification[SECONDARY].serial_number


def test_no_output_shows_a_private_key_or_the_credentials(first_run: FirstRun) -> None:
    text = "\n".join(first_run.outputs.values())
    keys = [path.read_text() for path in (first_run.directory / "iot-dr-pca").rglob("*key*.pem")]
    assert keys
    assert "PRIVATE KEY" not in text
    assert not any(key.strip().splitlines()[1] in text for key in keys)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text
    for path in (first_run.directory / "iot-dr-pca").rglob("*key*.pem"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def test_a_second_run_of_every_notebook_reuses_what_the_first_created(setup: Setup, first_run: FirstRun) -> None:
    _, files = device_files(first_run, THING)
    certificate_before = files.cert_path.read_text()
    root_before = (first_run.directory / "iot-dr-pca/root-ca/ca.crt.pem").read_text()

    outputs = run_all(setup, first_run.directory)

    acm_pca = setup.cloud.client("acm-pca", PRIMARY)
    assert len(acm_pca.list_certificate_authorities()["CertificateAuthorities"]) == 1
    assert outputs["03_IoTDR_Reg_PCA"].count("already registered") == 2
    for region in (PRIMARY, SECONDARY):
        assert len(setup.cloud.client("iot", region).list_ca_certificates()["certificates"]) == 1
    assert files.cert_path.read_text() == certificate_before
    assert (first_run.directory / "iot-dr-pca/root-ca/ca.crt.pem").read_text() == root_before
    # The certificate is ACTIVE now: the device is admitted on its first attempt.
    assert "connected after 0 refused attempt(s)" in outputs["05_IoTDR_JITR_Device"]


def test_notebooks_03_and_04_stop_with_a_clear_error_when_the_private_ca_does_not_exist(setup: Setup) -> None:
    directory = setup.notebook_directory()
    run_notebook(directory, "01_IoTDR_Shared", subordinate_common_name="No Such CA", primary_region=PRIMARY)

    for name in ("03_IoTDR_Reg_PCA", "04_IoTDR_Device_Certs"):
        with pytest.raises(CellExecutionError) as raised:
            run_notebook(directory, name)
        assert "PcaNotFound" in str(raised.value)
        assert "'No Such CA' does not exist in us-east-1: run 02_IoTDR_ACM_PCA.ipynb" in str(raised.value)


def test_registering_the_private_ca_again_is_refused_as_already_registered(setup: Setup, first_run: FirstRun) -> None:
    acm_pca = setup.cloud.client("acm-pca", PRIMARY)
    [authority] = acm_pca.list_certificate_authorities()["CertificateAuthorities"]
    ca_pem = acm_pca.get_certificate_authority_certificate(CertificateAuthorityArn=authority["Arn"])["Certificate"]
    iot = setup.cloud.client("iot", SECONDARY)
    verification = (first_run.directory / f"iot-dr-pca/pca/registration_cert_{SECONDARY}.pem").read_text()

    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.register_ca_certificate(caCertificate=ca_pem, verificationCertificate=verification, setAsActive=True)


def test_a_device_certificate_from_an_unregistered_ca_is_refused_with_the_reason(
    setup: Setup, first_run: FirstRun
) -> None:
    module, _ = device_files(first_run, THING)
    config = module.Config(
        pca_region=PRIMARY,
        primary_region=PRIMARY,
        secondary_region=SECONDARY,
        work_dir=str(first_run.directory / "rogue"),
        root_subject={"CommonName": "Rogue Root"},
        subordinate_subject={"CommonName": "Rogue"},
    )
    root_cert, root_key = module.ensure_root_ca(config)
    rogue = _device_signed_by(module, config, root_cert, root_key, "rogue-device")
    address, port = setup.gateway(PRIMARY)

    with pytest.raises(module.DeviceNotConnected) as raised:
        module.connect_device(address, port, setup.ca_path, rogue, timeout=3.0, on_refused=lambda _: None)

    reasons = raised.value.refusals
    assert reasons, "the device saw no refusal"
    assert reasons[0] == (
        f"certificate {rogue.certificate_id} is not registered in {PRIMARY} and was not signed by a CA certificate "
        "registered there"
    )
    assert certificate(setup.cloud, PRIMARY, rogue.certificate_id) is None


def test_the_first_connection_without_the_ca_certificate_is_refused_and_registers_nothing(
    setup: Setup, first_run: FirstRun
) -> None:
    module, late = device_files(first_run, LATE_THING)
    address, port = setup.gateway(PRIMARY)
    without_chain = module.DeviceFiles(
        late.thing_name, late.key_path, late.cert_path, late.cert_path, late.certificate_id
    )

    with pytest.raises(module.DeviceNotConnected) as raised:
        module.connect_device(address, port, setup.ca_path, without_chain, timeout=3.0, on_refused=lambda _: None)

    assert "present the CA certificate" in raised.value.refusals[0]
    assert certificate(setup.cloud, PRIMARY, late.certificate_id) is None


def test_after_a_failover_the_devices_connect_in_the_secondary_and_a_new_one_registers_just_in_time_there(
    setup: Setup, first_run: FirstRun
) -> None:
    module, device = device_files(first_run, THING)
    _, late = device_files(first_run, LATE_THING)
    services, cloud = setup.services, setup.cloud
    primary_check = services.plan.primary.health_check
    assert primary_check is not None and services.emulator is not None

    outage = setup.local_outage(PRIMARY, device)
    try:
        assert outage.returncode == 0, outage.stderr
        assert f"{PRIMARY}: broker" in outage.stdout and "killed" in outage.stdout
        assert not services.brokers[PRIMARY].running
        for _ in range(THRESHOLD):
            services.emulator.probe_once(primary_check.health_check_id)
        target = str(services.dns.resolver().resolve(services.plan.record.name, "CNAME")[0].target)  # type: ignore[union-attr]
        assert target == f"{SECONDARY}.iot-dr.test."
        address = str(services.dns.resolver().resolve(target, "A")[0])  # type: ignore[union-attr]
        _, port = setup.gateway(SECONDARY)

        # The device provisioned in the primary: its certificate reached the secondary by replication.
        replica = eventually(lambda: certificate(cloud, SECONDARY, device.certificate_id), timeout=60)
        assert replica["status"] == "ACTIVE"
        client, refusals = module.connect_device(address, port, setup.ca_path, device, timeout=30.0)
        module.disconnect(client)
        assert refusals == []

        # A device whose first connection comes after the failover registers just in time in the secondary.
        assert certificate(cloud, SECONDARY, late.certificate_id) is None
        client, refusals = module.connect_device(address, port, setup.ca_path, late, timeout=60.0)
        assert module.publish(client, f"cmd/{LATE_THING}/pca", {"after": "failover"}) < 0x80
        module.disconnect(client)
    finally:
        # `local outage` took the primary's broker and API down; bring both back, as `local restore` does.
        services.brokers[PRIMARY].start()
        cloud.set_region_down(PRIMARY, False)

    assert refusals and "registered just in time in us-west-2 as PENDING_ACTIVATION" in refusals[0]
    description = certificate(cloud, SECONDARY, late.certificate_id)
    assert description is not None and description["status"] == "ACTIVE"
    assert attached_policies(cloud, SECONDARY, description["certificateArn"]) == ["IoTDR-JITR_Policy"]
    secondary = cloud.client("iot", SECONDARY)
    assert secondary.list_thing_principals(thingName=LATE_THING)["principals"] == [description["certificateArn"]]
    registered = [a for a in services.gateways[SECONDARY].admissions if a.certificate_id == late.certificate_id]
    assert registered[0].registered_just_in_time
    # Nothing of the late device exists in the primary: JITR in the secondary is not replicated back.
    assert certificate(cloud, PRIMARY, late.certificate_id) is None


def _device_signed_by(module: Any, config: Any, ca_cert: Any, ca_key: Any, thing: str) -> Any:
    """A device certificate (and its bundle) issued directly by ``ca_cert``, not by any Private CA."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = module.load_or_create_key(Path(config.work_dir) / f"{thing}.key.pem")
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path = Path(config.work_dir) / f"{thing}.cert.pem"
    bundle_path = Path(config.work_dir) / f"{thing}.bundle.pem"
    cert_path.write_text(pem)
    bundle_path.write_text(pem + ca_cert.public_bytes(serialization.Encoding.PEM).decode())
    return module.DeviceFiles(
        thing, Path(config.work_dir) / f"{thing}.key.pem", cert_path, bundle_path, module.certificate_id(pem)
    )
