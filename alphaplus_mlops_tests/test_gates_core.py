"""The gate judge, the deployment rule and PSI: pure functions with exact expectations."""

import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.core.drift import historical_psi, psi
from alphaplus_mlops.core.gates import data_quality_gate, data_quality_measurements, judge

PERFORMANCE = {
    "name": "model_performance",
    "metric": "roc_auc",
    "comparator": ">=",
    "threshold": 0.52,
    "champion_tolerance": 0.02,
    "config": {"also": {"log_loss": {"comparator": "<=", "threshold": 0.70}}},
}


def test_a_candidate_above_every_floor_passes_with_a_readable_reason():
    j = judge(PERFORMANCE, {"roc_auc": 0.61, "log_loss": 0.66})
    assert j.passed
    assert j.reason == "model_performance passed: roc_auc 0.61 >= 0.52; log_loss 0.66 <= 0.7"


def test_each_failing_rule_is_named():
    j = judge(PERFORMANCE, {"roc_auc": 0.50, "log_loss": 0.72})
    assert not j.passed
    assert j.failures == ["roc_auc 0.5 fails >= 0.52", "log_loss 0.72 fails <= 0.7"]


def test_a_missing_or_nan_metric_fails_rather_than_passes():
    assert judge(PERFORMANCE, {"log_loss": 0.6}).failures == ["roc_auc was not measured"]
    assert not judge(PERFORMANCE, {"roc_auc": float("nan"), "log_loss": 0.6}).passed


def test_the_judge_reads_absolute_floors_only():
    # The champion comparison is a paired test in the deployment rule (core.decision),
    # not a tolerance on one noisy difference: a gate row's old tolerance is ignored.
    j = judge(PERFORMANCE, {"roc_auc": 0.6, "log_loss": 0.6})
    assert j.passed
    assert "champion_tolerance" not in j.thresholds


def test_data_quality_measures_rows_nonfinite_balance_and_duplicates():
    frame = pd.DataFrame(
        {
            "symbol": ["A", "A", "A", "B"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-01"]),
            "label": [1, 0, 1, 1],
            "f": [1.0, np.inf, 2.0, np.nan],
        }
    )
    m = data_quality_measurements(frame, ["f"])
    assert m == {
        "rows": 4.0,
        "non_finite_values": 2.0,
        "min_class_share": 0.25,
        "duplicate_rows": 1.0,
    }
    gate = data_quality_gate(
        {
            "name": "data_quality",
            "metric": "rows",
            "comparator": ">=",
            "threshold": 3,
            "config": {"min_class_share": 0.3},
        }
    )
    j = judge(gate, m)
    assert not j.passed
    assert {f.split()[0] for f in j.failures} == {
        "non_finite_values",
        "duplicate_rows",
        "min_class_share",
    }


def test_psi_is_zero_for_the_same_sample_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    small, large = psi(ref, ref + 0.1), psi(ref, ref + 1.0)
    assert 0 < small < large
    # Hand computation for two bins: shares (0.5, 0.5) vs (0.2, 0.8).
    two_ref = np.array([0.0, 0.0, 1.0, 1.0])
    cur = np.array([0.0] + [1.0] * 4)
    expected = (0.2 - 0.5) * np.log(0.2 / 0.5) + (0.8 - 0.5) * np.log(0.8 / 0.5)
    assert psi(two_ref, cur, bins=2) == pytest.approx(expected)


def test_historical_windows_give_a_yardstick_per_window():
    rng = np.random.default_rng(1)
    ts = pd.bdate_range("2020-01-01", periods=400)
    frame = pd.DataFrame({"ts": ts, "f": rng.normal(size=400)})
    values = historical_psi(frame, ["f"], window_bars=63, n_windows=10)
    assert len(values) == 10 and (values > 0).all()
    assert len(historical_psi(frame.head(100), ["f"], window_bars=63)) == 0
