"""Population stability index per feature: a cheap drift statistic for gates and sensors."""

from __future__ import annotations

import numpy as np
import pandas as pd

_FLOOR = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI = Σ (c − r)·ln(c / r) over quantile bins of the reference.

    Bin edges are the reference's deciles (so each reference bin holds ~10 %); shares are
    floored at 1e-4 so an empty bin counts as a large, finite difference.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    r = np.maximum(ref_share / len(ref), _FLOOR)
    c = np.maximum(cur_share / len(cur), _FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def feature_psi(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> dict:
    return {name: psi(reference[name].to_numpy(), current[name].to_numpy()) for name in features}


def mean_psi(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> float:
    scores = [v for v in feature_psi(reference, current, features).values() if np.isfinite(v)]
    return float(np.mean(scores)) if scores else float("nan")


def historical_psi(
    reference: pd.DataFrame, features: list[str], window_bars: int, n_windows: int = 30
) -> np.ndarray:
    """Mean PSI of ordinary historical windows of ``window_bars`` timestamps vs the whole.

    On daily data volatility clusters, so even windows from the training period itself
    differ from the whole; this is the yardstick a recent window is measured against.
    """
    times = np.sort(reference["ts"].unique())
    if len(times) < 2 * window_bars:
        return np.array([])
    starts = np.linspace(0, len(times) - window_bars, num=n_windows).astype(int)
    values = []
    for start in np.unique(starts):
        span = times[start : start + window_bars]
        window = reference[(reference["ts"] >= span[0]) & (reference["ts"] <= span[-1])]
        values.append(mean_psi(reference, window, features))
    return np.asarray(values)
