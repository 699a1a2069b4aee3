"""Served features are the training features: the real training_dataset asset's stored rows
against serving_features for the same (symbol, ts), bit for bit; and the refusals."""

import re
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from alphaplus_mlops.core.features import FEATURE_VERSION, WARMUP_BARS, symbol_features
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_resources
from alphaplus_mlops.defs.assets.training import training_dataset
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.modeling.model_files import load_dataset
from alphaplus_mlops.serving.features import (
    MAX_BATCH_ROWS,
    FeatureCache,
    FeatureRequestError,
    serving_features,
    validate_rows,
)
from alphaplus_mlops.serving.service import SignalService
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate

SYMBOLS = ["SFA", "SFB", "SFC"]
N_BARS = 400
DATASET_END = "2011-03-31"  # stored bars go on past the dataset: serving as_of a past bar


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    url = create_database()
    migrate(url)
    market = simulate_market(SYMBOLS, seed=5, config=SimulationConfig(n_bars=N_BARS))
    settings = Settings(database_url=url, home=tmp_path_factory.mktemp("home"))
    with Database(url) as db:
        upsert_bars(db, market.bars, source="test-sim")
        # The real asset, with a rolling window and an end: the dataset keeps a tail of
        # features that were computed on all earlier bars.
        result = dg.materialize(
            [training_dataset],
            partition_key="lightgbm",
            resources=build_resources(settings, PostgresResource(database_url=url)),
            run_config={
                "ops": {
                    "training_dataset": {
                        "config": {"symbols": SYMBOLS, "end": DATASET_END, "window_bars": 150}
                    }
                }
            },
        )
        ref = result.output_for_node("training_dataset")
        dataset = load_dataset(LocalArtifactStore(settings.artifacts_dir), ref)
        yield {"db": db, "market": market, "ref": ref, "dataset": dataset}


def serve(env, symbols, as_of=None, **kwargs):
    kwargs.setdefault("feature_names", env["dataset"].features)
    kwargs.setdefault("feature_version", env["ref"]["feature_version"])
    return serving_features(env["db"], symbols, as_of, **kwargs)


def test_served_features_equal_the_datasets_bit_for_bit(env):
    dataset = env["dataset"]
    frame, x = dataset.frame, dataset.x  # x: the float32 the models are fitted on
    assert x.dtype == np.float32 and env["ref"]["feature_version"] == FEATURE_VERSION
    for ts in np.sort(frame["ts"].unique()):  # every bar of the dataset's window
        served = serve(env, SYMBOLS[::-1], pd.Timestamp(ts).to_pydatetime())
        assert served.x.dtype == np.float32 and served.x.flags.c_contiguous
        for symbol in SYMBOLS[::-1]:
            rows = np.flatnonzero((frame["ts"] == ts) & (frame["symbol"] == symbol))
            assert len(rows) == 1
            assert served.bar_ts[served.symbols.index(symbol)] == pd.Timestamp(ts)
            assert np.array_equal(served.row(symbol), x[rows]), (symbol, ts)


def test_a_bounded_look_back_would_not_be_the_training_features(env):
    # Why serving reads each symbol's whole history: the EWMAs carry state from the first
    # bar, so the same bar's features from only its last 100 bars differ from the dataset's.
    frame, x = env["dataset"].frame, env["dataset"].x
    row = len(frame) - 1
    symbol, ts = frame["symbol"].iloc[row], frame["ts"].iloc[row]
    bars = env["market"].bars
    bars = bars[(bars["symbol"] == symbol) & (bars["ts"] <= ts)].tail(100)
    short = symbol_features(bars.reset_index(drop=True))
    names = env["dataset"].features
    assert not np.array_equal(short[names].iloc[-1].to_numpy(dtype=np.float32), x[row])
    assert np.array_equal(serve(env, [symbol], ts.to_pydatetime()).x[0], x[row])


