"""Unattended operation: a training run leaves an honest job row however it ends, and its
progress reports never fail a fit when the database goes away (issue 9)."""

import dagster as dg
import pytest

from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.training_run import RunTrigger, TrainingProgress, recorded_training_job
from alphaplus_mlops.families.base import Progress
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.training_jobs import start_training_job

from .conftest import rows

NOWHERE = "postgresql://postgres@127.0.0.1:1/nothing_listens_here"
MANUAL = RunTrigger("manual", None, 0, None, "test")


def _job(db: Database) -> str:
    return start_training_job(
        db,
        family="xgboost",
        trigger_type="manual",
        trigger_id=None,
        priority=0,
        run_id="progress-test",
        requested_by=None,
        reason=None,
        dataset_id=None,
        config={},
    )


def test_progress_never_fails_a_fit_while_the_database_is_away(database, database_url):
    job_id = _job(database)
    away = Database(NOWHERE, timeout=0.5)
    progress = TrainingProgress(
        dg.build_asset_context(), away, job_id, total=100, min_interval=0.0, retry_after=3600
    )
    for i in range(1, 51):
        progress(Progress(i, 100, "train_logloss", 0.69))  # never raises
    # One failed attempt, then the database is left alone instead of stalling every round.
    assert progress.failed_writes == 1
    progress.db = database  # it answers again
    progress(Progress(60, 100, "train_logloss", 0.68))  # still backing off: not written
    (row,) = rows(database_url, "SELECT * FROM model_training_jobs WHERE id = %s", (job_id,))
    assert row["iteration"] is None
    progress.complete()  # the end tries once more: the latest values land
    (row,) = rows(database_url, "SELECT * FROM model_training_jobs WHERE id = %s", (job_id,))
    assert (row["iteration"], row["total_iterations"]) == (100, 100)
    assert row["last_metric_value"] == pytest.approx(0.68)
    away.close()


@pytest.mark.parametrize(
    ("raised", "status"), [(KeyboardInterrupt, "cancelled"), (RuntimeError, "failed")]
)
def test_an_interrupted_or_broken_training_closes_its_job_row(database_url, raised, status):
    @dg.asset
    def training(context: dg.AssetExecutionContext, postgres: PostgresResource) -> None:
        with recorded_training_job(
            context,
            postgres.db,
            family="xgboost",
            dataset_id=None,
            config={},
            trigger=MANUAL,
            total_iterations=10,
        ):
            raise raised("stopped in the middle of a fit")

    try:
        dg.materialize(
            [training],
            resources={"postgres": PostgresResource(database_url=database_url)},
            raise_on_error=False,
        )
    except BaseException as exc:  # an interrupt may end the in-process run right there
        assert isinstance(exc, raised)
    (row,) = rows(
        database_url,
        "SELECT status, error, finished_at FROM model_training_jobs WHERE error LIKE %s",
        (f"%{raised.__name__}: stopped in the middle of a fit%",),
    )
    assert row["status"] == status
    assert row["finished_at"] is not None
