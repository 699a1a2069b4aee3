"""Detecting that a live model started losing: a one-sided CUSUM on per-bar values.

A rule on a rolling statistic ("63-bar Sharpe < 0") is a test run every bar on overlapping
data: for a model with a true Sharpe of 1 it fires about a third of the time. CUSUM
accumulates evidence instead and has a known trade-off between the average run length to a
false alarm (ARL0) and the delay to detect a real shift. Here the values are per-bar net
returns standardized by the model's own scale (``scale``): the in-control mean is
``target`` (0 by default: "not losing"; the out-of-fold mean is biased upward by selection,
so it is not the reference), and the alarm is for a fall of ``shift`` standard deviations:

    S_0 = 0,  S_t = max(0, S_{t-1} + (target - x_t) / scale - k),  alarm when S_t > h,

with k = shift / 2 (the optimal reference value for that shift) and h from the false-alarm
probability wanted over a horizon, found by simulation on the very process the detector will
watch: a ``Detector`` is frozen per model version from its own out-of-fold per-bar values,
re-centred on the target and resampled, in blocks (volatility clusters, so the values are
not independent) and one by one, and h is the higher of the two (1 - p) quantiles of the
paths' largest S. S_t does not
depend on h, so that quantile is exact for the simulated paths; no search is needed.

Metrics (higher is better; the target is what no skill earns):

  net_return  the bar's mean net P&L over the symbols (target 0: "not losing");
  accuracy    the share of symbols whose predicted class was the realized label (0.5);
  f1          the F1 score of the "up" class over the bar's symbols, 2·TP / (predicted +
              actual positives), skipped on a bar with neither; its no-skill value depends
              on the base rates and on the number of symbols (a ratio per bar is biased),
              so it is measured: the mean per-bar F1 of the same rows with the forecasts
              shuffled among them (``no_skill_value``);
  log_loss    minus the bar's mean log loss (−ln 2, a constant 0.5 forecast).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from alphaplus_mlops.core.paired import log_loss_per_row


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


METRICS = ("net_return", "accuracy", "f1", "log_loss")
NO_SKILL = {"net_return": 0.0, "accuracy": 0.5, "log_loss": -float(np.log(2.0))}
"""The no-skill value of each metric that has a fixed one; f1's is measured."""


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown performance metric {metric!r}; one of {', '.join(METRICS)}")


def per_bar_values(rows: pd.DataFrame, metric: str) -> pd.Series:
    """One value per bar of ``metric`` (see the module docstring), the mean over the bar's
    symbols, indexed by bar time and sorted. ``rows``: ``ts`` and, by metric,
    ``net_return`` or ``proba`` and ``label``."""
    _check_metric(metric)
    if metric == "net_return":
        value = rows["net_return"].astype(float)
    else:
        p = rows["proba"].to_numpy(dtype=float)
        y = rows["label"].to_numpy(dtype=float)
        if metric == "f1":
            return _f1_per_bar(p > 0.5, y > 0.5, rows)
        if metric == "accuracy":
            value = pd.Series(((p > 0.5) == (y > 0.5)).astype(float), index=rows.index)
        else:
            value = pd.Series(-log_loss_per_row(y, p), index=rows.index)
    # Grouped by the column itself: .to_numpy() of tz-aware times is an array of objects.
    return value.groupby(rows["ts"]).mean().sort_index()


def _f1_per_bar(predicted: np.ndarray, actual: np.ndarray, rows: pd.DataFrame) -> pd.Series:
    counts = pd.DataFrame(
        {"both": predicted & actual, "either": predicted.astype(int) + actual.astype(int)},
        index=rows.index,
    )
    sums = counts.groupby(rows["ts"]).sum().sort_index()
    # A bar with no positive forecast and no positive label has no F1: NaN, skipped by cusum.
    return (2 * sums["both"] / sums["either"].where(sums["either"] > 0)).astype(float)


def no_skill_value(rows: pd.DataFrame, metric: str, *, shuffles: int = 20, seed: int = 0) -> float:
    """What a model without skill scores on ``rows`` (as per_bar_values reads them): the
    fixed value of NO_SKILL, or for f1 the mean per-bar F1 over ``shuffles`` copies of the
    rows with the forecasts shuffled among them (same positive rates, same symbols per bar,
    no link between forecast and label)."""
    _check_metric(metric)
    if metric in NO_SKILL:
        return NO_SKILL[metric]
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(shuffles):
        shuffled = rows.assign(proba=rng.permutation(rows["proba"].to_numpy()))
        means.append(float(np.nanmean(per_bar_values(shuffled, metric).to_numpy())))
    return float(np.mean(means))


def largest_statistic(paths: np.ndarray, k: float) -> np.ndarray:
    """max_t S_t of the downward CUSUM (target 0, scale 1) of each row of ``paths``."""
    s = np.zeros(paths.shape[0])
    largest = np.zeros(paths.shape[0])
    for column in paths.T:
        s = np.maximum(0.0, s - column - k)
        np.maximum(largest, s, out=largest)
    return largest


