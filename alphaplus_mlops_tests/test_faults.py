"""Trainings killed in the middle of a fit, under the real daemon: nothing stays "running",
the training slot comes back, the queued run starts, and retries follow dagster.yaml.

The project's dagster.yaml with the training cap lowered to one, so that a slot held by a
dead run would stop every later run; `alphaplus-mlops retrain` queues the runs; the
signals go to the process the training row names as its worker.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.upkeep import DagsterRuns
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate

from .conftest import STRONG_SIGNAL, dagster_daemon, dagster_deployment, rows
from .test_capacity import max_overlap

SYMBOLS = ["FTA", "FTB", "FTC"]
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


@pytest.fixture
def one_slot_deployment(create_database, tmp_path):
    url = create_database()
    migrate(url)
    config = SimulationConfig(n_bars=1000, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    with Database(url) as db:
        upsert_bars(db, simulate_market(SYMBOLS, seed=8, config=config).bars, source="test")
    # A dead worker is noticed after 6 s of silence; the reaper then ticks every second.
    env, home = dagster_deployment(
        url, tmp_path, ALPHAPLUS_HEARTBEAT_SECONDS="1", ALPHAPLUS_TRAINING_STALE_SECONDS="6"
    )
    yaml = (home / "dagster.yaml").read_text()
    assert yaml.count("limit: 3") == 2  # the training tag limit and the pool limit
    (home / "dagster.yaml").write_text(yaml.replace("limit: 3", "limit: 1"))
    return url, env, home


def training_config(rounds: int, shuffle: bool = False) -> dict:
    return {
        "ops": {
            "training_dataset": {"config": {"symbols": SYMBOLS, "shuffle_labels": shuffle}},
            "trained_model": {
                "config": {"n_estimators": rounds, "cv_splits": 2, "early_stopping_rounds": 0}
            },
        }
    }


def retrain(env, priority: int, rounds: int) -> str:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("alphaplus-mlops")),
            "retrain",
            "--family",
            "lightgbm",
            "--priority",
            str(priority),
            "--reason",
            f"fault test p{priority}",
            "--config-json",
            json.dumps(training_config(rounds)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return re.search(r"queued train_model run (\S+)", done.stdout).group(1)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def training_row(url: str, run_id: str) -> dict | None:
    found = rows(url, "SELECT * FROM model_training_jobs WHERE dagster_run_id = %s", (run_id,))
    return found[0] if found else None


def kill_mid_fit(url: str, run_id: str, sig: signal.Signals) -> None:
    def fitting():
        row = training_row(url, run_id)
        return row if row and row["status"] == "running" and row["iteration"] else None

    row = wait_for(fitting, 240, f"run {run_id} to start fitting")
    os.kill(row["worker_pid"], sig)


def run_tags(url: str, run_id: str) -> dict:
    return {
        r["key"]: r["value"]
        for r in rows(url, "SELECT key, value FROM run_tags WHERE run_id = %s", (run_id,))
    }


@pytest.mark.daemon  # a real dagster-daemon: see conftest.py
def test_killed_and_terminated_trainings_free_the_slot_and_are_retried_once(
    one_slot_deployment,
):
    url, env, home = one_slot_deployment
    killed = retrain(env, priority=9, rounds=2000)
    terminated = retrain(env, priority=8, rounds=2000)
    queued = retrain(env, priority=5, rounds=30)

    with dagster_daemon(env, home):
        kill_mid_fit(url, killed, signal.SIGKILL)  # no handler runs: an OOM kill looks alike
        kill_mid_fit(url, terminated, signal.SIGTERM)

        def all_done():
            runs = rows(url, "SELECT run_id, status FROM runs WHERE pipeline_name = 'train_model'")
            jobs = rows(url, "SELECT status FROM model_training_jobs")
            # Three requests, one retry each for the two stopped runs.
            finished = len(runs) == 5 and all(r["status"] in TERMINAL for r in runs)
            return finished and all(j["status"] != "running" for j in jobs)

        wait_for(all_done, 420, "every run and training row to end")

    killed_row = training_row(url, killed)
    assert killed_row["status"] == "failed"
    assert killed_row["error"].startswith("reaped: ")  # the run ended, or its heartbeat stopped
    terminated_row = training_row(url, terminated)
    assert terminated_row["status"] == "cancelled"
    assert terminated_row["error"].startswith("interrupted: ")
    assert training_row(url, queued)["status"] == "succeeded"  # the slot came back

    runs = {r["run_id"]: r for r in rows(url, "SELECT * FROM runs")}
    for stopped in (killed, terminated):
        assert runs[stopped]["status"] == "FAILURE"
        assert run_tags(url, stopped)["dagster/will_retry"] == "true"
        (retry,) = [r for r in runs if run_tags(url, r).get("dagster/parent_run_id") == stopped]
        assert training_row(url, retry)["status"] == "succeeded"
    assert max_overlap([(r["start_time"], r["end_time"]) for r in runs.values()]) <= 1


def test_run_retries_rerun_a_vanished_worker_but_never_a_run_a_gate_stopped(
    one_slot_deployment, monkeypatch
):
    """The retry policy of the project's dagster.yaml, as the daemon applies it."""
    url, env, home = one_slot_deployment
    for key in ("DAGSTER_HOME", "ALPHAPLUS_DAGSTER_PG_URL", "ALPHAPLUS_DAGSTER_STORAGE"):
        monkeypatch.setenv(key, env[key])
    settings = Settings(database_url=url, home=Path(env["ALPHAPLUS_HOME"]))
    defs = build_definitions(
        settings, build_resources(settings, PostgresResource(database_url=url))
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        gated = defs.resolve_job_def("train_model").execute_in_process(
            partition_key="lightgbm",
            run_config=training_config(rounds=30, shuffle=True),
            instance=instance,
            raise_on_error=False,
        )
        assert not gated.success
        assert not should_retry(instance.get_run_by_id(gated.run_id), instance)

        vanished = instance.create_run_for_job(defs.resolve_job_def("train_model"))
        instance.handle_run_event(
            vanished.run_id,
            dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.RUN_START.value, job_name="train_model"
            ),
        )
        DagsterRuns(instance).end(vanished.run_id, "no heartbeat (test)")
        ended = instance.get_run_by_id(vanished.run_id)
        assert ended.status == dg.DagsterRunStatus.FAILURE
        assert should_retry(ended, instance)
