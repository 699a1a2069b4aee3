"""The purged walk-forward splitter."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.modeling.fitting import row_selector


def pooled_intervals(n_times: int, n_symbols: int, horizon: int):
    t0 = np.repeat(np.arange(n_times), n_symbols)
    t1 = np.minimum(t0 + horizon, n_times - 1 + horizon)
    return t0, t1


def test_expanding_folds_with_purge_on_a_small_example():
    t0 = np.arange(20)
    t1 = t0 + 2
    folds = WalkForward(n_splits=2, test_size=5).split(t0, t1)
    # Test blocks are the last 10 start times, in two blocks of 5.
    assert [f.test.tolist() for f in folds] == [[10, 11, 12, 13, 14], [15, 16, 17, 18, 19]]
    # Samples 8 and 9 end at 10 and 11, inside the first test span: purged.
    assert folds[0].train.tolist() == list(range(8))
    assert folds[1].train.tolist() == list(range(13))


def test_rolling_window_and_gap():
    t0 = np.arange(30)
    t1 = t0  # labels of one bar: nothing to purge
    fold = WalkForward(n_splits=1, test_size=5, train_size=10, gap=3).split(t0, t1)[0]
    assert fold.test.tolist() == [25, 26, 27, 28, 29]
    assert fold.train.tolist() == list(range(12, 22))


def test_too_few_samples_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot hold 5 test blocks"):
        WalkForward(n_splits=5, test_size=10).split(np.arange(20), np.arange(20))


@settings(max_examples=200, deadline=None)
@given(
    n_times=st.integers(20, 120),
    n_symbols=st.integers(1, 3),
    horizon=st.integers(0, 10),
    n_splits=st.integers(1, 4),
    test_size=st.integers(1, 8),
    train_size=st.one_of(st.none(), st.integers(1, 40)),
    gap=st.integers(0, 6),
)
def test_no_training_interval_touches_a_test_interval(
    n_times, n_symbols, horizon, n_splits, test_size, train_size, gap
):
    t0, t1 = pooled_intervals(n_times, n_symbols, horizon)
    splitter = WalkForward(n_splits, test_size, train_size, gap, min_train_size=0)
    try:
        folds = splitter.split(t0, t1)
    except ValueError:
        return  # sizes that cannot fit are refused, not silently shrunk
    for fold in folds:
        assert len(np.intersect1d(fold.train, fold.test)) == 0
        test_lo = t0[fold.test].min()
        for i in fold.train:
            assert t1[i] < test_lo, (i, t0[i], t1[i])
        # Walk-forward: training samples start before the test block, gap bars earlier.
        assert (t0[fold.train] < t0[fold.test].min() - gap + 1).all()


@settings(max_examples=100, deadline=None)
@given(n_times=st.integers(30, 100), horizon=st.integers(0, 5), n_splits=st.integers(1, 4))
def test_test_blocks_are_consecutive_disjoint_and_cover_the_end(n_times, horizon, n_splits):
    t0, t1 = pooled_intervals(n_times, 2, horizon)
    folds = WalkForward(n_splits=n_splits, test_size=3, min_train_size=0).split(t0, t1)
    tested = np.concatenate([f.test for f in folds])
    assert len(np.unique(tested)) == len(tested)
    assert t0[tested].max() == n_times - 1
    starts = [t0[f.test].min() for f in folds]
    assert starts == sorted(starts)


@given(st.sets(st.integers(0, 60), min_size=1))
def test_fold_rows_taken_as_a_view_are_the_same_rows(positions):
    x = np.arange(61 * 3).reshape(61, 3)
    positions = np.array(sorted(positions))
    taken = row_selector(positions)
    assert np.array_equal(x[taken], x[positions])
    contiguous = positions[-1] - positions[0] + 1 == len(positions)
    assert isinstance(taken, slice) == contiguous
