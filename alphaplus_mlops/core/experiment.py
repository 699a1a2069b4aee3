"""The verdict of a champion-vs-challenger experiment on live outcomes (pure).

Both versions answer every bar, so their realized per-bar net returns are paired:
d_t = challenger − champion. The verdict comes from the always-valid sequential test
(``core.sequential``) and two guardrails on the challenger that need no test: its drawdown
over the experiment and its calibration (log loss) against the champion's on the same bars.

    a guardrail breached            -> stop      (the challenger is retired, with the reason)
    fewer than min_bars             -> continue
    p <= alpha, the challenger ahead  -> promote (through the gated promotion path)
    p <= alpha, the challenger behind -> stop
    max_bars reached                -> expired   (no difference shown: the champion stays)
    otherwise                       -> continue
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphaplus_mlops.core.paired import log_loss_per_row
from alphaplus_mlops.core.sequential import DEFAULT_MIN_BARS, DEFAULT_TAU_SD, sequential_looks


@dataclass(frozen=True)
class ExperimentRule:
    alpha: float = 0.05
    tau_sd: float = DEFAULT_TAU_SD
    min_bars: int = DEFAULT_MIN_BARS
    max_bars: int = 504
    max_drawdown: float = 0.25
    """The challenger's largest peak-to-trough loss over the experiment."""
    max_log_loss_excess: float = 0.02
    """The challenger's mean log loss minus the champion's, on the same rows."""

    @classmethod
    def from_gate(cls, row: dict | None):
        """From its row of quality_gates (threshold: alpha; config: the other fields; the
        live_experiment row here, auto_rollback for core.probation), else defaults."""
        if row is None:
            return cls()
        config = row.get("config") or {}
        known = {k: config[k] for k in cls.__dataclass_fields__ if k in config and k != "alpha"}
        return cls(alpha=float(row["threshold"]), **known)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha}")
        if not 2 <= self.min_bars <= self.max_bars:
            raise ValueError(
                f"need 2 <= min_bars <= max_bars, got {self.min_bars} and {self.max_bars}"
            )


@dataclass(frozen=True)
class ExperimentVerdict:
    outcome: str
    """promote | stop | continue | expired"""
    reasons: tuple[str, ...]
    n: int
    mean_difference: float
    p_value: float
    challenger_drawdown: float
    log_loss_excess: float

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "n": self.n,
            "mean_difference": self.mean_difference,
            "p_value": self.p_value,
            "challenger_drawdown": self.challenger_drawdown,
            "log_loss_excess": self.log_loss_excess,
        }


def drawdown(returns: np.ndarray) -> float:
    """The largest fall of the compounded equity from its running peak (start at 1)."""
    r = np.asarray(returns, dtype=float)
    if len(r) == 0:
        return 0.0
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    return float(np.max(1.0 - equity / peak))


def judge_experiment(
    challenger_returns: np.ndarray,
    champion_returns: np.ndarray,
    challenger_log_loss: float,
    champion_log_loss: float,
    rule: ExperimentRule,
) -> ExperimentVerdict:
    """The verdict after the bars seen so far (per-bar net returns, aligned by bar)."""
    a = np.asarray(challenger_returns, dtype=float)
    b = np.asarray(champion_returns, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"the two series are not paired: {a.shape} and {b.shape} bars")
    d = a - b
    n = len(d)
    fall = drawdown(a)
    excess = float(challenger_log_loss - champion_log_loss)
    mean = float(d.mean()) if n else 0.0
    p_value = 1.0
    if n >= rule.min_bars:
        p_value = sequential_looks(d, tau_sd=rule.tau_sd, min_bars=rule.min_bars)[-1].p_value

    def verdict(outcome: str, *reasons: str) -> ExperimentVerdict:
        return ExperimentVerdict(outcome, reasons, n, mean, p_value, fall, excess)

    edge = f"mean edge {mean:+.5f} per bar over {n} bars, always-valid p {p_value:.4f}"
    if fall > rule.max_drawdown:
        return verdict(
            "stop", f"guardrail: challenger drawdown {fall:.1%} > {rule.max_drawdown:.1%}", edge
        )
    if n >= rule.min_bars and excess > rule.max_log_loss_excess:
        return verdict(
            "stop",
            f"guardrail: challenger log loss {excess:+.4f} above the champion's "
            f"(> {rule.max_log_loss_excess})",
            edge,
        )
    if n < rule.min_bars:
        return verdict("continue", f"{n} of {rule.min_bars} bars before the first look")
    if p_value <= rule.alpha:
        if mean > 0:
            return verdict("promote", f"challenger better: {edge} <= {rule.alpha}")
        return verdict("stop", f"challenger worse: {edge} <= {rule.alpha}")
    if n >= rule.max_bars:
        return verdict("expired", f"no difference shown in {rule.max_bars} bars: {edge}")
    return verdict("continue", edge)


@dataclass(frozen=True)
class PairedOutcomes:
    """Both versions' realized outcomes on the (symbol, bar)s both answered."""

    bars: pd.DatetimeIndex
    challenger: np.ndarray
    """Per-bar net return (the mean over the bar's symbols)."""
    champion: np.ndarray
    challenger_log_loss: float
    champion_log_loss: float


def paired_outcomes(challenger: pd.DataFrame, champion: pd.DataFrame) -> PairedOutcomes:
    """``challenger``, ``champion``: realized rows (bar_ts, symbol, probability,
    realized_label, realized_net_return), each version in its own role."""
    both = challenger.merge(champion, on=["bar_ts", "symbol"], suffixes=("_a", "_b"))
    both = both.dropna(subset=["realized_net_return_a", "realized_net_return_b"])
    if both.empty:
        empty = np.array([])
        return PairedOutcomes(pd.DatetimeIndex([]), empty, empty, float("nan"), float("nan"))
    per_bar = both.groupby("bar_ts")[["realized_net_return_a", "realized_net_return_b"]].mean()
    label = both["realized_label_a"].to_numpy(dtype=float)
    return PairedOutcomes(
        pd.DatetimeIndex(per_bar.index),
        per_bar["realized_net_return_a"].to_numpy(),
        per_bar["realized_net_return_b"].to_numpy(),
        float(log_loss_per_row(label, both["probability_a"].to_numpy()).mean()),
        float(log_loss_per_row(label, both["probability_b"].to_numpy()).mean()),
    )
