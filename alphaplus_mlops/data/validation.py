"""The one validator every source of market bars goes through.

Pure pandas: it neither reads files nor touches the database. It either returns a clean,
sorted frame in canonical form or raises :class:`BarValidationError` listing every problem
it found, each naming the offending rows, so a person can fix the input in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

BAR_COLUMNS: tuple[str, ...] = ("symbol", "ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
_EXAMPLES = 5


class BarValidationError(ValueError):
    """Input bars were rejected. ``problems`` holds one readable sentence per problem."""

    def __init__(self, problems: Sequence[str], source: str = "input"):
        self.problems = list(problems)
        self.source = source
        bullet_list = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source} rejected, nothing was written:\n{bullet_list}")


def _rows(labels: Sequence, row_label: str, frame: pd.DataFrame | None = None) -> str:
    shown = list(labels)[:_EXAMPLES]
    if frame is None:
        text = ", ".join(f"{row_label} {label}" for label in shown)
    else:
        text = "; ".join(f"{row_label} {label} ({_describe(frame.loc[label])})" for label in shown)
    more = len(labels) - len(shown)
    return text + (f" and {more} more" if more > 0 else "")


def _describe(row: pd.Series) -> str:
    return ", ".join(f"{k}={row[k]}" for k in row.index)


def validate_bars(
    bars: pd.DataFrame, *, source: str = "input", row_label: str = "row"
) -> pd.DataFrame:
    """Check ``bars`` and return them as (symbol, ts UTC, float OHLCV), sorted, fresh index.

    The index of ``bars`` names rows in messages (the CSV importer sets it to line numbers).
    Naive timestamps are taken as UTC; aware ones are converted to UTC.
    """
    problems: list[str] = []
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

    frame = bars[list(BAR_COLUMNS)].copy()

    symbol_blank = frame["symbol"].isna() | (frame["symbol"].astype(str).str.strip() == "")
    if symbol_blank.any():
        problems.append(
            f"empty symbol in {symbol_blank.sum()} row(s): "
            f"{_rows(frame.index[symbol_blank], row_label)}"
        )
    frame["symbol"] = frame["symbol"].astype(str).str.strip()

    ts = _parse_timestamps(frame["ts"])
    bad_ts = ts.isna()
    if bad_ts.any():
        examples = "; ".join(
            f"{row_label} {label} ({frame.at[label, 'ts']!r})"
            for label in frame.index[bad_ts][:_EXAMPLES]
        )
        problems.append(f"unparseable timestamp in {bad_ts.sum()} row(s): {examples}")
    frame["ts"] = ts

    for column in NUMERIC_COLUMNS:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        not_numeric = numeric.isna() & frame[column].notna()
        if not_numeric.any():
            problems.append(
                f"non-numeric {column} in {not_numeric.sum()} row(s): "
                f"{_rows(frame.index[not_numeric], row_label)}"
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
    for name, failing in checks.items():
        failing = failing & finite
        if failing.any():
            problems.append(
                f"{name} in {failing.sum()} row(s): "
                f"{_rows(frame.index[failing], row_label, frame[['symbol', *NUMERIC_COLUMNS]])}"
            )

    keyed = ~bad_ts
    dup = frame[keyed].duplicated(subset=["symbol", "ts"], keep=False)
    if dup.any():
        dup_labels = frame[keyed].index[dup]
        problems.append(
            f"duplicate (symbol, timestamp) in {len(dup_labels)} row(s): "
            f"{_rows(dup_labels, row_label, frame[['symbol', 'ts']])}"
        )

    if problems:
        raise BarValidationError(problems, source)
    return frame.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)


def _parse_timestamps(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    # Naive strings are taken as UTC, strings with an offset are converted to UTC.
    return pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
