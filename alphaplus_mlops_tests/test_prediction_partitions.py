"""The prediction log partitioned by month of the bar (migration 025): the writer creates the
months its rows need and files each row in its UTC month, whatever the session's time zone;
a row for a month that does not exist is refused, not misfiled; the upgrade keeps every row;
the read of where scoring left off runs the newest month only; the runtime role may create
months and nothing more."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import psycopg
import pytest

from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.upkeep import PREDICTION_MONTHS_AHEAD, prediction_months
from alphaplus_mlops.serving.prediction_log import PredictionRecord, write_predictions
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.live import (
    ensure_prediction_months,
    last_scored_bars,
    pending_series,
    realized_series,
    record_outcomes,
)
from alphaplus_mlops.store.migrations import DEFAULT_SQL_DIR, migrate, migrate_as_owner

from .conftest import execute, rows

VERSION = "00000000-0000-0000-0000-0000000000a1"


def with_version(url: str) -> None:
    execute(
        url,
        "INSERT INTO model_versioning (id, family, version, model_name)"
        " VALUES (%s, 'lightgbm', 1, 'lightgbm-v1')",
        (VERSION,),
    )


def record(bar: str, symbol: str = "AAA", role: str = "champion") -> PredictionRecord:
    return PredictionRecord(
        model_version_id=VERSION,
        family="lightgbm",
        role=role,
        symbol=symbol,
        bar_ts=datetime.fromisoformat(bar).replace(tzinfo=UTC),
        probability=0.6,
        signal=1,
    )


def partition_of_rows(url: str) -> list[tuple[str, str]]:
    found = rows(
        url,
        "SELECT bar_ts, tableoid::regclass::text AS part FROM model_predictions ORDER BY bar_ts",
    )
    return [(r["bar_ts"].astimezone(UTC).isoformat(), r["part"]) for r in found]


@pytest.fixture
def log_url(empty_database_url):
    migrate(empty_database_url)
    with_version(empty_database_url)
    return empty_database_url


def months(url: str) -> list[str]:
    return [
        r["name"]
        for r in rows(
            url,
            "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'model_predictions'::regclass ORDER BY 1",
        )
    ]


def ensure(url: str, first: str, last: str) -> int:
    """The store's ensure_prediction_months, from ISO dates (UTC)."""
    with Database(url) as db:
        return ensure_prediction_months(
            db,
            datetime.fromisoformat(first).replace(tzinfo=UTC),
            datetime.fromisoformat(last).replace(tzinfo=UTC),
        )


def test_the_writer_creates_the_months_it_needs_and_files_each_row_in_its_own(log_url):
    assert months(log_url) == []
    with Database(log_url) as db:
        written = write_predictions(
            db,
            [
                record("2024-01-31T23:59:59"),
                record("2024-02-01T00:00:00"),
                record("2024-03-31T12:00:00"),
            ],
        )
    assert written == 3
    assert months(log_url) == [
        "model_predictions_2024_01",
        "model_predictions_2024_02",
        "model_predictions_2024_03",
    ]
    assert partition_of_rows(log_url) == [
        ("2024-01-31T23:59:59+00:00", "model_predictions_2024_01"),
        ("2024-02-01T00:00:00+00:00", "model_predictions_2024_02"),
        ("2024-03-31T12:00:00+00:00", "model_predictions_2024_03"),
    ]
    assert ensure(log_url, "2024-01-01", "2024-03-01") == 0  # they exist: nothing to do


def test_a_row_for_a_month_without_a_partition_is_refused_not_misfiled(log_url):
    with pytest.raises(psycopg.errors.CheckViolation, match="no partition"):
        execute(
            log_url,
            "INSERT INTO model_predictions (model_version_id, family, role, symbol, bar_ts,"
            " probability, signal) VALUES (%s, 'lightgbm', 'champion', 'AAA', '2019-01-01',"
            " 0.5, 0)",
            (VERSION,),
        )
    assert rows(log_url, "SELECT count(*) AS n FROM model_predictions") == [{"n": 0}]


def test_months_are_utc_months_in_any_session_time_zone(log_url):
    with psycopg.connect(log_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'America/New_York'")
        conn.execute(
            "SELECT ensure_prediction_partitions('2025-03-01 00:00+00', '2025-04-30 23:00+00')"
        )
        conn.execute("SET TimeZone = 'UTC'")
        bounds = dict(
            conn.execute(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)"
                " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'model_predictions'::regclass"
                " AND c.relname LIKE 'model_predictions_2025%'"
            ).fetchall()
        )
    assert bounds == {
        "model_predictions_2025_03": (
            "FOR VALUES FROM ('2025-03-01 00:00:00+00') TO ('2025-04-01 00:00:00+00')"
        ),
        "model_predictions_2025_04": (
            "FOR VALUES FROM ('2025-04-01 00:00:00+00') TO ('2025-05-01 00:00:00+00')"
        ),
    }


