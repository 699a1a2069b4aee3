"""The importer on hostile input: every case is refused with a message naming its lines, or
accepted explicitly, never a traceback (issue 9, point 3).

Explicit cases go through the CLI (exit code 3 for refused input, nothing written); the
generated ones go through ``read_bar_file``, the same path without the database.
"""

import io
import re
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.data.sources import read_bar_file
from alphaplus_mlops.data.validation import SYMBOL_PATTERN, BarValidationError, ImportRules
from alphaplus_mlops.store.bars import count_bars, load_bars

HEADER = "date,open,high,low,close,volume\n"


def csv_rows(days: list[str], closes: list[float] | None = None, sep: str = ",") -> str:
    closes = closes or [10.0 + i * 0.1 for i in range(len(days))]
    lines = [
        sep.join([d, f"{c:g}", f"{c * 1.01:g}", f"{c * 0.99:g}", f"{c:g}", "100"])
        for d, c in zip(days, closes, strict=True)
    ]
    return sep.join(HEADER.strip().split(",")) + "\n" + "\n".join(lines) + "\n"


WEEKDAYS = [d.strftime("%Y-%m-%d") for d in pd.bdate_range("2024-03-01", periods=8)]
GOOD = csv_rows(WEEKDAYS)
EPOCHS = [str(int(pd.Timestamp(d, tz="UTC").timestamp())) for d in WEEKDAYS]


