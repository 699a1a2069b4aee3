"""The one validator: each malformed case is named, with its rows; good bars pass."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.data.validation import BarValidationError, ImportRules, validate_bars


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


def test_timestamps_with_an_offset_are_converted_to_utc():
    frame = good_bars(2)
    frame["ts"] = ["2024-01-01T09:30:00-05:00", "2024-01-02T09:30:00-05:00"]
    assert list(validate_bars(frame)["ts"]) == [
        pd.Timestamp("2024-01-01 14:30", tz="UTC"),
        pd.Timestamp("2024-01-02 14:30", tz="UTC"),
    ]


def test_naive_timestamps_are_taken_as_utc():
    frame = good_bars(2)
    frame["ts"] = ["2024-01-01 14:30:00", "2024-01-02 14:30:00"]
    assert validate_bars(frame)["ts"].iloc[0] == pd.Timestamp("2024-01-01 14:30", tz="UTC")


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


# Symbols -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "symbol", ["NA", "NULL", "NAN", "N/A", "BRK.B", "BF-B", "EUR/USD", "ES=F", "^GSPC", "M&M"]
)
def test_symbols_of_the_documented_form_are_accepted_as_written(symbol):
    assert set(validate_bars(good_bars(symbol=symbol))["symbol"]) == {symbol}


@pytest.mark.parametrize("symbol", ["aapl", "A B", "A" * 33, "-X", "AB$", "ÄPFEL"])
def test_symbols_outside_the_documented_form_are_refused_by_row(symbol):
    frame = good_bars()
    frame.loc[2, "symbol"] = symbol
    assert rejected(frame).problems == [
        "symbol outside the allowed form (1-32 of A-Z 0-9 . - _ / = ^ &, starting with a "
        f"letter, a digit or ^) in 1 row(s): row 2 ({symbol!r})"
    ]


def test_a_missing_symbol_is_empty_not_the_text_nan():
    frame = good_bars().astype({"symbol": object})
    frame.loc[1, "symbol"] = None
    assert rejected(frame).problems == ["empty symbol in 1 row(s): row 1"]


# Timestamp formats -------------------------------------------------------------------------


def with_ts(values, **columns) -> pd.DataFrame:
    frame = good_bars(len(values))
    frame["ts"] = values
    return frame.assign(**columns)


def test_one_format_is_inferred_from_the_whole_column():
    # 13/04 can only be day-first, so 03/04 is 3 April too, not 4 March.
    clean = validate_bars(with_ts(["03/04/2020", "13/04/2020", "14/04/2020", "15/04/2020"]))
    assert clean["ts"].dt.strftime("%Y-%m-%d").tolist() == [
        "2020-04-03",
        "2020-04-13",
        "2020-04-14",
        "2020-04-15",
    ]


def test_day_first_and_month_first_both_fitting_is_refused_unless_a_format_is_given():
    frame = with_ts(["03/04/2020", "04/04/2020", "05/04/2020", "06/04/2020"])
    assert rejected(frame).problems == [
        "ambiguous timestamps: every row reads as %d/%m/%Y and as %m/%d/%Y, e.g. row 0 "
        "('03/04/2020') is 03 April 2020 (%d/%m/%Y) or 04 March 2020 (%m/%d/%Y): "
        "pass --date-format to say which"
    ]
    clean = validate_bars(frame, rules=ImportRules(date_format="%m/%d/%Y", now=NOW))
    assert clean["ts"].iloc[0] == pd.Timestamp("2020-03-04", tz="UTC")


def test_rows_not_in_the_format_of_the_others_are_named():
    frame = with_ts(["2020-04-01", "2020-04-02", "03/04/2020", "2020-04-06"])
    assert rejected(frame).problems == [
        "unparseable timestamp in 1 row(s): row 2 ('03/04/2020') (the other rows read as "
        "ISO 8601; one format per file)"
    ]


def test_rows_not_in_a_given_format_are_named():
    frame = with_ts(["01.04.2020", "02.04.2020", "2020-04-03", "06.04.2020"])
    with pytest.raises(BarValidationError) as info:
        validate_bars(frame, rules=ImportRules(date_format="%d.%m.%Y", now=NOW))
    assert info.value.problems == [
        "timestamp not in --date-format '%d.%m.%Y' in 1 row(s): row 2 ('2020-04-03')"
    ]


@pytest.mark.parametrize(
    ("values", "first"),
    [
        (["2020-04-01 09:30", "2020-04-01 09:31"], "2020-04-01 09:30"),
        (["2020-04-01T09:30:00Z", "2020-04-01T09:31:00Z"], "2020-04-01 09:30"),
        (["20200401", "20200402"], "2020-04-01 00:00"),
        (["2020/04/01", "2020/04/02"], "2020-04-01 00:00"),
        (["13.04.2020 17:30", "14.04.2020 17:30"], "2020-04-13 17:30"),
        (["04-13-2020", "04-14-2020"], "2020-04-13 00:00"),
        (["13/04/2020 17:30:00+02:00", "14/04/2020 17:30:00+02:00"], "2020-04-13 15:30"),
    ],
)
def test_each_supported_spelling_reads_as_expected(values, first):
    assert validate_bars(with_ts(values))["ts"].iloc[0] == pd.Timestamp(first, tz="UTC")


def test_numeric_timestamps_need_a_unit():
    frame = with_ts(["1709251200", "1709337600"])
    assert rejected(frame).problems == [
        "timestamps are numbers (e.g. row 0 ('1709251200')): pass --timestamp-unit s, ms, us "
        "or ns to say what they count (seconds, milli-, micro- or nanoseconds since 1970)"
    ]
    clean = validate_bars(frame, rules=ImportRules(timestamp_unit="s", now=NOW))
    assert clean["ts"].tolist() == [
        pd.Timestamp("2024-03-01", tz="UTC"),
        pd.Timestamp("2024-03-02", tz="UTC"),
    ]


def test_integer_columns_need_a_unit_and_nanoseconds_stay_exact():
    frame = with_ts(pd.Series([1709251200123456789, 1709337600123456789], dtype="int64"))
    assert rejected(frame).problems[0].startswith("timestamps are numbers (e.g. row 0 (")
    clean = validate_bars(frame, rules=ImportRules(timestamp_unit="ns", now=NOW))
    assert clean["ts"].iloc[0] == pd.Timestamp(1709251200123456789, tz="UTC")


def test_a_unit_that_lands_before_1971_is_questioned():
    frame = with_ts(pd.Series([1709251200, 1709337600]))
    with pytest.raises(BarValidationError) as info:
        validate_bars(frame, rules=ImportRules(timestamp_unit="ms", now=NOW))
    assert info.value.problems == [
        "timestamp before 1971 with --timestamp-unit ms in 2 row(s), is the unit right?: "
        "row 0 (1709251200); row 1 (1709337600)"
    ]


def test_mixed_offsets_are_refused_naming_each_offset_unless_allowed():
    frame = with_ts(
        [
            "2024-03-28T17:30:00+01:00",
            "2024-03-29T17:30:00+01:00",
            "2024-04-01T17:30:00+02:00",
            "2024-04-02T17:30:00+02:00",
        ]
    )
    assert rejected(frame).problems == [
        "timestamps carry 2 different UTC offsets (+01:00 on 2 row(s), first row 0; "
        "+02:00 on 2 row(s), first row 2): one file takes one offset; pass "
        "--allow-mixed-offsets for local exchange time across a daylight saving change"
    ]
    clean = validate_bars(frame, rules=ImportRules(allow_mixed_offsets=True, now=NOW))
    assert clean["ts"].dt.hour.tolist() == [16, 16, 15, 15]


def test_z_and_plus_zero_are_one_offset():
    frame = with_ts(["2024-03-01T10:00:00Z", "2024-03-04T10:00:00+00:00"])
    assert len(validate_bars(frame)) == 2


def test_naive_and_offset_rows_never_mix():
    frame = with_ts(["2024-03-01T10:00:00+01:00", "2024-03-04T10:00:00"])
    assert rejected(frame).problems == [
        "timestamps mix rows with and without a UTC offset: 1 row(s) without (row 1 "
        "('2024-03-04T10:00:00')), 1 with (e.g. row 0 ('2024-03-01T10:00:00+01:00')); "
        "one file takes one form"
    ]


# Import rules: order, future, cadence, jumps -----------------------------------------------

NOW = pd.Timestamp("2025-01-01 12:00", tz="UTC")
RULES = ImportRules(now=NOW)


def refused_by_rules(frame: pd.DataFrame, rules: ImportRules = RULES) -> list[str]:
    with pytest.raises(BarValidationError) as info:
        validate_bars(frame, rules=rules)
    return info.value.problems


def daily(days: list[str], symbol: str = "AAA", close: list[float] | None = None) -> pd.DataFrame:
    n = len(days)
    close = close or [10.0] * n
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": days,
            "open": close,
            "high": [c * 1.01 for c in close],
            "low": [c * 0.99 for c in close],
            "close": close,
            "volume": 100.0,
        }
    )


WEEKDAYS = [d.strftime("%Y-%m-%d") for d in pd.bdate_range("2024-03-01", periods=12)]


def test_rows_out_of_order_are_refused_by_line_unless_sorting_is_asked_for():
    days = [WEEKDAYS[0], WEEKDAYS[2], WEEKDAYS[1], *WEEKDAYS[3:6]]
    assert refused_by_rules(daily(days)) == [
        "timestamps out of order (earlier than a row above for the same symbol) in 1 row(s): "
        "row 2 (symbol=AAA, ts=2024-03-04 00:00:00+00:00); pass --sort to accept unsorted input"
    ]
    clean = validate_bars(daily(days), rules=ImportRules(allow_unsorted=True, now=NOW))
    assert clean["ts"].is_monotonic_increasing


def test_interleaved_symbols_in_time_order_are_in_order():
    frame = pd.concat([daily(WEEKDAYS[:6], "AAA"), daily(WEEKDAYS[:6], "BBB")])
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    assert len(validate_bars(frame, rules=RULES)) == 12


def test_timestamps_beyond_now_plus_the_tolerance_are_refused():
    frame = daily(["2024-12-30", "2024-12-31", "2025-01-01", "2025-01-02"])
    frame.loc[2, "ts"] = "2025-01-01 12:10"  # within the 15 minutes
    assert refused_by_rules(frame, ImportRules(now=NOW, allow_off_cadence=True)) == [
        "timestamp in the future (after 2025-01-01 12:15 UTC, now plus 15min) in 1 row(s): "
        "row 3 (symbol=AAA, ts=2025-01-02 00:00:00+00:00)"
    ]
    tolerant = ImportRules(now=NOW, allow_off_cadence=True, future_tolerance=pd.Timedelta("1d"))
    assert len(validate_bars(frame, rules=tolerant)) == 4


def test_daily_bars_with_weekends_holidays_and_a_dst_shift_are_on_cadence():
    # New York closes: 21:00 UTC in winter, 20:00 UTC after the switch; Good Friday missing.
    days = pd.bdate_range("2024-03-04", "2024-04-05").drop(pd.Timestamp("2024-03-29"))
    stamps = [d + pd.Timedelta(hours=21 if d < pd.Timestamp("2024-03-11") else 20) for d in days]
    frame = daily([s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in stamps])
    assert len(validate_bars(frame, rules=RULES)) == len(days)


def test_an_intraday_bar_among_daily_bars_is_off_cadence():
    days = [f"{d} 00:00" for d in WEEKDAYS[:8]]
    frame = daily([*days[:3], "2024-03-05 10:00", *days[3:]])
    frame.index = range(2, 2 + len(frame))
    assert refused_by_rules(frame) == [
        "AAA: bar off its daily cadence in 1 row(s): row 5 (ts=2024-03-05 10:00:00+00:00); "
        "pass --allow-off-cadence to accept them"
    ]
    assert len(validate_bars(frame, rules=ImportRules(now=NOW, allow_off_cadence=True))) == 9


def test_one_day_stamped_under_two_offsets_is_two_bars_in_one_slot():
    stamps = [f"{d}T00:00:00+00:00" for d in WEEKDAYS[:6]]
    stamps.insert(3, f"{WEEKDAYS[2]}T00:00:00-04:00")
    rules = ImportRules(now=NOW, allow_mixed_offsets=True, allow_unsorted=True)
    assert refused_by_rules(daily(stamps), rules) == [
        "AAA: more than one bar in one daily slot in 2 row(s): row 2 (ts=2024-03-05 "
        "00:00:00+00:00); row 3 (ts=2024-03-05 04:00:00+00:00)"
    ]


def test_minute_bars_off_the_minute_grid_are_refused():
    stamps = pd.date_range("2024-03-01 14:30", periods=8, freq="min")
    text = [s.strftime("%Y-%m-%d %H:%M:%S") for s in stamps]
    text[4] = "2024-03-01 14:34:30"
    assert refused_by_rules(daily(text)) == [
        "AAA: bar off its 1min cadence in 1 row(s): row 4 (ts=2024-03-01 14:34:30+00:00); "
        "pass --allow-off-cadence to accept them"
    ]


def test_monthly_bars_follow_the_calendar_and_only_crowding_is_refused():
    months = [d.strftime("%Y-%m-%d") for d in pd.date_range("2022-01-31", periods=24, freq="ME")]
    assert len(validate_bars(daily(months), rules=RULES)) == 24
    crowded = sorted([*months, "2022-05-03"])
    assert refused_by_rules(daily(crowded)) == [
        "AAA: bars closer than half its cadence (30.5d) in 1 row(s): row 4 (ts=2022-05-03 "
        "00:00:00+00:00); pass --allow-off-cadence to accept them"
    ]


def test_a_close_jumping_beyond_the_limit_is_refused_both_ways():
    closes = [10.0, 10.5, 1050.0, 1040.0, 10.2, 10.1]
    assert refused_by_rules(daily(WEEKDAYS[:6], close=closes)) == [
        "close moves more than 10x from the bar before in 2 row(s): row 2 (AAA 2024-03-05 "
        "00:00:00+00:00: close 10.5 -> 1050); row 4 (AAA 2024-03-07 00:00:00+00:00: close "
        "1040 -> 10.2); pass --max-jump to accept larger moves"
    ]
    assert (
        len(validate_bars(daily(WEEKDAYS[:6], close=closes), rules=ImportRules(max_jump=200))) == 6
    )


def test_a_bar_whose_high_is_beyond_the_limit_of_its_low_is_refused():
    frame = daily(WEEKDAYS[:5])
    frame.loc[3, "high"] = 150.0
    assert refused_by_rules(frame) == [
        "high more than 10x low in 1 row(s): row 3 (symbol=AAA, ts=2024-03-06 00:00:00+00:00, "
        "high=150.0, low=9.9); pass --max-jump to accept wider bars"
    ]


def test_jumps_are_measured_within_a_symbol():
    frame = pd.concat(
        [daily(WEEKDAYS[:5], "AAA"), daily(WEEKDAYS[:5], "BBB", close=[900.0] * 5)],
        ignore_index=True,
    )
    assert len(validate_bars(frame, rules=RULES)) == 10


def test_a_bad_row_is_reported_once_not_echoed_as_a_jump():
    frame = daily(WEEKDAYS[:5])
    frame.loc[2, "close"] = np.nan
    assert refused_by_rules(frame) == [
        "NaN or missing value in 1 row(s): row 2 (open=10.0, high=10.1, low=9.9, close=nan, "
        "volume=100.0)"
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timestamp_unit": "h"}, "timestamp unit must be one of s, ms, us, ns, not 'h'"),
        ({"max_jump": 1.0}, "max jump must be a ratio above 1, not 1.0"),
        ({"future_tolerance": pd.Timedelta("-1min")}, "future tolerance must be zero or more"),
        ({"date_format": "dd/mm/yyyy"}, "date format 'dd/mm/yyyy' has no % directive"),
    ],
)
def test_rules_themselves_are_checked(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ImportRules(**options)


def test_text_pandas_would_read_as_missing_is_an_unparseable_timestamp():
    # Found by the importer fuzz: pandas turns "nan" and "NaT" into NaT without complaint.
    assert rejected(with_ts(["nan", "2024-01-02", "NaT", "2024-01-04"])).problems == [
        "unparseable timestamp in 2 row(s): row 0 ('nan'); row 2 ('NaT') (the other rows read "
        "as ISO 8601; one format per file)"
    ]
