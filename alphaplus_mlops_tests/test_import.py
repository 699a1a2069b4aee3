"""Importing bars from files and from the packaged sample into PostgreSQL."""

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.data.sources import load_packaged_sample, read_bar_file
from alphaplus_mlops.data.validation import BarValidationError
from alphaplus_mlops.store.bars import count_bars, load_bars, upsert_bars

GOOD_CSV = """Date,Open,High,Low,Close,Adj Close,Volume
2024-03-01,10.0,11.0,9.5,10.5,10.5,1000
2024-03-04,10.5,11.5,10.0,11.0,11.0,1200
2024-03-05,11.0,11.2,10.1,10.2,10.2,900
"""

MALFORMED = {
    "missing-column": (
        "Date,Open,High,Low,Close\n2024-03-01,10,11,9,10\n",
        "missing required column(s): volume",
    ),
    "bad-timestamp": (
        "date,open,high,low,close,volume\n2024-03-01,10,11,9,10,5\nyesterday,10,11,9,10,5\n",
        "unparseable timestamp in 1 row(s): line 3",
    ),
    "duplicate": (
        "date,open,high,low,close,volume\n2024-03-01,10,11,9,10,5\n2024-03-01,10,11,9,10,5\n",
        "duplicate (symbol, timestamp) in 2 row(s): line 2",
    ),
    "high-too-low": (
        "date,open,high,low,close,volume\n2024-03-01,10,9.9,9,10,5\n",
        "high below max(open, close) in 1 row(s): line 2",
    ),
    "low-too-high": (
        "date,open,high,low,close,volume\n2024-03-01,10,11,10.5,10.8,5\n",
        "low above min(open, close) in 1 row(s): line 2",
    ),
    "negative-price": (
        "date,open,high,low,close,volume\n2024-03-01,-1,11,-2,10,5\n",
        "non-positive price in 1 row(s): line 2",
    ),
    "negative-volume": (
        "date,open,high,low,close,volume\n2024-03-01,10,11,9,10,-5\n",
        "negative volume in 1 row(s): line 2",
    ),
    "nan": (
        "date,open,high,low,close,volume\n2024-03-01,10,11,9,,5\n",
        "NaN or missing value in 1 row(s): line 2",
    ),
    "inf": (
        "date,open,high,low,close,volume\n2024-03-01,10,inf,9,10,5\n",
        "infinite value in 1 row(s): line 2",
    ),
}


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_packaged_sample_is_accepted_and_stored(database):
    sample = load_packaged_sample()
    assert set(sample["symbol"]) == {"SP500", "NASDAQ"}
    assert len(sample) == 2 * 5031
    result = upsert_bars(database, sample, source="arch-sample")
    assert result.received == 10062
    stored = load_bars(database, ["SP500"])
    assert len(stored) == 5031
    assert stored["ts"].iloc[0] == pd.Timestamp("1999-01-04", tz="UTC")


def test_importing_the_same_file_twice_changes_nothing(database, tmp_path):
    path = write(tmp_path, GOOD_CSV)
    first = upsert_bars(database, read_bar_file(path, "IDEMP"), source="file")
    stored_first = load_bars(database, ["IDEMP"])
    second = upsert_bars(database, read_bar_file(path, "IDEMP"), source="file")
    assert (first.inserted, first.updated) == (3, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 3)
    pd.testing.assert_frame_equal(stored_first, load_bars(database, ["IDEMP"]))


def test_a_corrected_bar_is_updated_in_place(database, tmp_path):
    upsert_bars(database, read_bar_file(write(tmp_path, GOOD_CSV), "FIX"), source="file")
    corrected = GOOD_CSV.replace("2024-03-05,11.0,11.2,10.1,10.2", "2024-03-05,11.0,11.3,10.1,10.3")
    result = upsert_bars(
        database, read_bar_file(write(tmp_path, corrected, "v2.csv"), "FIX"), source="file"
    )
    assert (result.inserted, result.updated) == (0, 1)
    assert load_bars(database, ["FIX"])["close"].iloc[-1] == 10.3


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_each_malformed_file_is_rejected_by_name_and_writes_nothing(
    database, database_url, tmp_path, case
):
    text, expected = MALFORMED[case]
    path = write(tmp_path, text)
    before = count_bars(database)
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["data", "import", str(path), "--symbol", "BAD"],
        env={"ALPHAPLUS_DATABASE_URL": database_url},
    )
    assert result.exit_code != 0
    assert expected in result.output, result.output
    assert count_bars(database) == before


def test_cli_import_reports_counts_and_is_idempotent(database_url, tmp_path):
    path = write(tmp_path, GOOD_CSV)
    env = {"ALPHAPLUS_DATABASE_URL": database_url}
    runner = CliRunner()
    first = runner.invoke(main, ["data", "import", str(path), "--symbol", "CLI"], env=env)
    again = runner.invoke(main, ["data", "import", str(path), "--symbol", "CLI"], env=env)
    assert first.exit_code == 0, first.output
    assert "3 bars, 3 new, 0 updated, 0 unchanged" in first.output
    assert "3 bars, 0 new, 0 updated, 3 unchanged" in again.output


def test_column_names_are_case_insensitive_and_time_zones_are_honoured(tmp_path):
    text = "TIMESTAMP,OPEN,high,Low,CLOSE,Volume\n2024-03-01T09:30:00-05:00,10,11,9,10,5\n"
    bars = read_bar_file(write(tmp_path, text), "TZ")
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-03-01 14:30", tz="UTC")


def test_parquet_files_are_read_through_the_same_validator(tmp_path):
    frame = pd.read_csv(pd.io.common.StringIO(GOOD_CSV))
    frame["Date"] = pd.to_datetime(frame["Date"]).dt.tz_localize("Europe/Berlin")
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    bars = read_bar_file(path, "PQ")
    assert len(bars) == 3
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-02-29 23:00", tz="UTC")

    frame.loc[1, "High"] = 1.0
    frame.to_parquet(path)
    with pytest.raises(BarValidationError, match="high below max"):
        read_bar_file(path, "PQ")


def test_a_file_without_symbol_needs_one(tmp_path):
    with pytest.raises(BarValidationError, match="pass --symbol"):
        read_bar_file(write(tmp_path, GOOD_CSV))


def test_a_symbol_column_is_used_and_a_contradicting_flag_refused(tmp_path):
    text = "symbol,date,open,high,low,close,volume\nAAA,2024-03-01,10,11,9,10,5\n"
    path = write(tmp_path, text)
    assert read_bar_file(path)["symbol"].tolist() == ["AAA"]
    with pytest.raises(BarValidationError, match="disagrees"):
        read_bar_file(path, "BBB")


def test_unsupported_file_types_are_named(tmp_path):
    with pytest.raises(BarValidationError, match="unsupported file type '.xlsx'"):
        read_bar_file(write(tmp_path, "x", "bars.xlsx"), "X")


def test_a_date_only_end_bound_includes_its_whole_last_day():
    from alphaplus_mlops.data.sources import inclusive_end

    end = inclusive_end("2015-09-30")
    assert pd.Timestamp("2015-09-30T16:00:00-05:00") <= end < pd.Timestamp("2015-10-01", tz="UTC")
    assert inclusive_end("2015-09-30T12:00:00+00:00") == pd.Timestamp("2015-09-30 12:00", tz="UTC")
