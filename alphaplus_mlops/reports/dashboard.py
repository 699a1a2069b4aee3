"""The fleet-health page the serving process shows at GET /dashboard: the latest
ml_ops_dashboard snapshot as a table and a chart, reloaded by the browser every
``REFRESH_SECONDS`` (no script). Pure: a snapshot comes in, HTML goes out."""

from __future__ import annotations

import html
from datetime import datetime

from alphaplus_mlops.reports.plots import bars_svg

REFRESH_SECONDS = 30
COLUMNS = (
    ("family", "family"),
    ("champion", "champion"),
    ("in office (days)", "champion_age_days"),
    ("last change", "last_change"),
    ("live net Sharpe", "live_net_sharpe"),
    ("drift", "drift"),
    ("open alerts", "open_alerts"),
    ("last retrain", "last_retrain"),
    ("experiment", "experiment"),
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; }
.bad { color: #b00; font-weight: 600; }
svg { max-width: 40em; height: auto; }
"""


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "champion":
        return f"v{value}"
    if key == "champion_age_days":
        return f"{value:.1f}"
    if key == "live_net_sharpe":
        return f"{value:+.2f}"
    return str(value)


def _bad(key: str, value) -> bool:
    return (
        (key == "live_net_sharpe" and value is not None and value < 0)
        or (key == "open_alerts" and bool(value))
        or (key == "drift" and value == "drifted")
        or (key == "champion" and value is None)
        or (key == "last_change" and bool(value) and "auto-rollback" in str(value))
    )


def render_dashboard(snapshot: dict | None, now: datetime) -> str:
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        "<link rel='icon' href='data:,'>"  # no /favicon.ico request to fail
        f"<title>alphaplus-mlops fleet</title><style>{STYLE}</style></head><body>"
        "<h1>Fleet health</h1>"
    )
    if snapshot is None:
        return (
            head + "<p id='no-snapshot'>No snapshot yet: the live loop and the drift check "
            "write one each time they run.</p></body></html>"
        )
    fleet, summary = snapshot["fleet"], snapshot["summary"] or {}
    taken = snapshot["snapshot_at"]
    age = (now - taken).total_seconds()
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td class='{'bad' if _bad(key, row.get(key)) else ''}'>"
            f"{html.escape(_cell(key, row.get(key)))}</td>"
            for _, key in COLUMNS
        )
        + "</tr>"
        for row in fleet
    )
    chart = bars_svg(
        {f"{r['family']} v{r['champion']}": r.get("live_net_sharpe") for r in fleet},
        f"Champions' live net Sharpe, last {fleet[0]['live_window'].rstrip('b') if fleet else ''}"
        " realized bars",
        "annualized net Sharpe",
    )
    return (
        head + f"<p>Snapshot of {taken:%Y-%m-%d %H:%M:%S} UTC ({age:.0f} s ago): "
        f"{summary.get('with_champion', 0)} of {summary.get('families', 0)} families serve a "
        f"champion, {summary.get('open_alerts', 0)} open alerts, "
        f"{summary.get('drifted', 0)} drifted. The page reloads every {REFRESH_SECONDS} s.</p>"
        + "<table id='fleet'><thead><tr>"
        + "".join(f"<th>{html.escape(title)}</th>" for title, _ in COLUMNS)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
        + f"<figure class='plot'>{chart}</figure></body></html>"
    )
