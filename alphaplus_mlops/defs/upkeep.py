"""Upkeep sensors. The reaper closes what died unattended, on the same code as `doctor`;
prediction_months creates the prediction log's month partitions before they are written.

Every few seconds (a fifth of ALPHAPLUS_TRAINING_STALE_SECONDS, at most a minute) it marks
failed the training rows whose worker is gone (heartbeat stale, or
Dagster run ended) and ends their Dagster runs, so that a killed run gives its training
slot back; and it reconciles `promote` decisions whose promotion never ran.
"""

import socket
from datetime import timedelta

import dagster as dg
import psutil
from dagster._core.events import JobFailureData, RunFailureReason

from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.clock import clock_now
from alphaplus_mlops.store.consistency import (
    ENDED_RUN_STATUSES,
    Finding,
    stale_training_jobs,
    unfinished_promotions,
)
from alphaplus_mlops.store.db import DATABASE_UNAVAILABLE
from alphaplus_mlops.store.live import ensure_prediction_months


class DagsterRuns:
    """What the consistency checks need to know and do about Dagster runs."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def status(self, run_id: str) -> str | None:
        run = self.instance.get_run_by_id(run_id)
        return run.status.value if run is not None else None

    def end(self, run_id: str, reason: str) -> None:
        """Mark a run whose worker is gone as failed and free its pool slots now: the run
        queue then counts it out of the 3 trainings and starts the next queued run."""
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            return
        if run.status.value not in ENDED_RUN_STATUSES:
            # A worker that vanished is an unexpected termination, not a failed step: run
            # retries (dagster.yaml) may run it once more, as they would after a crash.
            self.instance.report_run_failed(
                run,
                message=f"alphaplus reaper: {reason}",
                job_failure_data=JobFailureData(
                    error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION
                ),
            )
        self.instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def worker_alive(job: dict) -> bool:
    """Whether the row's worker process still runs: only knowable on its own host, and
    only if the process with that pid is not a newer one that reused the number."""
    if job["worker_host"] != socket.gethostname() or not job["worker_pid"]:
        return False
    try:
        process = psutil.Process(job["worker_pid"])
        return process.create_time() <= job["started_at"].timestamp() + 1
    except psutil.Error:
        return False


def reaper_findings(db, store, instance: dg.DagsterInstance, stale_after: float) -> list[Finding]:
    runs = DagsterRuns(instance)
    return [
        *stale_training_jobs(
            db,
            stale_after=stale_after,
            run_status=runs.status,
            end_run=runs.end,
            worker_alive=worker_alive,
        ),
        *unfinished_promotions(db, store),
    ]


def build_training_reaper(settings: Settings) -> dg.SensorDefinition:
    stale_after = settings.training_stale_seconds

    @dg.sensor(
        name="training_reaper",
        # A fifth of the limit, at most a minute: a dead worker's slot is free again within
        # 1.2 times the limit.
        minimum_interval_seconds=max(1, min(60, stale_after // 5)),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Marks failed the training rows whose worker is gone (no heartbeat for "
        f"{stale_after} s, or the Dagster run ended) and ends their runs, freeing their "
        "training slots; completes or abandons `promote` decisions whose promotion never ran.",
    )
    def training_reaper(
        context: dg.SensorEvaluationContext,
        postgres: PostgresResource,
        artifacts: ArtifactStoreResource,
    ):
        try:
            findings = reaper_findings(postgres.db, artifacts.store, context.instance, stale_after)
        except DATABASE_UNAVAILABLE as exc:
            return dg.SkipReason(f"checks not run, the next tick tries again: {exc}")
        outcomes = []
        for finding in findings:
            try:
                outcome = f"{finding.line()} -> {finding.repair()}"
            except Exception as exc:  # one repair failing must not hide the others'
                outcome = f"{finding.line()} -> not repaired ({type(exc).__name__}: {exc})"
            context.log.warning(outcome)
            outcomes.append(outcome)
        return dg.SkipReason("; ".join(outcomes) if outcomes else "nothing to reap")

    return training_reaper


# How far ahead of the decision clock the log's months are made.
PREDICTION_MONTHS_AHEAD = timedelta(days=45)


@dg.sensor(
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Creates the month partitions of the prediction log (model_predictions) for "
    "this month and the next, by the decision clock, before anything is written to them: "
    "attaching a month waits for open writes to model_versioning, so the writers of the log "
    "(which create a missing month themselves, as the fallback) seldom have to.",
)
def prediction_months(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    db = postgres.db
    try:
        now = clock_now(db)
        created = ensure_prediction_months(db, now, now + PREDICTION_MONTHS_AHEAD)
    except DATABASE_UNAVAILABLE as exc:
        return dg.SkipReason(f"not checked, the next tick tries again: {exc}")
    through = (now + PREDICTION_MONTHS_AHEAD).strftime("%Y-%m")
    return dg.SkipReason(f"{created} month(s) created; months ready through {through}")