def parquet_bytes(ts) -> bytes:
    frame = pd.DataFrame(
        {"date": ts, "open": 10.0, "high": 10.5, "low": 9.5, "close": 10.0, "volume": 1.0}
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


EPOCH_PARQUET = parquet_bytes(pd.Series([int(e) for e in EPOCHS], dtype="int64"))

# name: (file name, content, extra CLI options, expected: exit code and text in the output)
CASES = {
    "day-month-ambiguous": (
        "a.csv",
        csv_rows(["03/04/2020", "06/04/2020", "07/04/2020"]),
        [],
        (3, "ambiguous timestamps: every row reads as %d/%m/%Y and as %m/%d/%Y, e.g. line 2"),
    ),
    "day-month-resolved-by-flag": (
        "a.csv",
        csv_rows(["03/04/2020", "06/04/2020", "07/04/2020"]),
        ["--date-format", "%d/%m/%Y"],
        (0, "3 bars, 3 new"),
    ),
    "day-first-inferred-from-the-column": (
        "a.csv",
        csv_rows(["03/04/2020", "13/04/2020", "14/04/2020"]),
        [],
        (0, "3 bars, 3 new"),
    ),
    "one-row-in-another-format": (
        "a.csv",
        csv_rows(["2020-04-01", "2020-04-02", "03/04/2020"]),
        [],
        (3, "unparseable timestamp in 1 row(s): line 4 ('03/04/2020')"),
    ),
    "csv-epochs-without-unit": (
        "a.csv",
        csv_rows(EPOCHS),
        [],
        (3, "timestamps are numbers (e.g. line 2 ('1709251200')): pass --timestamp-unit"),
    ),
    "csv-epochs-with-unit": ("a.csv", csv_rows(EPOCHS), ["--timestamp-unit", "s"], (0, "8 new")),
    "parquet-epochs-without-unit": (
        "a.parquet",
        EPOCH_PARQUET,
        [],
        (3, "timestamps are numbers (e.g. row 0 (1709251200))"),
    ),
    "parquet-epochs-with-the-wrong-unit": (
        "a.parquet",
        EPOCH_PARQUET,
        ["--timestamp-unit", "ms"],
        (3, "timestamp before 1971 with --timestamp-unit ms in 8 row(s), is the unit right?"),
    ),
    "parquet-epochs-with-unit": (
        "a.parquet",
        EPOCH_PARQUET,
        ["--timestamp-unit", "s"],
        (0, "8 bars, 8 new"),
    ),
    "mixed-offsets": (
        "a.csv",
        csv_rows([f"{d}T17:30:00+01:00" for d in WEEKDAYS[:4]] + ["2024-03-07T17:30:00+02:00"]),
        [],
        (3, "timestamps carry 2 different UTC offsets (+01:00 on 4 row(s), first line 2; "),
    ),
    "one-day-under-two-offsets": (
        "a.csv",
        csv_rows([f"{d}T00:00:00+00:00" for d in WEEKDAYS[:5]] + [f"{WEEKDAYS[4]}T00:00:00-05:00"]),
        ["--allow-mixed-offsets"],
        (3, "more than one bar in one daily slot in 2 row(s): line 6 "),
    ),
    "unsorted": (
        "a.csv",
        csv_rows([WEEKDAYS[1], WEEKDAYS[0], *WEEKDAYS[2:]]),
        [],
        (3, "timestamps out of order (earlier than a row above for the same symbol) in 1 row(s): "),
    ),
    "unsorted-accepted-with-sort": (
        "a.csv",
        csv_rows([WEEKDAYS[1], WEEKDAYS[0], *WEEKDAYS[2:]]),
        ["--sort"],
        (0, "8 bars, 8 new"),
    ),
    "future": (
        "a.csv",
        csv_rows([*WEEKDAYS[:4], "2099-01-02"]),
        ["--allow-off-cadence"],
        (3, "timestamp in the future (after "),
    ),
    "off-cadence": (
        "a.csv",
        csv_rows([f"{d} 00:00" for d in WEEKDAYS[:5]] + [f"{WEEKDAYS[4]} 10:00"]),
        [],
        (3, "bar off its daily cadence in 1 row(s): line 7 "),
    ),
    "off-cadence-accepted-with-flag": (
        "a.csv",
        csv_rows([f"{d} 00:00" for d in WEEKDAYS[:5]] + [f"{WEEKDAYS[4]} 10:00"]),
        ["--allow-off-cadence"],
        (0, "6 bars, 6 new"),
    ),
    "100x-jump": (
        "a.csv",
        csv_rows(WEEKDAYS[:4], [10.0, 10.1, 1010.0, 1011.0]),
        [],
        (3, "close moves more than 10x from the bar before in 1 row(s): line 4 "),
    ),
    "100x-jump-accepted-with-max-jump": (
        "a.csv",
        csv_rows(WEEKDAYS[:4], [10.0, 10.1, 1010.0, 1011.0]),
        ["--max-jump", "200"],
        (0, "4 bars, 4 new"),
    ),
    "empty-file": ("a.csv", "", [], (3, "the file is empty")),
    "blank-lines-only": ("a.csv", "\n\n  \n", [], (3, "the file is empty")),
    "header-only": ("a.csv", HEADER, [], (3, "the file has a header but no rows")),
    "latin-1": (
        "a.csv",
        (
            HEADER.strip() + ",note\n2024-03-01,10,11,9,10,5,ok\n2024-03-04,10,11,9,10,5,Société\n"
        ).encode("latin-1"),
        [],
        (3, "line 3 is not valid utf-8 (byte 0xe9): pass --encoding"),
    ),
    "latin-1-with-encoding": (
        "a.csv",
        (
            HEADER.strip() + ",note\n2024-03-01,10,11,9,10,5,ok\n2024-03-04,10,11,9,10,5,Société\n"
        ).encode("latin-1"),
        ["--encoding", "latin-1"],
        (0, "2 bars, 2 new"),
    ),
    "semicolons-and-decimal-commas": (
        "a.csv",
        "Date;Open;High;Low;Close;Volume\n01.03.2024;10,5;11,25;9,75;10,5;1000\n"
        "04.03.2024;10,5;11,5;10;11;1200\n",
        [],
        (0, "2 bars, 2 new"),
    ),
    "decimal-commas-with-thousands-points": (
        "a.csv",
        "Date;Open;High;Low;Close;Volume\n01.03.2024;1.010,5;1.011;1.009;1.010;1000\n",
        [],
        (3, "Open: a '.' in 1 number(s) of a file with decimal commas"),
    ),
    "ragged-rows": (
        "a.csv",
        GOOD + "2024-03-13,10,11,9,10\n2024-03-14,10,11,9,10,5,7\n",
        [],
        (3, "2 row(s) do not have the header's 6 fields (delimiter ',', found in the header; "),
    ),
    "broken-quotes": ("a.csv", HEADER + '"2024-03-01,10,11,9,10,5\n', [], (3, "line 2: ")),
    "nul-byte": ("a.csv", HEADER + "2024-03-01,10\x00,11,9,10,5\n", [], (3, "NUL byte")),
    "not-parquet": ("a.parquet", b"PAR1 this is not parquet", [], (3, "not a readable Parquet")),
    "lower-case-symbol": (
        "a.csv",
        "symbol," + HEADER + "aapl,2024-03-01,10,11,9,10,5\n",
        [],
        (3, "symbol outside the allowed form (1-32 of A-Z 0-9 . - _ / = ^ &, starting with a "),
    ),
    "duplicate-bar": (
        "a.csv",
        HEADER + "2024-03-01,10,11,9,10,5\n2024-03-01,10,11,9,10,6\n",
        [],
        (3, "duplicate (symbol, timestamp) in 2 row(s): line 2 "),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_case_is_refused_with_exit_code_3_or_accepted_explicitly(
    database, database_url, tmp_path, case
):
    name, content, options, (code, expected) = CASES[case]
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    has_symbols = isinstance(content, str) and content.startswith("symbol,")
    symbol = [] if has_symbols else ["--symbol", "FZ" + re.sub(r"[^A-Z0-9]", "", case.upper())[:20]]
    before = count_bars(database)
    result = CliRunner().invoke(
        main,
        ["data", "import", str(path), *symbol, *options],
        env={"ALPHAPLUS_DATABASE_URL": database_url},
    )
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert expected in result.output, result.output
    if code:
        assert "rejected, nothing was written" in result.output
        assert count_bars(database) == before


def test_na_and_null_are_tickers_and_import(database, database_url, tmp_path):
    path = tmp_path / "symbols.csv"
    path.write_text(
        "symbol," + HEADER + "NA,2024-03-01,10,11,9,10,5\nNULL,2024-03-01,20,21,19,20,5\n"
    )
    result = CliRunner().invoke(
        main, ["data", "import", str(path)], env={"ALPHAPLUS_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    stored = load_bars(database, ["NA", "NULL"])
    assert stored[["symbol", "close"]].values.tolist() == [["NA", 10.0], ["NULL", 20.0]]


def test_decimal_commas_are_read_as_decimals(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text(
        "Date;Open;High;Low;Close;Volume\n01.03.2024;10,5;11,25;9,75;10,5;1000\n"
        "04.03.2024;10,5;11,5;10;11;1200\n"
    )
    bars = read_bar_file(path, "EU")
    assert bars[["open", "high", "low", "close"]].values.tolist() == [
        [10.5, 11.25, 9.75, 10.5],
        [10.5, 11.5, 10.0, 11.0],
    ]
    assert bars["ts"].tolist() == [
        pd.Timestamp("2024-03-01", tz="UTC"),
        pd.Timestamp("2024-03-04", tz="UTC"),
    ]


def test_a_missing_file_is_refused_with_exit_code_3(database_url, tmp_path):
    result = CliRunner().invoke(
        main,
        ["data", "import", str(tmp_path / "nowhere.csv"), "--symbol", "X"],
        env={"ALPHAPLUS_DATABASE_URL": database_url},
    )
    assert result.exit_code == 3
    assert f"no such file: {tmp_path / 'nowhere.csv'}" in result.output


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--max-jump", "0.5"], "max jump must be a ratio above 1, not 0.5"),
        (["--future-tolerance", "soon"], "Error"),
        (["--timestamp-unit", "h"], "'h' is not one of 's', 'ms', 'us', 'ns'"),
        (["--delimiter", ";;"], "one character (or 'tab')"),
    ],
)
def test_bad_options_are_usage_errors_with_exit_code_2(tmp_path, options, expected):
    path = tmp_path / "bars.csv"
    path.write_text(GOOD)
    result = CliRunner().invoke(main, ["data", "import", str(path), "--symbol", "X", *options])
    assert result.exit_code == 2, result.output
    assert expected in result.output


# Generated input -------------------------------------------------------------------------


def outcome(
    path: Path, symbol: str | None = "FUZZ", **options
) -> pd.DataFrame | BarValidationError:
    """The bars, or the refusal; anything else raised fails the test with its traceback."""
    try:
        return read_bar_file(path, symbol, **options)
    except BarValidationError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        assert str(exc).startswith(f"{path} rejected, nothing was written:\n  - ")
        return exc


def assert_sound(bars: pd.DataFrame, rows: int) -> None:
    """An accepted file: every data row is one bar, in canonical, sorted, consistent form."""
    assert len(bars) == rows
    assert str(bars["ts"].dt.tz) == "UTC"
    assert bars.groupby("symbol")["ts"].apply(lambda s: s.is_monotonic_increasing).all()
    assert bars["symbol"].str.fullmatch(SYMBOL_PATTERN).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars[["open", "high", "low", "close"]] > 0).all().all()


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["bars.csv", "bars.parquet"]))
def test_arbitrary_bytes_never_raise_anything_but_a_refusal(tmp_path_factory, data, name):
    path = tmp_path_factory.mktemp("bytes") / name
    path.write_bytes(data)
    assert isinstance(outcome(path), BarValidationError | pd.DataFrame)


DATE_SPELLINGS = ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d", "%Y-%m-%dT%H:%M:%S"]
FIELD_NOISE = ["", "NA", "NULL", "nan", "inf", "-1", "1e400", "x", " 7 ", "1,5", '"', "é", "\t"]


@st.composite
def mutated_csv(draw) -> tuple[str, int, bool]:
    """A CSV of daily bars with some of point 3's hazards: text, data rows, symbol column."""
    n = draw(st.integers(1, 12))
    start = draw(st.dates(date(1995, 1, 1), date(2023, 1, 1)))
    days = [start + timedelta(days=i) for i in range(n)]
    spelling = draw(st.sampled_from(DATE_SPELLINGS))
    offset = draw(st.sampled_from(["", "Z", "+01:00", "-05:00"]))
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    symbols = draw(st.sampled_from([None, ["NA"], ["NULL", "BRK.B"], ["aapl"], [""]]))
    header = (["symbol"] if symbols else []) + ["Date", "Open", "High", "Low", "Close", "Volume"]
    lines = []
    base = draw(st.floats(0.5, 5000, allow_nan=False))
    for i, day in enumerate(days):
        stamp = day.strftime(spelling) + (offset if "T" in spelling else "")
        close = base * draw(st.floats(0.8, 1.25, allow_nan=False))
        fields = [stamp, f"{close:g}", f"{close * 1.02:g}", f"{close * 0.98:g}", f"{close:g}", "10"]
        if symbols:
            fields.insert(0, symbols[i % len(symbols)])
        lines.append(fields)
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.integers(0, n - 1))
        hazard = draw(
            st.sampled_from(["noise", "drop", "extra", "swap", "duplicate", "offset", "jump"])
        )
        fields = lines[row]
        if hazard == "noise":
            fields[draw(st.integers(0, len(fields) - 1))] = draw(st.sampled_from(FIELD_NOISE))
        elif hazard == "drop":
            fields.pop()
        elif hazard == "extra":
            fields.append("1")
        elif hazard == "swap" and n > 1:
            other = draw(st.integers(0, n - 1))
            lines[row], lines[other] = lines[other], lines[row]
        elif hazard == "duplicate":
            lines.insert(row, list(fields))
        elif hazard == "offset":
            fields[len(header) - 6] += draw(st.sampled_from(["+02:00", "Z", " 10:00"]))
        elif hazard == "jump":
            fields[len(header) - 2] = str(float(fields[len(header) - 2]) * 150)
    blank = draw(st.booleans())
    text = (
        sep.join(header)
        + "\n"
        + "\n".join(sep.join(f) for f in lines)
        + ("\n\n" if blank else "\n")
    )
    return text, len(lines), bool(symbols)


