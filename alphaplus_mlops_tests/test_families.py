"""Each model family trains, saves, reloads and exports ONNX that agrees with it."""

import numpy as np
import pytest

from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.families import (
    FamilyRegistryError,
    TrainingKnobs,
    family_names,
    get_family,
    register_family,
)
from alphaplus_mlops.families.base import feature_importance
from alphaplus_mlops.serving.onnx_model import OnnxModel

BUILT_IN = ["catboost", "xgboost", "lightgbm"]
KNOBS = TrainingKnobs(rounds=25, learning_rate=0.05, max_depth=4)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 8)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(size=1500) > 0).astype(int)
    return x, y


def test_the_three_built_in_families_are_registered_in_order():
    assert family_names()[:3] == BUILT_IN


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_family_maps_the_common_knobs_to_its_own_parameter_names(name):
    params = get_family(name).params_for(KNOBS)
    assert params[{"catboost": "iterations"}.get(name, "n_estimators")] == 25
    assert params["learning_rate"] == 0.05
    depth = {"catboost": ("depth", 4), "xgboost": ("max_depth", 4)}.get(name, ("num_leaves", 15))
    assert params[depth[0]] == depth[1]


@pytest.mark.parametrize("name", BUILT_IN)
def test_family_trains_saves_reloads_and_exports_matching_onnx(name, data, tmp_path):
    x, y = data
    family = get_family(name)
    seen = []
    fitted = family.fit(x, y, family.params_for(KNOBS), progress=seen.append)
    assert fitted.training_path == "full"
    assert seen[-1].iteration == seen[-1].total == 25
    assert np.isfinite(seen[-1].metric_value)
    proba = family.predict_proba(fitted.model, x)
    assert proba.shape == (1500,) and ((proba > 0) & (proba < 1)).all()

    native = tmp_path / f"model{family.native_suffix}"
    family.save_native(fitted.model, native)
    assert not native.read_bytes().startswith(b"\x80")  # no pickle protocol header
    reloaded = family.load_native(native.read_bytes())
    np.testing.assert_array_equal(family.predict_proba(reloaded, x), proba)

    onnx_path = tmp_path / "model.onnx"
    family.export_onnx(fitted.model, x.shape[1], onnx_path)
    onnx = OnnxModel(onnx_path).predict_proba(x)
    assert np.max(np.abs(onnx - proba)) < 1e-4


def test_xgboost_continues_from_a_parent_with_the_same_schema(data):
    x, y = data
    family = get_family("xgboost")
    parent = family.fit(x, y, {"n_estimators": 10}).model
    child = family.fit(x, y, {"n_estimators": 5}, init_model=parent)
    assert child.training_path == "incremental"
    assert child.n_iterations == 15
    assert child.params["n_estimators"] == 5 and child.params["total_rounds"] == 15
    other_schema = family.fit(x[:, :5], y, {"n_estimators": 5}, init_model=parent)
    assert other_schema.training_path == "full"
    assert "full retrain" in other_schema.notes[0]


def test_xgboost_retrains_in_full_rather_than_pile_trees_beyond_its_cap(data):
    x, y = data
    family = get_family("xgboost")
    parent = family.fit(x, y, {"n_estimators": 10}).model
    capped = family.fit(x, y, {"n_estimators": 5, "max_total_rounds": 12}, init_model=parent)
    assert capped.training_path == "full" and capped.n_iterations == 5
    assert "exceed max_total_rounds 12" in capped.notes[0]


def test_an_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown model family 'sklearn'"):
        get_family("sklearn")


def test_a_family_name_that_cannot_be_a_partition_key_is_refused():
    class Bad:
        name = "gradient boosting"

    with pytest.raises(FamilyRegistryError, match="ASCII letters, digits"):
        register_family(Bad())
    assert "gradient boosting" not in family_names()


def test_a_family_registered_after_the_partitions_were_made_is_refused():
    class Late:
        name = "late"

    with pytest.raises(FamilyRegistryError, match="before the Dagster definitions"):
        register_family(Late())
    assert "late" not in family_names()
    assert family_partitions.get_partition_keys() == family_names()


@pytest.mark.parametrize("name", ["xgboost", "lightgbm"])
def test_training_loss_is_computed_when_read_during_the_fit_and_never_after(name, data):
    """The training log loss is evaluated only when a progress sink reads it: read in the
    callback it is the loss at that round (falling as boosting goes on); a stale value read
    after the fit has moved on is NaN rather than another round's number."""
    x, y = data
    family = get_family(name)
    read_now, kept = [], []

    def sink(progress):
        kept.append(progress)
        if progress.iteration in (1, 10, 25):
            read_now.append(progress.metric_value)

    family.fit(x, y, family.params_for(KNOBS), progress=sink)
    assert len(read_now) == 3 and all(np.isfinite(read_now))
    assert read_now[0] > read_now[1] > read_now[2]
    assert np.isnan(kept[4].metric_value)  # round 5, never read while it was current
    assert np.isfinite(kept[-1].metric_value)  # the last round is always evaluated


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_family_stops_early_on_a_validation_set_and_says_where(name, data):
    x, y = data
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 2, len(y))  # nothing to learn: the validation loss turns early
    family = get_family(name)
    params = {**family.default_params(), family.rounds_key: 300, "learning_rate": 0.3}
    fitted = family.fit(
        x[:1000], noise[:1000], params, eval_set=(x[1000:], noise[1000:]), early_stopping_rounds=5
    )
    assert fitted.best_rounds is not None and 1 <= fitted.best_rounds < 300
    assert fitted.n_iterations < 300
    plain = family.fit(x, y, {**params, family.rounds_key: 10})
    assert plain.best_rounds is None and plain.n_iterations == 10


@pytest.mark.parametrize("name", BUILT_IN)
def test_feature_importance_is_each_features_share_of_the_gain(name, data, tmp_path):
    x, y = data
    family = get_family(name)
    model = family.fit(x, y, family.params_for(KNOBS)).model
    path = tmp_path / f"model{family.native_suffix}"
    family.save_native(model, path)
    share = feature_importance(family, family.load_native(path.read_bytes()), x.shape[1])
    assert share.shape == (8,) and share.sum() == pytest.approx(1.0) and (share >= 0).all()
    # y is x0 - 0.5 x1 + noise: the two columns that carry it carry most of the gain.
    assert share[0] > share[1] > max(share[2:])
    assert share[0] + share[1] > 0.6


def test_a_family_that_does_not_measure_importance_gives_none():
    class Silent:
        pass

    class Flat:
        def feature_importance(self, model, n_features):
            return np.zeros(n_features)

    assert feature_importance(Silent(), object(), 3) is None
    assert feature_importance(Flat(), object(), 3) is None
