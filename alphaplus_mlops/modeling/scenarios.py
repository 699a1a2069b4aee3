"""A champion around the simulator's break, as the retrain triggers are measured on it
(bench/trigger_calibration.py, test_quiet_market.py): a small LightGBM trained the way the
triggers retrain, on the 504 bars that end two years before the break, then scoring every bar
from two years before the break to a year after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.data.simulator import SimulatedMarket, simulate_market
from alphaplus_mlops.families import get_family
from alphaplus_mlops.families.base import ModelFamily
from alphaplus_mlops.modeling.assessment import evaluate_predictions
from alphaplus_mlops.modeling.datasets import Dataset, build_dataset
from alphaplus_mlops.modeling.fitting import cross_validate, final_fit
from alphaplus_mlops.monitoring.drift_yardstick import RAW_VOLATILITY, raw_volatility

YEAR = 252
WINDOW = 2 * YEAR


@dataclass(frozen=True)
class BreakScenario:
    market: SimulatedMarket
    train: Dataset
    """The champion's window; its frame also holds RAW_VOLATILITY, as drift_report reads it."""
    live: Dataset
    family: ModelFamily
    model: Any
    oof: pd.DataFrame
    """The champion's walk-forward out-of-fold rows (4 folds, as train_model)."""
    offline_returns: pd.Series
    live_proba: np.ndarray
    live_returns: pd.Series
    """Per-bar net returns of the live rows (the mean over symbols)."""
    at_break: int
    """Index of the first live bar at or after the break."""


def _between(dataset: Dataset, start, end) -> Dataset:
    keep = (dataset.frame["ts"] >= start) & (dataset.frame["ts"] < end)
    frame = dataset.frame[keep].reset_index(drop=True)
    return Dataset(frame, dataset.features, dataset.label_config)


def champion_around_the_break(
    seed: int, symbols: list[str], *, rounds: int = 60, cost_bps: float = 5.0
) -> BreakScenario:
    market = simulate_market(symbols, seed=seed)
    full = build_dataset(market.bars, LabelConfig(horizon=1))
    full.frame[RAW_VOLATILITY] = (
        full.frame[["symbol", "ts"]]
        .merge(raw_volatility(market.bars), on=["symbol", "ts"], how="left")[RAW_VOLATILITY]
        .to_numpy()
    )
    times = pd.DatetimeIndex(full.frame["ts"].unique()).sort_values()
    brk = int(times.searchsorted(market.break_ts))
    train = _between(full, times[brk - 2 * WINDOW], times[brk - WINDOW])
    live = _between(full, times[brk - WINDOW], times[min(brk + YEAR, len(times) - 1)])

    family = get_family("lightgbm")
    params = {"n_estimators": rounds, "num_leaves": 7, "num_threads": 1}
    cv = cross_validate(family, train, params, WalkForward(n_splits=4, gap=1, min_train_size=50))
    offline = evaluate_predictions(cv.oof, cv.oof["proba"].to_numpy(), cost_bps, 0.0).returns
    model = final_fit(family, train, params).model
    proba = family.predict_proba(model, live.x)
    returns = evaluate_predictions(live.frame, proba, cost_bps, 0.0).returns
    return BreakScenario(
        market,
        train,
        live,
        family,
        model,
        cv.oof,
        offline,
        proba,
        returns,
        int(returns.index.searchsorted(market.break_ts)),
    )
