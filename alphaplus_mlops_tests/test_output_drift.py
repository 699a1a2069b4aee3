"""The model's outputs and the labels, compared between out-of-fold and live rows."""

import numpy as np
import pytest

from alphaplus_mlops.monitoring.output_drift import output_drift


def test_a_model_that_turned_bullish_and_a_market_that_turned_up_are_named():
    rng = np.random.default_rng(0)
    p0 = rng.uniform(0.3, 0.7, 600)
    y0 = (rng.uniform(size=600) < 0.5).astype(int)
    same = output_drift(p0, y0, rng.uniform(0.3, 0.7, 300), (rng.uniform(size=300) < 0.5))
    assert not same.prediction.drifted and not same.label.drifted
    assert same.prediction.method == "ks" and same.label.method == "z"  # 600 reference rows
    assert same.long_share[0] == pytest.approx(np.mean(p0 > 0.5))
    assert same.base_rate[0] == pytest.approx(y0.mean())

    moved = output_drift(p0, y0, rng.uniform(0.5, 0.9, 300), (rng.uniform(size=300) < 0.7))
    assert moved.prediction.drifted and moved.label.drifted
    assert moved.long_share[1] == 1.0
    assert moved.sentence().endswith("drifted: prediction, label_base_rate")
    assert moved.sentence().startswith(f"long share {moved.long_share[0]:.2f} -> 1.00")


def test_nothing_to_compare_is_said():
    with pytest.raises(ValueError, match="no out-of-fold or no live rows"):
        output_drift(np.ones(3), np.ones(3), np.array([]), np.array([]))
