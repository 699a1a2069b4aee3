"""Detecting that a live model started losing: a one-sided CUSUM on per-bar values.

A rule on a rolling statistic ("63-bar Sharpe < 0") is a test run every bar on overlapping
data: for a model with a true Sharpe of 1 it fires about a third of the time. CUSUM
accumulates evidence instead and has a known trade-off between the average run length to a
false alarm (ARL0) and the delay to detect a real shift. Here the values are per-bar net
returns standardized by the model's own scale (``scale``): the in-control mean is
``target`` (0 by default: "not losing"; the out-of-fold mean is biased upward by selection,
so it is not the reference), and the alarm is for a fall of ``shift`` standard deviations:

    S_0 = 0,  S_t = max(0, S_{t-1} + (target - x_t) / scale - k),  alarm when S_t > h,

with k = shift / 2 (the optimal reference value for that shift) and h from the ARL0 wanted,
found by simulation (``threshold_for_arl``) on the very process the detector will watch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CusumResult:
    statistic: np.ndarray
    """S_t for every value."""
    alarm_at: int | None
    """Index of the first value with S_t > h, None without an alarm."""
    change_at: int | None
    """With an alarm, the index after the last time S was 0: the change's estimated start."""


def cusum(
    values: np.ndarray, *, k: float, h: float, target: float = 0.0, scale: float = 1.0
) -> CusumResult:
    """One-sided (downward) CUSUM of ``values``; NaN values are skipped (S carried)."""
    if scale <= 0 or not np.isfinite(scale):
        raise ValueError(f"scale must be a positive number, got {scale}")
    if k < 0 or h <= 0:
        raise ValueError(f"k must be >= 0 and h > 0, got k={k}, h={h}")
    x = np.asarray(values, dtype=float)
    steps = (target - x) / scale - k
    statistic = np.empty(len(x))
    s, last_zero, alarm, change = 0.0, -1, None, None
    for t, step in enumerate(steps):
        if np.isfinite(step):
            s = max(0.0, s + step)
        if s == 0.0:
            last_zero = t
        statistic[t] = s
        if alarm is None and s > h:
            alarm, change = t, last_zero + 1
    return CusumResult(statistic, alarm, change)


def run_lengths(
    simulate: Callable[[np.random.Generator, int], np.ndarray],
    *,
    k: float,
    h: float,
    runs: int,
    horizon: int,
    seed: int = 0,
) -> np.ndarray:
    """Bars to the first alarm on ``runs`` simulated in-control series of ``horizon`` bars
    (``simulate(rng, horizon)`` returns standardized values); ``horizon + 1`` where none."""
    rng = np.random.default_rng(seed)
    found = np.empty(runs)
    for i in range(runs):
        result = cusum(simulate(rng, horizon), k=k, h=h)
        found[i] = horizon + 1 if result.alarm_at is None else result.alarm_at + 1
    return found


def threshold_for_arl(
    simulate: Callable[[np.random.Generator, int], np.ndarray],
    *,
    k: float,
    false_alarm_probability: float,
    horizon: int,
    runs: int = 400,
    seed: int = 0,
) -> float:
    """The smallest h (to 0.05) with at most ``false_alarm_probability`` of simulated
    in-control series of ``horizon`` bars alarming, by bisection."""
    low, high = 0.05, 50.0
    while high - low > 0.05:
        h = (low + high) / 2
        alarmed = np.mean(
            run_lengths(simulate, k=k, h=h, runs=runs, horizon=horizon, seed=seed) <= horizon
        )
        if alarmed <= false_alarm_probability:
            high = h
        else:
            low = h
    return round(high, 2)
