"""The drill's report: ``drill.json`` (schema in docs/drill-report.md), a self-contained ``drill.html`` with a
timeline chart (plotly, its JavaScript inlined) and the figures' table, and the terminal summary.

Every figure is computed from events the drill observed: milestones it marked, the Route 53 emulation's switches,
the simulated devices' own log lines and summaries, and what it read from both regions.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from iot_dr_local.drill.figures import MessageCounts, Stats, device_switches

if TYPE_CHECKING:
    from iot_dr_local.drill.devices import Clients
    from iot_dr_local.drill.observations import Observations
    from iot_dr_local.drill.options import DrillOptions

SCHEMA_VERSION = 1

# (figure path in drill.json, one-line definition) for the HTML table and the schema document.
DEFINITIONS = (
    ("replication.lag_seconds", "device created in the primary -> first seen in the secondary (p50/p95/max)"),
    ("replication.lag_metric", "the secondary's IoTDR/ReplicationLag metric: source event -> applied (every event)"),
    ("rpo.unreplicated", "primary shadow changes not yet applied in the secondary when the outage began"),
    ("rpo.lost", "of those, changes still not applied once every device had failed over (they never left the primary)"),
    ("rpo.oldest_unreplicated_age_seconds", "outage start minus the time of the oldest such change"),
    ("switches[].detection_seconds", "outage (or restore) -> the health check's verdict changed"),
    ("switches[].dns_switch_seconds", "that decision -> the failover CNAME answers the other region"),
    ("switches[].seconds", "outage (or restore) -> the failover CNAME answers the other region"),
    ("rto.failover.seconds", "per simulated device: subscribed in the secondary minus its disconnect time"),
    ("rto.failback.seconds", "per simulated device: subscribed in the primary again minus its disconnect time"),
    ("messages.lost", "QoS 1 messages the broker acknowledged that the device never received back"),
    ("outage_changes", "shadow changes made in the secondary while failed over, and where they are after failback"),
)


class DrillRecord(Protocol):
    """What a drill (local or ``--aws``) hands the report: its observations and what it found."""

    mode: str
    options: DrillOptions
    seen: Observations
    outcome: str
    clients: Clients
    parity: dict[str, Any] | None
    rpo: dict[str, Any] | None
    outage_changes: dict[str, Any] | None
    lag_metric: dict[str, Any] | None

    def switch_figures(self) -> list[dict[str, Any]]: ...


def switch_figure(
    phase: str,
    from_target: str,
    to_target: str,
    health_check_id: str,
    trigger_at: float | None,
    decided_at: float | None,
    dns_updated_at: float,
) -> dict[str, Any]:
    """One entry of drill.json's ``switches``: the trigger (outage or restore), the moment the health check's
    verdict changed (None when it was not observed) and the moment the failover record answered the other target."""
    return {
        "phase": phase,
        "from": from_target.rstrip("."),
        "to": to_target.rstrip("."),
        "health_check_id": health_check_id,
        "trigger_at": trigger_at,
        "decided_at": decided_at,
        "dns_updated_at": dns_updated_at,
        "detection_seconds": None if trigger_at is None or decided_at is None else decided_at - trigger_at,
        "dns_switch_seconds": None if decided_at is None else dns_updated_at - decided_at,
        "seconds": None if trigger_at is None else dns_updated_at - trigger_at,
    }


def _connected_series(logs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Devices connected per role after each CONNECTED/DISCONNECTED event of any device."""
    events = sorted(
        (line["at"], name, line["message"], line.get("role"))
        for name, lines in logs.items()
        for line in lines
        if line.get("message") in ("CONNECTED", "DISCONNECTED") and "at" in line
    )
    where: dict[str, str | None] = {}
    series = []
    for at, name, message, role in events:
        where[name] = role if message == "CONNECTED" else None
        roles = list(where.values())
        series.append({"at": at, "primary": roles.count("primary"), "secondary": roles.count("secondary")})
    return series


def replication_figures(seen: Observations, lag_metric: dict[str, Any] | None) -> dict[str, Any]:
    """drill.json's ``replication``: devices created and replicated, the lag of each replicated device (seconds from
    its creation in the primary to its first sighting in the secondary) as ``Stats``, and ``lag_metric`` as given."""
    lags = [seen.replicated_at[t] - created for t, created in seen.created_at.items() if t in seen.replicated_at]
    return {
        "devices_created": len(seen.created_at),
        "devices_replicated": len(lags),
        "lag_seconds": asdict(Stats.of(lags)),
        "lag_metric": lag_metric,
    }


