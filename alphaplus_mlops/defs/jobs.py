import dagster as dg

from alphaplus_mlops.defs.assets.market import market_bars

ingest_market_bars_job = dg.define_asset_job(
    "ingest_market_bars",
    selection=[market_bars],
    description="Load the configured market data sources into PostgreSQL.",
)
