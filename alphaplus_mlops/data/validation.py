"""The one validator every source of market bars goes through.

Pure pandas: it neither reads files nor touches the database. It either returns a clean,
sorted frame in canonical form or raises :class:`BarValidationError` listing every problem
it found, each naming the offending rows, so a person can fix the input in one pass.

Two layers. The structural checks hold for every source (symbols, one unambiguous timestamp
format, one UTC offset, numbers, OHLC consistency, duplicates). The import rules
(:class:`ImportRules`: order, timestamps in the future, cadence, price jumps) hold for data from
outside, files and vendors; the simulator's synthetic bars skip them by passing no rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

BAR_COLUMNS: tuple[str, ...] = ("symbol", "ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
_EXAMPLES = 5

# 1 to 32 characters: upper-case letters, digits and . - _ / = ^ &, starting with a letter, a
# digit or ^. That covers BRK.B, BF-B, EUR/USD, ES=F, ^GSPC, M&M, and NA and NULL are tickers.
SYMBOL_PATTERN = r"[A-Z0-9^][A-Z0-9._\-/=^&]{0,31}"
SYMBOL_RULE = "1-32 of A-Z 0-9 . - _ / = ^ &, starting with a letter, a digit or ^"

TIMESTAMP_UNITS: tuple[str, ...] = ("s", "ms", "us", "ns")
DEFAULT_MAX_JUMP = 10.0
DEFAULT_FUTURE_TOLERANCE = pd.Timedelta(minutes=15)
# A bar more than this fraction of the cadence away from the symbol's grid is off cadence:
# wide enough for a daily close that moves by an hour with daylight saving time, or a half
# day stamped at 13:00 instead of 16:00, narrow enough to catch a 10:00 bar among daily ones.
CADENCE_TOLERANCE = 0.25
MIN_BARS_FOR_CADENCE = 5
# Before this, an epoch number is far more likely in the wrong unit than a real bar.
_EARLIEST_EPOCH_BAR = pd.Timestamp("1971-01-01", tz="UTC")
_UNIT_NANOS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}

# Day-first and month-first spellings of the same shape; ISO 8601 is tried before all of them.
# Dotted dates are day-first by convention (DIN 5008 and its kin): a month-first one needs
# --date-format %m.%d.%Y.
_DATE_FORMATS: tuple[tuple[str, str | None], ...] = (
    ("%d/%m/%Y", "day"),
    ("%m/%d/%Y", "month"),
    ("%d.%m.%Y", "day"),
    ("%d-%m-%Y", "day"),
    ("%m-%d-%Y", "month"),
)
_TIME_FORMATS = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", "T%H:%M", "T%H:%M:%S", "T%H:%M:%S.%f")
_OFFSET_FORMATS = ("", "%z", " %z")
_CANDIDATE_FORMATS: tuple[tuple[str, str | None], ...] = tuple(
    (date + time + offset, order)
    for date, order in _DATE_FORMATS
    for time in _TIME_FORMATS
    for offset in (_OFFSET_FORMATS if time else ("",))
)
_ISO = "ISO8601"
# An offset only counts after a time of day, so the "-01" of "2024-03-01" is not one.
_OFFSET_RE = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)$")
_NUMBER_RE = r"[+-]?\d+(?:\.\d*)?"


class BarValidationError(ValueError):
    """Input bars were rejected. ``problems`` holds one readable sentence per problem."""

    def __init__(self, problems: Sequence[str], source: str = "input"):
        self.problems = list(problems)
        self.source = source
        bullet_list = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source} rejected, nothing was written:\n{bullet_list}")


@dataclass(frozen=True)
class ImportRules:
    """How bars from outside are read and what is refused as implausible.

    ``date_format`` (a strptime format) overrides the inference of one format for the whole
    column; ``timestamp_unit`` says what numeric timestamps count. ``now`` fixes the clock of
    the future check (tests); None means the time of the check.
    """

    date_format: str | None = None
    timestamp_unit: str | None = None
    allow_mixed_offsets: bool = False
    allow_unsorted: bool = False
    allow_off_cadence: bool = False
    max_jump: float = DEFAULT_MAX_JUMP
    future_tolerance: pd.Timedelta = DEFAULT_FUTURE_TOLERANCE
    now: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        if self.timestamp_unit is not None and self.timestamp_unit not in TIMESTAMP_UNITS:
            raise ValueError(
                f"timestamp unit must be one of {', '.join(TIMESTAMP_UNITS)}, "
                f"not {self.timestamp_unit!r}"
            )
        if not (isinstance(self.max_jump, int | float) and self.max_jump > 1):
            raise ValueError(f"max jump must be a ratio above 1, not {self.max_jump!r}")
        tolerance = pd.Timedelta(self.future_tolerance)
        if pd.isna(tolerance) or tolerance < pd.Timedelta(0):
            raise ValueError(f"future tolerance must be zero or more, not {tolerance}")
        object.__setattr__(self, "future_tolerance", tolerance)
        if self.date_format is not None:
            _check_date_format(self.date_format)


def _check_date_format(date_format: str) -> None:
    if "%" not in date_format:
        raise ValueError(f"date format {date_format!r} has no % directive (e.g. %d/%m/%Y)")
    try:
        datetime(2024, 3, 1, 10, 30).strftime(date_format)
    except ValueError as exc:
        raise ValueError(f"date format {date_format!r} is not a valid format: {exc}") from exc


def _rows(labels: Sequence, row_label: str, frame: pd.DataFrame | None = None) -> str:
    shown = list(labels)[:_EXAMPLES]
    if frame is None:
        text = ", ".join(f"{row_label} {label}" for label in shown)
    else:
        text = "; ".join(f"{row_label} {label} ({_describe(frame.loc[label])})" for label in shown)
    more = len(labels) - len(shown)
    return text + (f" and {more} more" if more > 0 else "")


def _values(values: pd.Series, labels: Sequence, row_label: str) -> str:
    """Rows with their raw value, e.g. ``line 3 ('yesterday')``."""
    shown = list(labels)[:_EXAMPLES]
    text = "; ".join(f"{row_label} {label} ({_shown(values.at[label])})" for label in shown)
    more = len(labels) - len(shown)
    return text + (f" and {more} more" if more > 0 else "")


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _describe(row: pd.Series) -> str:
    return ", ".join(f"{k}={row[k]}" for k in row.index)


def validate_bars(
    bars: pd.DataFrame,
    *,
    source: str = "input",
    row_label: str = "row",
    rules: ImportRules | None = None,
) -> pd.DataFrame:
    """Check ``bars`` and return them as (symbol, ts UTC, float OHLCV), sorted, fresh index.

    The index of ``bars`` names rows in messages (the CSV importer sets it to line numbers).
    Naive timestamps are taken as UTC; aware ones are converted to UTC. ``rules`` adds the
    import rules (order, future, cadence, jumps); None checks the structure only.
    """
    if bars.empty:
        raise BarValidationError(["no rows"], source)
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise BarValidationError(
            [
                f"missing required column(s): {', '.join(missing)}"
                f" (found: {', '.join(map(str, bars.columns))})"
            ],
            source,
        )
    if not bars.index.is_unique:
        # Row names must point at one row each; a caller's frame is renumbered rather than refused.
        bars = bars.reset_index(drop=True)

    problems: list[str] = []
    frame = bars[list(BAR_COLUMNS)].copy()

    symbols = frame["symbol"].map(lambda v: v.strip() if isinstance(v, str) else v)
    symbol_blank = symbols.map(lambda v: not isinstance(v, str) or v == "")
    if symbol_blank.any():
        problems.append(
            f"empty symbol in {symbol_blank.sum()} row(s): "
            f"{_rows(frame.index[symbol_blank], row_label)}"
        )
    symbol_bad = ~symbol_blank & ~symbols.astype(str).str.fullmatch(SYMBOL_PATTERN)
    if symbol_bad.any():
        problems.append(
            f"symbol outside the allowed form ({SYMBOL_RULE}) in {symbol_bad.sum()} row(s): "
            f"{_values(symbols, frame.index[symbol_bad], row_label)}"
        )
    frame["symbol"] = symbols.astype(str)

    ts, ts_problems = parse_timestamps(frame["ts"], rules or ImportRules(), row_label)
    problems.extend(ts_problems)
    frame["ts"] = ts
    bad_ts = ts.isna()

    for column in NUMERIC_COLUMNS:
        raw = frame[column]
        blank = raw.map(lambda v: isinstance(v, str) and v.strip() == "")
        numeric = pd.to_numeric(raw.mask(blank), errors="coerce")
        not_numeric = numeric.isna() & raw.notna() & ~blank
        if not_numeric.any():
            problems.append(
                f"non-numeric {column} in {not_numeric.sum()} row(s): "
                f"{_values(raw, frame.index[not_numeric], row_label)}"
            )
        frame[column] = numeric.astype(float)

    values = frame[list(NUMERIC_COLUMNS)].to_numpy(dtype=float)
    nan_rows = np.isnan(values).any(axis=1)
    inf_rows = np.isinf(values).any(axis=1)
    if nan_rows.any():
        problems.append(
            f"NaN or missing value in {nan_rows.sum()} row(s): "
            f"{_rows(frame.index[nan_rows], row_label, frame[list(NUMERIC_COLUMNS)])}"
        )
    if inf_rows.any():
        problems.append(
            f"infinite value in {inf_rows.sum()} row(s): "
            f"{_rows(frame.index[inf_rows], row_label, frame[list(NUMERIC_COLUMNS)])}"
        )

    finite = ~(nan_rows | inf_rows)
    checks = {
        "non-positive price": (frame[list(PRICE_COLUMNS)] <= 0).any(axis=1),
        "negative volume": frame["volume"] < 0,
        "high below max(open, close)": frame["high"] < frame[["open", "close"]].max(axis=1),
        "low above min(open, close)": frame["low"] > frame[["open", "close"]].min(axis=1),
    }
    unsound = ~finite | bad_ts.to_numpy() | symbol_blank.to_numpy() | symbol_bad.to_numpy()
    for name, failing in checks.items():
        failing = failing & finite
        if failing.any():
            problems.append(
                f"{name} in {failing.sum()} row(s): "
                f"{_rows(frame.index[failing], row_label, frame[['symbol', *NUMERIC_COLUMNS]])}"
            )
        unsound = unsound | failing.to_numpy()

    keyed = ~bad_ts
    dup = frame[keyed].duplicated(subset=["symbol", "ts"], keep=False)
    if dup.any():
        dup_labels = frame[keyed].index[dup]
        problems.append(
            f"duplicate (symbol, timestamp) in {len(dup_labels)} row(s): "
            f"{_rows(dup_labels, row_label, frame[['symbol', 'ts']])}"
        )
        unsound = unsound | frame.index.isin(dup_labels)

    if rules is not None:
        # Only rows that passed every check above, so one bad row does not echo as a jump.
        problems.extend(_import_rule_problems(frame[~unsound], rules, row_label))

    if problems:
        raise BarValidationError(problems, source)
    return frame.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)


# Timestamps ----------------------------------------------------------------------------------


def parse_timestamps(
    values: pd.Series, rules: ImportRules, row_label: str = "row"
) -> tuple[pd.Series, list[str]]:
    """UTC timestamps (NaT where a row is refused) and the problems found, naming rows.

    Strings must follow one format for the whole column: ISO 8601, or one of a short list of
    day-first and month-first spellings, inferred once from every row; when day-first and
    month-first both read every row the column is ambiguous and needs ``rules.date_format``.
    Numbers need ``rules.timestamp_unit``. One column carries one UTC offset (or none) unless
    ``rules.allow_mixed_offsets``; naive and offset-carrying rows never mix.
    """
    unit = rules.timestamp_unit
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
        values.dtype
    ):
        problems = []
        if unit:
            problems.append(
                f"--timestamp-unit {unit} applies to numeric timestamps; "
                "this file's timestamps are already dates"
            )
        ts = values.dt.tz_convert("UTC") if values.dt.tz else values.dt.tz_localize("UTC")
        return ts, problems + _missing(ts.isna(), values.index, row_label)
    if pd.api.types.is_bool_dtype(values.dtype):
        return _refuse_all(values, [f"timestamps are true/false values ({row_label}s: all)"])
    if pd.api.types.is_numeric_dtype(values.dtype):
        return _from_epoch(values, unit, row_label)

    text = values.map(_as_text)
    blank = text.isna()
    present = text[~blank]
    problems = _missing(blank, values.index, row_label)
    if present.empty:
        return _refuse_all(values, problems)

    numeric = present.str.fullmatch(_NUMBER_RE)
    if numeric.all() and (unit or not present.str.fullmatch(r"\d{8}").all()):
        ts, epoch_problems = _from_epoch(present, unit, row_label)
        return ts.reindex(values.index), problems + epoch_problems
    if unit:
        examples = _values(present, present.index[~numeric][:1], row_label)
        return _refuse_all(
            values,
            problems
            + [f"--timestamp-unit {unit} applies to numeric timestamps, not dates like {examples}"],
        )

    offset_problems = _offset_problems(present, rules.allow_mixed_offsets, row_label)
    if rules.date_format:
        ts = pd.to_datetime(present, format=rules.date_format, utc=True, errors="coerce")
        bad = ts.isna()
        if bad.any():
            problems.append(
                f"timestamp not in --date-format {rules.date_format!r} in {bad.sum()} row(s): "
                f"{_values(present, present.index[bad], row_label)}"
            )
    else:
        ts, format_problems = _infer_and_parse(present, row_label)
        problems.extend(format_problems)
    problems.extend(offset_problems)
    if offset_problems:
        ts = ts.where(pd.Series(False, index=ts.index))
    return ts.reindex(values.index), problems


def _as_text(value) -> str | float:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return np.nan
    text = str(value).strip()
    return text if text else np.nan


def _missing(blank: pd.Series, index: pd.Index, row_label: str) -> list[str]:
    if not blank.any():
        return []
    return [f"missing timestamp in {blank.sum()} row(s): {_rows(index[blank], row_label)}"]


def _refuse_all(values: pd.Series, problems: list[str]) -> tuple[pd.Series, list[str]]:
    return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]"), problems


def _from_epoch(raw: pd.Series, unit: str | None, row_label: str) -> tuple[pd.Series, list[str]]:
    if not unit:
        example = _values(raw, raw.index[:1], row_label)
        return _refuse_all(
            raw,
            [
                f"timestamps are numbers (e.g. {example}): pass --timestamp-unit s, ms, us or ns "
                "to say what they count (seconds, milli-, micro- or nanoseconds since 1970)"
            ],
        )
    nanos = raw.map(lambda v: _epoch_nanos(v, _UNIT_NANOS[unit]))
    ts = pd.to_datetime(nanos.astype("Int64"), unit="ns", utc=True)
    missing = raw.map(lambda v: _as_text(v) is np.nan)
    problems = _missing(missing, raw.index, row_label)
    bad = ts.isna() & ~missing
    if bad.any():
        problems.append(
            f"timestamp out of range for unit {unit} in {bad.sum()} row(s): "
            f"{_values(raw, raw.index[bad], row_label)}"
        )
    early = ts < _EARLIEST_EPOCH_BAR
    if early.any():
        problems.append(
            f"timestamp before 1971 with --timestamp-unit {unit} in {early.sum()} row(s), "
            f"is the unit right?: {_values(raw, raw.index[early], row_label)}"
        )
        ts = ts.where(~early)
    return ts, problems


def _epoch_nanos(value, per_unit: int) -> int | None:
    """Exact nanoseconds (no float rounding of 19-digit values), None when out of range."""
    text = _as_text(value)
    if text is np.nan:
        return None
    try:
        nanos = int(Decimal(str(text)) * per_unit)
    except (InvalidOperation, ValueError, OverflowError):
        return None
    # pandas' nanosecond timestamps span 1677-09-22 .. 2262-04-11.
    return nanos if abs(nanos) < 9_200_000_000_000_000_000 else None


def _offset_problems(text: pd.Series, allow_mixed: bool, row_label: str) -> list[str]:
    offsets = text.str.extract(_OFFSET_RE, expand=False).map(_normal_offset, na_action="ignore")
    naive = offsets.isna()
    if naive.all():
        return []
    if naive.any():
        return [
            f"timestamps mix rows with and without a UTC offset: {naive.sum()} row(s) without "
            f"({_values(text, text.index[naive], row_label)}), {(~naive).sum()} with "
            f"(e.g. {_values(text, text.index[~naive][:1], row_label)}); one file takes one form"
        ]
    counts = offsets.value_counts(sort=False)
    if len(counts) == 1 or allow_mixed:
        return []
    parts = "; ".join(
        f"{offset} on {count} row(s), first {row_label} {offsets.index[offsets == offset][0]}"
        for offset, count in counts.items()
    )
    return [
        f"timestamps carry {len(counts)} different UTC offsets ({parts}): one file takes one "
        "offset; pass --allow-mixed-offsets for local exchange time across a daylight saving "
        "change"
    ]


def _normal_offset(offset: str) -> str:
    if offset == "Z":
        return "+00:00"
    digits = offset[1:].replace(":", "")
    return f"{offset[0]}{digits[:2]}:{digits[2:4] or '00'}"


def _infer_and_parse(text: pd.Series, row_label: str) -> tuple[pd.Series, list[str]]:
    # ISO 8601 (year first, pandas also takes / and no separators) is never ambiguous.
    if _fits(text, _ISO):
        return pd.to_datetime(text, format=_ISO, utc=True), []
    fitting = [(fmt, order) for fmt, order in _candidates(text) if _fits(text, fmt)]
    if len(fitting) == 1:
        return pd.to_datetime(text, format=fitting[0][0], utc=True), []
    if fitting:
        parsed = [pd.to_datetime(text, format=fmt, utc=True) for fmt, _ in fitting]
        if all(p.equals(parsed[0]) for p in parsed[1:]):
            return parsed[0], []  # e.g. every row is 01/01, 02/02: both readings agree
        return _refuse_all(text, [_ambiguity(text, fitting, parsed, row_label)])
    best, best_ts = None, None
    for fmt, _ in _candidates(text):
        ts = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
        if best_ts is None or ts.notna().sum() > best_ts.notna().sum():
            best, best_ts = fmt, ts
    bad = best_ts.isna()
    message = (
        f"unparseable timestamp in {bad.sum()} row(s): {_values(text, text.index[bad], row_label)}"
    )
    if not bad.all():
        shown = "ISO 8601" if best == _ISO else repr(best)
        message += f" (the other rows read as {shown}; one format per file)"
    return best_ts.where(~bad), [message]


def _candidates(text: pd.Series) -> list[tuple[str, str | None]]:
    """ISO 8601 and the spellings that read at least one of the first distinct values."""
    sample = text.drop_duplicates().head(20).tolist()
    found = [(_ISO, None)]
    for fmt, order in _CANDIDATE_FORMATS:
        for value in sample:
            try:
                datetime.strptime(value, fmt)
            except ValueError:
                continue
            found.append((fmt, order))
            break
    return found


def _fits(text: pd.Series, fmt: str) -> bool:
    try:
        parsed = pd.to_datetime(text, format=fmt, utc=True)
    except (ValueError, OverflowError):
        return False
    # pandas reads "nan", "NaT" and "null" as missing instead of failing on them.
    return not parsed.isna().any()


def _ambiguity(
    text: pd.Series,
    fitting: list[tuple[str, str | None]],
    parsed: list[pd.Series],
    row_label: str,
) -> str:
    differs = parsed[0] != parsed[1]
    label = text.index[differs][0] if differs.any() else text.index[0]
    readings = " or ".join(
        f"{ts.at[label]:%d %B %Y} ({fmt})" for ts, (fmt, _) in zip(parsed, fitting, strict=True)
    )
    return (
        f"ambiguous timestamps: every row reads as {' and as '.join(f for f, _ in fitting)}, "
        f"e.g. {row_label} {label} ({text.at[label]!r}) is {readings}: "
        "pass --date-format to say which"
    )


# Import rules ----------------------------------------------------------------------------------


def _import_rule_problems(frame: pd.DataFrame, rules: ImportRules, row_label: str) -> list[str]:
    if frame.empty:
        return []
    problems = []
    if not rules.allow_unsorted:
        problems.extend(_order_problems(frame, row_label))
    now = rules.now if rules.now is not None else pd.Timestamp.now(tz="UTC")
    limit = pd.Timestamp(now).tz_convert("UTC") + rules.future_tolerance
    future = frame["ts"] > limit
    if future.any():
        problems.append(
            f"timestamp in the future (after {limit:%Y-%m-%d %H:%M} UTC, now plus "
            f"{_duration(rules.future_tolerance)}) in {future.sum()} row(s): "
            f"{_rows(frame.index[future], row_label, frame[['symbol', 'ts']])}"
        )
    ordered = frame.sort_values(["symbol", "ts"], kind="stable")
    if not rules.allow_off_cadence:
        for symbol, group in ordered.groupby("symbol", sort=True):
            problems.extend(_cadence_problems(symbol, group, row_label))
    problems.extend(_jump_problems(ordered, rules.max_jump, row_label))
    return problems


def _order_problems(frame: pd.DataFrame, row_label: str) -> list[str]:
    earlier_max = frame.groupby("symbol", sort=False)["ts"].transform(lambda s: s.cummax().shift())
    late = frame["ts"] < earlier_max
    if not late.any():
        return []
    return [
        f"timestamps out of order (earlier than a row above for the same symbol) in "
        f"{late.sum()} row(s): {_rows(frame.index[late], row_label, frame[['symbol', 'ts']])}; "
        "pass --sort to accept unsorted input"
    ]


@dataclass(frozen=True)
class _Grid:
    """A symbol's cadence: slots of ``unit`` ns shifted by ``anchor`` (a fraction of a slot)."""

    cadence: float
    unit: int
    anchor: float
    name: str

    @property
    def calendar(self) -> bool:
        # Weekly and monthly bars follow the calendar, not a fixed grid.
        return self.cadence >= 28 * _HOUR

    def position(self, nanos: np.ndarray) -> np.ndarray:
        # Integer remainders first: float division of nanoseconds since 1970 loses the phase.
        return (nanos // self.unit) + (nanos % self.unit) / self.unit - self.anchor


_HOUR = 3_600 * 10**9
_DAY = 24 * _HOUR


def _grid(nanos: np.ndarray) -> _Grid | None:
    """The cadence of sorted, distinct timestamps (ns), None below MIN_BARS_FOR_CADENCE bars.

    The cadence is the median spacing; daily bars (20 h to 28 h) count as 24 h, so weekends
    and holidays are whole missing slots. The anchor is the bars' common phase (their
    circular mean), so a few odd bars do not move the grid.
    """
    if len(nanos) < MIN_BARS_FOR_CADENCE:
        return None
    cadence = float(np.median(np.diff(nanos)))
    if cadence >= 28 * _HOUR:
        return _Grid(cadence, int(cadence), 0.0, _duration(pd.Timedelta(cadence)))
    unit = _DAY if cadence >= 20 * _HOUR else max(int(cadence), 1)
    phase = (nanos % unit) / unit
    anchor = float(np.angle(np.exp(2j * np.pi * phase).mean()) / (2 * np.pi))
    return _Grid(cadence, unit, anchor, "daily" if unit == _DAY else _duration(pd.Timedelta(unit)))


def _grid_slots(grid, nanos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each bar's nearest slot on the grid, and whether it lies off that slot by more than
    the cadence tolerance."""
    position = grid.position(nanos)
    slot = np.round(position)
    return slot, np.abs(position - slot) > CADENCE_TOLERANCE


def _cadence_problems(symbol: str, group: pd.DataFrame, row_label: str) -> list[str]:
    """Bars off the symbol's grid, or two bars in one slot of it.

    Up to a day, every bar must lie within CADENCE_TOLERANCE of the grid (see :func:`_grid`)
    and no two bars may share a slot. For calendar cadences (weekly, monthly) only spacing
    under half the cadence is refused.
    """
    nanos = group["ts"].to_numpy(dtype="datetime64[ns]").astype("int64")
    grid = _grid(nanos)
    if grid is None:
        return []
    labels = group.index
    shown = group[["ts"]]
    if grid.calendar:
        close = np.concatenate([[False], np.diff(nanos) < grid.cadence / 2])
        if not close.any():
            return []
        return [
            f"{symbol}: bars closer than half its cadence ({grid.name}) "
            f"in {close.sum()} row(s): {_rows(labels[close], row_label, shown)}; "
            "pass --allow-off-cadence to accept them"
        ]
    slot, off = _grid_slots(grid, nanos)
    shared = np.zeros(len(slot), dtype=bool)
    shared[~off] = pd.Series(slot[~off]).duplicated(keep=False).to_numpy()
    problems = []
    if off.any():
        problems.append(
            f"{symbol}: bar off its {grid.name} cadence in {off.sum()} row(s): "
            f"{_rows(labels[off], row_label, shown)}; pass --allow-off-cadence to accept them"
        )
    if shared.any():
        problems.append(
            f"{symbol}: more than one bar in one {grid.name} slot in {shared.sum()} row(s): "
            f"{_rows(labels[shared], row_label, shown)}"
        )
    return problems


def stored_neighbour_problems(
    new: pd.DataFrame, stored: pd.DataFrame, rules: ImportRules
) -> list[str]:
    """The import rules across the seam between clean input bars and the bars already stored.

    A file consistent in itself can still sit off the grid of the stored bars (the same days
    stamped under another offset become a second bar per day) or jump from them (prices in
    cents after prices in dollars). The stored bars of a symbol define its grid; ``stored``
    holds those around and between the new ones (not the ones the input restates). Bars are
    named by symbol and time.
    """
    problems: list[str] = []
    if stored.empty:
        return problems
    for symbol, fresh in new.groupby("symbol", sort=True):
        old = stored[stored["symbol"] == symbol].sort_values("ts")
        if old.empty:
            continue
        if not rules.allow_off_cadence:
            problems.extend(_seam_cadence(str(symbol), fresh.sort_values("ts"), old))
        problems.extend(_seam_jumps(str(symbol), fresh, old, rules.max_jump))
    return problems


def _nanos(ts: pd.Series) -> np.ndarray:
    return ts.to_numpy(dtype="datetime64[ns]").astype("int64")


def _stamps(ts: pd.Series) -> str:
    shown = ", ".join(str(t) for t in ts.iloc[:_EXAMPLES])
    more = len(ts) - min(len(ts), _EXAMPLES)
    return shown + (f" and {more} more" if more else "")


def _seam_cadence(symbol: str, fresh: pd.DataFrame, old: pd.DataFrame) -> list[str]:
    old_nanos = _nanos(old["ts"])
    grid = _grid(old_nanos)
    if grid is None:
        return []
    nanos = _nanos(fresh["ts"])
    hint = "pass --allow-off-cadence to accept them"
    if grid.calendar:
        gaps = np.abs(nanos[:, None] - old_nanos[None, :]).min(axis=1)
        close = gaps < grid.cadence / 2
        if not close.any():
            return []
        return [
            f"{symbol}: new bar closer than half the stored bars' cadence ({grid.name}) to a "
            f"stored bar in {close.sum()} row(s): {_stamps(fresh['ts'][close])}; {hint}"
        ]
    slot, off = _grid_slots(grid, nanos)
    old_slots = np.round(grid.position(old_nanos))
    taken = ~off & np.isin(slot, old_slots)
    problems = []
    if off.any():
        problems.append(
            f"{symbol}: new bar off the stored bars' {grid.name} cadence in {off.sum()} "
            f"row(s): {_stamps(fresh['ts'][off])}; {hint}"
        )
    if taken.any():
        problems.append(
            f"{symbol}: new bar in a {grid.name} slot a stored bar already holds (another "
            f"time of day or offset?) in {taken.sum()} row(s): {_stamps(fresh['ts'][taken])}"
        )
    return problems


def _seam_jumps(symbol: str, fresh: pd.DataFrame, old: pd.DataFrame, max_jump: float) -> list[str]:
    both = pd.concat(
        [fresh[["ts", "close"]].assign(new=True), old[["ts", "close"]].assign(new=False)],
        ignore_index=True,
    ).sort_values("ts", kind="stable")
    ratio = both["close"] / both["close"].shift()
    crosses = both["new"] != both["new"].shift()
    jumps = ((ratio > max_jump) | (ratio < 1 / max_jump)) & crosses
    if not jumps.any():
        return []
    previous = both.shift()
    shown = "; ".join(
        f"{previous.at[i, 'ts']} {'new' if previous.at[i, 'new'] else 'stored'} close "
        f"{previous.at[i, 'close']:g} -> {both.at[i, 'ts']} "
        f"{'new' if both.at[i, 'new'] else 'stored'} close {both.at[i, 'close']:g}"
        for i in both.index[jumps][:_EXAMPLES]
    )
    return [
        f"{symbol}: close moves more than {max_jump:g}x between stored and new bars in "
        f"{jumps.sum()} place(s): {shown}; pass --max-jump to accept larger moves"
    ]


def _jump_problems(ordered: pd.DataFrame, max_jump: float, row_label: str) -> list[str]:
    previous = ordered.groupby("symbol", sort=False)["close"].shift()
    ratio = ordered["close"] / previous
    jumps = (ratio > max_jump) | (ratio < 1 / max_jump)
    wide = ordered["high"] / ordered["low"] > max_jump
    problems = []
    if jumps.any():
        shown = "; ".join(
            f"{row_label} {label} ({ordered.at[label, 'symbol']} {ordered.at[label, 'ts']}: "
            f"close {previous.at[label]:g} -> {ordered.at[label, 'close']:g})"
            for label in ordered.index[jumps][:_EXAMPLES]
        )
        more = jumps.sum() - min(jumps.sum(), _EXAMPLES)
        problems.append(
            f"close moves more than {max_jump:g}x from the bar before in {jumps.sum()} row(s): "
            f"{shown}{f' and {more} more' if more else ''}; pass --max-jump to accept larger moves"
        )
    if wide.any():
        problems.append(
            f"high more than {max_jump:g}x low in {wide.sum()} row(s): "
            f"{_rows(ordered.index[wide], row_label, ordered[['symbol', 'ts', 'high', 'low']])}"
            "; pass --max-jump to accept wider bars"
        )
    return problems


def _duration(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds > 86_400 and seconds % 86_400:
        return f"{round(seconds / 86_400, 1):g}d"
    for size, name in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{name}"
    return f"{seconds}s" if seconds else str(delta)
