"""Importing bars from files and from the packaged sample into PostgreSQL."""

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.data.sources import load_packaged_sample, read_bar_file
from alphaplus_mlops.data.validation import BarValidationError
from alphaplus_mlops.store.bars import (
    BarRestatementRefused,
    bar_revisions,
    count_bars,
    load_bars,
    upsert_bars,
)

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


def rows(database, sql: str, params: tuple = ()) -> list[dict]:
    with database.connection() as conn:
        return conn.execute(sql, params).fetchall()


def scalar(database, sql: str) -> int:
    return next(iter(rows(database, sql)[0].values()))


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


def test_a_corrected_bar_is_refused_without_restate_and_nothing_is_written(database, tmp_path):
    first = write(tmp_path, GOOD_CSV)
    upsert_bars(database, read_bar_file(first, "FIX"), source="file:v1")
    imports_before = scalar(database, "SELECT count(*) FROM market_bar_imports")
    corrected = GOOD_CSV.replace("2024-03-05,11.0,11.2,10.1,10.2", "2024-03-05,11.0,11.3,10.1,10.3")
    with pytest.raises(BarRestatementRefused) as info:
        upsert_bars(
            database, read_bar_file(write(tmp_path, corrected, "v2.csv"), "FIX"), source="file:v2"
        )
    assert info.value.problems == [
        "1 bar(s) already stored with other values: FIX 2024-03-05 00:00:00+00:00: "
        "high 11.2 -> 11.3, close 10.2 -> 10.3 (stored from file:v1); pass --restate to "
        "replace them (the old values are kept in market_bar_revisions)"
    ]
    assert load_bars(database, ["FIX"])["close"].iloc[-1] == 10.2
    assert scalar(database, "SELECT count(*) FROM market_bar_imports") == imports_before
    assert bar_revisions(database, ["FIX"]) == []


def test_a_restatement_keeps_old_and_new_values_source_and_time(database, tmp_path):
    upsert_bars(database, read_bar_file(write(tmp_path, GOOD_CSV), "RST"), source="file:v1")
    corrected = GOOD_CSV.replace("2024-03-05,11.0,11.2,10.1,10.2", "2024-03-05,11.0,11.3,10.1,10.3")
    result = upsert_bars(
        database,
        read_bar_file(write(tmp_path, corrected, "v2.csv"), "RST"),
        source="file:v2",
        source_sha256="ab" * 32,
        restate=True,
    )
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 2)
    assert load_bars(database, ["RST"])["close"].iloc[-1] == 10.3
    (revision,) = bar_revisions(database, ["RST"])
    assert (revision.symbol, revision.ts) == ("RST", datetime(2024, 3, 5, tzinfo=UTC))
    assert revision.old == {"open": 11.0, "high": 11.2, "low": 10.1, "close": 10.2, "volume": 900}
    assert revision.new == {"open": 11.0, "high": 11.3, "low": 10.1, "close": 10.3, "volume": 900}
    assert (revision.old_source, revision.new_source) == ("file:v1", "file:v2")
    assert (revision.import_id, revision.source_sha256) == (result.import_id, "ab" * 32)
    assert revision.old_ingested_at <= revision.revised_at
    assert abs(revision.revised_at - datetime.now(UTC)) < timedelta(minutes=5)

    again = upsert_bars(
        database, read_bar_file(tmp_path / "v2.csv", "RST"), source="file:v2", restate=True
    )
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert len(bar_revisions(database, ["RST"])) == 1


def test_every_import_is_recorded_with_its_counts(database, tmp_path):
    result = upsert_bars(
        database, read_bar_file(write(tmp_path, GOOD_CSV), "REC"), source="file:rec"
    )
    (row,) = rows(
        database,
        "SELECT source, received, inserted, restated, unchanged FROM market_bar_imports "
        "WHERE id = %s",
        (result.import_id,),
    )
    assert row == {
        "source": "file:rec",
        "received": 3,
        "inserted": 3,
        "restated": 0,
        "unchanged": 0,
    }


def test_the_same_values_from_another_source_are_unchanged_and_keep_the_first_source(
    database, tmp_path
):
    path = write(tmp_path, GOOD_CSV)
    upsert_bars(database, read_bar_file(path, "TWO"), source="file:first")
    result = upsert_bars(database, read_bar_file(path, "TWO"), source="file:second")
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 3)
    sources = rows(database, "SELECT DISTINCT source FROM market_bars WHERE symbol = 'TWO'")
    assert sources == [{"source": "file:first"}]


@pytest.fixture(scope="module")
def restated_bar(database, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("restated")
    upsert_bars(database, read_bar_file(write(folder, GOOD_CSV), "AOL"), source="file:a")
    changed = GOOD_CSV.replace("10.5,10.5,1000", "10.6,10.6,1000")
    upsert_bars(
        database,
        read_bar_file(write(folder, changed, "b.csv"), "AOL"),
        source="file:b",
        restate=True,
    )
    return "AOL"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE market_bar_revisions SET new_close = 1",
        "DELETE FROM market_bar_revisions",
        "TRUNCATE market_bar_revisions CASCADE",
        "UPDATE market_bar_imports SET received = received",
        "DELETE FROM market_bar_imports",
        "TRUNCATE market_bar_imports CASCADE",
    ],
)
def test_the_import_record_and_the_revisions_are_append_only(restated_bar, database, statement):
    with database.connection() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
    assert len(bar_revisions(database, [restated_bar])) == 1


