"""Stale market data: judged against the market's own clock, counted in its bars."""

from datetime import UTC, datetime, timedelta

import pytest

from alphaplus_mlops.monitoring.freshness import SymbolFreshness, stale_data

DAY = timedelta(days=1)
T = datetime(2016, 3, 10, 21, tzinfo=UTC)


def test_a_symbol_more_than_the_allowed_market_bars_behind_is_stale():
    symbols = [
        SymbolFreshness("AAA", T, 0),
        SymbolFreshness("BBB", T - 5 * DAY, 3),  # a weekend inside: 3 bars, allowed
        SymbolFreshness("CCC", T - 6 * DAY, 4),
    ]
    (found,) = stale_data(symbols, max_missed_bars=3)
    assert found.subject == "symbol CCC"
    assert found.details["bars_behind"] == 4
    assert found.message == (
        "CCC: last bar 2016-03-04 21:00, 4 market bars behind the newest "
        "(2016-03-10 21:00; allowed 3)"
    )


def test_a_replay_years_in_the_past_is_not_stale_by_the_calendar_unless_asked():
    symbols = [SymbolFreshness("AAA", T, 0), SymbolFreshness("BBB", T, 0)]
    now = datetime(2026, 11, 28, tzinfo=UTC)
    assert stale_data(symbols, 3, max_age_hours=None, now=now) == []
    (market,) = stale_data(symbols, 3, max_age_hours=48, now=now)
    assert market.subject == "market"
    assert market.message.startswith("no new bar for any symbol since 2016-03-10 21:00")
    assert stale_data(symbols, 3, max_age_hours=48, now=T + DAY) == []


def test_nothing_stored_is_nothing_stale_and_a_bad_limit_is_named():
    assert stale_data([], 3) == []
    with pytest.raises(ValueError, match="max_missed_bars must be at least 1"):
        stale_data([SymbolFreshness("AAA", T, 0)], 0)
