"""Batch scoring of stored bars: which bars are due, and their serving features in one pass.

``serving_features(db, symbols, as_of=bar_ts)`` answers for one bar per symbol and loads
the whole history each time. Scoring many bars that way costs one load and one feature
computation per bar; here the history is computed once and the rows of the due bars are
taken from it. That gives the same numbers: every feature is trailing, so the row of bar t
computed from a longer history equals the row computed ``as_of`` t (serving/features.py),
and the float64 -> float32 conversion is the same. Pure pandas: the caller loads the bars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from alphaplus_mlops.serving.features import (
    check_feature_version,
    checked_feature_names,
    feature_rows,
)


@dataclass(frozen=True)
class DueBars:
    wanted: pd.DataFrame
    """symbol, ts of the bars to score, oldest first per symbol."""
    left: dict[str, int]
    """Per symbol, due bars left for a later run by the per-run bound."""


def due_bars(
    bars: pd.DataFrame,
    last_scored: Mapping[str, datetime | None],
    *,
    first_run_bars: int,
    max_bars: int,
) -> DueBars:
    """Per symbol of ``bars``: the bars after its last scored bar, oldest first, at most
    ``max_bars``; a symbol never scored takes its last ``first_run_bars`` bars.

    Oldest first so that a backlog larger than the bound is scored in order over several
    runs, with no gap: the next run starts after the last bar this one scored.
    """
    picked, left = [], {}
    for symbol, series in bars[["symbol", "ts"]].groupby("symbol", sort=True):
        series = series.sort_values("ts")
        last = last_scored.get(symbol)
        if last is None:
            ahead = series.tail(first_run_bars)
        else:
            ahead = series[series["ts"] > pd.Timestamp(last)]
        picked.append(ahead.head(max_bars))
        if len(ahead) > max_bars:
            left[symbol] = len(ahead) - max_bars
    wanted = (
        pd.concat(picked, ignore_index=True)
        if picked
        else pd.DataFrame({"symbol": [], "ts": pd.to_datetime([], utc=True)})
    )
    return DueBars(wanted=wanted, left=left)


@dataclass(frozen=True)
class BarFeatures:
    symbols: tuple[str, ...]
    bar_ts: tuple[pd.Timestamp, ...]
    x: np.ndarray
    """(rows, features) float32, C-contiguous, in the model's feature order."""
    undefined: tuple[str, ...]
    """Due bars left out because a feature is not finite there (the warm-up, a flat price):
    the datasets drop such rows too, so no model was trained on one."""


def features_at_bars(
    bars: pd.DataFrame,
    wanted: pd.DataFrame,
    *,
    feature_names: list[str] | tuple[str, ...],
    feature_version: str | None,
) -> BarFeatures:
    """The serving features of each (symbol, ts) in ``wanted``, from ``bars``: every stored
    bar of those symbols from their first one (as serving_features and build_dataset read
    them), so the rows equal serving_features(..., as_of=ts) for each bar."""
    check_feature_version(feature_version)
    rows, x = feature_rows(bars, wanted, checked_feature_names(list(feature_names)))
    finite = np.isfinite(x).all(axis=1)
    undefined = tuple(
        f"{s} {pd.Timestamp(t).isoformat()}"
        for s, t in zip(rows["symbol"][~finite], rows["ts"][~finite], strict=True)
    )
    kept = rows[finite]
    return BarFeatures(
        symbols=tuple(kept["symbol"]),
        bar_ts=tuple(pd.Timestamp(t).tz_convert("UTC") for t in kept["ts"]),
        x=np.ascontiguousarray(x[finite]),
        undefined=undefined,
    )
