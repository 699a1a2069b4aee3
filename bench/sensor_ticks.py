"""How long the unattended parts take: one sensor tick, and loading the definitions (P4).

Set-up: a throwaway database (on ALPHAPLUS_DATABASE_URL or the embedded server, migrated,
dropped at the end) with a fleet in service: per family a champion whose out-of-fold
per-bar returns are in the artifact store, ``--bars`` realized live bars of ``--symbols``
symbols (its live outcomes, as prediction_outcomes writes them), a flood of ``--checks``
drift checks (the latest drifted), and the market's bars for every symbol. The champions
earn what they did offline, so the performance trigger watches and finds nothing: the
steady state of a quiet day (and the case that reads the most, every tick).

Measured, side by side in one run: ``--ticks`` ticks of each polling sensor through
``build_sensor_context`` (a fresh context per tick, as the daemon gives; only the sensor's
call is timed), after one untimed tick that freezes what is frozen once per version (the
performance detector). Goal: a tick ≤ 0.5 s. Then the definitions: a new Python process
importing ``alphaplus_mlops.definitions`` (what ``dagster dev`` and the code server load),
``--loads`` times: the import alone and the whole process. Goal ≤ 3 s.

The last line: ``P4 worst tick s: X definitions s: Y`` (worst p95 of a tick; slowest import).
Run: .venv/bin/python bench/sensor_ticks.py [--symbols 50] [--bars 504] [--ticks 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
from scratch import scratch_database

from alphaplus_mlops.defs.alert_sensors import alert_delivery_sensor, stale_data_sensor
from alphaplus_mlops.defs.assets.live import live_signals_sensor
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.defs.trigger_sensors import drift_trigger_sensor, performance_trigger_sensor
from alphaplus_mlops.families import family_names
from alphaplus_mlops.modeling.model_files import store_returns
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.drift import record_drift_check

SENSORS = (
    drift_trigger_sensor,
    performance_trigger_sensor,
    stale_data_sensor,
    alert_delivery_sensor,
    live_signals_sensor,
)

SCALE = 0.004  # the per-bar spread of a champion's net returns
TICK_GOAL_S, LOAD_GOAL_S = 0.5, 3.0


def populate(db: Database, store: LocalArtifactStore, symbols: int, bars: int, checks: int):
    names = [f"S{i:03d}" for i in range(symbols)]
    times = pd.bdate_range("2016-01-04", periods=bars + 300, tz="UTC")
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((len(times), symbols)), axis=0))
    upsert_bars(
        db,
        pd.DataFrame(
            {
                "symbol": np.tile(names, len(times)),
                "ts": np.repeat(times, symbols),
                "open": close.ravel(),
                "high": close.ravel() * 1.01,
                "low": close.ravel() * 0.99,
                "close": close.ravel(),
                "volume": 1e6,
            }
        ),
        source="bench",
    )
    live_times = times[300:]
    with psycopg.connect(db.url) as conn:
        for family in family_names():
            version = str(uuid.uuid4())
            conn.execute(
                "INSERT INTO model_versioning (id, family, version, model_name, status) "
                "VALUES (%s, %s, 1, %s, 'champion')",
                (version, family, f"{family}-v1"),
            )
            offline = pd.Series(SCALE * rng.standard_normal(252) + SCALE / 10, times[:252])
            returns = store_returns(store, offline)
            conn.execute(
                "INSERT INTO model_performance_tracking (model_version_id, split, n_rows, "
                "ml_metrics, business_metrics, returns_uri, returns_sha256) "
                "VALUES (%s, 'walk_forward_oof', 0, '{}', '{}', %s, %s)",
                (version, returns.uri, returns.sha256),
            )
            # Realized outcomes, made on the server: every symbol at every live bar.
            conn.execute(
                "INSERT INTO live_outcomes (model_version_id, role, bar_ts, symbol, family, "
                "probability, signal, predicted_at, realized_label, realized_net_return) "
                "SELECT %s, 'champion', t, s, %s, 0.55, 1, t, (random() > 0.5)::int, "
                "       %s * (random() - 0.5) * 3.46 + %s "
                "FROM unnest(%s::timestamptz[]) AS t, unnest(%s::text[]) AS s",
                (version, family, SCALE, SCALE / 10, list(live_times), names),
            )
            conn.execute(
                "INSERT INTO live_outcome_bars (model_version_id, role, bar_ts) "
                "SELECT %s, 'champion', t FROM unnest(%s::timestamptz[]) AS t",
                (version, list(live_times)),
            )
            conn.commit()
            for i in range(checks):
                record_drift_check(
                    db,
                    {
                        "family": family,
                        "version_id": version,
                        "dataset_id": None,
                        "reference_window": {"start": "2016-01-04", "end": "2016-03-31"},
                        "current_window": {"start": "2017-01-03", "end": "2017-03-31"},
                        "method": "bench",
                        "threshold": 1.0,
                        "score": 1.5 if i == checks - 1 else 0.5,
                        "drift_share": 0.5,
                        "drifted": i == checks - 1,
                        "feature_scores": {},
                        "report_path": None,
                    },
                )
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def tick_times(sensor, resources: dict, instance, ticks: int) -> np.ndarray:
    def one() -> float:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            started = time.perf_counter()
            sensor(context)
            return time.perf_counter() - started

    one()  # freezes what is frozen once (the performance detector)
    return np.array([one() for _ in range(ticks)])


def definition_loads(loads: int) -> tuple[np.ndarray, np.ndarray]:
    code = (
        "import time; t = time.perf_counter(); import alphaplus_mlops.definitions; "
        "print(time.perf_counter() - t)"
    )
    imports, processes = [], []
    for _ in range(loads):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        processes.append(time.perf_counter() - started)
        if out.returncode != 0:
            raise SystemExit(f"loading the definitions failed:\n{out.stderr}")
        imports.append(float(out.stdout.strip().splitlines()[-1]))
    return np.array(imports), np.array(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=504)
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()

    with (
        scratch_database("apm_p4") as url,
        tempfile.TemporaryDirectory() as root,
        Database(url) as db,
    ):
        store = LocalArtifactStore(root)
        started = time.monotonic()
        populate(db, store, args.symbols, args.bars, args.checks)
        outcomes = args.symbols * args.bars * len(family_names())
        print(
            f"{len(family_names())} champions, {args.symbols} symbols x {args.bars} "
            f"realized bars each ({outcomes:,} live outcomes), {args.checks} drift checks "
            f"per family, set up in {time.monotonic() - started:.0f} s"
        )
        resources = {
            "postgres": PostgresResource(database_url=url),
            "artifacts": ArtifactStoreResource(location=root),
        }
        instance = dg.DagsterInstance.ephemeral()
        print(f"\nsensor tick (s), {args.ticks} ticks each; goal: p95 <= {TICK_GOAL_S}")
        print(f"{'sensor':<28}{'p50':>8}{'p95':>8}{'max':>8}  met")
        worst = 0.0
        for sensor in SENSORS:
            t = tick_times(sensor, resources, instance, args.ticks)
            p95 = float(np.percentile(t, 95))
            worst = max(worst, p95)
            print(
                f"{sensor.name:<28}{np.median(t):8.3f}{p95:8.3f}{t.max():8.3f}  "
                f"{'yes' if p95 <= TICK_GOAL_S else 'NO'}"
            )

    imports, processes = definition_loads(args.loads)
    print(
        f"\ndefinitions (a new process importing alphaplus_mlops.definitions, {args.loads} "
        f"times; goal <= {LOAD_GOAL_S} s): import median {np.median(imports):.2f} s, slowest "
        f"{imports.max():.2f} s; whole process median {np.median(processes):.2f} s, slowest "
        f"{processes.max():.2f} s; met: {'yes' if imports.max() <= LOAD_GOAL_S else 'NO'}"
    )
    print(f"P4 worst tick s: {worst:.3f} definitions s: {imports.max():.2f}")


if __name__ == "__main__":
    main()