def test_the_model_feature_order_is_kept_and_the_default_is_the_latest_bar(env):
    names = env["dataset"].features[::-1]
    served = serve(env, ["SFB"], feature_names=names)
    bars = env["market"].bars
    bars = bars[bars["symbol"] == "SFB"].reset_index(drop=True)
    full = symbol_features(bars)
    assert served.bar_ts == (bars["ts"].iloc[-1],)
    assert served.feature_names == tuple(names)
    assert np.array_equal(served.x[0], full[names].iloc[-1].to_numpy(dtype=np.float32))


def test_an_as_of_between_bars_serves_the_last_bar_before_it(env):
    bars = env["market"].bars
    ts = bars["ts"].iloc[200]
    between = serve(env, ["SFA"], (ts + pd.Timedelta(hours=5)).to_pydatetime())
    naive = serve(env, ["SFA"], ts.tz_convert(None).to_pydatetime())  # naive means UTC
    assert between.bar_ts == naive.bar_ts == (ts,)
    assert np.array_equal(between.x, naive.x)


def test_refusals_name_the_problem(env):
    first = env["market"].bars["ts"].min()
    with pytest.raises(FeatureRequestError, match=r"^unknown symbol\(s\): NOPE, ZZZ$"):
        serve(env, ["SFA", "NOPE", "ZZZ"])
    before = first - pd.Timedelta(days=3)
    with pytest.raises(
        FeatureRequestError,
        match=re.escape(f"no bar at or before {before.isoformat()} for SFA, SFC"),
    ):
        serve(env, ["SFA", "SFC"], before.to_pydatetime())
    early = env["market"].bars["ts"].iloc[9]
    with pytest.raises(FeatureRequestError) as short:
        serve(env, ["SFA"], early.to_pydatetime())
    assert str(short.value) == (
        f"not enough history for the feature window: the features need {WARMUP_BARS + 1} "
        "bars up to the bar served, stored: SFA (10)"
    )
    with pytest.raises(FeatureRequestError) as version:
        serve(env, ["SFA"], feature_version="features-v0")
    assert str(version.value) == (
        "the model was trained on feature version 'features-v0' but this code computes "
        f"'{FEATURE_VERSION}': serve it from the code that trained it, or retrain it on the "
        "current features"
    )
    with pytest.raises(FeatureRequestError, match=r"does not compute: ret_999$"):
        serve(env, ["SFA"], feature_names=["ret_1", "ret_999"])
    with pytest.raises(FeatureRequestError, match=r"^no symbols requested$"):
        serve(env, [])


def test_a_cache_serves_the_same_rows_until_the_symbols_bars_change(env):
    db, cache = env["db"], FeatureCache(max_symbols=2)
    bars = simulate_market(["SFD"], seed=9, config=SimulationConfig(n_bars=160)).bars
    ts = bars["ts"]
    upsert_bars(db, bars.iloc[:150], source="test-cache")

    def both(as_of=None):
        cached, fresh = serve(env, ["SFD"], as_of, cache=cache), serve(env, ["SFD"], as_of)
        assert np.array_equal(cached.x, fresh.x) and cached.bar_ts == fresh.bar_ts
        return cached

    first = both()
    assert first.bar_ts == (ts.iloc[149],) and (cache.hits, cache.misses) == (0, 1)
    assert np.array_equal(both().x, first.x) and (cache.hits, cache.misses) == (1, 1)
    assert both(ts.iloc[100].to_pydatetime()).bar_ts == (ts.iloc[100],)
    assert (cache.hits, cache.misses) == (2, 1)  # a past bar comes from the same history

    upsert_bars(db, bars.iloc[150:151], source="test-cache")  # a new bar
    newer = both()
    assert newer.bar_ts == (ts.iloc[150],) and cache.misses == 2

    restated = bars.iloc[[120]].copy()
    restated[["open", "high", "low", "close"]] *= 1.01
    upsert_bars(db, restated, source="test-cache", restate=True)  # a past bar restated
    after = both()
    assert cache.misses == 3 and after.bar_ts == (ts.iloc[150],)
    assert not np.array_equal(after.x, newer.x)  # its 63-bar windows reach bar 120

    serve(env, ["SFA", "SFB"], cache=cache)  # bounded: the least recently used goes
    assert len(cache) == 2 and cache.misses == 5
    serve(env, ["SFD"], cache=cache)
    assert cache.misses == 6


