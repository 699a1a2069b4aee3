"""The ``market_bars`` asset: validated OHLCV bars upserted into PostgreSQL."""

import dagster as dg
import pandas as pd
from pydantic import Field

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.data.sources import PACKAGED_SAMPLES, inclusive_end, load_packaged_sample
from alphaplus_mlops.defs.resources import MarketDataResource, PostgresResource
from alphaplus_mlops.store.bars import BarRestatementRefused, summarize_bars, upsert_bars


class MarketBarsConfig(dg.Config):
    sources: list[str] | None = Field(
        default=None,
        description="Which sources to load: 'sample' (real daily indices) and/or 'simulator'; "
        "default: ALPHAPLUS_MARKET_SOURCES.",
    )
    sample_symbols: list[str] = Field(
        default=list(PACKAGED_SAMPLES), description="Packaged real series to load."
    )
    sim_symbols: list[str] | None = Field(
        default=None, description="Simulated symbols to generate; default: ALPHAPLUS_SIM_SYMBOLS."
    )
    sim_seed: int | None = Field(
        default=None, description="Simulator seed; default: ALPHAPLUS_SIM_SEED."
    )
    sim_bars: int | None = Field(
        default=None, description="Bars per simulated symbol; default: ALPHAPLUS_SIM_BARS."
    )
    as_of: str | None = Field(
        default=None,
        description="Replay: load only bars up to this date (ISO), as if it were today.",
    )
    restate: bool = Field(
        default=False,
        description="Replace stored bars whose values differ (a simulator seed changed, a "
        "vendor restated history); each change is recorded in market_bar_revisions. "
        "Without it the source with such bars is refused and writes nothing (each source "
        "is its own import: one loaded before it stays).",
    )


@dg.asset(
    group_name="market_data",
    kinds={"postgres", "pandas"},
    description="Daily OHLCV bars per symbol in PostgreSQL (table market_bars), validated "
    "and upserted on (symbol, ts): loading the same data twice changes nothing.",
)
def market_bars(
    context: dg.AssetExecutionContext,
    config: MarketBarsConfig,
    postgres: PostgresResource,
    market_data: MarketDataResource,
) -> dg.MaterializeResult:
    sources = config.sources if config.sources is not None else market_data.sources
    sim_symbols = config.sim_symbols if config.sim_symbols is not None else market_data.sim_symbols
    sim_seed = config.sim_seed if config.sim_seed is not None else market_data.sim_seed
    sim_bars = config.sim_bars if config.sim_bars is not None else market_data.sim_bars
    unknown = sorted(set(sources) - {"sample", "simulator"})
    if unknown:
        raise dg.Failure(f"unknown market data source(s) {unknown}: use 'sample' or 'simulator'")

    loaded: list[tuple[str, pd.DataFrame]] = []
    extra: dict[str, dg.RawMetadataValue] = {}
    if "sample" in sources:
        loaded.append(("arch-sample", load_packaged_sample(tuple(config.sample_symbols))))
    if "simulator" in sources:
        market = simulate_market(
            sim_symbols, seed=sim_seed, config=SimulationConfig(n_bars=sim_bars)
        )
        loaded.append((f"simulator-seed-{sim_seed}", market.bars))
        extra["simulator_break_ts"] = market.break_ts.isoformat()

    if config.as_of:
        cutoff = inclusive_end(config.as_of)
        loaded = [(source, bars[bars["ts"] <= cutoff]) for source, bars in loaded]
        extra["as_of"] = cutoff.isoformat()

    received = inserted = updated = 0
    for source, bars in loaded:
        try:
            result = upsert_bars(postgres.db, bars, source=source, restate=config.restate)
        except BarRestatementRefused as exc:
            raise dg.Failure(f"{exc}\nSet restate: true to replace them, on the record.") from exc
        context.log.info(
            f"{source}: {result.received} bars, {result.inserted} new, {result.updated} updated"
        )
        received, inserted, updated = (
            received + result.received,
            inserted + result.inserted,
            updated + result.updated,
        )

    summary = summarize_bars(postgres.db)
    loaded_symbols = sorted({s for _, bars in loaded for s in bars["symbol"].unique()})
    table = pd.DataFrame(
        [
            {
                "symbol": s.symbol,
                "bars": s.bars,
                "first": s.first_ts.date(),
                "last": s.last_ts.date(),
                "sources": s.sources,
            }
            for s in summary
        ]
    )
    preview = pd.concat([bars.tail(3) for _, bars in loaded], ignore_index=True)
    return dg.MaterializeResult(
        metadata={
            "rows_received": received,
            "rows_added": inserted,
            "rows_updated": updated,
            "rows_unchanged": received - inserted - updated,
            "symbols": loaded_symbols,
            "time_range": f"{min(s.first_ts for s in summary).date()} .. "
            f"{max(s.last_ts for s in summary).date()}"
            if summary
            else "empty",
            "bars_in_table": int(table["bars"].sum()) if not table.empty else 0,
            "by_symbol": dg.MetadataValue.md(table.to_markdown(index=False)),
            "preview": dg.MetadataValue.md(preview.round(4).to_markdown(index=False)),
            "database": postgres.display_url,
            **extra,
        }
    )
