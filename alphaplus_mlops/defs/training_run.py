"""The bookkeeping around a training step, kept out of the ML path.

Why the run exists (its trigger), the run mirror row, the `model_training_jobs` row with
its progress, CPU seconds and peak RSS, and how the row is closed.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import psutil
import psycopg

from alphaplus_mlops import run_tags
from alphaplus_mlops.alerting.rules import check_training_memory
from alphaplus_mlops.families.base import Progress
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.run_mirror import mirror_run
from alphaplus_mlops.store.training_jobs import (
    beat_training_heartbeat,
    finish_training_job,
    start_training_job,
    update_training_progress,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunTrigger:
    """Why this run exists: from its tags (schedule, sensor, CLI), else the launchpad config."""

    trigger_type: str
    trigger_id: str | None
    priority: int
    requested_by: str | None
    reason: str | None

    @classmethod
    def of(cls, run: dg.DagsterRun, fallback: dict) -> RunTrigger:
        tags = run.tags
        return cls(
            trigger_type=tags.get(run_tags.TRIGGER_TYPE, fallback["trigger_type"]),
            trigger_id=run_tags.trigger_id_from_tag(tags.get(run_tags.TRIGGER_ID)),
            priority=int(tags.get(run_tags.PRIORITY, fallback["priority"])),
            requested_by=tags.get(run_tags.REQUESTED_BY, fallback["requested_by"]) or None,
            reason=tags.get(run_tags.REASON, fallback["reason"]) or None,
        )

    def mirror_fields(self) -> dict:
        return {
            "trigger_type": self.trigger_type,
            "trigger_id": self.trigger_id,
            "priority": self.priority,
        }

    def job_fields(self) -> dict:
        return {**self.mirror_fields(), "requested_by": self.requested_by, "reason": self.reason}


class TrainingProgress:
    """Maps each fit's iterations onto one run-wide count and reports at most every
    ``min_interval`` seconds (and at the very end), whatever the boosting speed.

    Best-effort: a report that cannot reach the database within ``write_timeout`` seconds
    is logged and dropped, the next ones skip the database for ``retry_after`` seconds,
    and the latest values are written once it answers again. A database blip never
    fails a fit, nor stalls it for long."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        db: Database,
        job_id: str,
        total: int,
        min_interval: float = 2.0,
        write_timeout: float = 1.0,
        retry_after: float = 30.0,
    ):
        self.context, self.db, self.job_id, self.total = context, db, job_id, total
        self.min_interval = min_interval
        self.write_timeout, self.retry_after = write_timeout, retry_after
        self.failed_writes = 0
        self._retry_at = 0.0
        self.offset = 0
        self.done = 0
        self.peak_rss = psutil.Process().memory_info().rss
        self._last_report = 0.0
        self._last: Progress | None = None
        self._reported = -1

    def stage(self, completed_iterations: int) -> None:
        """Start the next fit after ``completed_iterations`` run-wide iterations."""
        self.offset = completed_iterations

    def __call__(self, progress: Progress) -> None:
        self.done = self.offset + progress.iteration
        self._last = progress
        now = time.monotonic()
        if now - self._last_report >= self.min_interval or self.done >= self.total:
            self._report(progress)
            self._last_report = now

    def across_fits(self, rounds: int, first_fit: int = 0):
        """A callback for consecutive fits (the CV folds), the first of them the run's fit
        number ``first_fit``: each new fit, seen as its iteration count starting over,
        continues the run-wide count."""
        state = {"fit": first_fit, "last": 0}
        self.stage(first_fit * rounds)

        def report(p: Progress) -> None:
            if p.iteration <= state["last"]:
                state["fit"] += 1
                self.stage(state["fit"] * rounds)
            state["last"] = p.iteration
            self(p)

        return report

    def flush(self) -> None:
        if self._last is not None and self._reported != self.done:
            self._report(self._last)

    def complete(self) -> None:
        """Every fit has ended: report the whole count, even where early stopping left a
        fit short of its most rounds (the total is an upper bound), and try the database
        once more even if it failed lately."""
        self.done = self.total
        self._retry_at = 0.0
        self.flush()

    def _report(self, progress: Progress) -> None:
        self._reported = self.done
        self.peak_rss = max(self.peak_rss, psutil.Process().memory_info().rss)
        self.context.log.info(
            f"iteration {self.done}/{self.total} {progress.metric_name}={progress.metric_value:.5f}"
        )
        now = time.monotonic()
        if now < self._retry_at:
            return
        try:
            update_training_progress(
                self.db,
                self.job_id,
                self.done,
                self.total,
                progress.metric_name,
                progress.metric_value,
                self.peak_rss,
                timeout=self.write_timeout,
            )
        except psycopg.Error as exc:
            self.failed_writes += 1
            self._retry_at = now + self.retry_after
            self.context.log.warning(
                f"progress not recorded ({type(exc).__name__}: {exc}); training goes on, "
                f"the database is tried again in {self.retry_after:.0f} s"
            )