def test_a_listening_service_tells_the_cache_of_new_bars(env, tmp_path):
    db, cache = env["db"], FeatureCache()
    bars = simulate_market(["SFE"], seed=10, config=SimulationConfig(n_bars=120)).bars
    upsert_bars(db, bars.iloc[:110], source="test-cache")

    def until(condition):
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, "the notification did not arrive"
            time.sleep(0.02)

    store = LocalArtifactStore(tmp_path)
    with SignalService(db, store, poll_seconds=60, feature_cache=cache) as service:
        until(lambda: service.listening and cache.notified)
        assert serve(env, ["SFE"], cache=cache).bar_ts == (bars["ts"].iloc[109],)
        assert serve(env, ["SFE"], cache=cache).bar_ts == (bars["ts"].iloc[109],)
        assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
        upsert_bars(db, bars.iloc[110:111], source="test-cache")
        until(lambda: len(cache) == 0)  # the commit's NOTIFY dropped the entries
        newer = serve(env, ["SFE"], cache=cache)
        assert newer.bar_ts == (bars["ts"].iloc[110],)
        assert np.array_equal(newer.x, serve(env, ["SFE"]).x)
    assert not cache.notified  # closed: back to checking fingerprints


def test_validate_rows_refusals_name_the_row():
    def refused(rows, n=3, **kw):
        with pytest.raises(FeatureRequestError) as err:
            validate_rows(rows, n, **kw)
        return str(err.value)

    assert refused([]) == "no rows to score"
    assert refused("1,2,3") == "rows must be a list of rows, each a list of numbers"
    assert refused([[1, 2, 3], [1, 2]]) == "row 1 has 2 values, the model takes 3 features"
    assert refused([[1, 2, 3], 7]) == "row 1 is not a list of numbers"
    assert refused([[1, "2", 3]]) == "row 0, column 1: '2' is not a number"
    assert refused([[1, 2, True]]) == "row 0, column 2: True is not a number"
    assert refused([[1, 2, None]]) == "row 0, column 2: None is not a number"
    assert (
        refused([[1, 2, 3], [0, float("nan"), 0]]) == "row 1, column 1: nan is not a finite number"
    )
    assert refused([[1, 2, float("-inf")]]) == "row 0, column 2: -inf is not a finite number"
    assert refused([[1, 2, 1e39]]) == "row 0, column 2: 1e+39 is too large for a float32 feature"
    assert refused([[1, 2, 10**400]]).startswith("row 0, column 2: 1000")
    assert refused([[0, 0, 0]] * 3, max_rows=2) == "3 rows, at most 2 per request"
    assert refused(np.zeros((2, 4))) == "row 0 has 4 values, the model takes 3 features"
    assert refused(np.zeros(3)) == "rows must be 2-D (rows, features), got shape (3,)"
    assert refused(np.array([["a", "b", "c"]])) == "rows must be numeric, got an array of <U1"
    assert refused(np.zeros((MAX_BATCH_ROWS + 1, 3))) == (
        f"{MAX_BATCH_ROWS + 1} rows, at most {MAX_BATCH_ROWS} per request"
    )


finite = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=finite
    ),
    as_list=st.booleans(),
    poison=st.sampled_from([float("nan"), float("inf"), -float("inf"), None]),
    where=st.tuples(st.integers(0, 7), st.integers(0, 7)),
)
def test_validate_rows_accepts_finite_rows_and_names_the_first_bad_value(
    values, as_list, poison, where
):
    n_rows, n_features = values.shape
    rows = values.tolist() if as_list else values
    x = validate_rows(rows, n_features)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert np.array_equal(x, values.astype(np.float32))
    if poison is None:
        return
    i, j = where[0] % n_rows, where[1] % n_features
    bad = values.copy()
    bad[i, j] = poison
    with pytest.raises(
        FeatureRequestError, match=rf"^row {i}, column {j}: .* not a finite number$"
    ):
        validate_rows(bad.tolist() if as_list else bad, n_features)
