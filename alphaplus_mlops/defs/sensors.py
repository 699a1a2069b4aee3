"""Sensors: the run mirror (every run's status and timings, for readers outside Dagster)."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.store.db import DATABASE_UNAVAILABLE, Database
from alphaplus_mlops.store.run_mirror import mirror_run

#: A run that cannot be written for a reason other than the database being away is tried
#: on this many ticks, then logged as an error and passed over, so it cannot stall the mirror.
MAX_MIRROR_ATTEMPTS = 5

# Runs are read from a little before the cursor: a run updated at the same instant as the
# last one written must not be skipped. Those already written are recognised and passed.
_CURSOR_OVERLAP_SECONDS = 0.001


@dataclass(frozen=True)
class MirrorCursor:
    """How far the mirror has written: the update time of the last run written, the runs
    written at that very time, and the run that keeps failing next with its failed ticks."""

    after: float = 0.0
    written_at_after: tuple[str, ...] = ()
    failing_run: str | None = None
    failures: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "MirrorCursor":
        if not text:
            return cls()
        if not text.startswith("{"):  # the cursor of earlier versions: a bare timestamp
            return cls(after=float(text))
        fields = json.loads(text)
        return cls(**{**fields, "written_at_after": tuple(fields["written_at_after"])})

    def dumps(self) -> str:
        return json.dumps({**self.__dict__, "written_at_after": list(self.written_at_after)})

    def already_written(self, run_id: str, updated: float) -> bool:
        return updated < self.after or (updated == self.after and run_id in self.written_at_after)

    def past(self, run_id: str, updated: float) -> "MirrorCursor":
        if updated == self.after:
            return MirrorCursor(updated, (*self.written_at_after, run_id))
        return MirrorCursor(updated, (run_id,))


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Mirrors pipeline runs (status, timings, trigger) into "
    "ml_pipeline_orchestration for readers outside Dagster. The cursor moves only past runs "
    "written: a database outage delays the mirror, it loses nothing.",
)
def run_mirror_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    cursor = MirrorCursor.parse(context.cursor)
    since = max(cursor.after - _CURSOR_OVERLAP_SECONDS, 0.0)
    records = [
        record
        for record in context.instance.get_run_records(
            dg.RunsFilter(job_name=None, updated_after=datetime.fromtimestamp(since, UTC)),
            limit=500,
            # In update order: the cursor is an update time, so a run created earlier but
            # updated later must come after the runs it moves past.
            order_by="update_timestamp",
            ascending=True,
        )
        if not cursor.already_written(
            record.dagster_run.run_id, record.update_timestamp.timestamp()
        )
    ]
    mirrored = 0
    for record in records:
        # Every run of this instance is the project's: jobs, schedules, and asset launches
        # (`dagster asset materialize`, the UI), whatever their job name.
        run_id = record.dagster_run.run_id
        try:
            _mirror(postgres.db, record)
        except DATABASE_UNAVAILABLE as exc:
            context.log.warning(f"database unavailable, the mirror resumes next tick: {exc}")
            break
        except Exception as exc:
            failures = cursor.failures + 1 if cursor.failing_run == run_id else 1
            if failures < MAX_MIRROR_ATTEMPTS:
                context.log.warning(f"run {run_id} not mirrored (attempt {failures}): {exc}")
                cursor = MirrorCursor(cursor.after, cursor.written_at_after, run_id, failures)
                break
            context.log.error(f"run {run_id} not mirrored after {failures} attempts: {exc}")
        else:
            mirrored += 1
        cursor = cursor.past(run_id, record.update_timestamp.timestamp())
    context.update_cursor(cursor.dumps())
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
