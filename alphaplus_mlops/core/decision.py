"""The deployment rule: what to do with a candidate once its gates have been judged.

A candidate is compared with the champion only on evidence: paired tests on bars the
champion never saw (see :mod:`alphaplus_mlops.core.paired`), with a minimum number of bars
per symbol. Too little evidence, or no significant difference, is never a rejection: the
candidate shadows the champion as challenger so that live outcomes can decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RULE = "deploy-v2"

#: Paired tests a comparison carries, by name: the net-return difference decides; the
#: other two are guardrails that can hold back a promotion but never reject.
DECIDING_TEST = "net_return"
GUARDRAIL_TESTS = ("log_loss", "roc_auc")


@dataclass(frozen=True)
class Decision:
    outcome: str
    """promote | shadow | keep_champion | reject"""
    reasons: list[str]
    rule: str = RULE


@dataclass(frozen=True)
class ComparisonRule:
    """The champion_comparison row of quality_gates: the least evidence, in bars per
    symbol, and the one-sided significance levels to promote and to turn down."""

    min_bars: int = 250
    alpha_better: float = 0.05
    alpha_worse: float = 0.025

    @classmethod
    def from_gate(cls, row: dict | None) -> ComparisonRule:
        if row is None:
            return cls()
        config = row.get("config") or {}
        return cls(
            min_bars=int(row["threshold"]),
            alpha_better=float(config.get("alpha_better", cls.alpha_better)),
            alpha_worse=float(config.get("alpha_worse", cls.alpha_worse)),
        )


def _measured(value: object) -> bool:
    """A number that came out of a test: JSON turns NaN into null, so both mean 'not
    measured' (too few rows, a constant series, a failed variance estimate)."""
    return isinstance(value, int | float) and math.isfinite(value)


def _unmeasured(test: dict | None) -> bool:
    return test is None or not all(
        _measured(test.get(key)) for key in ("estimate", "p_better", "p_worse")
    )


def _fmt(value: object, spec: str) -> str:
    return format(value, spec) if _measured(value) else "n/a"


def _fmt_test(name: str, test: dict | None) -> str:
    test = test or {}
    return (
        f"{name} {_fmt(test.get('estimate'), '+.4g')} (z {_fmt(test.get('z'), '+.2f')}, "
        f"p_better {_fmt(test.get('p_better'), '.3f')}, "
        f"p_worse {_fmt(test.get('p_worse'), '.3f')})"
    )


def decide(
    gates_passed: bool,
    gate_summary: str,
    has_champion: bool,
    comparison: dict | None,
    rule: ComparisonRule,
    no_comparison: str | None = None,
) -> Decision:
    """deploy-v2, in order:

    1. any gate not passed → reject;
    2. no champion yet → promote (the absolute gates are the whole test);
    3. no comparison, or fewer than ``rule.min_bars`` shared bars for some symbol →
       shadow as challenger: insufficient evidence;
    4. net return significantly worse (p_worse < alpha_worse) → keep the champion;
    5. net return significantly better (p_better < alpha_better) and neither guardrail
       (log loss, ROC-AUC) significantly worse → promote;
    6. otherwise → shadow as challenger (no significant difference, or mixed evidence).

    A comparison that ran but could not be measured fails: an unmeasured net-return test
    (NaN or missing) keeps the champion, and an unmeasured guardrail holds back a
    promotion as a significantly worse one would.

    ``comparison`` holds ``evidence_bars`` and ``tests``: PairedTest dicts by name.
    ``no_comparison`` says why there is none when the reason is not the usual lack of
    unseen bars: a champion whose files are lost takes step 3 too, as an incomparable
    champion does. The candidate cannot be shown better than a model nobody can read, and
    replacing the champion unseen would be a decision no evidence supports; the reason
    names the alert that asks a person to restore the files, roll back or promote.
    """
    if not gates_passed:
        return Decision("reject", [f"quality gates not all passed: {gate_summary}"])
    if not has_champion:
        return Decision("promote", ["first model of its family and every gate passed"])
    if not comparison:
        why = no_comparison or "no bars unseen by the champion to compare on"
        return Decision(
            "shadow",
            [f"insufficient evidence: {why}; run as challenger until live outcomes decide"],
        )
    if not _measured(comparison.get("evidence_bars")):
        return Decision(
            "keep_champion",
            ["comparison unmeasured (no count of shared bars): counted as failed"],
        )
    bars = int(comparison["evidence_bars"])
    if bars < rule.min_bars:
        return Decision(
            "shadow",
            [
                f"insufficient evidence: {bars} shared bars per symbol, {rule.min_bars} "
                "needed; run as challenger until live outcomes decide"
            ],
        )
    tests = comparison.get("tests") or {}
    deciding = tests.get(DECIDING_TEST)
    detail = "; ".join(_fmt_test(n, tests.get(n)) for n in (DECIDING_TEST, *GUARDRAIL_TESTS))
    detail += f" on {bars} bars per symbol"
    if _unmeasured(deciding):
        return Decision(
            "keep_champion",
            [f"{DECIDING_TEST} test unmeasured, counted as failed: {detail}"],
        )
    if deciding["p_worse"] < rule.alpha_worse:
        return Decision("keep_champion", [f"significantly worse than the champion: {detail}"])
    if deciding["p_better"] < rule.alpha_better:
        unmeasured = [n for n in GUARDRAIL_TESTS if _unmeasured(tests.get(n))]
        worse = [
            n
            for n in GUARDRAIL_TESTS
            if n not in unmeasured and tests[n]["p_worse"] < rule.alpha_worse
        ]
        if not worse and not unmeasured:
            return Decision("promote", [f"significantly better than the champion: {detail}"])
        held = [f"significantly worse {', '.join(worse)}"] if worse else []
        held += [f"unmeasured {', '.join(unmeasured)}"] if unmeasured else []
        return Decision("shadow", [f"better net return but {' and '.join(held)}: {detail}"])
    return Decision("shadow", [f"no significant difference from the champion: {detail}"])
