"""The deployment rule: what to do with a candidate once its gates have been judged."""

from __future__ import annotations

from dataclasses import dataclass

RULE = "deploy-v1"


@dataclass(frozen=True)
class Decision:
    outcome: str
    """promote | shadow | keep_champion | reject"""
    reasons: list[str]
    rule: str = RULE


def decide(
    gates_passed: bool,
    gate_summary: str,
    has_champion: bool,
    candidate_on_shared: dict | None,
    champion_on_shared: dict | None,
    promote_margin: float = 0.0,
) -> Decision:
    """deploy-v1, in order:

    1. any gate not passed → reject;
    2. no champion yet → promote (the absolute gates are the whole test);
    3. no rows unseen by the champion to compare on → shadow as challenger, so live
       paired outcomes can decide;
    4. net Sharpe on shared rows beats the champion's by more than ``promote_margin`` and
       ROC-AUC is not lower → promote;
    5. better on one of the two → shadow as challenger;
    6. worse on both (yet within the gates' tolerance) → keep the champion.
    """
    if not gates_passed:
        return Decision("reject", [f"quality gates not all passed: {gate_summary}"])
    if not has_champion:
        return Decision("promote", ["first model of its family and every gate passed"])
    if not candidate_on_shared or not champion_on_shared:
        return Decision(
            "shadow",
            [
                "no rows unseen by the champion to compare on: run as "
                "challenger until live outcomes decide"
            ],
        )
    sharpe_gain = candidate_on_shared["net_sharpe"] - champion_on_shared["net_sharpe"]
    auc_gain = candidate_on_shared["roc_auc"] - champion_on_shared["roc_auc"]
    detail = (
        f"net Sharpe {sharpe_gain:+.3f}, ROC-AUC {auc_gain:+.4f} vs the champion on shared rows"
    )
    if sharpe_gain > promote_margin and auc_gain >= 0:
        return Decision("promote", [f"better than the champion: {detail}"])
    if sharpe_gain > 0 or auc_gain > 0:
        return Decision("shadow", [f"mixed evidence: {detail}"])
    return Decision("keep_champion", [f"not better than the champion: {detail}"])