def test_a_replayed_batch_is_still_one_row_per_prediction(log_url):
    with Database(log_url) as db:
        batch = [record("2024-01-10T00:00:00"), record("2024-05-10T00:00:00")]
        assert write_predictions(db, batch) == 2
        assert write_predictions(db, batch) == 0
    assert len(partition_of_rows(log_url)) == 2


def test_the_upgrade_keeps_every_logged_row_and_files_it_by_month(empty_database_url, tmp_path):
    url = empty_database_url
    before = tmp_path / "sql"
    shutil.copytree(DEFAULT_SQL_DIR, before)
    (before / "025_prediction_partitions.sql").unlink()
    migrate(url, before)
    with_version(url)
    execute(
        url,
        "INSERT INTO model_predictions (id, model_version_id, family, role, symbol, bar_ts,"
        " probability, signal, predicted_at, realized_return, realized_label, realized_at,"
        " request_id) VALUES"
        " ('00000000-0000-0000-0000-000000000001', %(v)s, 'lightgbm', 'champion', 'AAA',"
        "  '2021-05-31 23:00+00', 0.7, 1, '2021-06-01 01:00+00', 0.01, 1, now(), 'r1'),"
        " ('00000000-0000-0000-0000-000000000002', %(v)s, 'lightgbm', 'challenger', 'BBB',"
        "  '2021-06-01 00:00+00', 0.2, -1, '2021-06-01 01:00+00', NULL, NULL, NULL, 'r2')",
        {"v": VERSION},
    )
    snapshot = (
        "SELECT to_jsonb(p) - 'predicted_at' - 'realized_at' AS row"
        " FROM model_predictions p ORDER BY id"
    )
    old = [r["row"] for r in rows(url, snapshot)]
    assert [m.filename for m in migrate(url)] == ["025_prediction_partitions.sql"]
    assert [r["row"] for r in rows(url, snapshot)] == old
    assert partition_of_rows(url) == [
        ("2021-05-31T23:00:00+00:00", "model_predictions_2021_05"),
        ("2021-06-01T00:00:00+00:00", "model_predictions_2021_06"),
    ]
    # The keys and checks came along.
    with pytest.raises(psycopg.errors.CheckViolation):
        execute(url, "UPDATE model_predictions SET probability = 2 WHERE request_id = 'r1'")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        execute(url, "UPDATE model_predictions SET model_version_id = gen_random_uuid()")


def scans(plan: dict) -> list[dict]:
    """Every scan node of an EXPLAIN (ANALYZE, FORMAT JSON) plan."""
    found = [plan] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


def test_the_last_scored_bar_is_read_from_the_newest_month_only(log_url):
    """live_signals' read of where scoring left off (SELECT_LAST_SCORED_BARS): ordered by
    bar, it stops in the newest month that has the symbol's rows; older months are never
    executed, however many there are."""
    assert ensure(log_url, "2024-01-01", "2024-06-01") == 6
    # Half a year of 10-minute bars for 4 symbols: enough rows that the planner reads by
    # index, as it does on a real log, rather than scanning each small month.
    execute(
        log_url,
        "INSERT INTO model_predictions (model_version_id, family, role, symbol, bar_ts,"
        " probability, signal)"
        " SELECT %s, 'lightgbm', 'champion', symbol, bar_ts, 0.5, 0"
        " FROM generate_series('2024-01-01 00:00+00'::timestamptz,"
        "                      '2024-06-30 23:50+00', interval '10 minutes') AS bar_ts,"
        "      unnest(ARRAY['AAA', 'BBB', 'CCC', 'DDD']) AS symbol",
        (VERSION,),
    )
    with Database(log_url) as db:
        assert last_scored_bars(db, "lightgbm", ["AAA", "ZZZ"]) == {
            "AAA": datetime(2024, 6, 30, 23, 50, tzinfo=UTC),
            "ZZZ": None,
        }
    with psycopg.connect(log_url) as conn:
        conn.execute("ANALYZE model_predictions")
        (plan,) = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + queries.SELECT_LAST_SCORED_BARS,
            ("lightgbm", ["AAA"]),
        ).fetchone()[0]
    read = {
        node["Relation Name"]
        for node in scans(plan["Plan"])
        if node["Relation Name"].startswith("model_predictions") and node.get("Actual Loops", 0)
    }
    assert read == {"model_predictions_2024_06"}, json.dumps(plan, indent=1)[:4000]


