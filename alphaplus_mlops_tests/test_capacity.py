"""At most 3 trainings at once however runs are queued, in priority order, all finishing.

The real thing: the project's dagster.yaml on PostgreSQL storage, `alphaplus-mlops retrain`
submitting queued runs, and a Dagster daemon dequeuing them into run worker processes.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.distributed.local_cluster import max_overlap
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate

from .conftest import dagster_daemon, dagster_deployment, rows

SYMBOLS = ["CAPA", "CAPB"]
REQUESTS = [("catboost", 9), ("xgboost", 8), ("lightgbm", 7), ("catboost", 2), ("xgboost", 1)]
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


def test_max_overlap_counts_simultaneous_intervals():
    assert max_overlap([(0, 2), (1, 3), (2.5, 4)]) == 2
    assert max_overlap([(0, 1), (1, 2)]) == 1  # an end and a start at one instant
    assert max_overlap([]) == 0
    assert max_overlap([(0, 9), (1, 9), (2, 9), (3, 4)]) == 4


@pytest.fixture
def deployment_env(create_database, tmp_path):
    url = create_database()
    migrate(url)
    bars = simulate_market(SYMBOLS, seed=4, config=SimulationConfig(n_bars=500)).bars
    with Database(url) as db:
        upsert_bars(db, bars, source="test")
    env, home = dagster_deployment(url, tmp_path)
    return url, env, home


@pytest.mark.daemon  # a real dagster-daemon: see conftest.py
def test_five_queued_retrains_never_run_more_than_three_at_once(deployment_env):
    url, env, home = deployment_env
    config = json.dumps(
        {
            "ops": {
                "training_dataset": {"config": {"symbols": SYMBOLS}},
                "trained_model": {"config": {"n_estimators": 30, "cv_splits": 2}},
            }
        }
    )
    cli = Path(sys.executable).with_name("alphaplus-mlops")
    submissions = [
        subprocess.Popen(
            [
                str(cli),
                "retrain",
                "--family",
                family,
                "--priority",
                str(priority),
                "--reason",
                f"capacity test p{priority}",
                "--config-json",
                config,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for family, priority in REQUESTS
    ]
    for proc in submissions:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "queued train_model run" in out

    # Every request is queued before the daemon starts, so the queue order is observable.
    with dagster_daemon(env, home):
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            statuses = [
                r["status"]
                for r in rows(url, "SELECT status FROM runs WHERE pipeline_name = 'train_model'")
            ]
            if len(statuses) == 5 and all(s in TERMINAL for s in statuses):
                break
            time.sleep(2)
        else:
            pytest.fail(f"runs did not finish in time: {statuses}")

    jobs = rows(
        url,
        "SELECT family, priority, status, reason, started_at, finished_at "
        "FROM model_training_jobs ORDER BY started_at",
    )
    runs = rows(
        url,
        "SELECT r.run_id, r.status, r.start_time, r.end_time, t.value AS priority "
        "FROM runs r JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'dagster/priority' "
        "WHERE r.pipeline_name = 'train_model'",
    )
    assert len(jobs) == 5 and all(j["status"] == "succeeded" for j in jobs)
    assert sorted(j["priority"] for j in jobs) == sorted(p for _, p in REQUESTS)
    assert all(j["reason"].startswith("capacity test") for j in jobs)
    assert all(r["status"] in TERMINAL for r in runs)

    trainings = [(j["started_at"].timestamp(), j["finished_at"].timestamp()) for j in jobs]
    whole_runs = [(r["start_time"], r["end_time"]) for r in runs]
    assert max_overlap(trainings) <= 3
    assert max_overlap(whole_runs) <= 3
    # Queued runs start in priority order: the three highest first, the two lowest wait.
    # (Two runs dequeued in one tick may start their processes in either order.)
    by_start = [int(r["priority"]) for r in sorted(runs, key=lambda r: r["start_time"])]
    assert sorted(by_start[:3]) == [7, 8, 9] and sorted(by_start[3:]) == [1, 2]
