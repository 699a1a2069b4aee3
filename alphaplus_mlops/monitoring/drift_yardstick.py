"""How much drift is ordinary for a model: a yardstick frozen from its own training period.

On daily data volatility features cluster, so two windows of a quarter differ from each
other even when nothing has changed: a fixed limit between a recent window and the training
window fires at every check. The yardstick measures the drift statistic the way a live check
will, between two windows of the same length, for every pair of non-overlapping windows within
the training period, near and far apart (a live window is compared with the training's last,
and the gap between them grows as the version ages: volatility regimes make far pairs differ
more than neighbours); a live window is unusual only when its statistic exceeds what those
pairs showed.

The statistic is the importance-weighted mean severity of the columns' drift (each column's
test from ``column_drift``, Evidently's, and how far past its threshold it is): a feature
the model leans on counts for more. A share of drifted columns saturates on daily data (at
1,260 rows Evidently's normed Wasserstein test calls half the features drifted between
ordinary quarters), so windows could not be told apart; severity keeps the size.

Normalized features hide what the market did to their scale, so the check also watches the
raw volatility (``RAW_VOLATILITY``: the 21-bar standard deviation of log close-to-close
returns, per symbol). bench/trigger_calibration.py measured each choice (40 seeds, weekly
checks): with the share of drifted features and a 95 % yardstick, 1.65 alarms per two years
of an ordinary market and a break found within a year in 65 % of seeds; with severity
weighted by gain, raw volatility and 1.1 × the largest pair as the yardstick, 0.65 and 72 %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphaplus_mlops.monitoring.column_drift import DatasetDrift, dataset_drift

YARDSTICK_QUANTILE = 1.0
# Checks are many and overlapping while the training pairs are a few dozen: held to their
# largest value alone, a trigger fired about once per two years on ordinary markets (1.05
# on 40 seeds); 10 % above it, 0.65 (and a break found within a year 72 % of the time
# instead of 88 %).
YARDSTICK_MARGIN = 1.1
RAW_VOLATILITY = "raw_volatility"
RAW_VOLATILITY_BARS = 21


def raw_volatility(bars: pd.DataFrame, window: int = RAW_VOLATILITY_BARS) -> pd.DataFrame:
    """symbol, ts and RAW_VOLATILITY for every bar (``bars``: symbol, ts, close): the
    standard deviation of the last ``window`` log returns of the symbol (NaN until there
    are min(5, window) of them)."""
    ordered = bars[["symbol", "ts", "close"]].sort_values(["symbol", "ts"])
    change = np.log(ordered["close"]).groupby(ordered["symbol"]).diff()
    vol = change.groupby(ordered["symbol"]).transform(
        lambda r: r.rolling(window, min_periods=min(5, window)).std()
    )
    return ordered[["symbol", "ts"]].assign(**{RAW_VOLATILITY: vol.to_numpy()})


def drift_weights(features: Sequence[str], share: np.ndarray | None) -> dict | None:
    """Each feature's share of the model's gain, and the raw volatility at the average
    feature's weight; None (equal weights) without shares."""
    if share is None:
        return None
    weights = dict(zip(features, map(float, share), strict=True))
    return {**weights, RAW_VOLATILITY: 1 / len(features)}


def weighted_severity(drift: DatasetDrift, importance: Mapping[str, float] | None = None) -> float:
    """Σ importance · severity / Σ importance over the compared columns (equal weights when
    ``importance`` is None or sums to zero over them)."""
    weights = np.array(
        [max(float((importance or {}).get(c.column, 0.0)), 0.0) for c in drift.columns]
    )
    if weights.sum() <= 0:
        weights = np.ones(len(drift.columns))
    severity = np.array([c.severity for c in drift.columns], dtype=float)
    return float(np.dot(weights, severity) / weights.sum())


@dataclass(frozen=True)
class Yardstick:
    window_bars: int
    values: tuple[float, ...]
    """The statistic of every pair of windows (earlier, later), by earlier then later."""
    quantile: float
    margin: float
    limit: float
    """``margin`` × the ``quantile`` of ``values``: a live window above it is unusual."""

    def as_dict(self) -> dict:
        return {
            "window_bars": self.window_bars,
            "values": list(self.values),
            "quantile": self.quantile,
            "margin": self.margin,
            "limit": self.limit,
            "statistic": "importance-weighted mean drift severity",
        }


def consecutive_windows(frame: pd.DataFrame, window_bars: int) -> list[pd.DataFrame]:
    """The rows of ``frame`` in non-overlapping windows of ``window_bars`` bar times
    (column ``ts``), ending at the last bar; an incomplete oldest window is left out."""
    if window_bars < 1:
        raise ValueError(f"a window is at least one bar, got {window_bars}")
    times = np.sort(frame["ts"].unique())
    n = len(times) // window_bars
    starts = [len(times) - (k + 1) * window_bars for k in reversed(range(n))]
    return [
        frame[(frame["ts"] >= times[s]) & (frame["ts"] <= times[s + window_bars - 1])]
        for s in starts
    ]


def yardstick(
    frame: pd.DataFrame,
    features: Sequence[str],
    window_bars: int,
    importance: Mapping[str, float] | None = None,
    quantile: float = YARDSTICK_QUANTILE,
    margin: float = YARDSTICK_MARGIN,
) -> Yardstick:
    """The yardstick of a training period (rows with ``ts`` and the features). Raises
    ValueError with fewer than three windows (three pairs): too short to say what is
    ordinary."""
    windows = consecutive_windows(frame, window_bars)
    if len(windows) < 3:
        raise ValueError(
            f"the training period holds {len(windows)} windows of {window_bars} bars; "
            "a yardstick needs at least 3"
        )
    values = tuple(
        weighted_severity(dataset_drift(before, after, list(features)), importance)
        for i, before in enumerate(windows)
        for after in windows[i + 1 :]
    )
    limit = margin * float(np.quantile(values, quantile))
    return Yardstick(window_bars, values, quantile, margin, limit)


@dataclass(frozen=True)
class DriftCheck:
    drift: DatasetDrift
    """Each feature's verdict, the latest live window against the training's last."""
    statistic: float
    limit: float
    reference_span: tuple[pd.Timestamp, pd.Timestamp, int]
    """First and last bar time and rows of the training window compared."""
    current_span: tuple[pd.Timestamp, pd.Timestamp, int]

    @property
    def ratio(self) -> float:
        """statistic / limit: above 1 the window drifted more than training ever showed."""
        if self.limit > 0:
            return self.statistic / self.limit
        return float("inf") if self.statistic > 0 else 0.0

    @property
    def drifted(self) -> bool:
        return self.ratio > 1.0


def check_latest_window(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    window_bars: int,
    limit: float,
    importance: Mapping[str, float] | None = None,
) -> DriftCheck | None:
    """The latest ``window_bars`` bar times of ``current`` against the last as many of the
    training period (windows of equal length: the statistic's noise depends on size); None
    while fewer than ``window_bars`` bar times have been scored since training."""
    current_windows = consecutive_windows(current, window_bars)
    reference_windows = consecutive_windows(reference, window_bars)
    if not current_windows or not reference_windows:
        return None
    before, now = reference_windows[-1], current_windows[-1]
    drift = dataset_drift(before, now, list(features))
    return DriftCheck(
        drift,
        weighted_severity(drift, importance),
        limit,
        (before["ts"].min(), before["ts"].max(), len(before)),
        (now["ts"].min(), now["ts"].max(), len(now)),
    )