def test_the_runtime_role_may_create_months_but_nothing_else(runtime_role):
    """Under a separate migration role (README), live_signals runs as the runtime role: it
    creates months through the owner's function, and may not detach or drop one."""
    owner_url, runtime_url, _ = runtime_role
    migrate_as_owner(owner_url, runtime_url)
    with_version(owner_url)
    with Database(runtime_url) as db:
        assert write_predictions(db, [record("2030-01-15T00:00:00")]) == 1
    assert ensure(runtime_url, "2030-01-01", "2030-02-01") == 1
    owners = rows(
        owner_url,
        "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class"
        " WHERE relname LIKE 'model_predictions_2030%%'",
    )
    assert owners == [{"owner": rows(owner_url, "SELECT current_user AS u")[0]["u"]}]
    with psycopg.connect(runtime_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE model_predictions DETACH PARTITION model_predictions_2030_01")


def test_series_reads_span_the_months_and_plan_once_per_connection(log_url):
    """prediction_outcomes' pending answers and live_performance's realized series, with the
    log spread over months: pending answers from every month, realized series from the
    outcomes' own table; the pending read keeps one plan on its connection."""
    with Database(log_url, max_size=1) as db:
        write_predictions(
            db,
            [
                record("2024-01-15T00:00:00"),
                record("2024-02-15T00:00:00"),
                record("2024-03-15T00:00:00", role="challenger"),
            ],
        )
        assert realized_series(db, "lightgbm") == []
        outcome = pd.DataFrame(
            {
                "model_version_id": [VERSION],
                "role": ["champion"],
                "symbol": ["AAA"],
                "bar_ts": [pd.Timestamp("2024-01-15", tz="UTC")],
                "realized_return": [0.01],
                "realized_label": [1],
                "realized_t1": [pd.Timestamp("2024-02-15", tz="UTC")],
                "realized_net_return": [0.009],
            }
        )
        assert record_outcomes(db, outcome) == {"champion": 1}
        assert realized_series(db, "lightgbm") == [
            {"model_version_id": VERSION, "role": "champion"}
        ]
        for _ in range(2):
            pending = pending_series(db, "lightgbm")
            months_pending = pending["bar_ts"].dt.strftime("%Y-%m")
            assert sorted(zip(pending["role"], months_pending, strict=True)) == [
                ("challenger", "2024-03"),
                ("champion", "2024-01"),  # where the pending champion series' P&L starts
                ("champion", "2024-02"),
            ]
        with db.connection() as conn:
            kept = conn.execute(
                "SELECT generic_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%%WITH pending AS%%'"
            ).fetchall()
    assert kept and kept[0]["generic_plans"] >= 2


def test_realizing_outcomes_reads_only_the_months_of_the_staged_bars(log_url):
    """prediction_outcomes' UPDATE of the log, planned with the staged bars' range: the other
    months are pruned when it is planned."""
    assert ensure(log_url, "2024-01-01", "2024-06-01") == 6
    with Database(log_url) as db:
        write_predictions(db, [record(f"2024-{m:02d}-15T00:00:00") for m in range(1, 7)])
    with psycopg.connect(log_url) as conn:
        conn.execute(queries.CREATE_STAGED_OUTCOMES)
        conn.execute(
            "INSERT INTO staged_outcomes SELECT model_version_id, role, symbol, bar_ts, 0.01, 1,"
            " bar_ts, 0.01 FROM model_predictions WHERE bar_ts >= '2024-05-01'"
        )
        conn.execute(queries.ANALYZE_STAGED_OUTCOMES)
        span = {
            "first": datetime(2024, 5, 15, tzinfo=UTC),
            "last": datetime(2024, 6, 15, tzinfo=UTC),
        }
        (plan,) = conn.execute(
            "EXPLAIN (FORMAT JSON) " + queries.UPDATE_FROM_STAGED_OUTCOMES, span
        ).fetchone()[0]
        conn.rollback()
    planned = {
        node["Relation Name"]
        for node in scans(plan["Plan"])
        if node["Relation Name"].startswith("model_predictions_")
    }
    assert planned == {"model_predictions_2024_05", "model_predictions_2024_06"}


def test_the_upkeep_sensor_makes_this_month_and_the_next_ahead_of_any_write(log_url):
    """prediction_months, as the daemon ticks it: this month and the next by the decision
    clock exist before anything is logged in them; a second tick has nothing to do."""

    def tick() -> str:
        with dg.build_sensor_context(
            resources={"postgres": PostgresResource(database_url=log_url)}
        ) as context:
            return prediction_months(context).skip_message

    now = datetime.now(UTC)
    ahead = now + PREDICTION_MONTHS_AHEAD
    first = tick()
    assert first.split()[0] in {"2", "3"}, first  # 45 days ahead: the next month, or two
    expected = {f"model_predictions_{now:%Y_%m}", f"model_predictions_{ahead:%Y_%m}"}
    assert expected <= set(months(log_url))
    assert tick().startswith("0 month(s) created")
