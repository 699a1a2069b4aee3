"""The sensors' drift statistic against Evidently (performance goal P3), side by side.

Per case, the same reference and current frames go through Evidently's DataDriftPreset (the
report people read: ``monitoring.evidently_drift``, HTML not saved) and through
``monitoring.column_drift.dataset_drift`` (what the sensors compute), interleaved,
Evidently ``--evidently-runs`` times and the core ``--core-runs`` times, after one warm-up
run of each on a tiny frame (Evidently's import is not timed); median seconds, their
ratio, and the share of columns whose verdict (drifted or not) agrees.

The frames: ``--columns`` columns of the kinds a feature table holds (normal, heavy-tailed
Student t, skewed lognormal, volatility-clustered GARCH-like paths, and columns with 2, 3 or
5 distinct values), with shifts of location and scale drawn so that some columns drift
clearly, some not at all and some sit near the thresholds, where a different computation
would flip the verdict. Cases: 100k x 40 (the goal), 100k reference x 25k current (unequal
sizes: the merged-CDF path), and 800-row samples (Evidently's KS path).

Goal P3: at 100k x 40 the core reproduces Evidently's verdicts on >= 95 % of columns at
>= 30x its speed. The last line: ``P3 speedup X agreement Y`` for the 100k x 40 case.
Run: .venv/bin/python bench/drift_statistic.py [--columns 40] [--evidently-runs 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from alphaplus_mlops.monitoring.column_drift import dataset_drift
from alphaplus_mlops.monitoring.evidently_drift import evidently_drift


def column(kind: str, n: int, rng: np.random.Generator, shift: float, scale: float):
    if kind == "normal":
        return rng.normal(shift, scale, n)
    if kind == "t":
        return shift + scale * rng.standard_t(4, n)
    if kind == "lognormal":
        return np.exp(rng.normal(shift, 0.5 * scale, n))
    if kind == "clustered":
        # A volatility-clustered series, as rolling volatility features are on daily data.
        shocks = rng.standard_normal(n)
        variance, out = np.empty(n), np.empty(n)
        variance[0] = 1.0
        for t in range(n):
            if t:
                variance[t] = 0.05 + 0.9 * variance[t - 1] + 0.05 * out[t - 1] ** 2
            out[t] = np.sqrt(variance[t]) * shocks[t]
        return shift + scale * out
    levels = int(kind.removeprefix("levels"))
    weights = np.linspace(1.0, 1.0 + shift, levels)
    return rng.choice(levels, n, p=weights / weights.sum()).astype(float)


KINDS = ("normal", "t", "lognormal", "clustered", "levels2", "levels3", "levels5")


def frames(n_ref: int, n_cur: int, n_columns: int, seed: int):
    rng = np.random.default_rng(seed)
    reference, current = {}, {}
    for i in range(n_columns):
        kind = KINDS[i % len(KINDS)]
        # A third unchanged, a third moved a little (near the thresholds), a third clearly.
        size = (0.0, rng.uniform(0.02, 0.15), rng.uniform(0.3, 0.8))[i % 3]
        name = f"{kind}_{i}"
        reference[name] = column(kind, n_ref, rng, 0.0, 1.0)
        current[name] = column(kind, n_cur, rng, size, 1.0 + size / 2)
    return pd.DataFrame(reference), pd.DataFrame(current)


def case(label: str, n_ref: int, n_cur: int, args) -> tuple[float, float]:
    reference, current = frames(n_ref, n_cur, args.columns, seed=n_ref + n_cur)
    columns = list(reference.columns)
    evidently_seconds, core_seconds = [], []
    theirs = ours = None
    for run in range(max(args.evidently_runs, 1)):
        started = time.perf_counter()
        theirs = evidently_drift(reference, current, columns)
        evidently_seconds.append(time.perf_counter() - started)
        for _ in range(args.core_runs // max(args.evidently_runs, 1) + (run == 0)):
            started = time.perf_counter()
            ours = dataset_drift(reference, current, columns)
            core_seconds.append(time.perf_counter() - started)
    agree = np.mean(
        [a.drifted == b.drifted for a, b in zip(ours.columns, theirs.columns, strict=True)]
    )
    same_test = np.mean(
        [a.method == b.method for a, b in zip(ours.columns, theirs.columns, strict=True)]
    )
    worst = max(abs(a.score - b.score) for a, b in zip(ours.columns, theirs.columns, strict=True))
    e, c = float(np.median(evidently_seconds)), float(np.median(core_seconds))
    print(
        f"{label:<22} {e:>10.2f} {c:>8.3f} {e / c:>8.1f} {agree:>10.1%} {same_test:>10.1%} "
        f"{worst:>12.2e} {len(ours.drifted_columns()):>4}/{len(columns):<3}"
    )
    return e / c, float(agree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=40)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--evidently-runs", type=int, default=2)
    parser.add_argument("--core-runs", type=int, default=6)
    args = parser.parse_args()
    print(
        f"{args.columns} columns of {len(KINDS)} kinds; {os.cpu_count()} cores, shared; "
        "median seconds, interleaved"
    )
    print(
        f"{'case':<22} {'Evidently':>10} {'core':>8} {'speedup':>8} {'agreement':>10} "
        f"{'same test':>10} {'max |score Δ|':>12} {'drifted':>8}"
    )
    # Evidently's import (seconds) and first-run set-up stay out of the timings.
    warm_ref, warm_cur = frames(200, 200, 3, seed=0)
    evidently_drift(warm_ref, warm_cur, list(warm_ref.columns))
    dataset_drift(warm_ref, warm_cur, list(warm_ref.columns))
    goal = case(f"{args.rows // 1000}k x {args.columns}", args.rows, args.rows, args)
    case(
        f"{args.rows // 1000}k vs {args.rows // 4000}k x {args.columns}",
        args.rows,
        args.rows // 4,
        args,
    )
    case(f"800 x {args.columns} (KS)", 800, 800, args)
    speedup, agreement = goal
    met = speedup >= 30 and agreement >= 0.95
    print(f"goal (>= 30x, >= 95 % of columns): {'met' if met else 'NOT met'}")
    print(f"P3 speedup {speedup:.1f} agreement {agreement:.3f}")


if __name__ == "__main__":
    main()
