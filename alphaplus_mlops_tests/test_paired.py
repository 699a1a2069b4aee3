"""Paired tests of candidate vs champion: exact on small cases, calibrated under H0."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from alphaplus_mlops.core.paired import (
    delong_auc_covariance,
    delong_paired_test,
    hac_mean_test,
    log_loss_per_row,
    newey_west_lags,
)

labelled_scores = st.integers(6, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(
            lambda y: 2 <= sum(y) <= len(y) - 2
        ),
        st.lists(st.integers(0, 9), min_size=n, max_size=n),  # few values: many ties
        st.lists(st.integers(0, 9), min_size=n, max_size=n),
    )
)


def test_delong_variance_of_a_hand_computed_case():
    # Positives score 0.9 and 0.4, negatives 0.6 and 0.1: 3 of 4 pairs ordered, AUC 0.75.
    # Structural components: positives outrank [1, 0.5] of the negatives, negatives are
    # outranked by [0.5, 1] of the positives; variance 0.125/2 + 0.125/2.
    aucs, cov = delong_auc_covariance(np.array([1, 1, 0, 0]), [np.array([0.9, 0.4, 0.6, 0.1])])
    assert aucs[0] == 0.75
    assert cov[0, 0] == pytest.approx(0.125)


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_delong_auc_is_the_usual_auc_ties_included(case):
    y, a, b = (np.array(v) for v in case)
    aucs, _ = delong_auc_covariance(y, [a, b])
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)])


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_swapping_candidate_and_champion_flips_the_verdict(case):
    y, a, b = (np.array(v) for v in case)
    forward, backward = delong_paired_test(y, a, b), delong_paired_test(y, b, a)
    assert forward.estimate == pytest.approx(-backward.estimate)
    assert forward.p_better == pytest.approx(backward.p_worse)
    assert forward.p_better + forward.p_worse == pytest.approx(1.0)


def test_identical_answers_are_no_evidence_either_way():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.random(200)
    auc = delong_paired_test(y, p, p)
    returns = hac_mean_test(np.zeros(200))
    for test in (auc, returns):
        assert (test.z, test.p_better, test.p_worse) == (0.0, 0.5, 0.5)


def test_hac_without_lags_is_the_plain_standard_error():
    d = np.random.default_rng(1).normal(0.1, 1.0, 250)
    test = hac_mean_test(d, lags=0)
    assert test.std_error == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)))
    assert test.estimate == pytest.approx(d.mean())
    assert test.z == pytest.approx(test.estimate / test.std_error)


def test_newey_west_bandwidth():
    assert [newey_west_lags(n) for n in (0, 50, 100, 500, 2000)] == [0, 3, 4, 5, 7]


def test_hac_keeps_its_size_where_a_plain_standard_error_does_not():
    # Equal-skill candidates whose return differences are autocorrelated (AR(1), 0.5): the
    # plain standard error calls "better" far more often than 5 %; HAC stays near 5 %.
    rng = np.random.default_rng(2)
    n, trials, phi = 500, 400, 0.5
    hac, plain = 0, 0
    for _ in range(trials):
        e = rng.normal(size=n)
        d = np.empty(n)
        d[0] = e[0]
        for t in range(1, n):
            d[t] = phi * d[t - 1] + e[t]
        hac += hac_mean_test(d).p_better < 0.05
        plain += hac_mean_test(d, lags=0).p_better < 0.05
    assert hac / trials < 0.09
    assert plain / trials > 0.12


def test_a_real_difference_is_found():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, 400)
    assert hac_mean_test(d).p_better < 0.001
    assert hac_mean_test(-d).p_worse < 0.001


def test_log_loss_per_row():
    losses = log_loss_per_row(np.array([1, 0]), np.array([0.8, 0.8]))
    assert losses == pytest.approx([-math.log(0.8), -math.log(0.2)])


def test_too_few_bars_or_one_class_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 3 bars"):
        hac_mean_test(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="two of each class"):
        delong_paired_test(np.array([1, 1, 1, 0]), np.ones(4), np.ones(4))
