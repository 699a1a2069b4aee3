"""What people read: ml_ops_dashboard (a fleet-health snapshot after every live loop and drift
check, served at GET /dashboard) and ml_ops_report (the daily report, HTML and Markdown)."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.reports.publish import record_dashboard, write_ops_report


@dg.asset(
    partitions_def=family_partitions,
    deps=[dg.AssetKey("probation_review"), dg.AssetKey("drift_report")],
    group_name="reports",
    kinds={"postgres"},
    description="A snapshot of the whole fleet's health (per family: champion, time in office, "
    "live net Sharpe, drift state, open alerts, last retrain, experiment) in "
    "ml_ops_dashboard, written at the end of every live loop and drift check (the partition "
    "is the family whose run wrote it); the serving process shows the latest at /dashboard.",
)
def ml_ops_dashboard(postgres: PostgresResource) -> dg.MaterializeResult:
    row = record_dashboard(postgres.db)
    return dg.MaterializeResult(
        metadata={"snapshot_id": str(row["id"]), "snapshot_at": row["snapshot_at"].isoformat()}
    )


class ReportConfig(dg.Config):
    since: str | None = Field(
        default=None, description="Start of the period (ISO date); default: 30 days ago."
    )


@dg.asset(
    group_name="reports",
    kinds={"html", "markdown"},
    description="The ML ops report over a period (default the last 30 days): per family the "
    "live equity of champion, challenger and previous champion, live beside offline "
    "metrics, drift per feature over time (a heat map), the timeline of retrains, gate "
    "results, decisions, promotions and rollbacks, and the open alerts. HTML and Markdown "
    "in the artifact store, one ml_ops_reports row each.",
)
def ml_ops_report(
    config: ReportConfig, postgres: PostgresResource, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    since = None
    if config.since:
        try:
            since = datetime.fromisoformat(config.since).replace(tzinfo=UTC)
        except ValueError as exc:
            raise dg.Failure(f"since: not an ISO date: {config.since!r}") from exc
    written = write_ops_report(postgres.db, artifacts.store, since)
    return dg.MaterializeResult(
        metadata={
            "html": dg.MetadataValue.path(str(written.html_path)),
            "markdown": dg.MetadataValue.path(str(written.markdown_path)),
            "families": written.families,
            "open_alerts": written.open_alerts,
        }
    )


ml_ops_report_job = dg.define_asset_job(
    "ml_ops_report_job",
    selection=[ml_ops_report],
    description="Write the ML ops report (ml_ops_report).",
)

ml_ops_report_schedule = dg.ScheduleDefinition(
    name="ml_ops_report_schedule",
    job=ml_ops_report_job,
    cron_schedule="0 7 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The daily ML ops report, at 07:00 UTC (after the drift check).",
)
