"""The market clock: which bars of a replay source come next after what is stored.

A replay source is a full series known in advance (the seeded simulator generates the same
bars bit for bit every time; a file of bars held back holds them); ``market_bars`` holds a
prefix of it. Advancing reveals the
next bars per symbol, so the live half of the system sees a market that moves. Pure
pandas: the caller reads the stored ends and writes the bars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd


class ReplayRefused(ValueError):
    """The advance asked for cannot be made; the message says why."""


@dataclass(frozen=True)
class SymbolStep:
    symbol: str
    stored_last: pd.Timestamp | None
    added: int
    new_last: pd.Timestamp | None
    """The last bar after the advance (the stored one when nothing was added)."""
    source_last: pd.Timestamp
    """The source's own last bar: ``new_last == source_last`` means it is exhausted."""


@dataclass(frozen=True)
class ReplayStep:
    bars: pd.DataFrame
    """The bars to reveal, in the source's columns, oldest first per symbol."""
    symbols: tuple[SymbolStep, ...]


def next_bars(
    source: pd.DataFrame,
    stored_last: Mapping[str, pd.Timestamp | None],
    *,
    n_bars: int | None = None,
    to: pd.Timestamp | None = None,
    exhausted_hint: str = "raise ALPHAPLUS_SIM_BARS for a longer series",
) -> ReplayStep:
    """The next ``n_bars`` bars of each symbol of ``source`` after its stored last bar, or
    every bar up to ``to`` (inclusive). Exactly one of them must be given.

    A symbol with no stored bar starts from the source's first bar. Refused: ``to`` earlier
    than the latest stored bar of these symbols (the clock only moves forward), and a
    source with no bar left after the stored ones (exhausted). A symbol that runs out
    before the others gives what it has.
    """
    if (n_bars is None) == (to is None):
        raise ValueError("give exactly one of n_bars and to")
    if n_bars is not None and n_bars < 1:
        raise ValueError(f"n_bars must be at least 1, got {n_bars}")
    symbols = list(dict.fromkeys(source["symbol"]))
    ends = {s: stored_last.get(s) for s in symbols}
    known = [t for t in ends.values() if t is not None]
    if to is not None and known and to < max(known):
        latest = max(ends, key=lambda s: ends[s] if ends[s] is not None else pd.Timestamp.min)
        raise ReplayRefused(
            f"--to {_day(to)} is earlier than the stored end {_day(ends[latest])} ({latest}): "
            "the market clock only moves forward"
        )
    picked, steps = [], []
    for symbol in symbols:
        series = source[source["symbol"] == symbol].sort_values("ts")
        last = ends[symbol]
        ahead = series if last is None else series[series["ts"] > last]
        chosen = ahead.head(n_bars) if n_bars is not None else ahead[ahead["ts"] <= to]
        picked.append(chosen)
        steps.append(
            SymbolStep(
                symbol=symbol,
                stored_last=last,
                added=len(chosen),
                new_last=chosen["ts"].iloc[-1] if len(chosen) else last,
                source_last=series["ts"].iloc[-1],
            )
        )
    bars = pd.concat(picked, ignore_index=True)
    if bars.empty and all(s.new_last == s.source_last for s in steps):
        ended = max(s.source_last for s in steps)
        raise ReplayRefused(
            f"the replay source has no more bars: every symbol is stored up to its end "
            f"({_day(ended)}); {exhausted_hint}"
        )
    return ReplayStep(bars=bars, symbols=tuple(steps))


def _day(ts: pd.Timestamp) -> str:
    # Daily bars are stamped at midnight and --to DATE means the whole day: say the date.
    inclusive_end = ts + pd.Timedelta(1, "ns")
    if ts == ts.normalize() or inclusive_end == inclusive_end.normalize():
        return str(ts.date())
    return ts.isoformat()
