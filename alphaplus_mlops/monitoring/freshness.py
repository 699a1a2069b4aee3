"""Stale market data: a symbol whose bars stopped arriving while the others' did not.

The market's clock is its own bars, not the wall clock: a replay (the demo, a backtest)
lives years in the past and every symbol would look stale by the calendar. A symbol is
stale when the market has had more than ``max_missed_bars`` bar times (of any symbol) since
its last bar: counted in bars, so a weekend or a holiday is no gap. Optionally the whole
market is stale when its newest bar is older than ``max_age_hours`` by the wall clock (for a
live feed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SymbolFreshness:
    symbol: str
    last_ts: datetime
    bars_behind: int
    """Bar times of the market after the symbol's last bar (capped by the query)."""


@dataclass(frozen=True)
class Staleness:
    subject: str
    """``symbol S``, or ``market`` for the wall-clock check."""
    message: str
    details: dict


def stale_data(
    symbols: list[SymbolFreshness],
    max_missed_bars: int,
    max_age_hours: float | None = None,
    now: datetime | None = None,
) -> list[Staleness]:
    """What is stale, one finding per symbol (and one for the market by the wall clock)."""
    if max_missed_bars < 1:
        raise ValueError(f"max_missed_bars must be at least 1, got {max_missed_bars}")
    if not symbols:
        return []
    market_last = max(s.last_ts for s in symbols)
    found = [
        Staleness(
            f"symbol {s.symbol}",
            f"{s.symbol}: last bar {s.last_ts:%Y-%m-%d %H:%M}, {s.bars_behind} market bars "
            f"behind the newest ({market_last:%Y-%m-%d %H:%M}; allowed {max_missed_bars})",
            {
                "symbol": s.symbol,
                "last_ts": s.last_ts.isoformat(),
                "market_last_ts": market_last.isoformat(),
                "bars_behind": s.bars_behind,
            },
        )
        for s in symbols
        if s.bars_behind > max_missed_bars
    ]
    if max_age_hours is not None and now is not None:
        age = now - market_last
        if age > timedelta(hours=max_age_hours):
            found.append(
                Staleness(
                    "market",
                    f"no new bar for any symbol since {market_last:%Y-%m-%d %H:%M} "
                    f"({age / timedelta(hours=1):.1f} h > {max_age_hours:g} h)",
                    {
                        "market_last_ts": market_last.isoformat(),
                        "age_hours": age / timedelta(hours=1),
                    },
                )
            )
    return found