def test_cli_refuses_a_restatement_with_exit_code_3_and_restates_with_the_flag(
    database, database_url, tmp_path
):
    env = {"ALPHAPLUS_DATABASE_URL": database_url}
    runner = CliRunner()
    first = write(tmp_path, GOOD_CSV)
    assert (
        runner.invoke(main, ["data", "import", str(first), "--symbol", "CLR"], env=env).exit_code
        == 0
    )
    changed = write(tmp_path, GOOD_CSV.replace("10.2,10.2,900", "10.3,10.3,900"), "fix.csv")
    refused = runner.invoke(main, ["data", "import", str(changed), "--symbol", "CLR"], env=env)
    assert refused.exit_code == 3, refused.output
    assert "1 bar(s) already stored with other values: CLR 2024-03-05" in refused.output
    assert f"(stored from file:{first.resolve()})" in refused.output
    restated = runner.invoke(
        main, ["data", "import", str(changed), "--symbol", "CLR", "--restate"], env=env
    )
    assert restated.exit_code == 0, restated.output
    assert "3 bars, 0 new, 1 restated, 2 unchanged" in restated.output
    (revision,) = bar_revisions(database, ["CLR"])
    assert (revision.old_source, revision.new_source) == (
        f"file:{first.resolve()}",
        f"file:{changed.resolve()}",
    )
    assert revision.source_sha256 == hashlib.sha256(changed.read_bytes()).hexdigest()


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
    assert result.exit_code == 3, result.output
    assert expected in result.output, result.output
    assert count_bars(database) == before


def test_cli_import_reports_counts_and_is_idempotent(database_url, tmp_path):
    path = write(tmp_path, GOOD_CSV)
    env = {"ALPHAPLUS_DATABASE_URL": database_url}
    runner = CliRunner()
    first = runner.invoke(main, ["data", "import", str(path), "--symbol", "CLI"], env=env)
    again = runner.invoke(main, ["data", "import", str(path), "--symbol", "CLI"], env=env)
    assert first.exit_code == 0, first.output
    assert "3 bars, 3 new, 0 restated, 0 unchanged" in first.output
    assert "3 bars, 0 new, 0 restated, 3 unchanged" in again.output


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


def daily_csv(days, close: float = 10.0, suffix: str = "") -> str:
    lines = [f"{d}{suffix},{close},{close * 1.01:.4f},{close * 0.99:.4f},{close},100" for d in days]
    return "date,open,high,low,close,volume\n" + "\n".join(lines) + "\n"


WEEKDAYS = [d.strftime("%Y-%m-%d") for d in pd.bdate_range("2024-03-01", periods=16)]


def cli_import(database_url: str, path: Path, *options: str):
    return CliRunner().invoke(
        main, ["data", "import", str(path), *options], env={"ALPHAPLUS_DATABASE_URL": database_url}
    )


def test_the_same_days_under_another_offset_do_not_become_a_second_bar_per_day(
    database, database_url, tmp_path
):
    first = write(tmp_path, daily_csv(WEEKDAYS[:8], suffix="T00:00:00+00:00"), "utc.csv")
    assert cli_import(database_url, first, "--symbol", "SEAM").exit_code == 0
    again = write(tmp_path, daily_csv(WEEKDAYS[4:12], suffix="T00:00:00-05:00"), "ny.csv")
    before = count_bars(database)
    result = cli_import(database_url, again, "--symbol", "SEAM")
    assert result.exit_code == 3, result.output
    assert (
        "SEAM: new bar in a daily slot a stored bar already holds (another time of day or "
        "offset?) in 4 row(s): 2024-03-07 05:00:00+00:00, 2024-03-08 05:00:00+00:00, "
        "2024-03-11 05:00:00+00:00, 2024-03-12 05:00:00+00:00"
    ) in result.output
    assert count_bars(database) == before


def test_a_bar_off_the_stored_cadence_is_refused_unless_allowed(database, database_url, tmp_path):
    write(tmp_path, daily_csv(WEEKDAYS[:8]), "daily.csv")
    assert cli_import(database_url, tmp_path / "daily.csv", "--symbol", "SEAMB").exit_code == 0
    intraday = write(tmp_path, daily_csv([f"{WEEKDAYS[8]} 10:00"]), "intraday.csv")
    result = cli_import(database_url, intraday, "--symbol", "SEAMB")
    assert result.exit_code == 3, result.output
    assert (
        "SEAMB: new bar off the stored bars' daily cadence in 1 row(s): "
        "2024-03-13 10:00:00+00:00; pass --allow-off-cadence to accept them"
    ) in result.output
    allowed = cli_import(database_url, intraday, "--symbol", "SEAMB", "--allow-off-cadence")
    assert allowed.exit_code == 0, allowed.output


def test_prices_jumping_from_the_stored_ones_are_refused_unless_allowed(
    database, database_url, tmp_path
):
    write(tmp_path, daily_csv(WEEKDAYS[:8], close=10.0), "dollars.csv")
    assert cli_import(database_url, tmp_path / "dollars.csv", "--symbol", "CENTS").exit_code == 0
    cents = write(tmp_path, daily_csv(WEEKDAYS[8:12], close=1000.0), "cents.csv")
    result = cli_import(database_url, cents, "--symbol", "CENTS")
    assert result.exit_code == 3, result.output
    assert (
        "CENTS: close moves more than 10x between stored and new bars in 1 place(s): "
        "2024-03-12 00:00:00+00:00 stored close 10 -> 2024-03-13 00:00:00+00:00 new close 1000; "
        "pass --max-jump to accept larger moves"
    ) in result.output
    assert cli_import(database_url, cents, "--symbol", "CENTS", "--max-jump", "150").exit_code == 0
