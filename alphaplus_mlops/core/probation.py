"""Probation after a promotion: is the new champion worse than the one it replaced? (pure)

After a promotion the previous champion keeps answering every bar in shadow, so the two
versions' realized per-bar net returns are paired: d_t = champion − previous. The new
champion is rolled back when

    a guardrail breaks: its drawdown since the promotion is beyond ``max_drawdown`` and
                        deeper than the previous champion's on the same bars (a market
                        crash that both suffer is no reason to switch), or its log loss is
                        above the previous champion's by more than ``max_log_loss_excess``;
    or it is significantly worse: the one-sided always-valid test (``core.sequential``,
                        ``alternative="less"``) gives p <= alpha.

Nothing is judged before ``min_bars`` paired bars (hysteresis: a few bad days prove
nothing), and probation ends, passed, after ``max_bars``. Whether a rollback may happen at
all (``rollback_refusal``) is the other half of the hysteresis: at most one automatic
rollback per family per ``cooldown_seconds``, and never back to a version an automatic
rollback already removed (no flapping between two versions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from alphaplus_mlops.core.experiment import ExperimentRule, drawdown
from alphaplus_mlops.core.sequential import sequential_looks


@dataclass(frozen=True)
class ProbationRule(ExperimentRule):
    """The experiment's rule (read from a row, checked the same way), with probation's
    defaults and a cooldown between automatic rollbacks."""

    tau_sd: float = 0.1
    """Wider than the experiment's: a rollback is for a clear fall (bench/ab_sequential.py)."""
    min_bars: int = 40
    """Also the hysteresis: a few bad days prove nothing, and the long-run variance of
    fewer bars is too noisy for the wider mixture (bench/ab_sequential.py)."""
    max_bars: int = 252
    max_drawdown: float = 0.15
    cooldown_seconds: float = 7 * 86_400.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cooldown_seconds < 0:
            raise ValueError(f"cooldown_seconds must be >= 0, got {self.cooldown_seconds}")


@dataclass(frozen=True)
class ProbationVerdict:
    outcome: str
    """rollback | continue | passed"""
    reasons: tuple[str, ...]
    n: int
    mean_difference: float
    """The new champion's mean edge per bar over the previous one (negative: worse)."""
    p_value: float
    """The one-sided always-valid p of "the new champion is not worse"."""
    champion_drawdown: float
    previous_drawdown: float
    log_loss_excess: float

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "n": self.n,
            "mean_difference": self.mean_difference,
            "p_value": self.p_value,
            "champion_drawdown": self.champion_drawdown,
            "previous_drawdown": self.previous_drawdown,
            "log_loss_excess": self.log_loss_excess,
        }


def judge_probation(
    champion_returns: np.ndarray,
    previous_returns: np.ndarray,
    champion_log_loss: float,
    previous_log_loss: float,
    rule: ProbationRule,
) -> ProbationVerdict:
    """The verdict after the paired bars seen since the promotion (per-bar net returns,
    aligned by bar)."""
    a = np.asarray(champion_returns, dtype=float)
    b = np.asarray(previous_returns, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"the two series are not paired: {a.shape} and {b.shape} bars")
    d = a - b
    n = len(d)
    fall, previous_fall = drawdown(a), drawdown(b)
    excess = float(champion_log_loss - previous_log_loss) if n else 0.0
    mean = float(d.mean()) if n else 0.0
    p_value = 1.0
    if n >= rule.min_bars:
        looks = sequential_looks(d, tau_sd=rule.tau_sd, min_bars=rule.min_bars, alternative="less")
        p_value = looks[-1].p_value

    def verdict(outcome: str, *reasons: str) -> ProbationVerdict:
        return ProbationVerdict(outcome, reasons, n, mean, p_value, fall, previous_fall, excess)

    edge = f"mean edge {mean:+.5f} per bar over {n} bars, one-sided always-valid p {p_value:.4f}"
    if n < rule.min_bars:
        return verdict("continue", f"{n} of {rule.min_bars} bars before the first look")
    if fall > rule.max_drawdown and fall > previous_fall:
        return verdict(
            "rollback",
            f"guardrail: drawdown {fall:.1%} since the promotion > {rule.max_drawdown:.1%} "
            f"(the previous champion's {previous_fall:.1%})",
            edge,
        )
    if excess > rule.max_log_loss_excess:
        return verdict(
            "rollback",
            f"guardrail: log loss {excess:+.4f} above the previous champion's "
            f"(> {rule.max_log_loss_excess})",
            edge,
        )
    if p_value <= rule.alpha and mean < 0:
        return verdict("rollback", f"worse than the previous champion: {edge} <= {rule.alpha}")
    if n >= rule.max_bars:
        return verdict("passed", f"not worse in {rule.max_bars} bars: {edge}")
    return verdict("continue", edge)


def rollback_refusal(
    rule: ProbationRule,
    *,
    now: datetime,
    last_auto_rollback_at: datetime | None,
    target_removed_by_auto_rollback: bool,
    target_version: int,
) -> str | None:
    """Why an automatic rollback to ``target_version`` may not happen now, or None."""
    if last_auto_rollback_at is not None:
        since = (now - last_auto_rollback_at).total_seconds()
        if since < rule.cooldown_seconds:
            return (
                f"cooldown: the family's last automatic rollback was {since:.0f} s ago "
                f"(< {rule.cooldown_seconds:.0f} s)"
            )
    if target_removed_by_auto_rollback:
        return (
            f"no flapping: v{target_version} was itself removed by an automatic rollback; "
            "a person decides between the two"
        )
    return None
