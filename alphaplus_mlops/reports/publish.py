"""The ML ops report and the dashboard's snapshot, from the database to the artifact store,
ml_ops_reports and ml_ops_dashboard (the pages themselves: ops_report.py, dashboard.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from alphaplus_mlops.families import family_names
from alphaplus_mlops.reports.ops_report import (
    FamilySection,
    ReportData,
    render_html,
    render_markdown,
)
from alphaplus_mlops.store.alerts import list_alerts
from alphaplus_mlops.store.artifacts import ArtifactStore
from alphaplus_mlops.store.clock import clock_now
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.fleet import (
    dashboard_facts,
    drift_history,
    experiments_since,
    live_equity,
    record_dashboard_snapshot,
    record_report,
    timeline,
)
from alphaplus_mlops.store.live import latest_live_window, offline_evaluation
from alphaplus_mlops.store.versions import family_status

#: The live window people see: `status`, the report, the dashboard (63 realized bars).
STATUS_WINDOW = "63b"


DEFAULT_REPORT_DAYS = 30
REPORT_TYPE = "ml_ops"


def _served_metrics(db: Database, family: str, served: dict[str, dict | None]) -> list[dict]:
    rows = []
    for role, version in served.items():
        if not version:
            continue
        live = latest_live_window(db, str(version["id"]), role, STATUS_WINDOW) or {}
        offline = offline_evaluation(db, str(version["id"])) or {}
        m = live.get("metrics") or {}
        rows.append(
            {
                "version": version["version"],
                "role": role,
                "live_bars": m.get("n_bars"),
                "live_net_sharpe": m.get("net_sharpe"),
                "live_hit_rate": m.get("hit_rate"),
                "live_roc_auc": m.get("roc_auc"),
                "offline_net_sharpe": (offline.get("business_metrics") or {}).get("net_sharpe"),
                "offline_roc_auc": (offline.get("ml_metrics") or {}).get("roc_auc"),
            }
        )
    return rows


def gather_ops_report(db: Database, since: datetime, now: datetime) -> ReportData:
    equity = live_equity(db, since)
    checks = drift_history(db, since)
    events = timeline(db, since)
    sections = []
    for family in family_names():
        status = family_status(db, family)
        champion, challenger = status["champion"], status["challenger"]
        sections.append(
            FamilySection(
                family=family,
                champion=champion["version"] if champion else None,
                challenger=challenger["version"] if challenger else None,
                equity=equity[equity["family"] == family],
                metrics=_served_metrics(
                    db, family, {"champion": champion, "challenger": challenger}
                ),
                drift_checks=[c for c in checks if c["family"] == family],
                timeline=[e for e in events if e["family"] == family],
                experiments=experiments_since(db, family, since),
            )
        )
    alerts = [a for a in list_alerts(db) if a["state"] != "resolved"]
    return ReportData(now, since, sections, alerts)


@dataclass(frozen=True)
class WrittenReport:
    html_uri: str
    markdown_uri: str
    html_path: str
    """Where the page is, for people: a file's path, or an object's URL."""
    markdown_path: str
    report_ids: tuple[str, str]
    families: int
    open_alerts: int


def write_ops_report(
    db: Database, store: ArtifactStore, since: datetime | None = None
) -> WrittenReport:
    """Build the report over ``since`` (default: the last 30 days) to now, store its HTML and
    Markdown in the artifact store and record both in ml_ops_reports."""
    now = clock_now(db)  # a replay's report covers its market time
    since = since or now - timedelta(days=DEFAULT_REPORT_DAYS)
    data = gather_ops_report(db, since, now)
    page = store.put_bytes(render_html(data).encode(), ".html")
    html_path = store.location(page.uri)
    text = store.put_bytes(render_markdown(data, html_path).encode(), ".md")
    ids = tuple(
        str(
            record_report(
                db, report_type=REPORT_TYPE, period_start=since, period_end=now, fmt=fmt, path=uri
            )["id"]
        )
        for fmt, uri in (("html", page.uri), ("markdown", text.uri))
    )
    return WrittenReport(
        page.uri,
        text.uri,
        html_path,
        store.location(text.uri),
        ids,
        len(data.families),
        len(data.open_alerts),
    )


def dashboard_snapshot(db: Database) -> tuple[list[dict], dict]:
    """Fleet health now, per family: champion, its days in office and the ledger move that
    put it there, its live net Sharpe, drift state, open alerts, last retrain, experiment
    state; and a summary over the fleet."""
    families = family_names()
    facts = dashboard_facts(db, families)
    now = clock_now(db)
    fleet = []
    for family in families:
        status, fact = family_status(db, family), facts.get(family, {})
        champion, training = status["champion"], status["last_training"]
        live = (
            latest_live_window(db, str(champion["id"]), "champion", STATUS_WINDOW)
            if champion
            else None
        )
        move = fact.get("last_move") or {}
        since = datetime.fromisoformat(move["recorded_at"]) if move else None
        drift = fact.get("drift") or {}
        experiment = fact.get("experiment") or {}
        fleet.append(
            {
                "family": family,
                "champion": champion["version"] if champion else None,
                "champion_age_days": (now - since).total_seconds() / 86_400 if since else None,
                "last_change": f"{move['action']} by {move['actor']}" if move else None,
                "live_window": STATUS_WINDOW,
                "live_net_sharpe": ((live or {}).get("metrics") or {}).get("net_sharpe"),
                "drift": (
                    "no check"
                    if not drift
                    else ("drifted" if drift.get("drifted") else "within yardstick")
                ),
                "open_alerts": int(fact.get("open_alerts") or 0),
                "last_retrain": (
                    f"{training['status']} {str(training['created_at'])[:16].replace('T', ' ')}"
                    if training
                    else None
                ),
                "experiment": (
                    f"{experiment['status']}"
                    + (f" ({experiment['verdict']})" if experiment.get("verdict") else "")
                    + f", {experiment.get('n_observations') or 0} bars"
                    if experiment
                    else "none"
                ),
            }
        )
    summary = {
        "families": len(fleet),
        "with_champion": sum(1 for f in fleet if f["champion"] is not None),
        "open_alerts": sum(f["open_alerts"] for f in fleet),
        "drifted": sum(1 for f in fleet if f["drift"] == "drifted"),
    }
    return fleet, summary


def record_dashboard(db: Database) -> dict:
    """Write the fleet's snapshot to ml_ops_dashboard; the row (id, snapshot_at)."""
    fleet, summary = dashboard_snapshot(db)
    return record_dashboard_snapshot(db, fleet, summary)
