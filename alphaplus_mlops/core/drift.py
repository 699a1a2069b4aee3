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
