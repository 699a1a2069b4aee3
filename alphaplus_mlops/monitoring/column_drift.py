"""Per-column drift tests as Evidently's DataDriftPreset chooses and judges them, cheap
enough for a sensor tick.

Evidently (0.7) keeps the report for people (an HTML artifact); sensors need the same
verdicts in a fraction of the time, so the same tests are computed here on numpy/scipy.
Evidently's default choice for a numeric column, on its finite values (NaN and ±inf
dropped), with n the reference's size and u the distinct values of both samples together:

    n <= 1000:  u <= 2: two-proportion Z-test   drift when p < 0.05
                u <= 5: chi-square              drift when p < 0.05
                else:   Kolmogorov-Smirnov      drift when p <= 0.05
    n >  1000:  u <= 5: Jensen-Shannon distance drift when d >= 0.1
                else:   Wasserstein / std(ref)  drift when d >= 0.1   (std ddof 0, >= 0.001)

and the dataset drifts when at least ``drift_share`` (0.5) of the columns do. The
Wasserstein distance is computed from one sort of each sample: for samples of equal size it
is the mean absolute difference of the sorted values, otherwise the area between the two
empirical CDFs over the merged values, as scipy computes it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial import distance

#: Reference size up to which Evidently uses p-value tests, above which distances.
SMALL_REFERENCE = 1000
FEW_VALUES = 5
STD_FLOOR = 0.001
DEFAULT_DRIFT_SHARE = 0.5
THRESHOLDS = {"z": 0.05, "chisquare": 0.05, "ks": 0.05, "jensenshannon": 0.1, "wasserstein": 0.1}
P_VALUE_METHODS = ("z", "chisquare", "ks")


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    """z | chisquare | ks | jensenshannon | wasserstein"""
    score: float
    """The p-value (z, chisquare, ks) or the distance (jensenshannon, wasserstein)."""
    threshold: float
    drifted: bool

    @property
    def severity(self) -> float:
        """How far past its threshold the column is, 1 at the threshold and larger with
        more drift: distance / threshold, or log p / log threshold for the p-value tests
        (p = 0.05 gives 1, p = 0.0025 gives 2). A verdict says whether; this says how much,
        which a yardstick can compare between windows."""
        if self.method in P_VALUE_METHODS:
            return float(np.log(max(self.score, 1e-300)) / np.log(self.threshold))
        return self.score / self.threshold


@dataclass(frozen=True)
class DatasetDrift:
    columns: tuple[ColumnDrift, ...]
    drift_share: float
    """The share of columns that drifted."""
    drifted: bool
    """At least the required share of columns drifted."""

    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


def choose_method(n_reference: int, n_distinct: int) -> str:
    if n_reference <= SMALL_REFERENCE:
        if n_distinct <= FEW_VALUES:
            return "z" if n_distinct <= 2 else "chisquare"
        return "ks"
    return "jensenshannon" if n_distinct <= FEW_VALUES else "wasserstein"


def column_drift(name: str, reference: np.ndarray, current: np.ndarray) -> ColumnDrift:
    """The drift verdict of one column. Raises ValueError when either sample has no finite
    value (nothing to compare)."""
    ref = np.sort(_finite(reference))
    cur = np.sort(_finite(current))
    if ref.size == 0 or cur.size == 0:
        side = "reference" if ref.size == 0 else "current"
        raise ValueError(f"column {name!r}: the {side} sample has no finite value")
    distinct = _distinct_up_to(ref, cur, FEW_VALUES + 1)
    method = choose_method(ref.size, distinct)
    score = _SCORES[method](ref, cur)
    threshold = THRESHOLDS[method]
    drifted = _DRIFTED_WHEN[method](score, threshold)
    return ColumnDrift(name, method, float(score), threshold, bool(drifted))


def dataset_drift(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    columns: Sequence[str],
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DatasetDrift:
    """Every column's verdict and the dataset's (a DataFrame works as a mapping)."""
    if not columns:
        raise ValueError("no columns to compare")
    found = tuple(
        column_drift(c, np.asarray(reference[c]), np.asarray(current[c])) for c in columns
    )
    share = sum(c.drifted for c in found) / len(found)
    return DatasetDrift(found, share, share >= drift_share)


def _finite(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _distinct_up_to(ref: np.ndarray, cur: np.ndarray, cap: int) -> int:
    """Distinct values of both sorted samples together, counted exactly up to ``cap``."""
    in_ref = 1 + int(np.count_nonzero(np.diff(ref)))
    if in_ref >= cap:
        return in_ref
    return int(np.unique(np.concatenate((ref, cur))).size)


def _wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    if ref.size == cur.size:
        w = float(np.mean(np.abs(ref - cur)))
    else:
        merged = np.concatenate((ref, cur))
        merged.sort(kind="mergesort")
        steps = np.diff(merged)
        below = merged[:-1]
        gap = np.abs(
            ref.searchsorted(below, "right") / ref.size
            - cur.searchsorted(below, "right") / cur.size
        )
        w = float(np.dot(gap, steps))
    return w / max(float(np.std(ref)), STD_FLOOR)


def _shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.union1d(ref, cur)
    counts_ref = np.searchsorted(ref, values, "right") - np.searchsorted(ref, values, "left")
    counts_cur = np.searchsorted(cur, values, "right") - np.searchsorted(cur, values, "left")
    return counts_ref.astype(float), counts_cur.astype(float)


def _jensenshannon(ref: np.ndarray, cur: np.ndarray) -> float:
    counts_ref, counts_cur = _shares(ref, cur)
    return float(distance.jensenshannon(counts_ref / ref.size, counts_cur / cur.size))


def _chisquare(ref: np.ndarray, cur: np.ndarray) -> float:
    counts_ref, counts_cur = _shares(ref, cur)
    return float(stats.chisquare(counts_cur, counts_ref * cur.size / ref.size).pvalue)


def _z(ref: np.ndarray, cur: np.ndarray) -> float:
    if ref[0] == ref[-1] == cur[0] == cur[-1]:
        return 1.0  # one and the same constant on both sides
    lowest = min(ref[0], cur[0])
    p1, p2 = np.mean(ref != lowest), np.mean(cur != lowest)
    pooled = (p1 * ref.size + p2 * cur.size) / (ref.size + cur.size)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / ref.size + 1 / cur.size))
    return float(2 * (1 - stats.norm.cdf(abs(z))))


def _ks(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(stats.ks_2samp(ref, cur).pvalue)


# Evidently's comparisons, boundary included or not as it does: KS drifts at p <= 0.05,
# the other p-value tests at p < 0.05, the distances at d >= 0.1.
_DRIFTED_WHEN = {
    "z": operator.lt,
    "chisquare": operator.lt,
    "ks": operator.le,
    "jensenshannon": operator.ge,
    "wasserstein": operator.ge,
}

_SCORES = {
    "z": _z,
    "chisquare": _chisquare,
    "ks": _ks,
    "jensenshannon": _jensenshannon,
    "wasserstein": _wasserstein,
}
