"""Judging predictions: ML and cost-aware business metrics, the rows a champion never
saw, ONNX parity and latency. No Dagster and no database here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alphaplus_mlops.core.backtest import backtest_signal
from alphaplus_mlops.core.metrics import classification_metrics
from alphaplus_mlops.core.paired import delong_paired_test, hac_mean_test, log_loss_per_row
from alphaplus_mlops.core.stats import (
    deflated_sharpe,
    effective_trials,
    mean_pairwise_correlation,
    probabilistic_sharpe,
)


@dataclass
class Evaluation:
    ml: dict[str, float]
    business: dict[str, float]
    returns: pd.Series
    n_rows: int
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PriorTrials:
    """Earlier trials on the same label definition: every one's per-bar Sharpe, and the
    per-bar net returns of the most recent ones (to measure how correlated trials are)."""

    sharpes: list[float] = field(default_factory=list)
    returns: list[pd.Series] = field(default_factory=list)


def evaluate_predictions(
    rows: pd.DataFrame,
    proba: np.ndarray,
    cost_bps: float,
    band: float,
    prior: PriorTrials | None = None,
) -> Evaluation:
    """ML metrics on the labels, business metrics on a cost-aware backtest of the signal.

    ``prior`` are the trials before this one; with it they are the trials that deflate its
    Sharpe: N of them, worth N_eff = ρ̄ + (1 − ρ̄)·N independent ones when their returns
    correlate ρ̄ on average.
    """
    prior = prior or PriorTrials()
    frame = rows[["symbol", "ts", "close", "label"]].copy()
    frame["proba"] = np.asarray(proba, dtype=float)
    ml = classification_metrics(frame["label"].to_numpy(), frame["proba"].to_numpy())
    metrics, returns = backtest_signal(frame, cost_bps=cost_bps, band=band)
    r = returns.to_numpy()
    sharpe_per_bar = float(r.mean() / r.std(ddof=1)) if r.std(ddof=1) > 0 else 0.0
    trials = [*prior.sharpes, sharpe_per_bar]
    correlation = mean_pairwise_correlation([returns, *prior.returns])
    n_effective = effective_trials(len(trials), correlation)
    business = {
        **metrics.as_dict(),
        "sharpe_per_bar": sharpe_per_bar,
        "probabilistic_sharpe": probabilistic_sharpe(r),
        "deflated_sharpe": deflated_sharpe(r, np.asarray(trials), n_effective),
        "n_trials": len(trials),
        "n_effective_trials": n_effective,
        "mean_trial_correlation": correlation,
        "cost_bps": cost_bps,
    }
    return Evaluation(ml, business, returns, len(frame))


MIN_TESTABLE_BARS = 10
"""A paired test needs a few bars per symbol to estimate a variance; whether there are
enough to decide is the deployment rule's call (the champion_comparison row of quality_gates)."""


def evidence_bars(rows: pd.DataFrame) -> int:
    """Evidence in bars per symbol: the fewest rows any symbol has (0 for no rows)."""
    return int(rows.groupby("symbol").size().min()) if len(rows) else 0


def rows_to_judge(
    shared: pd.DataFrame, since, log: Callable[[str, str], None] | None = None
) -> pd.DataFrame | None:
    """The rows a candidate is judged on against the champion, of ``shared`` (both answered
    them): those from ``since`` (a detected change) on when they hold MIN_TESTABLE_BARS per
    symbol, else all of them; None when even all are too few to test. ``log(level, text)``
    hears which it was ("info" or "warning")."""
    log = log or (lambda level, text: None)
    if since is not None:
        since = pd.Timestamp(since)
        recent = shared[shared["ts"] >= since]
        if evidence_bars(recent) >= MIN_TESTABLE_BARS:
            log(
                "info",
                f"judged on the {evidence_bars(recent)} bars per symbol since "
                f"{since:%Y-%m-%d}, the detected change",
            )
            return recent.reset_index(drop=True)
        log(
            "warning",
            f"{evidence_bars(recent)} bars per symbol since {since:%Y-%m-%d}: too few; judged "
            f"on all {evidence_bars(shared)} bars after the champion's training",
        )
    if evidence_bars(shared) < MIN_TESTABLE_BARS:
        log("warning", f"{evidence_bars(shared)} shared bars per symbol: too few to test")
        return None
    return shared


def compare_on_rows(
    rows: pd.DataFrame, champion_proba: np.ndarray, cost_bps: float, band: float
) -> tuple[Evaluation, Evaluation, dict]:
    """The champion's and the candidate's (``rows["proba"]``) evaluations on the same rows,
    and the paired tests between them: (champion, candidate, paired_comparison)."""
    champion = evaluate_predictions(rows, champion_proba, cost_bps, band)
    candidate = evaluate_predictions(rows, rows["proba"].to_numpy(), cost_bps, band)
    return champion, candidate, paired_comparison(candidate, champion, rows, champion_proba)


def paired_comparison(
    candidate: Evaluation, champion: Evaluation, rows: pd.DataFrame, champion_proba: np.ndarray
) -> dict:
    """Paired tests of the candidate against the champion on the same rows: the per-bar
    net-return difference (HAC), the per-bar log-loss differential (Diebold-Mariano, HAC)
    and ROC-AUC (DeLong). ``rows`` carry the candidate's ``proba`` and the labels; both
    evaluations were made on them. JSON-ready: evidence_bars and tests by name."""
    returns = candidate.returns.to_frame("candidate").join(
        champion.returns.to_frame("champion"), how="inner"
    )
    labels = rows["label"].to_numpy()
    losses = (
        pd.DataFrame(
            {
                "ts": rows["ts"].to_numpy(),
                # Champion minus candidate: positive when the candidate's loss is lower.
                "gain": log_loss_per_row(labels, champion_proba)
                - log_loss_per_row(labels, rows["proba"].to_numpy()),
            }
        )
        .groupby("ts")["gain"]
        .mean()
    )
    tests = {
        "net_return": hac_mean_test(
            (returns["candidate"] - returns["champion"]).to_numpy(), method="hac_net_return"
        ),
        "log_loss": hac_mean_test(losses.to_numpy(), method="diebold_mariano_log_loss"),
        "roc_auc": delong_paired_test(labels, rows["proba"].to_numpy(), champion_proba),
    }
    return {
        "evidence_bars": evidence_bars(rows),
        "tests": {name: test.as_dict() for name, test in tests.items()},
    }


def onnx_parity(native_proba: np.ndarray, onnx_proba: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(native_proba) - np.asarray(onnx_proba))))


def single_row_latency_us(predict, x: np.ndarray, n: int = 200) -> dict[str, float]:
    """Median and p99 wall time of one-row predictions, in microseconds (a measurement)."""
    rows = x[: min(n, len(x))]
    timings = []
    for i in range(len(rows)):
        start = time.perf_counter()
        predict(rows[i : i + 1])
        timings.append((time.perf_counter() - start) * 1e6)
    return {"p50": float(np.percentile(timings, 50)), "p99": float(np.percentile(timings, 99))}
