"""An honest check that learning works and leakage is absent.

On simulated bars before the break the planted signal is learnable: every family's
out-of-sample ROC-AUC clears 0.5 by a margin. The same pipeline on shuffled labels must
not: if it did, information would be leaking from the labels into the validation.
"""

import numpy as np
import pytest

from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.metrics import classification_metrics
from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.families import TrainingKnobs, get_family
from alphaplus_mlops.modeling.datasets import Dataset, build_dataset
from alphaplus_mlops.modeling.fitting import Parent, cross_validate

from .conftest import STRONG_SIGNAL

FAMILIES = ["catboost", "xgboost", "lightgbm"]
KNOBS = TrainingKnobs(rounds=100, learning_rate=0.05, max_depth=4)
MARGIN = 0.05


@pytest.fixture(scope="module")
def before_break() -> Dataset:
    market = simulate_market(
        ["A", "B", "C"], seed=7, config=SimulationConfig(n_bars=1500, signal_strength=STRONG_SIGNAL)
    )
    bars = market.bars[market.bars["ts"] < market.break_ts]
    return build_dataset(bars, LabelConfig(horizon=1))


def oos_auc(family: str, dataset: Dataset) -> float:
    splitter = WalkForward(n_splits=3, gap=1)
    impl = get_family(family)
    cv = cross_validate(impl, dataset, impl.params_for(KNOBS), splitter)
    return classification_metrics(cv.oof["label"].to_numpy(), cv.oof["proba"].to_numpy())["roc_auc"]


@pytest.mark.parametrize("family", FAMILIES)
def test_out_of_sample_auc_beats_chance_before_the_break(family, before_break):
    assert oos_auc(family, before_break) > 0.5 + MARGIN


@pytest.mark.parametrize("family", FAMILIES)
def test_shuffled_labels_do_not_pass_the_same_check(family, before_break):
    shuffled = before_break.frame.copy()
    shuffled["label"] = np.random.default_rng(0).permutation(shuffled["label"].to_numpy())
    auc = oos_auc(family, Dataset(shuffled, before_break.features, before_break.label_config))
    assert auc < 0.5 + MARGIN


def test_incremental_cv_continues_from_the_parent_only_on_folds_it_never_saw(before_break):
    family = get_family("xgboost")
    frame = before_break.frame
    cut = frame["t0"].quantile(0.3)
    early = frame["t0"] <= cut
    model = family.fit(
        before_break.x[early.to_numpy()], before_break.y[early.to_numpy()], {"n_estimators": 10}
    ).model
    splitter = WalkForward(n_splits=3, gap=1)
    fresh = cross_validate(
        family, before_break, {"n_estimators": 10}, splitter, parent=Parent(model, cut)
    )
    assert fresh.warm_started_folds == [0, 1, 2]
    stale = cross_validate(
        family,
        before_break,
        {"n_estimators": 10},
        splitter,
        parent=Parent(model, frame["t0"].max()),
    )
    assert stale.warm_started_folds == []
    assert not np.allclose(fresh.oof["proba"], stale.oof["proba"])
