"""The candidate's procedure replayed after the champion's training: which rows, which
refits, and that no refit learns from an outcome its predictions could not have known."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.families import get_family
from alphaplus_mlops.modeling.datasets import KEY_COLUMNS, Dataset
from alphaplus_mlops.modeling.fitting import (
    EarlyStopping,
    Parent,
    RefitSchedule,
    fit_procedure,
    refit_blocks,
    rows_after_champion,
    stopping_split,
    unseen_by_parent,
)


def _frame(n_bars: int, horizon: int, symbols=("A", "B"), start=0) -> pd.DataFrame:
    ts = pd.bdate_range("2024-01-01", periods=n_bars + horizon, tz="UTC")
    parts = []
    for symbol in symbols:
        parts.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": ts[start:n_bars],
                    "t0": ts[start:n_bars],
                    "t1": ts[start + horizon : n_bars + horizon],
                }
            )
        )
    frame = pd.concat(parts).sort_values(["ts", "symbol"], kind="stable")
    frame = frame.reset_index(drop=True)
    for column in ("label", "forward_return", "close", "f0"):
        frame[column] = 1.0 if column != "label" else np.arange(len(frame)) % 2
    return frame[[*KEY_COLUMNS, "f0"]]


def test_rows_after_the_champion_skip_labels_that_overlap_its_training():
    for horizon, first in ((1, 5), (3, 7)):
        frame = _frame(10, horizon)
        ts = frame["ts"].unique()
        after = frame.iloc[rows_after_champion(frame, ts[4])]
        assert after["t0"].min() == ts[first]
        assert len(after) == 2 * (10 - first)


def test_a_symbol_the_champion_never_saw_is_compared_from_its_window_end():
    frame = pd.concat([_frame(10, 1, ("A",)), _frame(10, 1, ("B",), start=6)])
    frame = frame.sort_values(["ts", "symbol"]).reset_index(drop=True)
    ts = np.sort(frame["ts"].unique())
    after = frame.iloc[rows_after_champion(frame, ts[4])]
    assert sorted(after.loc[after.symbol == "B", "t0"]) == list(ts[6:10])


@settings(max_examples=40, deadline=None)
@given(
    n_bars=st.integers(40, 160),
    horizon=st.integers(1, 5),
    end=st.integers(5, 35),
    every=st.integers(1, 30),
    max_refits=st.integers(1, 6),
    min_train=st.integers(1, 20),
)
def test_refits_never_train_on_an_outcome_after_their_block_starts(
    n_bars, horizon, end, every, max_refits, min_train
):
    frame = _frame(n_bars, horizon)
    dataset = Dataset(frame, ["f0"], LabelConfig(horizon=horizon))
    cut = frame["ts"].unique()[end]
    schedule = RefitSchedule(every, max_refits, min_train)
    blocks = refit_blocks(dataset, cut, schedule)
    assert len(blocks) <= max_refits
    unseen = set(rows_after_champion(frame, cut))
    tested = [i for block in blocks for i in block.test]
    assert len(tested) == len(set(tested)) and set(tested) <= unseen
    for block in blocks:
        assert frame["t1"].iloc[block.train].max() <= block.cutoff
        assert frame["t0"].iloc[block.test].min() >= block.cutoff
        assert frame["t0"].iloc[block.train].nunique() >= min_train
    if blocks and min_train <= end:
        # Nothing is skipped when the champion's own window is long enough to train on.
        assert set(tested) == unseen


def test_the_schedule_comes_from_the_gate_row():
    row = {"config": {"refit_every_bars": 21, "max_refits": 2, "min_train_bars": 50}}
    assert RefitSchedule.from_gate(row) == RefitSchedule(21, 2, 50)
    assert RefitSchedule.from_gate(None) == RefitSchedule()


@settings(max_examples=60, deadline=None)
@given(
    n_bars=st.integers(10, 200),
    horizon=st.integers(1, 5),
    fraction=st.floats(0.05, 0.5),
    min_bars=st.integers(1, 30),
)
def test_early_stopping_validates_on_the_last_bars_and_fits_only_on_ended_labels(
    n_bars, horizon, fraction, min_bars
):
    frame = _frame(n_bars, horizon)
    t0, t1 = frame["t0"].to_numpy(), frame["t1"].to_numpy()
    split = stopping_split(t0, t1, EarlyStopping(20, fraction, min_bars))
    times = np.unique(t0)
    size = max(min_bars, int(np.ceil(len(times) * fraction)))
    if len(times) < 2 * size:
        assert split is None
        return
    fit, validation = split
    start = t0[validation].min()
    assert start == times[-size]
    assert (t0[validation] >= start).all() and len(validation) == 2 * size  # two symbols
    assert (t1[fit] <= start).all()
    assert len(np.intersect1d(fit, validation)) == 0


@pytest.mark.parametrize("name", ["lightgbm", "catboost", "xgboost"])
def test_the_procedure_refits_every_row_with_the_rounds_early_stopping_chose(name):
    rng = np.random.default_rng(2)
    frame = _frame(300, 1)
    frame["f0"] = rng.normal(size=len(frame))
    frame["label"] = rng.integers(0, 2, len(frame))  # noise: stops early
    dataset = Dataset(frame, ["f0"], LabelConfig(horizon=1))
    family = get_family(name)
    params = {**family.default_params(), family.rounds_key: 200, "learning_rate": 0.3}
    everything = slice(0, len(frame))
    fitted = fit_procedure(family, dataset, everything, params, EarlyStopping(5, 0.2, 10))
    assert fitted.best_rounds is not None and fitted.best_rounds < 200
    assert fitted.n_iterations == fitted.best_rounds  # the refit holds exactly those rounds
    assert fitted.params["early_stopping"]["best_rounds"] == fitted.best_rounds
    assert "early stopping chose" in fitted.notes[-1]
    without = fit_procedure(family, dataset, everything, params, None)
    assert without.n_iterations == 200 and without.best_rounds is None


def test_a_parent_saw_a_block_until_its_last_label_ended():
    frame = _frame(20, 3)  # labels end 3 bars after they start
    ts = np.sort(frame["t0"].unique())
    parent = Parent(model=None, trained_until=ts[9])
    # Its last label, started at bar 9, ended at bar 12: bars 10-11 overlap it, 12 does not.
    assert [unseen_by_parent(frame, parent, ts[k]) for k in (9, 10, 11, 12, 13)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    # The same rule as the rows after a champion, for all symbols at once.
    assert frame["t0"].iloc[rows_after_champion(frame, ts[9])].min() == ts[12]
