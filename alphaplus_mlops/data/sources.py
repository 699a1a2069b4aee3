"""Market bars from files and from the real daily indices packaged with ``arch``.

Both paths end in the same shape (symbol, ts, open, high, low, close, volume) and are
checked by :func:`alphaplus_mlops.data.validation.validate_bars` before anything is stored.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alphaplus_mlops.data.validation import (
    BAR_COLUMNS,
    NUMERIC_COLUMNS,
    SYMBOL_PATTERN,
    SYMBOL_RULE,
    BarValidationError,
    ImportRules,
    validate_bars,
)

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


@dataclass(frozen=True)
class BarFile:
    """Validated bars of one file and where they came from: absolute path and SHA-256."""

    bars: pd.DataFrame
    source: str
    sha256: str


CSV_DELIMITERS = (",", ";", "\t", "|")


def import_bar_file(
    path: Path,
    symbol: str | None = None,
    *,
    rules: ImportRules | None = None,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    decimal: str | None = None,
) -> BarFile:
    """Read a CSV or Parquet OHLCV file into validated canonical bars, under ``rules``.

    ``symbol`` names the instrument when the file has no symbol column; when it has one,
    ``symbol`` (if given) must agree with it. Rows are named by their line in a CSV file, by
    their position (from 0) in a Parquet file. CSV: ``delimiter`` defaults to the one of
    ``, ; tab |`` found most often in the header; ``decimal`` defaults to ``,`` when the
    delimiter is not a comma and a number holds a comma, else ``.``. Values stay text until
    the validator parses them, so ``NA`` and ``NULL`` are symbols, not missing values.
    Every refusal is a :class:`BarValidationError`; nothing here raises anything else for
    bad input.
    """
    path = Path(path)
    rules = rules if rules is not None else ImportRules()
    source = str(path)
    if not path.is_file():
        raise BarValidationError([f"no such file: {path}"], source)
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        raw = _read_csv(data, source, encoding=encoding, delimiter=delimiter)
        raw = _apply_decimal(
            raw, source, delimiter=_delimiter(data, encoding, delimiter), decimal=decimal
        )
        row_label = "line"
    elif suffix in (".parquet", ".pq"):
        raw = _read_parquet(data, source)
        row_label = "row"
    else:
        raise BarValidationError(
            [f"unsupported file type {suffix!r}: use .csv or .parquet"], source
        )
    frame = normalize_columns(raw, source)
    if symbol is not None:
        symbol = symbol.strip()
        if not re.fullmatch(SYMBOL_PATTERN, symbol):
            raise BarValidationError(
                [f"--symbol {symbol!r} is outside the allowed form ({SYMBOL_RULE})"], source
            )
    if "symbol" not in frame.columns:
        if not symbol:
            raise BarValidationError(
                ["the file has no symbol column: pass --symbol to name the instrument"], source
            )
        frame["symbol"] = symbol
    elif symbol:
        named = frame["symbol"].map(lambda v: v.strip() if isinstance(v, str) else v)
        others = sorted({str(v) for v in named.dropna()} - {symbol})
        if others:
            raise BarValidationError(
                [f"--symbol {symbol} disagrees with the file's symbol column ({others[:5]})"],
                source,
            )
    bars = validate_bars(frame, source=source, row_label=row_label, rules=rules)
    return BarFile(bars, f"file:{path.resolve()}", hashlib.sha256(data).hexdigest())


def read_bar_file(path: Path, symbol: str | None = None, **options) -> pd.DataFrame:
    """The validated bars of :func:`import_bar_file`, without their provenance."""
    return import_bar_file(path, symbol, **options).bars


def _decode(data: bytes, source: str, encoding: str) -> str:
    # utf-8-sig reads plain UTF-8 too and drops the byte-order mark spreadsheets write.
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(codec)
    except LookupError as exc:
        raise BarValidationError([f"unknown encoding {encoding!r}"], source) from exc
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BarValidationError(
            [
                f"line {line} is not valid {encoding} (byte 0x{data[exc.start]:02x}): pass "
                "--encoding with the file's encoding (e.g. --encoding latin-1)"
            ],
            source,
        ) from exc


def _delimiter(data: bytes, encoding: str, delimiter: str | None) -> str:
    if delimiter:
        return delimiter
    header = data.decode(encoding, errors="replace").lstrip("\ufeff\r\n").splitlines()
    first = header[0] if header else ""
    counts = {d: first.count(d) for d in CSV_DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(data: bytes, source: str, *, encoding: str, delimiter: str | None) -> pd.DataFrame:
    if not data.strip():
        raise BarValidationError(["the file is empty"], source)
    text = _decode(data, source, encoding)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise BarValidationError([f"line {line} holds a NUL byte: not a text file"], source)
    sep = _delimiter(data, encoding, delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    ragged: list[tuple[int, int]] = []
    last_line = 0
    try:
        for fields in reader:
            line, last_line = last_line + 1, reader.line_num
            if not fields or all(f.strip() == "" for f in fields) and len(fields) <= 1:
                continue
            if header is None:
                header = [f.strip() for f in fields]
                continue
            if len(fields) != len(header):
                ragged.append((line, len(fields)))
                continue
            rows.append(fields)
            lines.append(line)
    except csv.Error as exc:
        raise BarValidationError(
            [f"line {reader.line_num}: {exc} (malformed CSV quoting or field)"], source
        ) from exc
    if header is None:
        raise BarValidationError(["the file is empty"], source)
    seen = [name for i, name in enumerate(header) if name in header[:i]]
    if seen:
        raise BarValidationError([f"the header names column(s) twice: {sorted(set(seen))}"], source)
    if ragged:
        shown = ", ".join(f"line {line} ({n} fields)" for line, n in ragged[:5])
        more = f" and {len(ragged) - 5} more" if len(ragged) > 5 else ""
        hint = "" if delimiter else f" (delimiter {sep!r}, found in the header; pass --delimiter)"
        raise BarValidationError(
            [
                f"{len(ragged)} row(s) do not have the header's {len(header)} fields"
                f"{hint}: {shown}{more}"
            ],
            source,
        )
    if not rows:
        raise BarValidationError(["the file has a header but no rows"], source)
    return pd.DataFrame(rows, columns=header, index=pd.Index(lines), dtype=object)


def _apply_decimal(
    raw: pd.DataFrame, source: str, *, delimiter: str, decimal: str | None
) -> pd.DataFrame:
    """Numbers with a decimal comma become numbers with a point; mixed spellings are refused."""
    columns = [c for c in raw.columns if _canonical(c) in NUMERIC_COLUMNS]
    if decimal is None:
        has_comma = any(raw[c].str.contains(",", regex=False).any() for c in columns)
        decimal = "," if delimiter != "," and has_comma else "."
    if decimal == ".":
        return raw
    if delimiter == ",":
        raise BarValidationError(["--decimal , needs a delimiter other than ','"], source)
    problems = []
    out = raw.copy()
    for column in columns:
        dotted = out[column].str.contains(".", regex=False)
        if dotted.any():
            shown = "; ".join(f"line {i} ({out.at[i, column]!r})" for i in out.index[dotted][:5])
            problems.append(
                f"{column}: a '.' in {dotted.sum()} number(s) of a file with decimal commas "
                f"(thousands separators are not read): {shown}"
            )
        out[column] = out[column].str.replace(",", ".", regex=False)
    if problems:
        raise BarValidationError(problems, source)
    return out


def _canonical(column: str) -> str | None:
    key = str(column).strip().lower()
    return next((name for name, spellings in _ALIASES.items() if key in spellings), None)


def _read_parquet(data: bytes, source: str) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises many types for a damaged file; all mean "refused"
        raise BarValidationError(
            [f"not a readable Parquet file ({type(exc).__name__}: {exc})"], source
        ) from exc
    raw = raw.reset_index() if any(raw.index.names) else raw.reset_index(drop=True)
    if not raw.columns.is_unique:
        raise BarValidationError(["the file names a column twice"], source)
    return raw


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
    # Real bars from outside: the import rules hold for them as for any file.
    return validate_bars(combined, source="packaged sample", rules=ImportRules())


def inclusive_end(value: str) -> pd.Timestamp:
    """An end bound that includes all of its last day: '2015-09-30' means up to 23:59:59.9…

    Bars stamped at a session's close (16:00-05:00 is 21:00 UTC) would otherwise fall
    outside a date-only bound. Naive values are UTC, like every timestamp here.
    """
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    date_only = len(value.strip()) <= 10
    return stamp + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if date_only else stamp
