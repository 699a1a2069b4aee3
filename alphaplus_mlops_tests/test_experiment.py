"""The verdict of a champion-vs-challenger experiment: the sequential test and the
guardrails, in the order a desk relies on."""

import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.core.experiment import (
    ExperimentRule,
    drawdown,
    judge_experiment,
    paired_outcomes,
)
from alphaplus_mlops.core.sequential import sequential_looks

RULE = ExperimentRule(min_bars=20, max_bars=300)


def series(n, mean, seed):
    return 0.01 * np.random.default_rng(seed).standard_normal(n) + mean


def test_drawdown_is_the_largest_fall_from_a_peak():
    assert drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)
    assert drawdown(np.array([-0.1, -0.1])) == pytest.approx(1 - 0.81)
    assert drawdown(np.array([])) == 0.0


def test_a_clearly_better_challenger_is_promoted_and_a_worse_one_stopped():
    champion = series(200, 0.0, 1)
    better = judge_experiment(champion + 0.01, champion, 0.69, 0.69, RULE)
    assert better.outcome == "promote" and better.mean_difference == pytest.approx(0.01)
    assert better.reasons[0].startswith("challenger better: mean edge +0.01000 per bar")
    d = np.full(200, 0.01)
    assert better.p_value == sequential_looks(d, min_bars=20)[-1].p_value
    earning = champion / 5 + 0.003  # a champion that earns, and a challenger that does not
    worse = judge_experiment(earning - 0.003 + series(200, 0.0, 2) / 10, earning, 0.69, 0.69, RULE)
    assert worse.outcome == "stop" and worse.reasons[0].startswith("challenger worse")


def test_no_difference_continues_then_expires():
    champion = series(300, 0.0, 3)
    challenger = champion + series(300, 0.0, 4)
    assert judge_experiment(challenger[:10], champion[:10], 0.69, 0.69, RULE).reasons == (
        "10 of 20 bars before the first look",
    )
    assert judge_experiment(challenger[:100], champion[:100], 0.69, 0.69, RULE).outcome == (
        "continue"
    )
    expired = judge_experiment(challenger, champion, 0.69, 0.69, RULE)
    assert expired.outcome == "expired"
    assert expired.reasons[0].startswith("no difference shown in 300 bars")


def test_guardrails_stop_a_challenger_before_any_test():
    champion = series(25, 0.0, 5)
    crash = np.r_[np.zeros(5), -0.3, np.zeros(19)]
    stopped = judge_experiment(crash, champion, 0.69, 0.69, RULE)
    assert stopped.outcome == "stop" and stopped.reasons[0].startswith(
        "guardrail: challenger drawdown 30.0% > 25.0%"
    )
    miscalibrated = judge_experiment(champion, champion, 0.75, 0.69, RULE)
    assert miscalibrated.outcome == "stop"
    assert "log loss +0.0600 above the champion's" in miscalibrated.reasons[0]
    # Calibration is judged from the first look on, not on a handful of bars.
    assert judge_experiment(champion[:5], champion[:5], 0.75, 0.69, RULE).outcome == "continue"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="not paired: \\(3,\\) and \\(4,\\) bars"):
        judge_experiment(np.zeros(3), np.zeros(4), 0.69, 0.69, RULE)
    with pytest.raises(ValueError, match="min_bars <= max_bars"):
        ExperimentRule(min_bars=50, max_bars=10)
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
        ExperimentRule(alpha=1.5)


def test_outcomes_are_paired_on_the_bars_both_answered():
    ts = pd.to_datetime(["2020-01-02", "2020-01-02", "2020-01-03", "2020-01-06"], utc=True)

    def rows(net, proba):
        return pd.DataFrame(
            {
                "bar_ts": ts,
                "symbol": ["A", "B", "A", "A"],
                "probability": proba,
                "realized_label": [1, 0, 1, 1],
                "realized_net_return": net,
            }
        )

    a = rows([0.02, 0.0, 0.01, np.nan], [0.8, 0.2, 0.6, 0.5])
    b = rows([0.01, -0.01, 0.0, 0.03], [0.5, 0.5, 0.5, 0.5]).iloc[:3]
    paired = paired_outcomes(a, b)
    assert list(paired.bars.strftime("%Y-%m-%d")) == ["2020-01-02", "2020-01-03"]
    assert paired.challenger.tolist() == pytest.approx([0.01, 0.01])
    assert paired.champion.tolist() == pytest.approx([0.0, 0.0])
    assert paired.champion_log_loss == pytest.approx(np.log(2))
    expected = -np.mean([np.log(0.8), np.log(0.8), np.log(0.6)])
    assert paired.challenger_log_loss == pytest.approx(expected)


def test_the_rule_is_read_from_its_row():
    row = {"threshold": 0.01, "config": {"min_bars": 40, "max_bars": 200, "unknown": 1}}
    rule = ExperimentRule.from_gate(row)
    assert (rule.alpha, rule.min_bars, rule.max_bars) == (0.01, 40, 200)
    assert rule.max_drawdown == ExperimentRule().max_drawdown
    assert ExperimentRule(**rule.as_dict()) == rule
    assert ExperimentRule.from_gate(None) == ExperimentRule()
