"""How often the retraining triggers fire for nothing, and how soon they fire after a break.

A trigger is a test run again and again: its false-alarm rate and its detection delay are
what a desk needs to know. Per seed, on a simulated market of ``--symbols`` symbols (the
default signal strength, a break at 60 % of 2,520 daily bars where the signal's loading
flips and volatility doubles), with the project's own code except Dagster:

  champion   LightGBM (small), trained the way the trigger retrains: on a rolling window of
             the 504 bars that end two years before the break; its walk-forward out-of-fold
             predictions (4 folds, as train_model) give its offline per-bar values;
  live       the champion scores every bar from two years before the break to a year after
             it; per-bar values as the live half computes them (the mean over symbols);
  performance the CUSUM detector frozen from the offline values (monitoring.change_detection)
             watches the live values, restarting after each alarm: false alarms in the two
             years before the break, delay to the first alarm after it;
  naive      the seeded rule "63-bar net Sharpe < 0", evaluated every bar: the share of
             pre-break bars on which it holds, its onsets per two years, and its delay;
  drift      the drift check (monitoring.drift_yardstick, as drift_report makes it: the
             features and the raw volatility, mean severity weighted by the model's gain)
             of the latest 63 bars against the training window's last 63, every 5 bars (a
             weekly check), held to 1.1 x the largest value over every pair of training
             windows, a window sharing bars with the last alarm's counting once (the drift
             trigger's rule); beside it, other limits (a quantile q of the pairs, or above 1
             that multiple of the largest), alarms after N checks in a row, and the earlier
             statistic (the share of drifted features): alarms before the break, delay after.

A delay is counted in bars from the break to the alarm (outcomes of 1-bar labels arrive one
bar later: the live half sees the alarm a bar after this). No alarm within a year counts as
a year (252) in the median.
Run: .venv/bin/python bench/trigger_calibration.py [--seeds 200] [--symbols 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphaplus_mlops.families.base import feature_importance
from alphaplus_mlops.modeling.datasets import Dataset
from alphaplus_mlops.modeling.scenarios import WINDOW, YEAR, champion_around_the_break
from alphaplus_mlops.monitoring.change_detection import (
    METRICS,
    calibrate_detector,
    no_skill_value,
    per_bar_values,
)
from alphaplus_mlops.monitoring.column_drift import dataset_drift
from alphaplus_mlops.monitoring.drift_yardstick import (
    RAW_VOLATILITY,
    consecutive_windows,
    drift_weights,
    weighted_severity,
)
from alphaplus_mlops.retraining.performance_watch import DEFAULTS

NAIVE_BARS = 63
DRIFT_BARS = 63
DRIFT_EVERY = 5
COST_BPS = 5.0
DRIFT_QUANTILES = (0.95, 1.0, 1.1, 1.25)
DRIFT_PERSIST = (1, 3, 6)
PRODUCT_DRIFT = ("severity", 1.1, "new")  # what drift_report and the drift trigger do


@dataclass(frozen=True)
class Grid:
    shifts: tuple[float, ...]
    probabilities: tuple[float, ...]
    horizon: int
    block: int
    rounds: int
    symbols: int
    metric: str


def onsets(flags: np.ndarray) -> int:
    """How many times ``flags`` turns on (a run of True counts once)."""
    f = np.asarray(flags, dtype=bool)
    return int(f[0]) + int(np.sum(f[1:] & ~f[:-1])) if len(f) else 0


def new_windows(flags: np.ndarray, at: np.ndarray, bars: int) -> np.ndarray:
    """Alarms that are new evidence: a flagged check whose window shares no bar with the
    last one counted (the drift trigger's rule: the same drifted bars retrain once)."""
    counted, last = np.zeros(len(flags), dtype=bool), None
    for i, flag in enumerate(flags):
        if flag and (last is None or at[i] - last >= bars):
            counted[i], last = True, at[i]
    return counted


def persisted(flags: np.ndarray, checks: int) -> np.ndarray:
    """True where ``flags`` has held for the last ``checks`` checks in a row."""
    f = np.asarray(flags, dtype=bool)
    run = np.zeros(len(f), dtype=int)
    for i, flag in enumerate(f):
        run[i] = run[i - 1] + 1 if flag and i else int(flag)
    return run >= checks


def share_of_features(drift, features: list[str]) -> float:
    """The statistic before session 9: the share of the model's features that drifted."""
    return float(np.mean([c.drifted for c in drift.columns if c.column in features]))


def drift_trigger(train: Dataset, live: Dataset, bars, at_break: int, weights: dict) -> dict:
    """Weekly drift checks of the live window against the training's last, as drift_report
    makes them (features and raw volatility, mean severity weighted by the model's gain),
    held to limits from every pair
    of training windows; beside it, the earlier statistic (share of drifted features)."""
    watched = [*train.features, RAW_VOLATILITY]
    windows = consecutive_windows(train.frame, DRIFT_BARS)
    pairs = [dataset_drift(a, b, watched) for i, a in enumerate(windows) for b in windows[i + 1 :]]
    statistics = {
        "severity": lambda d: weighted_severity(d, weights),
        "share": lambda d: share_of_features(d, train.features),
    }
    checks, at, last_trained = [], [], windows[-1]
    for end in range(DRIFT_BARS, len(bars) + 1, DRIFT_EVERY):
        current = live.frame[live.frame["ts"] <= bars[end - 1]]
        latest = consecutive_windows(current, DRIFT_BARS)[-1]
        checks.append(dataset_drift(last_trained, latest, watched))
        at.append(end - 1)
    at = np.array(at)
    cells = {}
    for name, statistic in statistics.items():
        observed = np.array([statistic(c) for c in checks])
        ordinary = [statistic(p) for p in pairs]
        for quantile in DRIFT_QUANTILES:
            # Above 1: that multiple of the largest value between training windows.
            limit = float(np.quantile(ordinary, min(quantile, 1.0))) * max(quantile, 1.0)
            for persist in DRIFT_PERSIST:
                flags = persisted(observed > limit, persist)
                after = np.flatnonzero(flags & (at >= at_break))
                cells[name, quantile, persist] = {
                    "false": onsets(flags[at < at_break]),
                    "delay": int(at[after[0]] - at_break) if len(after) else None,
                }
            counted = new_windows(observed > limit, at, DRIFT_BARS)
            after = np.flatnonzero(counted & (at >= at_break))
            cells[name, quantile, "new"] = {
                "false": int(np.sum(counted[at < at_break])),
                "delay": int(at[after[0]] - at_break) if len(after) else None,
            }
    return cells


def first_at_or_after(flags: np.ndarray, start: int) -> int | None:
    hits = np.flatnonzero(np.asarray(flags, dtype=bool)[start:])
    return int(hits[0]) if len(hits) else None


def one_seed(seed: int, grid: Grid) -> dict:
    scenario = champion_around_the_break(
        seed, [f"S{i:02d}" for i in range(grid.symbols)], rounds=grid.rounds, cost_bps=COST_BPS
    )
    train, live, family, model = scenario.train, scenario.live, scenario.family, scenario.model
    offline, values, at_break = (
        scenario.offline_returns,
        scenario.live_returns,
        scenario.at_break,
    )
    x = values.to_numpy()
    if grid.metric == "net_return":
        watched, offline_watched, no_skill = x, offline.to_numpy(), 0.0
    else:
        scored = live.frame.assign(proba=scenario.live_proba)
        watched = per_bar_values(scored, grid.metric).reindex(values.index).to_numpy()
        offline_watched = per_bar_values(scenario.oof, grid.metric).to_numpy()
        no_skill = no_skill_value(scenario.oof, grid.metric)

    performance = {}
    for shift in grid.shifts:
        for p in grid.probabilities:
            detector = calibrate_detector(
                offline_watched,
                metric=grid.metric,
                target=no_skill,
                shift_sd=shift,
                false_alarm_probability=p,
                horizon_bars=grid.horizon,
                block_bars=grid.block,
                seed=seed,
            )
            alarms = [a.at for a in detector.alarms(watched)]
            after = [a - at_break for a in alarms if a >= at_break]
            performance[shift, p] = {
                "false": sum(a < at_break for a in alarms),
                "delay": after[0] if after else None,
                "h": detector.h,
            }

    rolling = values.rolling(NAIVE_BARS)
    naive = (rolling.mean() / rolling.std(ddof=1)).to_numpy() < 0
    judged = np.arange(len(x)) >= NAIVE_BARS - 1
    before = naive[judged & (np.arange(len(x)) < at_break)]

    weights = drift_weights(train.features, feature_importance(family, model, len(train.features)))
    drift = drift_trigger(train, live, values.index, at_break, weights)
    return {
        "seed": seed,
        "offline_sharpe": float(offline.mean() / offline.std(ddof=1) * np.sqrt(YEAR)),
        "live_sharpe_before": float(x[:at_break].mean() / x[:at_break].std(ddof=1) * np.sqrt(YEAR)),
        "live_sharpe_after": float(x[at_break:].mean() / x[at_break:].std(ddof=1) * np.sqrt(YEAR)),
        "performance": performance,
        "naive_share": float(before.mean()),
        "naive_onsets": onsets(before),
        "naive_delay": first_at_or_after(naive, at_break),
        "drift": drift,
    }


def found(delay) -> bool:
    return delay is not None and delay == delay  # pandas turns a missing delay into NaN


def median_delay(delays: list) -> float:
    return float(np.median([d if found(d) else YEAR for d in delays]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=3000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--shifts", default="0.3,0.5,1")
    parser.add_argument("--probabilities", default="0.3,0.4")
    parser.add_argument(
        "--chosen",
        default=f"{DEFAULTS['shift_sd']:g},{DEFAULTS['false_alarm_probability']:g}",
        help="shift,probability of the last line (default: the seeded trigger row's)",
    )
    parser.add_argument("--horizon", type=int, default=WINDOW)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--metric", choices=METRICS, default="net_return")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    grid = Grid(
        tuple(float(s) for s in args.shifts.split(",")),
        tuple(float(p) for p in args.probabilities.split(",")),
        args.horizon,
        args.block,
        args.rounds,
        args.symbols,
        args.metric,
    )
    print(
        f"{args.seeds} seeds, {args.symbols} symbols, 2,520 daily bars, break at 60 %; "
        f"champion lightgbm {args.rounds} rounds on 504 bars ending 2 years before the break; "
        f"detector horizon {args.horizon} bars, blocks of {args.block}; cost {COST_BPS:g} bps"
    )
    started = time.monotonic()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(one_seed, seeds, [grid] * args.seeds))
    frame = pd.DataFrame(results)
    print(f"seconds: {time.monotonic() - started:.0f}")
    print(
        "champion net Sharpe, median: offline (out of fold) "
        f"{frame['offline_sharpe'].median():.2f}, "
        f"live before the break {frame['live_sharpe_before'].median():.2f}, "
        f"live in the year after {frame['live_sharpe_after'].median():.2f}"
    )
    print(
        f"\nperformance trigger (CUSUM on per-bar {args.metric}), per family: false alarms in the "
        "2 years before the break (mean; share of seeds with any) / median delay after it (bars; "
        "share detected within 252)"
    )
    print("shift_sd  p(false alarm in horizon)  false/2y  any    delay  detected  median h")
    for shift in grid.shifts:
        for p in grid.probabilities:
            cells = [r[shift, p] for r in frame["performance"]]
            false = np.array([c["false"] for c in cells])
            delays = [c["delay"] for c in cells]
            print(
                f"{shift:<9g} {p:<26g} {false.mean():8.2f}  {np.mean(false > 0):.2f}  "
                f"{median_delay(delays):6.0f}  {np.mean([found(d) for d in delays]):8.2f}  "
                f"{np.median([c['h'] for c in cells]):8.2f}"
            )
    print(
        f"\nnaive rule (63-bar net Sharpe < 0): holds on {frame['naive_share'].mean():.2f} of "
        f"pre-break bars; {frame['naive_onsets'].mean():.1f} onsets per 2 years; median delay "
        f"{median_delay(list(frame['naive_delay'])):.0f} bars"
    )
    print(
        f"\ndrift trigger: the latest 63-bar window against the training's last, every "
        f"{DRIFT_EVERY} bars; limit = a quantile of the statistic over every pair of training "
        "windows; an alarm when beyond it for N checks in a row (xN: onsets), or (new) when "
        "beyond it on a window sharing no bar with the last alarm's -> alarms per 2 years "
        "before the break / median delay after it (share detected within a year)"
    )
    labels = {
        "severity": "mean severity by gain, features + raw volatility (drift_report)",
        "share": "share of drifted features (before session 9)",
    }
    for name, label in labels.items():
        print(f"  {label}")
        for quantile in DRIFT_QUANTILES:
            for persist in (*DRIFT_PERSIST, "new"):
                cells = [r[name, quantile, persist] for r in frame["drift"]]
                mark = "  <- the product" if (name, quantile, persist) == PRODUCT_DRIFT else ""
                print(
                    f"    q{quantile:<5g} {'x' + str(persist) if persist != 'new' else 'new':<4}"
                    f"{np.mean([c['false'] for c in cells]):5.2f} / "
                    f"{median_delay([c['delay'] for c in cells]):4.0f} "
                    f"({np.mean([found(c['delay']) for c in cells]):.2f}){mark}"
                )
    product = [r[PRODUCT_DRIFT] for r in frame["drift"]]
    shift, p = (float(v) for v in args.chosen.split(","))
    chosen = [r[shift, p] for r in frame["performance"]]
    print(
        f"trigger false alarms per 2y: performance "
        f"{np.mean([c['false'] for c in chosen]):.2f} drift "
        f"{np.mean([c['false'] for c in product]):.2f}; median delay bars: performance "
        f"{median_delay([c['delay'] for c in chosen]):.0f} drift "
        f"{median_delay([c['delay'] for c in product]):.0f}"
    )


if __name__ == "__main__":
    main()
