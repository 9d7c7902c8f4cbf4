"""One settings convention for every function: ``from_env(environ)`` raises ConfigurationError naming the variable."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from iot_dr.core.settings import (
    CaptureSettings,
    ConfigurationError,
    DeadLetterSettings,
    JitrSettings,
    ReconcileSettings,
    RegionSettings,
    TriggerSettings,
    WorkerSettings,
)
from iot_dr.deploy.launch_solution import LaunchSettings
from iot_dr.sync.settings import SettingsError, from_values

REPO_ROOT = Path(__file__).resolve().parents[2]

FULL_ENV = {
    "AWS_REGION": "eu-west-1",
    "STATE_TABLE": "state",
    "PRIMARY_REGION": "us-east-1",
    "SECONDARY_REGION": "eu-west-1",
    "LEDGER_RETENTION_DAYS": "7",
    "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:replicate",
    "DEAD_LETTER_TABLE": "dead-letters",
    "FALLBACK_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/fallback",
    "REPLICATION_TABLE": "replication",
    "ITEM_TTL_SECONDS": "86400",
    "CODEBUILD_PROJECT": "launcher",
    "CURSOR_TABLE": "cursor",
}

# Each function's settings and the variables it cannot run without.
REQUIRED: list[tuple[Callable[[Mapping[str, str]], object], tuple[str, ...]]] = [
    (RegionSettings.from_env, ("AWS_REGION",)),
    (WorkerSettings.from_env, ("STATE_TABLE", "AWS_REGION", "PRIMARY_REGION", "LEDGER_RETENTION_DAYS")),
    (TriggerSettings.from_env, ("STATE_MACHINE_ARN", "DEAD_LETTER_TABLE", "AWS_REGION")),
    (DeadLetterSettings.from_env, ("DEAD_LETTER_TABLE", "FALLBACK_QUEUE_URL", "AWS_REGION")),
    (CaptureSettings.from_env, ("REPLICATION_TABLE", "ITEM_TTL_SECONDS", "AWS_REGION")),
    (
        ReconcileSettings.from_env,
        ("REPLICATION_TABLE", "ITEM_TTL_SECONDS", "AWS_REGION", "SECONDARY_REGION", "CURSOR_TABLE"),
    ),
    (JitrSettings.from_env, ("AWS_REGION",)),
    (LaunchSettings.from_env, ("CODEBUILD_PROJECT",)),
]
CASES = [(read, name) for read, names in REQUIRED for name in names]
IDS = [f"{read.__qualname__.split('.')[0]}-{name}" for read, name in CASES]


@pytest.mark.parametrize(("read", "variable"), CASES, ids=IDS)
def test_a_missing_required_variable_raises_a_configuration_error_naming_it(
    read: Callable[[Mapping[str, str]], object], variable: str
) -> None:
    env = {k: v for k, v in FULL_ENV.items() if k != variable}
    with pytest.raises(ConfigurationError, match=f"environment variable {variable} is not set") as raised:
        read(env)
    assert raised.value.variable == variable


@pytest.mark.parametrize(("read", "variable"), CASES, ids=IDS)
def test_an_empty_required_variable_counts_as_missing(
    read: Callable[[Mapping[str, str]], object], variable: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        read({**FULL_ENV, variable: ""})
    assert raised.value.variable == variable


@pytest.mark.parametrize(
    ("read", "variable"),
    [(WorkerSettings.from_env, "LEDGER_RETENTION_DAYS"), (CaptureSettings.from_env, "ITEM_TTL_SECONDS")],
)
def test_a_number_that_is_not_whole_names_its_variable(
    read: Callable[[Mapping[str, str]], object], variable: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"{variable} must be a whole number, got '7.5'") as raised:
        read({**FULL_ENV, variable: "7.5"})
    assert raised.value.variable == variable


def test_configuration_errors_are_value_errors_so_the_health_checker_reports_them_the_same_way() -> None:
    assert issubclass(ConfigurationError, ValueError)


def test_values_are_read_with_their_units() -> None:
    worker = WorkerSettings.from_env(FULL_ENV)
    assert worker == WorkerSettings("state", "eu-west-1", "us-east-1", 7 * 86400)
    reconcile = ReconcileSettings.from_env(FULL_ENV)
    assert reconcile == ReconcileSettings(
        CaptureSettings("replication", 86400, "eu-west-1"), "eu-west-1", "thingName:*", "cursor", False
    )
    assert JitrSettings.from_env(FULL_ENV) == JitrSettings("IoTDR-JITR_Policy", "eu-west-1")


def test_optional_variables_override_their_defaults() -> None:
    env = {**FULL_ENV, "QUERY_STRING": "thingTypeName:sensor", "IOT_POLICY_NAME": "fleet-policy"}
    assert ReconcileSettings.from_env(env).query_string == "thingTypeName:sensor"
    assert JitrSettings.from_env(env).policy_name == "fleet-policy"


def test_from_env_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert RegionSettings.from_env() == RegionSettings("ap-south-1")


def _handler(directory: str, module: str) -> Callable[[dict[str, Any], Any], Any]:
    path = REPO_ROOT / "source" / "lambda" / directory / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"_settings_test_{module}", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    handler: Callable[[dict[str, Any], Any], Any] = loaded.handler
    return handler


@pytest.mark.parametrize(
    ("directory", "module", "variable"),
    [
        ("iot-dr-park-event", "park_event", "DEAD_LETTER_TABLE"),
        ("iot-dr-dynamo-trigger", "dynamo_trigger", "STATE_MACHINE_ARN"),
        ("iot-dr-capture-changes", "capture_changes", "REPLICATION_TABLE"),
        ("iot-dr-launch-solution", "launch_solution_resource", "CODEBUILD_PROJECT"),
        ("iot-dr-r53-checker-credentials", "checker_credentials_resource", "AWS_REGION"),
    ],
)
def test_handlers_fail_with_the_missing_variable_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch, directory: str, module: str, variable: str
) -> None:
    for name, value in FULL_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigurationError) as raised:
        _handler(directory, module)({}, None)
    assert raised.value.variable == variable


SYNC_ENV = {"PRIMARY_REGION": "us-east-1", "SECONDARY_REGION": "eu-west-1", "DYNAMODB_GLOBAL_TABLE": "IoTDRGlobalTable"}


@pytest.mark.parametrize("variable", ["PRIMARY_REGION", "SECONDARY_REGION", "DYNAMODB_GLOBAL_TABLE"])
def test_the_region_syncs_follow_the_same_convention(variable: str) -> None:
    env = {k: v for k, v in SYNC_ENV.items() if k != variable}
    with pytest.raises(ConfigurationError, match=variable) as raised:
        from_values(env, needs_table=True)
    assert isinstance(raised.value, SettingsError)
    assert raised.value.variable == variable


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SYNC_MODE", "fast"), ("MAX_WORKERS", "0"), ("SHARD", "4/4"), ("RATES", "DescribeThing=-1")],
)
def test_a_sync_setting_with_a_wrong_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        from_values({**SYNC_ENV, variable: value}, needs_table=True)
    assert raised.value.variable == variable
