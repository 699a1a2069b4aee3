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
with the same function makes the served row the dataset's row by construction.

Every feature is trailing, so the row of bar t computed from bars up to t equals the row of
bar t computed from bars up to any later bar: serving ``as_of`` a past bar reproduces what a
dataset built later holds for that bar. That is also why a long-lived server can keep each
symbol's computed history (``FeatureCache``) until its stored bars change: reading and
recomputing 2,520 bars costs tens of milliseconds a request, checking that they did not
change one small query. No Dagster here.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from alphaplus_mlops.core import features as core_features
from alphaplus_mlops.store.bars import bar_fingerprints, load_bars
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


class CacheMiss(LookupError):
    """``cached_only``: answering needs the database (a symbol not cached, or the cache is
    not told of bar changes and must check fingerprints)."""


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
    cache: FeatureCache | None = None,
    cached_only: bool = False,
) -> ServedFeatures:
    """The features of each symbol's last stored bar at or before ``as_of`` (default: its
    latest bar), computed as the training datasets compute them.

    ``feature_names`` and ``feature_version`` are the model's (from its dataset): a version
    other than the code's is refused, since the same names could mean other computations.
    A naive ``as_of`` is taken as UTC, the time zone bars are stored in. ``cache`` keeps
    each symbol's computed history between calls (a long-lived server passes one); without
    it the history is computed for this call alone. ``cached_only`` raises CacheMiss
    instead of touching the database.
    """
    check_feature_version(feature_version)
    wanted = _checked_symbols(symbols)
    names = checked_feature_names(feature_names)
    end = _utc(as_of) if as_of is not None else None
    cache = cache if cache is not None else FeatureCache(max_symbols=len(wanted))

    histories = cache.histories(db, wanted, cached_only=cached_only)
    unknown = [s for s in wanted if s not in histories]
    if unknown:
        raise FeatureRequestError(f"unknown symbol(s): {', '.join(unknown)}")
    served = {s: histories[s].last_at_or_before(end) for s in wanted}
    absent = [s for s in wanted if served[s] < 0]
    if absent:
        when = end.isoformat() if end is not None else "now"
        raise FeatureRequestError(f"no bar at or before {when} for {', '.join(absent)}")
    short = [s for s in wanted if served[s] + 1 < MIN_HISTORY_BARS]
    if short:
        detail = ", ".join(f"{s} ({served[s] + 1})" for s in short)
        raise FeatureRequestError(
            f"not enough history for the feature window: the features need {MIN_HISTORY_BARS} "
            f"bars up to the bar served, stored: {detail}"
        )

    columns = [_feature_column(n) for n in names]
    x = np.ascontiguousarray(
        np.stack([histories[s].x[served[s], columns] for s in wanted]), dtype=np.float32
    )
    bar_ts = tuple(pd.Timestamp(histories[s].ts[served[s]], tz="UTC") for s in wanted)
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


@dataclass(frozen=True)
class SymbolHistory:
    """One symbol's features on every stored bar, as of one state of its stored bars."""

    fingerprint: tuple
    """store.bars.bar_fingerprints' value when the bars were read (or older: see below);
    empty when the cache was notified of changes instead."""
    ts: np.ndarray
    """The bars' times, datetime64[ns] UTC (naive), ascending."""
    x: np.ndarray
    """(bars, every computed feature) float32, in core.features.feature_names() order."""

    def last_at_or_before(self, end: pd.Timestamp | None) -> int:
        """The row of the last bar at or before ``end`` (the last row when None); -1 if none."""
        if end is None:
            return len(self.ts) - 1
        stamp = np.datetime64(end.tz_convert("UTC").tz_localize(None).as_unit("ns"))
        return int(np.searchsorted(self.ts, stamp, side="right")) - 1


