"""The ML ops report: per family the live equity of its versions by role, live beside offline
metrics, drift per feature over time, the timeline of what happened to its models, and the
open alerts; as an HTML page (inline SVG plots, no script) and as Markdown (the same tables,
the plots left to the HTML). Pure: the data comes in, text goes out."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from alphaplus_mlops.monitoring.column_drift import ColumnDrift
from alphaplus_mlops.reports.plots import equity_svg, heatmap_svg


@dataclass(frozen=True)
class FamilySection:
    family: str
    champion: int | None
    challenger: int | None
    equity: pd.DataFrame
    """family, version, role, bar_ts, net_return rows of this family."""
    metrics: list[dict]
    """One row per (version, role) served: live window beside out-of-fold figures."""
    drift_checks: list[dict]
    timeline: list[dict]
    experiments: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    since: datetime
    families: list[FamilySection]
    open_alerts: list[dict]


def equity_curves(equity: pd.DataFrame) -> pd.DataFrame:
    """One column per "vN role" series: the cumulative sum of its per-bar net returns, on
    the union of bars (a series is blank where it did not answer)."""
    if equity.empty:
        return pd.DataFrame()
    named = equity.assign(series="v" + equity["version"].astype(str) + " " + equity["role"])
    table = named.pivot_table(index="bar_ts", columns="series", values="net_return", aggfunc="sum")
    return table.sort_index().cumsum()


def drift_matrix(checks: list[dict]) -> pd.DataFrame:
    """Features (rows) by check (columns, the live window's last bar date): each feature's
    severity, 1 at its test's threshold (monitoring.column_drift.ColumnDrift.severity)."""
    columns = {}
    for check in checks:
        window_end = (check.get("current_window") or {}).get("end") or check["checked_at"]
        label = str(window_end)[:10]
        columns[label] = {
            name: ColumnDrift(
                name, score["method"], float(score["score"]), float(score["threshold"]), False
            ).severity
            for name, score in (check.get("feature_scores") or {}).items()
            if isinstance(score, dict) and score.get("score") is not None
        }
    return pd.DataFrame(columns).sort_index()


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


METRIC_COLUMNS = (
    ("version", "version", "d"),
    ("role", "role", ""),
    ("live bars", "live_bars", "d"),
    ("live net Sharpe", "live_net_sharpe", "+.2f"),
    ("live hit rate", "live_hit_rate", ".3f"),
    ("live AUC", "live_roc_auc", ".3f"),
    ("offline net Sharpe", "offline_net_sharpe", "+.2f"),
    ("offline AUC", "offline_roc_auc", ".3f"),
)
TIMELINE_COLUMNS = (
    ("when", "at", ""),
    ("what", "kind", ""),
    ("version", "version", ""),
    ("", "what", ""),
)
ALERT_COLUMNS = (
    ("rule", "rule", ""),
    ("severity", "severity", ""),
    ("subject", "subject", ""),
    ("seen", "occurrences", "d"),
    ("last seen", "last_seen_at", ""),
    ("message", "message", ""),
)


def _cells(row: dict, columns) -> list[str]:
    out = []
    for _, key, spec in columns:
        value = row.get(key)
        if key in ("at", "last_seen_at") and value is not None:
            out.append(str(value)[:19].replace("T", " "))
        elif spec:
            out.append(_fmt(value, spec))
        else:
            out.append("-" if value is None else str(value))
    return out


def _html_table(rows: list[dict], columns, empty: str) -> str:
    if not rows:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r, columns)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(rows: list[dict], columns, empty: str) -> str:
    if not rows:
        return f"_{empty}_"
    lines = [
        "| " + " | ".join(title or "detail" for title, _, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for r in rows:
        cells = [c.replace("|", "\\|").replace("\n", " ") for c in _cells(r, columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _experiment_lines(section: FamilySection) -> list[str]:
    return [
        f"v{e['challenger_version']} against v{e['champion_version']}: {e['status']}"
        f"{' (' + e['verdict'] + ')' if e.get('verdict') else ''} after "
        f"{e.get('n_observations') or 0} paired bars, always-valid p "
        f"{_fmt(e.get('p_value'), '.4f')}; started {str(e['started_at'])[:19]}"
        for e in section.experiments
    ]


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.empty { color: #777; font-style: italic; }
figure { margin: 0.5em 0 1.5em; }
svg { max-width: 100%; height: auto; }
"""


def render_html(data: ReportData) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>alphaplus-mlops report</title><link rel='icon' href='data:,'>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>ML ops report</h1>",
        f"<p>Generated {data.generated_at:%Y-%m-%d %H:%M} UTC, covering what happened since "
        f"{data.since:%Y-%m-%d %H:%M} UTC.</p>",
        f"<h2>Open alerts ({len(data.open_alerts)})</h2>",
        _html_table(data.open_alerts, ALERT_COLUMNS, "No open alert."),
    ]
    for section in data.families:
        parts.append(f"<h2 id='{section.family}'>{html.escape(section.family)}</h2>")
        parts.append(
            f"<p>Champion {_version(section.champion)}, challenger "
            f"{_version(section.challenger)}.</p>"
        )
        curves = equity_curves(section.equity)
        parts.append("<h3>Live equity by version and role</h3>")
        if curves.empty:
            parts.append("<p class='empty'>No realized live outcome in the period.</p>")
        else:
            title = f"{section.family}: cumulative live net return per bar"
            parts.append(f"<figure class='plot'>{equity_svg(curves, title)}</figure>")
        parts.append("<h3>Live beside offline</h3>")
        parts.append(_html_table(section.metrics, METRIC_COLUMNS, "Nothing serves."))
        parts.append("<h3>Live experiments</h3>")
        lines = _experiment_lines(section)
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"
            if lines
            else "<p class='empty'>No experiment.</p>"
        )
        matrix = drift_matrix(section.drift_checks)
        parts.append("<h3>Drift per feature over time</h3>")
        if matrix.empty:
            parts.append("<p class='empty'>No drift check in the period.</p>")
        else:
            title = f"{section.family}: drift severity per feature, by live window"
            parts.append(f"<figure class='plot'>{heatmap_svg(matrix, title)}</figure>")
        parts.append("<h3>Timeline: trainings, gates, decisions, promotions, rollbacks</h3>")
        parts.append(_html_table(section.timeline, TIMELINE_COLUMNS, "Nothing happened."))
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(data: ReportData, html_location: str | None = None) -> str:
    lines = [
        "# ML ops report",
        "",
        f"Generated {data.generated_at:%Y-%m-%d %H:%M} UTC, covering what happened since "
        f"{data.since:%Y-%m-%d %H:%M} UTC."
        + (f" Plots: the HTML report, {html_location}." if html_location else ""),
        "",
        f"## Open alerts ({len(data.open_alerts)})",
        "",
        _md_table(data.open_alerts, ALERT_COLUMNS, "No open alert."),
    ]
    for section in data.families:
        curves = equity_curves(section.equity)
        finals = (
            ", ".join(f"{name} {curves[name].dropna().iloc[-1]:+.3f}" for name in curves.columns)
            if not curves.empty
            else "no realized live outcome in the period"
        )
        matrix = drift_matrix(section.drift_checks)
        drifted = (
            ", ".join(matrix.index[matrix.iloc[:, -1] > 1].tolist()) or "none"
            if not matrix.empty
            else "no check in the period"
        )
        lines += [
            "",
            f"## {section.family}",
            "",
            f"Champion {_version(section.champion)}, challenger {_version(section.challenger)}.",
            "",
            f"Cumulative live net return: {finals}.",
            "",
            _md_table(section.metrics, METRIC_COLUMNS, "Nothing serves."),
            "",
            "Live experiments: " + ("; ".join(_experiment_lines(section)) or "none") + ".",
            "",
            f"Features beyond their threshold at the latest drift check: {drifted}.",
            "",
            "### Timeline",
            "",
            _md_table(section.timeline, TIMELINE_COLUMNS, "Nothing happened."),
        ]
    return "\n".join(lines) + "\n"


def _version(number: int | None) -> str:
    return f"v{number}" if number is not None else "none"
