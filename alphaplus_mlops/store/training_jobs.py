"""Training runs in model_training_jobs: the row, its progress and how it ended."""

from __future__ import annotations

import math
import os
import socket
from datetime import datetime

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, jsonb


def start_training_job(
    db: Database,
    *,
    family: str,
    trigger_type: str,
    trigger_id: str | None,
    priority: int,
    run_id: str,
    requested_by: str | None,
    reason: str | None,
    dataset_id: str,
    config: dict,
) -> str:
    """Open a running row, recording this process as its worker (host and pid)."""
    with db.connection() as conn:
        row = conn.execute(
            queries.INSERT_TRAINING_JOB,
            (
                family,
                trigger_type,
                trigger_id,
                priority,
                run_id,
                requested_by,
                reason,
                dataset_id,
                jsonb(config),
                socket.gethostname(),
                os.getpid(),
            ),
        ).fetchone()
    return str(row["id"])


def update_training_progress(
    db: Database,
    job_id: str,
    iteration: int,
    total: int,
    metric: str,
    value: float,
    rss: int,
    *,
    timeout: float | None = None,
) -> None:
    with db.connection(timeout=timeout) as conn:
        conn.execute(
            queries.UPDATE_TRAINING_PROGRESS,
            (iteration, total, metric, value if math.isfinite(value) else None, rss, job_id),
        )


def finish_training_job(
    db: Database,
    job_id: str,
    *,
    status: str,
    cpu_seconds: float,
    peak_rss: int,
    error: str | None = None,
) -> bool:
    """Close a running row; False when it was closed already (the reaper got there first,
    and its verdict stands)."""
    with db.connection() as conn:
        closed = conn.execute(
            queries.FINISH_TRAINING_JOB, (status, cpu_seconds, peak_rss, error, job_id)
        ).fetchone()
    return closed is not None


def beat_training_heartbeat(db: Database, job_id: str, *, timeout: float | None = None) -> None:
    with db.connection(timeout=timeout) as conn:
        conn.execute(queries.TRAINING_HEARTBEAT, (job_id,))


def last_training_at(db: Database, family: str) -> datetime | None:
    """When the family's latest training job was created (whatever became of it)."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_LAST_TRAINING_OF_FAMILY, (family,)).fetchone()["last"]


def running_training_jobs(db: Database) -> list[dict]:
    """Every running row with ``silent_seconds``: time since its last heartbeat."""
    with db.connection() as conn:
        return conn.execute(queries.SELECT_RUNNING_TRAINING_JOBS).fetchall()


def reap_training_job(db: Database, job_id: str, reason: str) -> bool:
    """Mark a running row failed with ``reason``; False if it had been closed meanwhile."""
    with db.connection() as conn:
        return conn.execute(queries.REAP_TRAINING_JOB, (reason, job_id)).fetchone() is not None
