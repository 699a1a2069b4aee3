"""The deployment rule (deploy-v2): decisions on paired evidence, never on a coin flip."""

import numpy as np
import pandas as pd
import pytest

from alphaplus_mlops.core.decision import ComparisonRule, decide
from alphaplus_mlops.modeling.assessment import (
    evaluate_predictions,
    paired_comparison,
    rows_to_judge,
)

RULE = ComparisonRule(min_bars=250, alpha_better=0.05, alpha_worse=0.025)


def _test(p_better: float) -> dict:
    return {"estimate": 0.001, "z": 0.0, "p_better": p_better, "p_worse": 1 - p_better}


def _comparison(bars=300, net=0.5, log_loss=0.5, roc_auc=0.5) -> dict:
    return {
        "evidence_bars": bars,
        "tests": {"net_return": _test(net), "log_loss": _test(log_loss), "roc_auc": _test(roc_auc)},
    }


@pytest.mark.parametrize(
    ("gates", "champion", "comparison", "outcome", "says"),
    [
        (False, True, _comparison(net=0.001), "reject", "quality gates not all passed"),
        (True, False, None, "promote", "first model"),
        (True, True, None, "shadow", "insufficient evidence"),
        (True, True, _comparison(bars=249, net=0.0001), "shadow", "insufficient evidence"),
        (True, True, _comparison(bars=249, net=0.9999), "shadow", "insufficient evidence"),
        (True, True, _comparison(net=0.01), "promote", "significantly better"),
        (True, True, _comparison(net=0.99), "keep_champion", "significantly worse"),
        (True, True, _comparison(net=0.2), "shadow", "no significant difference"),
        (True, True, _comparison(net=0.01, log_loss=0.99), "shadow", "worse log_loss"),
        (True, True, _comparison(net=0.01, roc_auc=0.99), "shadow", "worse roc_auc"),
        # A guardrail alone never turns a candidate down.
        (True, True, _comparison(net=0.5, log_loss=0.999), "shadow", "no significant"),
    ],
)
def test_the_deployment_rule(gates, champion, comparison, outcome, says):
    decision = decide(gates, "summary", champion, comparison, RULE)
    assert decision.outcome == outcome
    assert says in decision.reasons[0]


def _unmeasured(comparison: dict, test: str, value) -> dict:
    """The comparison as stored: JSON turns a NaN p-value into null."""
    tests = {**comparison["tests"], test: {**comparison["tests"][test], "p_better": value}}
    return {**comparison, "tests": tests}


@pytest.mark.parametrize("value", [float("nan"), None])
def test_an_unmeasured_net_return_test_keeps_the_champion(value):
    decision = decide(True, "summary", True, _unmeasured(_comparison(), "net_return", value), RULE)
    assert decision.outcome == "keep_champion"
    assert decision.reasons[0].startswith("net_return test unmeasured, counted as failed")
    assert "p_better n/a" in decision.reasons[0]


@pytest.mark.parametrize("value", [float("nan"), None])
def test_an_unmeasured_guardrail_holds_back_a_promotion(value):
    comparison = _unmeasured(_comparison(net=0.01), "roc_auc", value)
    decision = decide(True, "summary", True, comparison, RULE)
    assert decision.outcome == "shadow"
    assert "better net return but unmeasured roc_auc" in decision.reasons[0]


def test_a_comparison_without_its_count_of_bars_or_a_test_fails():
    missing_bars = {**_comparison(net=0.01), "evidence_bars": None}
    assert decide(True, "s", True, missing_bars, RULE).outcome == "keep_champion"
    no_tests = {"evidence_bars": 300, "tests": {}}
    assert decide(True, "s", True, no_tests, RULE).outcome == "keep_champion"


def test_the_rule_reads_its_thresholds_from_the_gate_row():
    row = {"threshold": 400, "config": {"alpha_better": 0.01, "alpha_worse": 0.001}}
    assert ComparisonRule.from_gate(row) == ComparisonRule(400, 0.01, 0.001)
    assert ComparisonRule.from_gate(None) == ComparisonRule()


