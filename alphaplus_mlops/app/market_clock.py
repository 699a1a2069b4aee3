"""Moving the market forward: reveal the next bars of the replay source into ``market_bars``.

The replay source is the simulator (with the settings' symbols, seed and length it
generates the same full series every time) or a file of real bars held back
(ALPHAPLUS_REPLAY_FILE, read and validated as ``data import`` reads files); ``market_bars``
holds a prefix of it (the ``market_bars`` asset with ``as_of``, an import of the file's
early part, or earlier advances). The bars go through ``upsert_bars`` as one recorded
import under the source's own name (the asset's for the simulator, the file's path and
SHA-256 for a file), so an advance re-run after a crash finds its bars unchanged. A file
that disagrees with the stored bars it overlaps (an edited or a different file) is refused
before anything is written, instead of continuing another market.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alphaplus_mlops.data.replay import ReplayRefused, ReplayStep, next_bars
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.data.sources import import_bar_file
from alphaplus_mlops.data.validation import ImportRules
from alphaplus_mlops.store.bars import UpsertResult, load_bars, summarize_bars, upsert_bars
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
    step = next_bars(market.bars, _stored_ends(db), n_bars=n_bars, to=to)
    return _reveal(db, step, simulator_source_name(seed), None)


def reveal_bars(
    db: Database, bars: pd.DataFrame, source: str, to: pd.Timestamp, *, check: bool = True
) -> Advance:
    """Upsert the bars of ``bars`` (a whole market held back, e.g. a replay scenario's) up
    to ``to`` after each symbol's last stored bar, recorded as an import from ``source``.
    ``check``: first refuse a market that disagrees with the stored bars (once per
    replay is enough: the bars it writes are its own)."""
    if check:
        _check_agrees(db, bars, source)
    return _reveal(db, next_bars(bars, _stored_ends(db), to=to), source, None)


def advance_from_file(
    db: Database,
    path: Path,
    *,
    symbol: str | None = None,
    rules: ImportRules | None = None,
    n_bars: int | None = None,
    to: pd.Timestamp | None = None,
) -> Advance:
    """Upsert the next ``n_bars`` bars per symbol of the file held back at ``path`` (or
    those up to ``to``) after each symbol's last stored bar. The whole file is validated
    first, as ``data import`` validates it (data.validation.BarValidationError names the
    problems); the refusals are those of the simulator's advance."""
    held = import_bar_file(path, symbol, rules=rules)
    _check_agrees(db, held.bars, str(path))
    step = next_bars(
        held.bars,
        _stored_ends(db),
        n_bars=n_bars,
        to=to,
        exhausted_hint=f"{path} holds no later bars",
    )
    return _reveal(db, step, held.source, held.sha256)


def _check_agrees(db: Database, source: pd.DataFrame, name: str) -> None:
    """Refuse a source whose bars differ from the stored bars they overlap: the next bars
    would continue another market (another seed, an edited or different file)."""
    stored = load_bars(db, sorted(source["symbol"].unique()))
    both = stored.merge(source, on=["symbol", "ts"], suffixes=("_stored", ""))
    differs = pd.Series(False, index=both.index)
    for column in ("open", "high", "low", "close", "volume"):
        differs |= both[f"{column}_stored"].astype(float) != both[column].astype(float)
    if differs.any():
        first = both[differs].sort_values("ts").iloc[0]
        raise ReplayRefused(
            f"{name} disagrees with {int(differs.sum())} stored bar(s) (first: "
            f"{first['symbol']} at {first['ts'].isoformat()}): it is not the source the stored "
            "bars came from; correct stored bars with `data import --restate`"
        )


def _stored_ends(db: Database) -> dict[str, pd.Timestamp]:
    return {s.symbol: pd.Timestamp(s.last_ts).tz_convert("UTC") for s in summarize_bars(db)}


def _reveal(db: Database, step: ReplayStep, source: str, sha256: str | None) -> Advance:
    if step.bars.empty:  # --to the stored end: nothing to write, and no empty import row
        return Advance(step, UpsertResult(received=0, inserted=0, updated=0), source)
    return Advance(step, upsert_bars(db, step.bars, source=source, source_sha256=sha256), source)