@FUZZ
@given(mutated_csv(), st.sampled_from(["utf-8", "latin-1"]))
def test_mutated_csv_files_are_refused_by_name_or_fully_accepted(tmp_path_factory, case, encoding):
    text, data_rows, has_symbols = case
    path = tmp_path_factory.mktemp("csv") / "bars.csv"
    path.write_bytes(text.encode(encoding))
    result = outcome(path, None if has_symbols else "FUZZ")
    if isinstance(result, pd.DataFrame):
        assert_sound(result, data_rows)


@FUZZ
@given(st.lists(st.dates(date(1990, 1, 1), date(2030, 1, 1)), min_size=1, max_size=25, unique=True))
def test_day_first_dates_are_read_right_or_refused_as_ambiguous(tmp_path_factory, days):
    days = sorted(days)
    path = tmp_path_factory.mktemp("dates") / "bars.csv"
    path.write_text(csv_rows([d.strftime("%d/%m/%Y") for d in days]))
    result = outcome(path, rules=ImportRules(allow_off_cadence=True))
    expected = [pd.Timestamp(d, tz="UTC") for d in days]
    future = any(pd.Timestamp(d, tz="UTC") > pd.Timestamp.now(tz="UTC") for d in days)
    readable_both_ways = all(d.day <= 12 for d in days) and any(d.day != d.month for d in days)
    if future:
        assert isinstance(result, BarValidationError)
    elif readable_both_ways:
        assert isinstance(result, BarValidationError)
        assert result.problems[0].startswith("ambiguous timestamps: every row reads as %d/%m/%Y")
    else:
        assert isinstance(result, pd.DataFrame), result
        assert result["ts"].tolist() == expected


