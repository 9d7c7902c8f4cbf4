"""``drill.html``: one self-contained page (plotly's JavaScript inlined, nothing fetched) with the drill's timeline
(devices connected per region, replication backlog, health-check state, DNS answer) and its figures with their
definitions."""

from __future__ import annotations

import html
import json
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _relative(document: dict[str, Any]) -> float:
    milestones = document["milestones"]
    return float(milestones[0]["at"]) if milestones else 0.0


def timeline_figure(document: dict[str, Any]) -> go.Figure:
    """Four stacked panels on one time axis (seconds since the drill started), milestones as vertical lines."""
    start = _relative(document)
    samples, connected = document["timeline"]["samples"], document["timeline"]["connected"]
    figure = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        subplot_titles=("devices connected", "replication backlog (devices)", "health check healthy", "DNS answer"),
    )
    for role in ("primary", "secondary"):
        figure.add_trace(
            go.Scatter(
                x=[p["at"] - start for p in connected],
                y=[p[role] for p in connected],
                name=f"connected to {role}",
                line_shape="hv",
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=[s["at"] - start for s in samples],
                y=[None if s[f"{role}_healthy"] is None else int(s[f"{role}_healthy"]) for s in samples],
                name=f"{role} health check",
                line_shape="hv",
            ),
            row=3,
            col=1,
        )
    times = [s["at"] - start for s in samples]
    figure.add_trace(go.Scatter(x=times, y=[s["backlog"] for s in samples], name="backlog"), row=2, col=1)
    figure.add_trace(
        go.Scatter(x=times, y=[s["dns_answer"] for s in samples], name="failover CNAME", line_shape="hv"), row=4, col=1
    )
    for milestone in document["milestones"]:
        figure.add_vline(x=milestone["at"] - start, line_dash="dot", line_color="grey")
    figure.update_xaxes(title_text="seconds since the drill started", row=4, col=1)
    figure.update_layout(height=900, title="DR drill timeline")
    return figure


def _lookup(value: Any, parts: list[str]) -> Any:
    """``a.b.c`` in nested dicts; through a list, the value of each item."""
    for index, part in enumerate(parts):
        if isinstance(value, list):
            return [_lookup(item, parts[index:]) for item in value]
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _table(document: dict[str, Any]) -> str:
    rows = []
    for path, definition in document["definitions"].items():
        value = _lookup(document, path.replace("[]", "").split("."))
        shown = json.dumps(value, default=str) if not isinstance(value, list | dict) or len(str(value)) < 300 else "…"
        rows.append(
            f"<tr><td><code>{html.escape(path)}</code></td><td>{html.escape(definition)}</td>"
            f"<td><code>{html.escape(shown)}</code></td></tr>"
        )
    return "<table><tr><th>figure</th><th>definition</th><th>value</th></tr>" + "".join(rows) + "</table>"


def html_report(document: dict[str, Any], summary: list[str]) -> str:
    chart = timeline_figure(document).to_html(full_html=False, include_plotlyjs=True)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>DR drill</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px;text-align:left}"
        "table{border-collapse:collapse}</style></head><body><h1>DR drill</h1>"
        f"<pre>{html.escape(chr(10).join(summary))}</pre>{chart}<h2>Figures</h2>{_table(document)}"
        "<p>Every figure comes from events the drill observed; drill.json holds them all.</p></body></html>\n"
    )
