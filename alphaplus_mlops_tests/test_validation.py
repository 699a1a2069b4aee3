"""The one validator: each malformed case is named, with its rows; good bars pass."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.data.validation import BarValidationError, validate_bars


def good_bars(n: int = 4, symbol: str = "AAA") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
            "open": [10.0 + i for i in range(n)],
            "high": [11.0 + i for i in range(n)],
            "low": [9.0 + i for i in range(n)],
            "close": [10.5 + i for i in range(n)],
            "volume": [1000.0] * n,
        }
    )


def rejected(frame: pd.DataFrame) -> BarValidationError:
    with pytest.raises(BarValidationError) as info:
        validate_bars(frame)
    return info.value


def test_good_bars_come_back_sorted_in_utc_with_float_prices():
    frame = good_bars().iloc[::-1]
    clean = validate_bars(frame)
    assert list(clean.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    assert str(clean["ts"].dt.tz) == "UTC"
    assert clean["ts"].is_monotonic_increasing
    assert clean["open"].dtype == np.float64


def test_timestamps_with_offsets_are_converted_to_utc_and_naive_ones_taken_as_utc():
    frame = good_bars(2)
    frame["ts"] = ["2024-01-01T09:30:00-05:00", "2024-01-02 14:30:00"]
    clean = validate_bars(frame)
    assert list(clean["ts"]) == [
        pd.Timestamp("2024-01-01 14:30", tz="UTC"),
        pd.Timestamp("2024-01-02 14:30", tz="UTC"),
    ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda f: f.drop(columns=["volume"]), "missing required column(s): volume"),
        (
            lambda f: f.assign(ts=["2024-01-01", "not a date", "2024-01-03", "2024-01-04"]),
            "unparseable timestamp in 1 row(s): row 1 ('not a date')",
        ),
        (
            lambda f: f.assign(ts=["2024-01-01", "2024-01-01", "2024-01-03", "2024-01-04"]),
            "duplicate (symbol, timestamp) in 2 row(s): row 0",
        ),
        (
            lambda f: f.assign(high=[11.0, 10.0, 13.0, 14.0]),
            "high below max(open, close) in 1 row(s): row 1",
        ),
        (
            lambda f: f.assign(low=[9.0, 10.0, 11.0, 14.0]),
            "low above min(open, close) in 1 row(s): row 3",
        ),
        (
            lambda f: f.assign(open=[10.0, 0.0, 12.0, 13.0], low=[9.0, 0.0, 11.0, 12.0]),
            "non-positive price in 1 row(s): row 1",
        ),
        (
            lambda f: f.assign(volume=[1000.0, 1000.0, -5.0, 1000.0]),
            "negative volume in 1 row(s): row 2",
        ),
        (
            lambda f: f.assign(close=[10.5, np.nan, 12.5, 13.5]),
            "NaN or missing value in 1 row(s): row 1",
        ),
        (
            lambda f: f.assign(volume=[1000.0, np.inf, 1000.0, 1000.0]),
            "infinite value in 1 row(s): row 1",
        ),
        (lambda f: f.assign(open=["10", "ten", "12", "13"]), "non-numeric open in 1 row(s): row 1"),
        (lambda f: f.assign(symbol=["AAA", "", "AAA", "AAA"]), "empty symbol in 1 row(s): row 1"),
    ],
    ids=[
        "missing-column",
        "bad-timestamp",
        "duplicate",
        "high-too-low",
        "low-too-high",
        "non-positive-price",
        "negative-volume",
        "nan",
        "inf",
        "non-numeric",
        "empty-symbol",
    ],
)
def test_each_malformed_case_is_rejected_with_a_message_naming_problem_and_row(mutate, expected):
    error = rejected(mutate(good_bars()))
    assert any(p.startswith(expected) for p in error.problems), error.problems
    assert "nothing was written" in str(error)


def test_every_problem_is_reported_at_once():
    frame = good_bars().assign(
        volume=[-1.0, 1000.0, 1000.0, 1000.0], close=[10.5, np.nan, 12.5, 13.5]
    )
    assert len(rejected(frame).problems) == 2


def test_empty_input_is_rejected():
    assert rejected(good_bars().iloc[0:0]).problems == ["no rows"]


def test_same_timestamp_on_two_symbols_is_not_a_duplicate():
    frame = pd.concat([good_bars(symbol="AAA"), good_bars(symbol="BBB")], ignore_index=True)
    assert len(validate_bars(frame)) == 8


@st.composite
def ohlc_rows(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    prices = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
    rows = []
    for _ in range(n):
        open_, close = draw(prices), draw(prices)
        high = max(open_, close) * (1 + draw(st.floats(0, 0.1)))
        low = min(open_, close) * (1 - draw(st.floats(0, 0.1)))
        rows.append((open_, high, low, close, draw(st.floats(0, 1e9))))
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"])
    frame.insert(0, "ts", pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC"))
    frame.insert(0, "symbol", "X")
    return frame


@settings(max_examples=60, deadline=None)
@given(ohlc_rows())
def test_any_consistent_ohlc_passes_unchanged(frame):
    clean = validate_bars(frame)
    pd.testing.assert_frame_equal(clean, frame.reset_index(drop=True), check_dtype=False)


@settings(max_examples=60, deadline=None)
@given(ohlc_rows(), st.data())
def test_pushing_high_below_the_body_is_always_caught(frame, data):
    i = data.draw(st.integers(0, len(frame) - 1))
    frame.loc[i, "high"] = max(frame.loc[i, "open"], frame.loc[i, "close"]) * 0.9
    error = rejected(frame)
    assert any("high below max(open, close)" in p and f"row {i}" in p for p in error.problems)