TS_KINDS = ["int_seconds", "float_seconds", "naive", "aware", "strings", "mixed_objects", "bool"]


@st.composite
def parquet_case(draw) -> tuple[pd.DataFrame, str]:
    n = draw(st.integers(1, 10))
    kind = draw(st.sampled_from(TS_KINDS))
    base = pd.date_range("2021-01-04", periods=n, freq="B", tz="UTC")
    ts = {
        "int_seconds": pd.Series(base.asi8 // 10**9),
        "float_seconds": pd.Series(base.asi8 / 1e9),
        "naive": pd.Series(base.tz_localize(None)),
        "aware": pd.Series(base.tz_convert("Europe/Berlin")),
        "strings": pd.Series(base.strftime("%d/%m/%Y")),
        "mixed_objects": pd.Series([base[0], "2021-01-05", None, 3, 4.5][:n] + [None] * (n - 5)),
        "bool": pd.Series([True] * n),
    }[kind]
    symbol = draw(st.sampled_from([None, "NA", "NULL", "nan", "x y"]))
    frame = pd.DataFrame(
        {"ts": ts, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0, "volume": 5}
    )
    if symbol is not None:
        frame.insert(0, "symbol", [symbol] * (n - 1) + [draw(st.sampled_from([None, symbol]))])
    return frame, draw(st.sampled_from([None, "s", "ms", "ns"]))


@FUZZ
@given(parquet_case())
def test_parquet_timestamps_of_every_kind_are_refused_by_row_or_accepted(tmp_path_factory, case):
    frame, unit = case
    path = tmp_path_factory.mktemp("pq") / "bars.parquet"
    try:
        frame.to_parquet(path)
    except Exception:  # noqa: BLE001 - a frame pyarrow cannot write is no importer input
        return
    symbol = None if "symbol" in frame.columns else "FUZZ"
    rules = ImportRules(timestamp_unit=unit, allow_off_cadence=True)
    result = outcome(path, symbol, rules=rules)
    if isinstance(result, pd.DataFrame):
        assert_sound(result, len(frame))
        assert result["symbol"].iloc[0] in ("FUZZ", "NA", "NULL")