def block_bootstrap(
    values: np.ndarray, *, runs: int, horizon: int, block: int, rng: np.random.Generator
) -> np.ndarray:
    """``runs`` paths of ``horizon`` values, each a chain of blocks of ``block`` consecutive
    values starting at random places of ``values`` (circular): the values' own
    distribution and their short-range dependence, in new orders."""
    n = len(values)
    block = max(1, min(block, n))
    blocks = -(-horizon // block)
    starts = rng.integers(0, n, size=(runs, blocks))
    index = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return np.asarray(values)[index.reshape(runs, -1)[:, :horizon]]


def _threshold(largest: np.ndarray, false_alarm_probability: float) -> float:
    if not 0.0 < false_alarm_probability < 1.0:
        raise ValueError(
            f"false_alarm_probability must lie strictly between 0 and 1, "
            f"got {false_alarm_probability}"
        )
    # Alarm is S > h, so h at the quantile lets at most that share of paths through.
    return max(float(np.quantile(largest, 1.0 - false_alarm_probability)), 1e-9)


@dataclass(frozen=True)
class Alarm:
    at: int
    """Index of the value at which S first exceeded h."""
    change_at: int
    """Index after the last time S was 0 before the alarm: where the fall began."""
    statistic: float


@dataclass(frozen=True)
class Detector:
    """A CUSUM frozen for one model version: a fall of ``shift_sd`` of its offline
    standard deviations below ``target`` is what it is built to catch, and in-control
    (at the target) it alarms within ``horizon_bars`` with ``false_alarm_probability``."""

    metric: str
    target: float
    scale: float
    k: float
    h: float
    shift_sd: float
    false_alarm_probability: float
    horizon_bars: int
    block_bars: int
    offline_bars: int
    offline_mean: float

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Detector:
        return cls(**{name: d[name] for name in cls.__dataclass_fields__})

    def alarms(self, values: np.ndarray) -> list[Alarm]:
        """Every alarm on ``values`` (oldest first), S restarting at 0 after each."""
        found, offset, x = [], 0, np.asarray(values, dtype=float)
        while offset < len(x):
            result = cusum(x[offset:], k=self.k, h=self.h, target=self.target, scale=self.scale)
            if result.alarm_at is None:
                break
            found.append(
                Alarm(
                    offset + result.alarm_at,
                    offset + result.change_at,
                    float(result.statistic[result.alarm_at]),
                )
            )
            offset += result.alarm_at + 1
        return found

    def statistic(self, values: np.ndarray) -> float:
        """S after the last of ``values`` (0 for none)."""
        x = np.asarray(values, dtype=float)
        if len(x) == 0:
            return 0.0
        result = cusum(x, k=self.k, h=self.h, target=self.target, scale=self.scale)
        return float(result.statistic[-1])


def calibrate_detector(
    offline: np.ndarray,
    *,
    metric: str,
    shift_sd: float,
    false_alarm_probability: float,
    horizon_bars: int,
    block_bars: int,
    target: float | None = None,
    runs: int = 2000,
    seed: int = 0,
) -> Detector:
    """The detector for a version whose out-of-fold per-bar values of ``metric`` are
    ``offline``, alarming on a fall towards ``target`` (by default the metric's NO_SKILL
    value; f1 has none and needs ``no_skill_value``). Raises ValueError with fewer than 30
    finite values or none that vary."""
    _check_metric(metric)
    if target is None:
        if metric not in NO_SKILL:
            raise ValueError(f"{metric} has no fixed no-skill value: pass target=no_skill_value()")
        target = NO_SKILL[metric]
    if shift_sd <= 0 or horizon_bars < 1 or block_bars < 1:
        raise ValueError(
            f"shift_sd must be > 0 and horizon_bars, block_bars >= 1, got {shift_sd}, "
            f"{horizon_bars}, {block_bars}"
        )
    x = np.asarray(offline, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 30:
        raise ValueError(f"{len(x)} offline per-bar values; a detector needs at least 30")
    scale = float(x.std(ddof=1))
    if not scale > 0:
        raise ValueError("the offline per-bar values do not vary; nothing to standardize by")
    # In control at the target itself: the offline shape, none of its (selection-biased) edge.
    centred = (x - x.mean()) / scale
    k = shift_sd / 2
    # Blocks keep the values' dependence, but a few hundred values say little about it: by
    # chance they can look anti-correlated, and blocks then make sums too tame and h too
    # low. Resampling single values as well and keeping the higher h guards against that.
    rng = np.random.default_rng(seed)
    h = max(
        _threshold(
            largest_statistic(
                block_bootstrap(centred, runs=runs, horizon=horizon_bars, block=block, rng=rng), k
            ),
            false_alarm_probability,
        )
        for block in sorted({1, block_bars})
    )
    return Detector(
        metric=metric,
        target=float(target),
        scale=scale,
        k=k,
        h=h,
        shift_sd=shift_sd,
        false_alarm_probability=false_alarm_probability,
        horizon_bars=horizon_bars,
        block_bars=block_bars,
        offline_bars=len(x),
        offline_mean=float(x.mean()),
    )


def fall_began(alarms: list[tuple[pd.Timestamp, pd.Timestamp]], bars: pd.DatetimeIndex):
    """Where the fall behind the latest of ``alarms`` began. ``alarms``: (alarm bar, change
    bar) of one version under one detector, oldest first; ``bars``: the realized bar times.

    After an alarm the detector restarts at 0, so a later alarm's own change point counts
    only from the restart. An alarm whose change point is the first bar after the previous
    alarm (its statistic never returned to 0 in between) continues that fall, which began at
    the previous alarm's change point, and so on back; a change point later than that
    means the model recovered in between, and a new fall began there."""
    start = alarms[-1][1]
    for (alarm_before, change_before), (_, change) in zip(
        reversed(alarms[:-1]), reversed(alarms[1:]), strict=True
    ):
        after = bars[bars > alarm_before]
        if len(after) == 0 or change != after[0]:
            break
        start = change_before
    return start