class ResourceUsage:
    """Wall and CPU seconds of this process since it was made."""

    def __init__(self):
        self.started = time.monotonic()
        self.cpu_start = resource.getrusage(resource.RUSAGE_SELF)

    def wall_seconds(self) -> float:
        return time.monotonic() - self.started

    def cpu_seconds(self) -> float:
        now = resource.getrusage(resource.RUSAGE_SELF)
        return (now.ru_utime - self.cpu_start.ru_utime) + (now.ru_stime - self.cpu_start.ru_stime)


class Heartbeat:
    """Beats the row's heartbeat every ``interval`` seconds from a thread of its own, so
    that silence means the worker is gone (killed, out of memory), not busy: the boosting
    libraries release the GIL while they fit, and a slow data load sends no progress.
    Best-effort like progress: a beat that fails is counted and the next one tries again."""

    def __init__(self, db: Database, job_id: str, interval: float):
        self.db, self.job_id, self.interval = db, job_id, interval
        self.beats = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="training-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                beat_training_heartbeat(self.db, self.job_id, timeout=min(self.interval, 5.0))
                self.beats += 1
            except Exception:  # never let a beat end the thread, nor the run
                self.failed += 1


@dataclass(frozen=True)
class TrainingJob:
    id: str
    progress: TrainingProgress
    usage: ResourceUsage


@contextmanager
def recorded_training_job(
    context: dg.AssetExecutionContext,
    db: Database,
    *,
    family: str,
    dataset_id: str,
    config: dict,
    trigger: RunTrigger,
    total_iterations: int,
) -> Iterator[TrainingJob]:
    """Mirror the run as started, open the job row, and close it when the block ends:
    succeeded, failed with the error, or cancelled when interrupted, with CPU seconds and
    peak RSS either way."""
    run = context.run
    mirror_run(
        db,
        run_id=run.run_id,
        job_name=run.job_name,
        partition_key=family,
        status="STARTED",
        tags=dict(run.tags),
        **trigger.mirror_fields(),
    )
    job_id = start_training_job(
        db,
        family=family,
        run_id=run.run_id,
        dataset_id=dataset_id,
        config=config,
        **trigger.job_fields(),
    )
    job = TrainingJob(
        job_id, TrainingProgress(context, db, job_id, total_iterations), ResourceUsage()
    )
    try:
        with Heartbeat(db, job_id, Settings.from_env().heartbeat_seconds):
            yield job
    except Exception as exc:
        _close(db, job, family, run.run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    except BaseException as exc:
        # Termination from Dagster, Ctrl-C, SystemExit: the run was stopped, not broken.
        # (SIGKILL and out-of-memory kills run no handler at all: the heartbeat stops and
        # the reaper closes the row.)
        _close(
            db, job, family, run.run_id, "cancelled", f"interrupted: {type(exc).__name__}: {exc}"
        )
        raise
    _close(db, job, family, run.run_id, "succeeded")


def _close(
    db: Database, job: TrainingJob, family: str, run_id: str, status: str, error: str | None = None
) -> None:
    finish_training_job(
        db,
        job.id,
        status=status,
        cpu_seconds=job.usage.cpu_seconds(),
        peak_rss=job.progress.peak_rss,
        error=error,
    )
    try:  # the alert is bookkeeping: it must not turn a finished training into a failure
        check_training_memory(db, family=family, run_id=run_id, peak_rss=job.progress.peak_rss)
    except Exception:
        log.exception("could not evaluate the system_resources alert for run %s", run_id)