def build(drill: DrillRecord) -> dict[str, Any]:
    """The drill.json document (see docs/drill-report.md for its schema)."""
    seen, options = drill.seen, drill.options
    at = {m.name: m.at for m in seen.milestones}
    logs = drill.clients.current_logs()
    rto: dict[str, Any] = {}
    for phase, trigger in (("failover", at.get("outage")), ("failback", at.get("restore"))):
        if trigger is None:
            continue
        found = [device_switches(name, phase, lines, trigger) for name, lines in logs.items()]
        devices = [asdict(switch) for switch in found if switch is not None]
        rto[phase] = {
            "devices": devices,
            "not_switched": [name for name, switch in zip(logs, found, strict=True) if switch is None],
            "seconds": asdict(Stats.of(d["rto"] for d in devices)),
        }
    messages = MessageCounts()
    missing_summaries = []
    for name, summary in drill.clients.summaries.items():
        if summary is None:
            missing_summaries.append(name)
        else:
            messages.add(name, summary)
    set_up, ended = at.get("set_up"), at.get("clients_stopped")
    document = {
        "schema_version": SCHEMA_VERSION,
        "mode": drill.mode,
        "outcome": drill.outcome,
        "options": {
            "devices": options.devices,
            "clients": options.clients,
            "primary_region": options.primary_region,
            "secondary_region": options.secondary_region,
            "health_check_interval_seconds": options.health_check_interval,
            "message_interval_seconds": options.message_interval,
            "outage_seconds": options.outage_seconds,
        },
        "durations": {
            "set_up_seconds": None if set_up is None else set_up - at["start"],
            "after_set_up_seconds": None if set_up is None or ended is None else ended - set_up,
        },
        "milestones": [asdict(m) for m in seen.milestones],
        "replication": replication_figures(seen, drill.lag_metric),
        "parity_before_outage": drill.parity,
        "rpo": drill.rpo,
        "switches": drill.switch_figures(),
        "rto": rto,
        "messages": {**asdict(messages), "devices_without_summary": missing_summaries},
        "outage_changes": drill.outage_changes,
        "timeline": {
            "samples": [asdict(s) for s in seen.samples],
            "connected": _connected_series(logs),
        },
        "definitions": dict(DEFINITIONS),
    }
    document["passed"] = passed(document)
    return document


def passed(document: dict[str, Any]) -> bool:
    """Parity before the outage, the failover record switched and every client followed it both ways, acknowledged
    messages and none of them lost."""
    rto = document["rto"]
    messages = document["messages"]
    return (
        document["outcome"] == "completed"
        and bool(document["parity_before_outage"] and document["parity_before_outage"]["in_parity"])
        and {switch["phase"] for switch in document["switches"]} >= {"failover", "failback"}
        and all(phase in rto and not rto[phase]["not_switched"] for phase in ("failover", "failback"))
        and messages["acknowledged"] > 0
        and messages["lost"] == 0
        and not messages["devices_without_summary"]
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _stats(stats: dict[str, Any]) -> str:
    return f"p50 {_seconds(stats['p50'])}, p95 {_seconds(stats['p95'])}, max {_seconds(stats['max'])}"


def summary_lines(document: dict[str, Any]) -> list[str]:
    options, durations = document["options"], document["durations"]
    lines = [
        f"DR drill: {options['devices']} devices, {options['clients']} simulated clients, "
        f"{options['primary_region']} -> {options['secondary_region']}: {document['outcome']}"
        f" ({'PASSED' if passed(document) else 'FAILED'})",
        f"  set-up {_seconds(durations['set_up_seconds'])}; drill after set-up "
        f"{_seconds(durations['after_set_up_seconds'])}",
        f"  replication lag ({document['replication']['devices_replicated']}/"
        f"{document['replication']['devices_created']} devices): {_stats(document['replication']['lag_seconds'])}",
    ]
    metric = document["replication"].get("lag_metric")
    if metric and metric["samples"]:
        lines.append(
            f"  ReplicationLag metric ({metric['samples']} events applied): average {metric['average_ms']:.0f} ms, "
            f"max {metric['max_ms']:.0f} ms"
        )
    parity = document["parity_before_outage"]
    if parity is not None:
        lines.append(
            f"  parity before the outage: {'yes' if parity['in_parity'] else 'NO ' + str(parity['differences'])}"
        )
    rpo = document["rpo"]
    if rpo is not None:
        line = (
            f"  RPO at the outage: {rpo['unreplicated']} of {rpo['changes_made']} shadow changes (on "
            f"{rpo['things_checked']} shadows) not yet in the secondary, oldest "
            f"{_seconds(rpo['oldest_unreplicated_age_seconds'])}"
        )
        if "lost" in rpo:
            line += f"; {rpo['lost']} never arrived (primary API during the outage: {rpo['primary_api']})"
        else:
            line += f" ({rpo['note']})"
        lines.append(line)
    for switch in document["switches"]:
        lines.append(
            f"  {switch['phase']}: detection {_seconds(switch['detection_seconds'])}, DNS switch "
            f"{_milliseconds(switch['dns_switch_seconds'])}, record answered after {_seconds(switch['seconds'])} "
            f"({switch['from']} -> {switch['to']})"
        )
    for phase, figures in document["rto"].items():
        lines.append(
            f"  RTO {phase} ({figures['seconds']['count']} devices): {_stats(figures['seconds'])}"
            + (f"; never switched: {figures['not_switched']}" if figures["not_switched"] else "")
        )
    messages = document["messages"]
    lines.append(
        f"  messages: {messages['published']} published, {messages['acknowledged']} acknowledged, "
        f"{messages['lost']} acknowledged and lost"
    )
    changes = document["outage_changes"]
    if changes is not None and "fate" in changes:
        lines.append(f"  {changes['made']} shadow changes made in the secondary during the outage: {changes['fate']}")
    return lines


def summary(document: dict[str, Any]) -> str:
    return "\n".join(summary_lines(document))


def write(document: dict[str, Any], directory: Path) -> list[Path]:
    """Write drill.json and drill.html into ``directory``; returns their paths."""
    from iot_dr_local.drill.chart import html_report

    json_path, html_path = directory / "drill.json", directory / "drill.html"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    html_path.write_text(html_report(document, summary_lines(document)))
    return [json_path, html_path]