class FeatureCache:
    """Each symbol's computed feature history, kept while its stored bars are unchanged.

    The features are computed over the whole stored history anyway (see the module
    docstring), and every feature is trailing, so the row of any bar stays valid until one of
    the symbol's bars is added, restated or deleted. The cache learns of such a change in one
    of two ways:

    * Notified (``watch_bars(True)``, by SignalService while it LISTENs): every statement that
      writes market_bars NOTIFYs ``alphaplus_bars`` (sql/015) and ``bars_changed()`` drops
      every entry, so a request costs no query at all. A change becomes visible when its
      notification is handled, milliseconds after the commit; a result computed while a
      notification arrived is returned but not kept.
    * Otherwise, one small query per request: each symbol's bar fingerprint (count, last
      time, latest ingestion, latest revision). It is read before the bars, so an entry is
      never newer than its data: a change in between makes the next request recompute.

    Bounded to ``max_symbols`` (least recently used out first); safe across threads (two
    requests may compute the same symbol at once; the later result is kept).
    """

    def __init__(self, max_symbols: int = 512):
        if max_symbols < 1:
            raise ValueError("a feature cache holds at least one symbol")
        self.max_symbols = max_symbols
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, SymbolHistory] = OrderedDict()
        self._generation = 0
        self._notified = False
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._entries

    @property
    def notified(self) -> bool:
        return self._notified

    def watch_bars(self, notified: bool) -> None:
        """Whether bar-change notifications reach ``bars_changed`` from now on. Either way
        the entries go: changes made while nobody listened were not announced."""
        with self._lock:
            self._notified = notified
            self._drop_all()

    def bars_changed(self) -> None:
        """Some stored bars changed: forget every computed history."""
        with self._lock:
            self._drop_all()

    def _drop_all(self) -> None:
        self._entries.clear()
        self._generation += 1

    def histories(
        self, db: Database, symbols: list[str], *, cached_only: bool = False
    ) -> dict[str, SymbolHistory]:
        """The current history of each of ``symbols`` that has stored bars. ``cached_only``:
        raise CacheMiss rather than query the database."""
        with self._lock:
            notified, generation = self._notified, self._generation
            if cached_only and not (notified and all(s in self._entries for s in symbols)):
                raise CacheMiss(symbols)
        fingerprints = None if notified else bar_fingerprints(db, symbols)
        found: dict[str, SymbolHistory] = {}
        with self._lock:
            for symbol in symbols:
                entry = self._entries.get(symbol)
                if entry is not None and (
                    fingerprints is None or entry.fingerprint == fingerprints.get(symbol)
                ):
                    self._entries.move_to_end(symbol)
                    found[symbol] = entry
            self.hits += len(found)
        stale = [
            s for s in symbols if s not in found and (fingerprints is None or s in fingerprints)
        ]
        if not stale:
            return found
        computed = _compute_histories(load_bars(db, stale, None, None), fingerprints or {})
        with self._lock:
            self.misses += len(stale)
            if self._generation == generation:  # no change announced while computing
                for symbol, entry in computed.items():
                    self._entries[symbol] = entry
                    self._entries.move_to_end(symbol)
                while len(self._entries) > self.max_symbols:
                    self._entries.popitem(last=False)
        return found | computed


def _compute_histories(bars: pd.DataFrame, fingerprints: dict[str, tuple]) -> dict:
    # From each symbol's first stored bar, by the dataset's own function (build_features
    # groups by symbol, sorts by ts and calls symbol_features, as build_dataset does), and
    # float32 the way Dataset.x converts them.
    if bars.empty:
        return {}
    computed = core_features.build_features(bars)
    x = computed[_all_feature_names()].to_numpy(dtype=np.float32)
    ts = pd.to_datetime(computed["ts"], utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]")
    symbols = computed["symbol"].to_numpy()
    out = {}
    # build_features returns the symbols in sorted blocks, each sorted by time.
    starts = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
    for begin, stop in zip(starts, np.r_[starts[1:], len(symbols)], strict=True):
        symbol = str(symbols[begin])
        out[symbol] = SymbolHistory(
            fingerprint=fingerprints.get(symbol, ()),
            ts=ts[begin:stop].copy(),
            x=np.ascontiguousarray(x[begin:stop]),
        )
    return out


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
def _all_feature_names() -> list[str]:
    # feature_names() runs the features on a small frame (milliseconds): once per process.
    return core_features.feature_names()


@functools.cache
def _feature_columns() -> dict[str, int]:
    return {name: i for i, name in enumerate(_all_feature_names())}


def _feature_column(name: str) -> int:
    return _feature_columns()[name]


def checked_feature_names(feature_names: list[str]) -> list[str]:
    available = _feature_columns()
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
