"""The Dagster shell: assets, jobs and resources, built from the environment."""

from __future__ import annotations

import dagster as dg

from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.jobs import ingest_market_bars_job
from alphaplus_mlops.defs.resources import postgres_from_settings
from alphaplus_mlops.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[market_bars],
        jobs=[ingest_market_bars_job],
        resources={"postgres": postgres_from_settings(settings)},
    )
