"""The sensors' drift tests: Evidently's choice of test and its verdicts, computed cheaply."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from alphaplus_mlops.monitoring.column_drift import choose_method, column_drift, dataset_drift
from alphaplus_mlops.monitoring.evidently_drift import evidently_drift


def test_the_test_is_chosen_by_reference_size_and_distinct_values_as_evidently_does():
    assert [choose_method(1000, u) for u in (1, 2, 3, 5, 6)] == [
        "z",
        "z",
        "chisquare",
        "chisquare",
        "ks",
    ]
    assert [choose_method(1001, u) for u in (2, 5, 6)] == [
        "jensenshannon",
        "jensenshannon",
        "wasserstein",
    ]


def test_wasserstein_is_scipys_distance_over_the_references_population_std():
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=3000), rng.normal(0.3, 1.2, size=2000)
    found = column_drift("x", ref, cur)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert found.method == "wasserstein"
    assert found.score == pytest.approx(expected, rel=1e-12)
    assert found.drifted and found.threshold == 0.1


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60),
)
def test_the_sorted_wasserstein_equals_scipys_for_any_samples(a, b):
    from alphaplus_mlops.monitoring.column_drift import _wasserstein

    ref, cur = np.sort(np.array(a)), np.sort(np.array(b))
    expected = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert _wasserstein(ref, cur) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_small_references_use_ks_and_drift_at_p_at_most_005():
    rng = np.random.default_rng(2)
    ref, same, shifted = rng.normal(size=800), rng.normal(size=800), rng.normal(0.5, 1, 800)
    kept, moved = column_drift("x", ref, same), column_drift("x", ref, shifted)
    assert (kept.method, moved.method) == ("ks", "ks")
    assert kept.score == pytest.approx(stats.ks_2samp(ref, same).pvalue)
    assert not kept.drifted and moved.drifted


def test_non_finite_values_are_dropped_and_an_empty_side_is_named():
    ref = np.array([1.0, 2.0, np.nan, np.inf, 3.0, 4.0, 5.0, 6.0])
    found = column_drift("x", ref, np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert found.method == "ks" and found.score == pytest.approx(1.0)
    with pytest.raises(ValueError, match="column 'y': the current sample has no finite value"):
        column_drift("y", ref, np.array([np.nan, -np.inf]))


def test_the_dataset_drifts_when_half_the_columns_do():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({c: rng.normal(size=2000) for c in "abcd"})
    cur = pd.DataFrame({c: rng.normal(size=2000) for c in "abcd"})
    cur["a"] += 1.0
    one = dataset_drift(ref, cur, list("abcd"))
    assert one.drifted_columns() == ["a"] and one.drift_share == 0.25 and not one.drifted
    cur["b"] += 1.0
    assert dataset_drift(ref, cur, list("abcd")).drifted
    with pytest.raises(ValueError, match="no columns"):
        dataset_drift(ref, cur, [])


@pytest.mark.parametrize("rows", [800, 3000])
def test_the_verdicts_are_evidentlys_column_for_column(rows, tmp_path):
    rng = np.random.default_rng(rows)
    ref = pd.DataFrame(
        {
            "calm": rng.normal(size=rows),
            "shifted": rng.normal(size=rows),
            "wider": rng.normal(size=rows),
            "binary": rng.integers(0, 2, rows).astype(float),
            "three_levels": rng.integers(0, 3, rows).astype(float),
            "constant": np.ones(rows),
            "with_gaps": np.where(rng.random(rows) < 0.05, np.nan, rng.normal(size=rows)),
        }
    )
    cur = ref.sample(frac=1.0, random_state=1).reset_index(drop=True).copy()
    cur["calm"] = rng.normal(size=rows)
    cur["shifted"] = rng.normal(0.4, 1, rows)
    cur["wider"] = rng.normal(0, 1.6, rows)
    cur["binary"] = (rng.random(rows) < 0.6).astype(float)
    cur["three_levels"] = rng.integers(0, 3, rows).astype(float)
    columns = list(ref.columns)
    report = tmp_path / "drift.html"

    theirs = evidently_drift(ref, cur, columns, html_path=report)
    ours = dataset_drift(ref, cur, columns)
    assert [(c.column, c.method, c.drifted) for c in ours.columns] == [
        (c.column, c.method, c.drifted) for c in theirs.columns
    ]
    for mine, evidently in zip(ours.columns, theirs.columns, strict=True):
        assert mine.score == pytest.approx(evidently.score, rel=1e-9, abs=1e-12), mine.column
    assert (ours.drift_share, ours.drifted) == (theirs.drift_share, theirs.drifted)
    assert {"shifted", "wider"} <= set(ours.drifted_columns())
    assert report.stat().st_size > 10_000 and "<html" in report.read_text()[:2000].lower()
