"""Schedules and sensors: the time-based retraining trigger and the run mirror."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.jobs import train_model_job
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.families.base import FAMILIES
from alphaplus_mlops.store import deployment


def stale_families(url: str, now: datetime, max_age: timedelta) -> dict[str, str]:
    """Families whose champion is older than ``max_age`` (or missing), with the reason."""
    stale = {}
    for family in FAMILIES:
        champion = deployment.champion_since(url, family)
        if champion is None:
            stale[family] = "no champion"
            continue
        since = champion["since"] or champion["created_at"]
        if now - since > max_age:
            stale[family] = f"champion v{champion['version']} serving since {since:%Y-%m-%d}"
    return stale


@dg.schedule(
    cron_schedule="0 6 * * *",
    job=train_model_job,
    execution_timezone="UTC",
    description="Daily: retrain every family whose champion is older than the time-based "
    "trigger's max_model_age_days (rows in automated_retraining_triggers).",
)
def model_age_schedule(context: dg.ScheduleEvaluationContext, postgres: PostgresResource):
    url = postgres.url
    now = context.scheduled_execution_time or datetime.now(UTC)
    triggers = deployment.triggers_of_type(url, "time")
    if not triggers:
        return dg.SkipReason("no enabled time-based trigger")
    requests = {}
    for trigger in triggers:
        max_age = timedelta(days=float(trigger["config"].get("max_model_age_days", 30)))
        for family, why in stale_families(url, now, max_age).items():
            requests.setdefault(
                family,
                dg.RunRequest(
                    partition_key=family,
                    run_key=f"time:{trigger['id']}:{family}:{now:%Y-%m-%d}",
                    tags={
                        run_tags.TRIGGER_TYPE: "time",
                        run_tags.TRIGGER_ID: str(trigger["id"]),
                        run_tags.PRIORITY: str(trigger["priority"]),
                        run_tags.REASON: f"{trigger['name']}: {why}",
                    },
                ),
            )
    return list(requests.values()) or dg.SkipReason("every champion is younger than its limit")


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Mirrors pipeline runs (status, timings, trigger) into "
    "ml_pipeline_orchestration for readers outside Dagster.",
)
def run_mirror_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    since = float(context.cursor) if context.cursor else 0.0
    records = context.instance.get_run_records(
        dg.RunsFilter(job_name=None, updated_after=datetime.fromtimestamp(since, UTC)),
        limit=500,
        ascending=True,
    )
    newest = since
    for record in records:
        newest = max(newest, record.update_timestamp.timestamp())
        # Every run of this instance is the project's: jobs, schedules, and asset launches
        # (`dagster asset materialize`, the UI), whatever their job name.
        try:
            _mirror(postgres.url, record)
        except Exception as exc:  # one bad run must not stop the mirror for all others
            context.log.warning(f"run {record.dagster_run.run_id} not mirrored: {exc}")
    context.update_cursor(str(newest))
    return dg.SkipReason(f"mirrored {len(records)} run(s)") if records else None


def _mirror(url: str, record) -> None:
    run = record.dagster_run
    deployment.mirror_run(
        url,
        run_id=run.run_id,
        job_name=run.job_name,
        partition_key=run.tags.get(run_tags.PARTITION),
        status=run.status.value,
        trigger_type=run.tags.get(run_tags.TRIGGER_TYPE, "manual"),
        trigger_id=run.tags.get(run_tags.TRIGGER_ID),
        priority=int(run.tags.get(run_tags.PRIORITY, 0)),
        tags=dict(run.tags),
        started_at=_ts(record.start_time),
        finished_at=_ts(record.end_time),
    )


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None
