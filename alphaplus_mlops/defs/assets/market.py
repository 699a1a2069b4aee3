"""The ``market_bars`` asset: validated OHLCV bars upserted into PostgreSQL."""

import dagster as dg
import pandas as pd
from pydantic import Field

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.data.sources import PACKAGED_SAMPLES, inclusive_end, load_packaged_sample
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.bars import summarize_bars, upsert_bars

_SETTINGS = Settings.from_env()


class MarketBarsConfig(dg.Config):
    sources: list[str] = Field(
        default=list(_SETTINGS.market_sources),
        description="Which sources to load: 'sample' (real daily indices) and/or 'simulator'.",
    )
    sample_symbols: list[str] = Field(
        default=list(PACKAGED_SAMPLES), description="Packaged real series to load."
    )
    sim_symbols: list[str] = Field(
        default=list(_SETTINGS.sim_symbols), description="Simulated symbols to generate."
    )
    sim_seed: int = Field(default=_SETTINGS.sim_seed, description="Simulator seed.")
    sim_bars: int = Field(default=_SETTINGS.sim_bars, description="Bars per simulated symbol.")
    as_of: str | None = Field(
        default=None,
        description="Replay: load only bars up to this date (ISO), as if it were today.",
    )


@dg.asset(
    group_name="market_data",
    kinds={"postgres", "pandas"},
    description="Daily OHLCV bars per symbol in PostgreSQL (table market_bars), validated "
    "and upserted on (symbol, ts): loading the same data twice changes nothing.",
)
def market_bars(
    context: dg.AssetExecutionContext, config: MarketBarsConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    unknown = sorted(set(config.sources) - {"sample", "simulator"})
    if unknown:
        raise dg.Failure(f"unknown market data source(s) {unknown}: use 'sample' or 'simulator'")

    loaded: list[tuple[str, pd.DataFrame]] = []
    extra: dict[str, dg.RawMetadataValue] = {}
    if "sample" in config.sources:
        loaded.append(("arch-sample", load_packaged_sample(tuple(config.sample_symbols))))
    if "simulator" in config.sources:
        market = simulate_market(
            config.sim_symbols,
            seed=config.sim_seed,
            config=SimulationConfig(n_bars=config.sim_bars),
        )
        loaded.append((f"simulator-seed-{config.sim_seed}", market.bars))
        extra["simulator_break_ts"] = market.break_ts.isoformat()

    if config.as_of:
        cutoff = inclusive_end(config.as_of)
        loaded = [(source, bars[bars["ts"] <= cutoff]) for source, bars in loaded]
        extra["as_of"] = cutoff.isoformat()

    received = inserted = updated = 0
    for source, bars in loaded:
        result = upsert_bars(postgres.url, bars, source=source)
        context.log.info(
            f"{source}: {result.received} bars, {result.inserted} new, {result.updated} updated"
        )
        received, inserted, updated = (
            received + result.received,
            inserted + result.inserted,
            updated + result.updated,
        )

    summary = summarize_bars(postgres.url)
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
