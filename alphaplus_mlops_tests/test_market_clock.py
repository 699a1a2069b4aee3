"""The decision clock: the wall clock in production; in a replay's database the market's,
so cooldowns, budgets, model ages and "which model served at t" count market time."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.monitoring.retrain_policy import BUDGET_PERIOD, retrain_verdict
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.clock import clock_now, use_market_clock
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.promotion import serving_at
from alphaplus_mlops_tests.conftest import rows

SYMBOLS = ["CLK1", "CLK2"]


@pytest.fixture
def market_db(create_database):
    url = create_database()
    migrate(url)
    use_market_clock(url)
    bars = simulate_market(SYMBOLS, seed=3, config=SimulationConfig(n_bars=300)).bars
    with Database(url) as db:
        yield db, bars


def _reveal(db: Database, bars: pd.DataFrame, through: int) -> pd.Timestamp:
    """Store the bars up to the ``through``-th bar time; that time."""
    times = pd.DatetimeIndex(bars["ts"].unique()).sort_values()
    upsert_bars(db, bars[bars["ts"] <= times[through]], source="clock-test")
    return times[through]


def test_the_wall_clock_serves_a_production_database(database):
    before = datetime.now(UTC)
    assert before <= clock_now(database) <= datetime.now(UTC)
    tick = datetime(2020, 1, 6, 6, tzinfo=UTC)
    assert clock_now(database, tick) == tick  # a schedule's tick time is its clock


def test_the_market_clock_is_the_latest_revealed_bar_and_moves_with_it(market_db):
    db, bars = market_db
    first = _reveal(db, bars, 100)
    now = clock_now(db)
    assert first <= now < first + timedelta(minutes=5)
    assert clock_now(db, datetime(2030, 1, 1, tzinfo=UTC)) - now < timedelta(minutes=1)
    later = _reveal(db, bars, 150)
    assert later <= clock_now(db) < later + timedelta(minutes=5)
    assert clock_now(db) > now


def test_decisions_and_the_ledger_are_stamped_in_market_time(market_db):
    db, bars = market_db
    revealed = _reveal(db, bars, 120)
    url = db.url
    version = rows(
        url,
        "INSERT INTO model_versioning (family, version, model_name) "
        "VALUES ('lightgbm', 1, 'signal-lightgbm') RETURNING id, created_at",
    )[0]
    rows(
        url,
        "INSERT INTO model_promotion_ledger (family, action, model_version_id, actor, reason) "
        "VALUES ('lightgbm', 'promote', %s, 'test', 'first model') RETURNING id",
        (version["id"],),
    )
    decided = rows(
        url,
        "INSERT INTO automated_decision_making (decision_type, family, rule, outcome) "
        "VALUES ('retrain_trigger', 'lightgbm', 'test', 'requested') RETURNING decided_at",
    )[0]["decided_at"]
    for stamp in (version["created_at"], decided):
        assert revealed <= stamp < revealed + timedelta(minutes=5)
    # "which model served at t" answers in market time: after the bar, and not before it.
    assert serving_at(db, "lightgbm", revealed + timedelta(days=1))["version"] == 1
    assert serving_at(db, "lightgbm", revealed - timedelta(days=1)) is None


def test_a_cooldown_counts_market_days_not_wall_minutes(market_db):
    """Five market days after a request, the next one is allowed, though the wall clock has
    moved by seconds: the replay's retrains are not all refused after the first."""
    db, bars = market_db
    _reveal(db, bars, 120)
    url = db.url
    rows(
        url,
        "INSERT INTO automated_decision_making (decision_type, family, rule, outcome) "
        "VALUES ('retrain_trigger', 'lightgbm', 'test', 'requested') RETURNING id",
    )
    trigger = {"name": "performance_degradation", "cooldown_seconds": 5 * 86400, "config": {}}

    def verdict():
        now = clock_now(db)
        requested = [
            r["decided_at"]
            for r in rows(
                url,
                "SELECT decided_at FROM automated_decision_making "
                "WHERE decided_at >= %s ORDER BY decided_at DESC",
                (now - BUDGET_PERIOD,),
            )
        ]
        return retrain_verdict(
            trigger=trigger, requested_before=requested, run_in_flight=False, now=now, why="t"
        )

    assert not verdict().request and "cooldown" in verdict().reasons[-1]
    _reveal(db, bars, 124)  # four business days later: still within five calendar days
    assert not verdict().request
    _reveal(db, bars, 126)
    assert verdict().request
