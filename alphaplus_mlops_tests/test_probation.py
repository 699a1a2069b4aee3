"""The probation verdict after a promotion (pure): nothing before min_bars, a rollback when
the new champion is significantly worse or breaks a guardrail the previous one does not,
passed after max_bars; and the hysteresis that may refuse a rollback."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alphaplus_mlops.core.probation import ProbationRule, judge_probation, rollback_refusal

RULE = ProbationRule(min_bars=20, max_bars=100, max_drawdown=0.15, max_log_loss_excess=0.02)


def series(mean, n, seed, sd=0.002):
    return mean + sd * np.random.default_rng(seed).standard_normal(n)


def test_nothing_is_judged_before_min_bars_however_bad():
    verdict = judge_probation(series(-0.05, 19, 1), series(0.0, 19, 2), 0.9, 0.6, RULE)
    assert verdict.outcome == "continue"
    assert verdict.reasons == ("19 of 20 bars before the first look",)
    assert verdict.p_value == 1.0


def test_a_significantly_worse_champion_is_rolled_back():
    verdict = judge_probation(series(-0.002, 60, 1), series(0.001, 60, 2), 0.69, 0.69, RULE)
    assert verdict.outcome == "rollback"
    assert verdict.p_value <= RULE.alpha and verdict.mean_difference < 0
    assert verdict.reasons[0].startswith("worse than the previous champion: mean edge -0.00")


def test_a_better_or_equal_champion_is_never_rolled_back_and_passes_at_max_bars():
    better = judge_probation(series(0.003, 100, 1), series(0.0, 100, 2), 0.69, 0.69, RULE)
    assert better.outcome == "passed" and better.p_value == 1.0
    same = series(0.0005, 60, 3)
    assert judge_probation(same, same, 0.69, 0.69, RULE).outcome == "continue"


def test_a_drawdown_guardrail_only_for_a_fall_the_previous_champion_did_not_share():
    crash = np.concatenate([series(0.0, 10, 1), np.full(10, -0.02), series(0.0, 20, 2)])
    both = judge_probation(crash, crash, 0.69, 0.69, RULE)
    assert both.champion_drawdown > 0.15 and both.outcome == "continue"
    alone = judge_probation(crash, series(0.0, 40, 3), 0.69, 0.69, RULE)
    assert alone.outcome == "rollback"
    assert alone.reasons[0].startswith("guardrail: drawdown 1")


def test_a_log_loss_guardrail():
    x = series(0.0, 30, 1)
    verdict = judge_probation(x, x, 0.72, 0.69, RULE)
    assert verdict.outcome == "rollback"
    assert verdict.reasons[0] == (
        "guardrail: log loss +0.0300 above the previous champion's (> 0.02)"
    )


def test_the_series_must_be_paired():
    with pytest.raises(ValueError, match="not paired"):
        judge_probation(np.zeros(30), np.zeros(29), 0.69, 0.69, RULE)


def test_the_rule_comes_from_its_row_and_refuses_nonsense():
    row = {"threshold": 0.01, "config": {"min_bars": 30, "cooldown_seconds": 60, "other": 1}}
    rule = ProbationRule.from_gate(row)
    assert (rule.alpha, rule.min_bars, rule.cooldown_seconds) == (0.01, 30, 60)
    assert ProbationRule.from_gate(None) == ProbationRule()
    with pytest.raises(ValueError, match="min_bars <= max_bars"):
        ProbationRule(min_bars=50, max_bars=40)
    with pytest.raises(ValueError, match="alpha"):
        ProbationRule(alpha=1.0)


def test_hysteresis_one_rollback_per_cooldown_and_no_flapping():
    now = datetime(2026, 1, 10, tzinfo=UTC)
    rule = ProbationRule(cooldown_seconds=86_400)
    free = dict(last_auto_rollback_at=None, target_removed_by_auto_rollback=False)
    assert rollback_refusal(rule, now=now, target_version=3, **free) is None
    recent = rollback_refusal(
        rule,
        now=now,
        last_auto_rollback_at=now - timedelta(hours=2),
        target_removed_by_auto_rollback=False,
        target_version=3,
    )
    assert recent == "cooldown: the family's last automatic rollback was 7200 s ago (< 86400 s)"
    assert (
        rollback_refusal(
            rule,
            now=now,
            last_auto_rollback_at=now - timedelta(days=2),
            target_removed_by_auto_rollback=False,
            target_version=3,
        )
        is None
    )
    flap = rollback_refusal(
        rule,
        now=now,
        last_auto_rollback_at=None,
        target_removed_by_auto_rollback=True,
        target_version=3,
    )
    assert flap.startswith("no flapping: v3 was itself removed by an automatic rollback")
