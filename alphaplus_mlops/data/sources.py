"""Market bars from files and from the real daily indices packaged with ``arch``.

Both paths end in the same shape (symbol, ts, open, high, low, close, volume) and are
checked by :func:`alphaplus_mlops.data.validation.validate_bars` before anything is stored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alphaplus_mlops.data.validation import BAR_COLUMNS, BarValidationError, validate_bars

# Column spellings accepted by the importer, compared case-insensitively.
_ALIASES = {
    "ts": ("ts", "timestamp", "time", "date", "datetime"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "last", "price"),
    "volume": ("volume", "vol", "v"),
    "symbol": ("symbol", "ticker"),
}

# The real daily bars that ship inside the arch package (NCSA licence), 1999–2018.
PACKAGED_SAMPLES = {"SP500": "arch.data.sp500", "NASDAQ": "arch.data.nasdaq"}


def normalize_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rename known column spellings to canonical names; keep unknown columns as they are."""
    lowered: dict[str, str] = {}
    for column in frame.columns:
        key = str(column).strip().lower()
        for canonical, spellings in _ALIASES.items():
            if key in spellings:
                if canonical in lowered.values():
                    raise BarValidationError(
                        [
                            f"more than one column maps to {canonical!r}: "
                            f"{[c for c, v in lowered.items() if v == canonical] + [column]}"
                        ],
                        source,
                    )
                lowered[column] = canonical
                break
    return frame.rename(columns=lowered)


def read_bar_file(path: Path, symbol: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet OHLCV file into validated canonical bars.

    ``symbol`` names the instrument when the file has no symbol column; when it has one,
    ``symbol`` (if given) must agree with it. Rows are named by their line in a CSV file.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        # Strings first: the validator parses and reports bad values with their line.
        raw = pd.read_csv(path, dtype=str, keep_default_na=True)
        raw.index = raw.index + 2  # line 1 is the header
        row_label = "line"
    elif suffix in (".parquet", ".pq"):
        raw = pd.read_parquet(path)
        raw = raw.reset_index() if raw.index.name else raw.reset_index(drop=True)
        row_label = "row"
    else:
        raise BarValidationError(
            [f"unsupported file type {suffix!r}: use .csv or .parquet"], source
        )
    frame = normalize_columns(raw, source)
    if "symbol" not in frame.columns:
        if not symbol:
            raise BarValidationError(
                ["the file has no symbol column: pass --symbol to name the instrument"], source
            )
        frame["symbol"] = symbol
    elif symbol:
        others = sorted(set(frame["symbol"].dropna().astype(str)) - {symbol})
        if others:
            raise BarValidationError(
                [f"--symbol {symbol} disagrees with the file's symbol column ({others[:5]})"],
                source,
            )
    return validate_bars(frame, source=source, row_label=row_label)


def load_packaged_sample(symbols: tuple[str, ...] = tuple(PACKAGED_SAMPLES)) -> pd.DataFrame:
    """Daily S&P 500 and NASDAQ bars from ``arch``, through the same validator."""
    import importlib

    frames = []
    for symbol in symbols:
        if symbol not in PACKAGED_SAMPLES:
            raise ValueError(
                f"unknown packaged sample {symbol!r}; choose from {sorted(PACKAGED_SAMPLES)}"
            )
        raw = importlib.import_module(PACKAGED_SAMPLES[symbol]).load().reset_index()
        frame = normalize_columns(raw, f"packaged sample {symbol}")
        frame["symbol"] = symbol
        frames.append(frame[list(BAR_COLUMNS)])
    combined = pd.concat(frames, ignore_index=True)
    return validate_bars(combined, source="packaged sample")


def inclusive_end(value: str) -> pd.Timestamp:
    """An end bound that includes all of its last day: '2015-09-30' means up to 23:59:59.9…

    Bars stamped at a session's close (16:00-05:00 is 21:00 UTC) would otherwise fall
    outside a date-only bound. Naive values are UTC, like every timestamp here.
    """
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    date_only = len(value.strip()) <= 10
    return stamp + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if date_only else stamp
