"""Training moved onto Celery workers: the wall time of training all three families with 1
and with 2 workers, side by side in one run.

Each round starts N `alphaplus-mlops worker` processes (concurrency 1 each) on a RabbitMQ
virtual host of its own, a fresh database with the same simulated bars, and the three
train_model runs at once, each orchestrated by its own process (as a run launcher starts
them); the wall time runs from the three starts to the last end. Per round it reports which
worker processes fitted each family (from the training rows), the most trainings open at
once, and the trainings lost (not 'succeeded'). On this 2-core machine the speedup is
bounded by the cores the fits share; the point is that work moves and nothing is lost.
Last line: `scale-out speedup X with 2 workers, max concurrent C, lost L`.
Run: .venv/bin/python bench/scale_out.py [--rounds 200] [--bars 1500]
(ALPHAPLUS_DATABASE_URL: a server to create the databases on; unset: the embedded one.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from alphaplus_mlops.app.dagster_env import environment_applied, prepare_dagster
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.distributed import local_cluster
from alphaplus_mlops.families import family_names
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database, resolve_database_url, with_database
from alphaplus_mlops.store.migrations import migrate

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ["SOA", "SOB", "SOC"]


def fresh_database(server: str, bars: int) -> str:
    name = f"apm_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    migrate(url)
    market = simulate_market(SYMBOLS, seed=5, config=SimulationConfig(n_bars=bars))
    with Database(url) as db:
        upsert_bars(db, market.bars, source="bench")
    with psycopg.connect(url) as conn:  # gates are not what this bench measures
        conn.execute("UPDATE quality_gates SET threshold = -1 WHERE name = 'model_performance'")
    return url


def one_round(server: str, broker: str, workers: int, rounds: int, bars: int) -> dict:
    url = fresh_database(server, bars)
    with tempfile.TemporaryDirectory(prefix="apm-scale-") as folder:
        folder = Path(folder)
        env = local_cluster.deployment_environment(
            url,
            folder,
            REPO,
            ALPHAPLUS_EXECUTOR="celery",
            ALPHAPLUS_CELERY_BROKER_URL=broker,
        )
        with environment_applied({"DAGSTER_HOME": str(REPO)}):
            prepare_dagster(Settings.from_env(env), url)
        with local_cluster.workers(env, folder, count=workers) as started:
            pools = [local_cluster.pool_processes(w) for w in started]
            began = time.perf_counter()
            runs = [
                local_cluster.start_training(env, folder, family, SYMBOLS, rounds)
                for family in family_names()
            ]
            for run in runs:
                run.communicate(timeout=1800)
            wall = time.perf_counter() - began
            for n, worker in enumerate(started):
                pools[n] |= local_cluster.pool_processes(worker)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        jobs = conn.execute("SELECT * FROM model_training_jobs ORDER BY family").fetchall()
    placed = {
        job["family"]: next((n for n, pool in enumerate(pools) if job["worker_pid"] in pool), None)
        for job in jobs
    }
    finished = [j for j in jobs if j["status"] == "succeeded"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    return {
        "wall": wall,
        "placed": placed,
        "overlap": local_cluster.max_overlap(
            [(j["started_at"], j["finished_at"]) for j in finished]
        ),
        "lost": len(family_names()) - len(finished),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="boosting rounds per fit")
    parser.add_argument("--bars", type=int, default=1500, help="bars per symbol")
    args = parser.parse_args()
    server = resolve_database_url(Settings.from_env())
    with local_cluster.private_vhost() as broker:
        results = {n: one_round(server, broker, n, args.rounds, args.bars) for n in (1, 2)}
    print(f"{'workers':>7}  {'wall s':>7}  {'max open':>8}  {'lost':>4}  fitted on worker")
    for n, r in results.items():
        placed = ", ".join(f"{f}:{w}" for f, w in sorted(r["placed"].items()))
        print(f"{n:>7}  {r['wall']:>7.1f}  {r['overlap']:>8}  {r['lost']:>4}  {placed}")
    speedup = results[1]["wall"] / results[2]["wall"]
    lost = sum(r["lost"] for r in results.values())
    print(
        f"scale-out speedup {speedup:.2f} with 2 workers, "
        f"max concurrent {results[2]['overlap']}, lost {lost}"
    )


if __name__ == "__main__":
    main()
