"""The features a served model sees: the training features, bit for bit, and checked raw rows.

Why the whole stored history. The training dataset computes each symbol's features on every
stored bar from its first (``DatasetConfig.start`` unset, as every caller leaves it) and only
then keeps a rolling ``window_bars`` tail. The EWMAs (volatility, RSI, MACD) and pandas'
online rolling sums and variances carry state from that first bar, so a feature computed on a
shorter look-back differs: measured on 2,520 simulated daily bars, the last row from the last
K bars differs from the full-history row by up to 2e-2 (K=100), 2e-7 (K=250) and still 1e-11
in float64 at K=500..1500 (``bollinger_z_21``: a close minus its 21-bar mean). The float32
rows happened to agree from K=500 on, but a 1e-11 difference can still flip a float32 rounding,
so a bounded look-back is "equal almost always", not equal. Computing from the same first bar
with the same function makes the served row the dataset's row by construction; it costs little
because ``symbol_features`` is dominated by fixed overhead (about 8 ms for 300 bars, 10 ms for
2,520, 13 ms for 5,040 on this machine).

Every feature is trailing, so the row of bar t computed from bars up to t equals the row of
bar t computed from bars up to any later bar: serving ``as_of`` a past bar reproduces what a
dataset built later holds for that bar. No Dagster here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from alphaplus_mlops.core import features as core_features
from alphaplus_mlops.store.bars import known_symbols, load_bars
from alphaplus_mlops.store.db import Database

MAX_SYMBOLS = 1_000
"""Symbols in one request: each loads its whole stored history."""
MAX_BATCH_ROWS = 10_000
"""Raw rows in one batch-scoring request (the P2 batch benchmark's size); larger batches are
split by the caller, so one request cannot hold the service's memory or its one thread long."""
MIN_HISTORY_BARS = core_features.WARMUP_BARS + 1
"""Bars up to a bar that its features need: the warm-up rows are NaN by definition."""


class FeatureRequestError(ValueError):
    """A request the features cannot answer; the message names what is wrong (for a 4xx)."""


@dataclass(frozen=True)
class ServedFeatures:
    """One row per requested symbol, in the request's order (duplicates dropped)."""

    symbols: tuple[str, ...]
    bar_ts: tuple[pd.Timestamp, ...]
    """The bar each row describes: the last stored bar at or before ``as_of``, UTC."""
    x: np.ndarray
    """(symbols, features) float32, C-contiguous, columns in the model's feature order: the
    dtype ``Dataset.x`` feeds the models in training and ONNX receives."""
    feature_names: tuple[str, ...]
    feature_version: str

    def row(self, symbol: str) -> np.ndarray:
        """The (1, features) row of one symbol, ready for a single-row predict."""
        return self.x[self.symbols.index(symbol)][None, :]


def serving_features(
    db: Database,
    symbols: list[str],
    as_of: datetime | None = None,
    *,
    feature_names: list[str],
    feature_version: str,
) -> ServedFeatures:
    """The features of each symbol's last stored bar at or before ``as_of`` (default: its
    latest bar), computed as the training datasets compute them.

    ``feature_names`` and ``feature_version`` are the model's (from its dataset): a version
    other than the code's is refused, since the same names could mean other computations.
    A naive ``as_of`` is taken as UTC, the time zone bars are stored in.
    """
    check_feature_version(feature_version)
    wanted = _checked_symbols(symbols)
    names = checked_feature_names(feature_names)
    end = _utc(as_of) if as_of is not None else None

    # From each symbol's first stored bar (start None), as build_dataset does: see the module
    # docstring for why a shorter look-back would not give the same numbers.
    bars = load_bars(db, wanted, None, end)
    present = set(bars["symbol"])
    absent = [s for s in wanted if s not in present]
    if absent:
        known = known_symbols(db, absent)
        unknown = [s for s in absent if s not in known]
        if unknown:
            raise FeatureRequestError(f"unknown symbol(s): {', '.join(unknown)}")
        when = end.isoformat() if end is not None else "now"
        raise FeatureRequestError(f"no bar at or before {when} for {', '.join(absent)}")

    counts = bars.groupby("symbol").size()
    short = [s for s in wanted if counts[s] < MIN_HISTORY_BARS]
    if short:
        detail = ", ".join(f"{s} ({counts[s]})" for s in short)
        raise FeatureRequestError(
            f"not enough history for the feature window: the features need {MIN_HISTORY_BARS} "
            f"bars up to the bar served, stored: {detail}"
        )

    last = bars.sort_values("ts").groupby("symbol").tail(1).set_index("symbol").loc[wanted]
    rows, x = feature_rows(bars, last.reset_index()[["symbol", "ts"]], names)
    bar_ts = tuple(pd.Timestamp(t).tz_convert("UTC") for t in rows["ts"])
    undefined = []
    for i, symbol in enumerate(wanted):
        missing = [n for n, v in zip(names, x[i], strict=True) if not np.isfinite(v)]
        if missing:
            undefined.append(f"{symbol} at {bar_ts[i].isoformat()}: {', '.join(missing)}")
    if undefined:
        # The datasets drop such rows (a flat price leaves volatility at zero), so no model
        # was trained on one: refuse rather than feed NaN to the model.
        raise FeatureRequestError(f"features undefined for {'; '.join(undefined)}")
    return ServedFeatures(
        symbols=tuple(wanted),
        bar_ts=bar_ts,
        x=x,
        feature_names=tuple(names),
        feature_version=feature_version,
    )


def check_feature_version(feature_version: str | None) -> None:
    if feature_version != core_features.FEATURE_VERSION:
        raise FeatureRequestError(
            f"the model was trained on feature version {feature_version!r} but this code "
            f"computes {core_features.FEATURE_VERSION!r}: serve it from the code that trained "
            "it, or retrain it on the current features"
        )


def feature_rows(
    bars: pd.DataFrame, wanted: pd.DataFrame, names: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The feature rows of the (symbol, ts) in ``wanted``, in its order, computed over all of
    ``bars`` by the dataset's own function (build_features groups by symbol, sorts by ts and
    calls symbol_features, as build_dataset does), and as float32 the way Dataset.x converts
    them."""
    computed = core_features.build_features(bars)
    rows = wanted[["symbol", "ts"]].merge(computed, on=["symbol", "ts"], how="left")
    return rows, np.ascontiguousarray(rows[names].to_numpy(dtype=np.float32))


def _checked_symbols(symbols: object) -> list[str]:
    if isinstance(symbols, str) or not isinstance(symbols, Sequence):
        raise FeatureRequestError("symbols must be a list of symbol names")
    if not symbols:
        raise FeatureRequestError("no symbols requested")
    bad = [repr(s) for s in symbols if not isinstance(s, str) or not s.strip()]
    if bad:
        raise FeatureRequestError(f"symbols must be non-empty strings, got {', '.join(bad[:5])}")
    wanted = list(dict.fromkeys(symbols))  # the request's order, each symbol once
    if len(wanted) > MAX_SYMBOLS:
        raise FeatureRequestError(
            f"{len(wanted)} symbols requested, at most {MAX_SYMBOLS} per request"
        )
    return wanted


@functools.cache
def _computed_feature_names() -> frozenset[str]:
    # feature_names() runs the features on a small frame (milliseconds): once per process.
    return frozenset(core_features.feature_names())


def checked_feature_names(feature_names: list[str]) -> list[str]:
    available = _computed_feature_names()
    unknown = [n for n in feature_names if n not in available]
    if unknown:
        raise FeatureRequestError(
            f"the model expects feature(s) {core_features.FEATURE_VERSION} does not compute: "
            f"{', '.join(unknown)}"
        )
    if not feature_names:
        raise FeatureRequestError("the model names no features")
    return list(feature_names)


def _utc(value: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


_NUMBER_TYPES = (int, float, np.integer, np.floating)


def validate_rows(rows: object, n_features: int, *, max_rows: int = MAX_BATCH_ROWS) -> np.ndarray:
    """Raw feature rows for batch scoring as a C-contiguous float32 (rows, n_features) array.

    Refuses, naming the first offending row (0-based) and column: anything but a list of rows
    or a 2-D numeric array, no rows, more than ``max_rows``, a row of the wrong width, a value
    that is not a number (strings and booleans included: JSON ``"1.5"`` or ``true`` is a
    client bug, not a feature), NaN or infinity, and a value too large for float32.
    """
    if isinstance(rows, np.ndarray):
        return _validate_array(rows, n_features, max_rows)
    if isinstance(rows, str | bytes) or not isinstance(rows, Sequence):
        raise FeatureRequestError("rows must be a list of rows, each a list of numbers")
    if not rows:
        raise FeatureRequestError("no rows to score")
    if len(rows) > max_rows:
        raise FeatureRequestError(f"{len(rows)} rows, at most {max_rows} per request")
    for i, row in enumerate(rows):
        if isinstance(row, str | bytes) or not isinstance(row, Sequence | np.ndarray):
            raise FeatureRequestError(f"row {i} is not a list of numbers")
        if len(row) != n_features:
            raise FeatureRequestError(
                f"row {i} has {len(row)} values, the model takes {n_features} features"
            )
        for j, value in enumerate(row):
            # bool is an int subclass: checked first so True is refused, not read as 1.0.
            if isinstance(value, bool | np.bool_) or not isinstance(value, _NUMBER_TYPES):
                raise FeatureRequestError(f"row {i}, column {j}: {value!r} is not a number")
            # An int past float32's range (about 2**128) would overflow NumPy's conversion.
            if isinstance(value, int) and abs(value) >= 2**128:
                raise FeatureRequestError(
                    f"row {i}, column {j}: {value} is too large for a float32 feature"
                )
    return _finite_float32(np.asarray(rows, dtype=np.float64))


def _validate_array(rows: np.ndarray, n_features: int, max_rows: int) -> np.ndarray:
    if rows.dtype.kind not in "iuf":
        raise FeatureRequestError(f"rows must be numeric, got an array of {rows.dtype}")
    if rows.ndim != 2:
        raise FeatureRequestError(f"rows must be 2-D (rows, features), got shape {rows.shape}")
    if rows.shape[0] == 0:
        raise FeatureRequestError("no rows to score")
    if rows.shape[0] > max_rows:
        raise FeatureRequestError(f"{rows.shape[0]} rows, at most {max_rows} per request")
    if rows.shape[1] != n_features:
        raise FeatureRequestError(
            f"row 0 has {rows.shape[1]} values, the model takes {n_features} features"
        )
    return _finite_float32(rows)


def _finite_float32(values: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise FeatureRequestError(f"row {i}, column {j}: {values[i, j]} is not a finite number")
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(values, dtype=np.float32)
    overflow = ~np.isfinite(x)
    if overflow.any():
        i, j = (int(k) for k in np.argwhere(overflow)[0])
        raise FeatureRequestError(
            f"row {i}, column {j}: {values[i, j]} is too large for a float32 feature"
        )
    return x