def _shared_rows(rng, n_bars: int, symbols: int = 3) -> pd.DataFrame:
    ts = pd.bdate_range("2020-01-01", periods=n_bars, tz="UTC")
    frames = []
    for s in range(symbols):
        returns = rng.normal(0, 0.01, n_bars)
        close = 100 * np.cumprod(1 + returns)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{s}",
                    "ts": ts,
                    "close": close,
                    "label": (np.roll(returns, -1) > 0).astype(int),
                    "edge": np.roll(returns, -1) / 0.01,  # what a skilled model half-knows
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _equally_skilled(rng, rows: pd.DataFrame) -> np.ndarray:
    noise = rng.normal(0, 4.0, len(rows))
    return 1 / (1 + np.exp(-0.3 * (rows["edge"].to_numpy() + noise)))


def test_equally_skilled_candidates_are_rarely_turned_down():
    # Two models with the same skill, judged on the demo's 327 shared bars: the old
    # 0.25 net-Sharpe tolerance turned the candidate down 33-39 % of the time.
    rng = np.random.default_rng(0)
    turned_down, trials = 0, 120
    for _ in range(trials):
        rows = _shared_rows(rng, 327)
        champion_proba = _equally_skilled(rng, rows)
        rows["proba"] = _equally_skilled(rng, rows)
        candidate = evaluate_predictions(rows, rows["proba"].to_numpy(), 5.0, 0.0)
        champion = evaluate_predictions(rows, champion_proba, 5.0, 0.0)
        comparison = paired_comparison(candidate, champion, rows, champion_proba)
        decision = decide(True, "", True, comparison, ComparisonRule(min_bars=250))
        turned_down += decision.outcome == "keep_champion"
    assert turned_down / trials <= 0.06


def test_a_clearly_better_candidate_is_promoted_and_evidence_counts_bars_per_symbol():
    rng = np.random.default_rng(1)
    rows = _shared_rows(rng, 300)
    champion_proba = np.full(len(rows), 0.5) + rng.normal(0, 0.01, len(rows))
    rows["proba"] = 1 / (1 + np.exp(-rows["edge"].to_numpy()))  # one-bar foresight
    candidate = evaluate_predictions(rows, rows["proba"].to_numpy(), 5.0, 0.0)
    champion = evaluate_predictions(rows, champion_proba, 5.0, 0.0)
    comparison = paired_comparison(candidate, champion, rows, champion_proba)
    assert comparison["evidence_bars"] == 300  # 900 pooled rows are 300 bars per symbol
    assert decide(True, "", True, comparison, RULE).outcome == "promote"
    # 17 bars of 3 symbols are 51 pooled rows, which the old rule counted as enough.
    few = rows.groupby("symbol").head(17)
    few_proba = champion_proba[few.index]
    short = paired_comparison(
        evaluate_predictions(few, few["proba"].to_numpy(), 5.0, 0.0),
        evaluate_predictions(few, few_proba, 5.0, 0.0),
        few,
        few_proba,
    )
    assert short["evidence_bars"] == 17
    assert "insufficient evidence" in decide(True, "", True, short, RULE).reasons[0]


def test_a_candidate_is_judged_on_the_bars_since_the_change_only_when_there_are_enough():
    bars = pd.bdate_range("2020-01-01", periods=30, tz="UTC")
    shared = pd.DataFrame(
        {"symbol": np.repeat(["A", "B"], 30), "ts": np.tile(bars, 2), "proba": 0.6}
    )
    heard = []
    recent = rows_to_judge(shared, bars[18], lambda level, text: heard.append((level, text)))
    assert len(recent) == 24 and recent["ts"].min() == bars[18]  # 12 bars per symbol
    assert heard == [
        ("info", "judged on the 12 bars per symbol since 2020-01-27, the detected change")
    ]
    heard.clear()
    everything = rows_to_judge(shared, bars[22], lambda level, text: heard.append((level, text)))
    assert len(everything) == 60  # 8 bars since: too few, so all 30
    assert heard[0][0] == "warning" and "8 bars per symbol since 2020-01-31: too few" in heard[0][1]
    assert rows_to_judge(shared, None) is shared
    assert rows_to_judge(shared[shared["ts"] < bars[9]], None) is None  # 9 bars: too few to test
