"""The always-valid sequential test of a paired difference (mSPRT), exact on small inputs,
valid when looked at every bar, and the same number for one series or many at once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaplus_mlops.core.sequential import (
    first_rejection,
    log_mixture_ratio,
    long_run_variance,
    sequential_looks,
)


def ar1(phi, runs, bars, seed):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((runs, bars))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1 - phi * phi)
    for t in range(1, bars):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def test_the_mixture_ratio_is_the_formula():
    # n = 4, mean 0.5, variance 1, tau = 1 sd: -1/2 log 5 + 16 * 0.25 / (2 * 5)
    assert log_mixture_ratio(4, 0.5, 1.0, 1.0) == pytest.approx(-0.5 * np.log(5) + 0.4)
    assert log_mixture_ratio(4, 0.0, 0.0, 1.0) == 0.0
    assert log_mixture_ratio(4, 0.1, 0.0, 1.0) == float("inf")


def test_the_long_run_variance_of_an_ar1_is_sigma2_over_one_minus_phi_squared():
    (x,) = ar1(0.5, 1, 20_000, seed=3)
    assert long_run_variance(x) == pytest.approx(1 / (1 - 0.5) ** 2, rel=0.1)
    white = np.random.default_rng(4).standard_normal(20_000)
    assert long_run_variance(white) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="at least 3 values"):
        long_run_variance(np.ones(2))


def test_the_p_value_never_rises_and_looks_start_at_min_bars():
    d = np.random.default_rng(5).standard_normal(200) + 0.5
    looks = sequential_looks(d, min_bars=40)
    assert looks[0].n == 40 and looks[-1].n == 200
    p = [look.p_value for look in looks]
    assert all(b <= a for a, b in zip(p, p[1:], strict=False))
    assert p[-1] < 0.01  # an edge of half a sd per bar is found within 200 bars
    assert looks[-1].mean == pytest.approx(d.mean())
    with pytest.raises(ValueError, match="min_bars must be at least 2"):
        sequential_looks(d, min_bars=1)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.6), st.floats(0.02, 0.5))
def test_many_series_at_once_reject_where_each_alone_does(seed, edge, tau_sd):
    paths = np.random.default_rng(seed).standard_normal((3, 120)) + edge
    found = first_rejection(paths, 0.05, tau_sd=tau_sd, min_bars=10)
    for path, n in zip(paths, found, strict=True):
        alone = [look.n for look in sequential_looks(path, tau_sd=tau_sd, min_bars=10)]
        p = [look.p_value for look in sequential_looks(path, tau_sd=tau_sd, min_bars=10)]
        expected = next((k for k, q in zip(alone, p, strict=True) if q <= 0.05), 0)
        assert n == expected


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.8])
def test_looked_at_every_bar_a_true_null_is_rarely_rejected(phi):
    found = first_rejection(ar1(phi, 400, 1000, seed=int(phi * 10)), 0.05)
    assert np.mean(found > 0) <= 0.08  # alpha 0.05; 400 series scatter by about 0.011


def test_without_a_long_run_variance_a_persistent_null_is_rejected_far_too_often():
    paths = ar1(0.8, 400, 1000, seed=8)
    assert np.mean(first_rejection(paths, 0.05, variance="sample") > 0) > 0.5
    assert np.mean(first_rejection(paths, 0.05) > 0) <= 0.08


@given(st.integers(1, 200), st.floats(-0.5, 0.5), st.floats(0.5, 4), st.floats(0.02, 0.5))
def test_the_one_sided_ratio_is_the_half_normal_mixture(n, mean, variance, tau_sd):
    """Λ⁻ = 2·Λ·Φ(−z): the mixture over negative means only, integrated numerically."""
    from scipy import integrate, stats

    sigma, tau = np.sqrt(variance), tau_sd * np.sqrt(variance)

    def integrand(theta):
        # the likelihood ratio of mean theta against 0 for n values with mean `mean`
        log_lr = theta * n * mean / variance - n * theta * theta / (2 * variance)
        return np.exp(log_lr) * 2 * stats.norm.pdf(theta, scale=tau)

    width = 12 * min(tau, sigma / np.sqrt(n))
    centre = tau * tau * n * mean / (variance + n * tau * tau)
    value, _ = integrate.quad(integrand, min(centre - width, -width), 0, limit=200)
    expected = np.log(value) if value > 0 else -np.inf
    got = log_mixture_ratio(n, mean, variance, tau_sd, alternative="less")
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_one_sided_the_ratio_grows_only_for_a_negative_mean():
    assert log_mixture_ratio(100, -1.0, 1.0, 0.2, alternative="less") == pytest.approx(
        log_mixture_ratio(100, -1.0, 1.0, 0.2) + np.log(2), abs=1e-6
    )  # far below 0: twice the two-sided ratio
    assert log_mixture_ratio(100, 0.3, 1.0, 0.2, alternative="less") < 0  # p stays 1
    assert log_mixture_ratio(4, 0.1, 0.0, 1.0, alternative="less") == 0.0
    with pytest.raises(ValueError, match="alternative must be one of"):
        sequential_looks(np.zeros(40), alternative="greater")


@pytest.mark.parametrize("phi", [0.0, 0.5])
def test_one_sided_looked_at_every_bar_a_null_or_a_better_champion_is_rarely_rejected(phi):
    paths = ar1(phi, 400, 1000, seed=20 + int(phi * 10))
    assert np.mean(first_rejection(paths, 0.05, alternative="less") > 0) <= 0.08
    # a new champion better than the one it replaced is never "significantly worse"
    assert np.mean(first_rejection(paths + 0.2, 0.05, alternative="less") > 0) <= 0.01
    # and a worse one is found
    assert np.mean(first_rejection(paths - 0.3, 0.05, alternative="less") > 0) >= 0.9
