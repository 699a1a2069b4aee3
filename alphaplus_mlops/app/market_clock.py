"""Moving the market forward: reveal the next bars of the simulator into ``market_bars``.

The simulator is the replay source: with the settings' symbols, seed and length it
generates the same full series every time, and ``market_bars`` holds a prefix of it (the
``market_bars`` asset with ``as_of``, or earlier advances). The bars go through
``upsert_bars`` as one recorded import under the asset's own source name, so an advance
re-run after a crash finds its bars unchanged, and a seed that changed is refused as a
restatement instead of silently mixing two markets.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alphaplus_mlops.data.replay import ReplayStep, next_bars
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.store.bars import UpsertResult, summarize_bars, upsert_bars
from alphaplus_mlops.store.db import Database


@dataclass(frozen=True)
class Advance:
    step: ReplayStep
    result: UpsertResult
    source: str


def simulator_source_name(seed: int) -> str:
    """The source name the market_bars asset records for simulated bars."""
    return f"simulator-seed-{seed}"


def advance_simulated_market(
    db: Database,
    *,
    symbols: list[str] | tuple[str, ...],
    seed: int,
    total_bars: int,
    n_bars: int | None = None,
    to: pd.Timestamp | None = None,
) -> Advance:
    """Upsert the simulator's next ``n_bars`` bars per symbol (or those up to ``to``) after
    each symbol's last stored bar. Raises data.replay.ReplayRefused when there is nothing
    ahead or ``to`` is behind the stored end, and store.bars.BarRestatementRefused when the
    stored bars are not this simulator's."""
    market = simulate_market(list(symbols), seed=seed, config=SimulationConfig(n_bars=total_bars))
    stored = {s.symbol: pd.Timestamp(s.last_ts).tz_convert("UTC") for s in summarize_bars(db)}
    step = next_bars(market.bars, stored, n_bars=n_bars, to=to)
    source = simulator_source_name(seed)
    if step.bars.empty:  # --to the stored end: nothing to write, and no empty import row
        return Advance(step, UpsertResult(received=0, inserted=0, updated=0), source)
    return Advance(step, upsert_bars(db, step.bars, source=source), source)
