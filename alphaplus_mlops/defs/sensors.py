"""Sensors: the run mirror (every run's status and timings, for readers outside Dagster)."""

from datetime import UTC, datetime

import dagster as dg
import psycopg
from psycopg_pool import PoolTimeout

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.run_mirror import mirror_run


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
    newest, mirrored = since, 0
    for record in records:
        # Every run of this instance is the project's: jobs, schedules, and asset launches
        # (`dagster asset materialize`, the UI), whatever their job name.
        try:
            _mirror(postgres.db, record)
            mirrored += 1
        except (psycopg.OperationalError, PoolTimeout) as exc:
            # The database is away: keep the cursor here, the next tick resumes.
            context.log.warning(f"database unavailable, mirror resumes next tick: {exc}")
            break
        except Exception as exc:  # one bad run must not stop the mirror for all others
            context.log.warning(f"run {record.dagster_run.run_id} not mirrored: {exc}")
        newest = max(newest, record.update_timestamp.timestamp())
    context.update_cursor(str(newest))
    return dg.SkipReason(f"mirrored {mirrored} run(s)") if records else None


def _mirror(db: Database, record) -> None:
    run = record.dagster_run
    mirror_run(
        db,
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
