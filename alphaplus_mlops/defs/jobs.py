import dagster as dg

from alphaplus_mlops import run_tags
from alphaplus_mlops.defs.assets.deployment import champion_model, deployment_decision
from alphaplus_mlops.defs.assets.evaluation import model_evaluation
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.assets.training import trained_model, training_dataset

ingest_market_bars_job = dg.define_asset_job(
    "ingest_market_bars",
    selection=[market_bars],
    description="Load the configured market data sources into PostgreSQL.",
)

train_model_job = dg.define_asset_job(
    "train_model",
    selection=[
        training_dataset,
        trained_model,
        model_evaluation,
        deployment_decision,
        champion_model,
    ],
    tags={run_tags.TRAINING: "true"},
    description="One model family (the partition): dataset -> walk-forward CV and final fit "
    "-> evaluation -> blocking quality gates -> deployment decision -> promotion.",
)
