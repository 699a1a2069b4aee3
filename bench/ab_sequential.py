"""How the champion-vs-challenger test behaves when looked at every bar (issue 12's A/B bench).

The test (core/sequential.py): the mixture SPRT on d_t = challenger − champion per-bar net
return, with an AR(1)-prewhitened Newey–West long-run variance re-estimated at each look,
from ``--min-bars`` on. Simulated, side by side in one run:

  size   under H0 (mean 0), d is AR(1) with coefficient φ ∈ {0, 0.2, 0.5, 0.8} and Student-t
         (5 degrees of freedom) shocks, looked at every bar for ``--bars`` (2,000) bars,
         ``--runs`` series each: the share that ever reaches p ≤ α. Beside it, the same
         series tested with the plain sample variance (what the long-run variance is for)
         and with Newey–West without prewhitening;
  power  d has an annualized Sharpe of 0.5, 1, 2 or 4 (iid t shocks): the share decided
         within 2,000 bars (8 years of daily bars) and the median bars to the verdict over
         ``--long-bars`` (25,200: a century; '>' when fewer than half are decided by then).

  probation  the automatic rollback's one-sided test (``alternative="less"``, τ =
         ``--probation-tau-sd``: 0.1, as a rollback is for a clear fall, which a wider
         mixture finds sooner; first look at ``--probation-min-bars``, 40, as the long-run
         variance of fewer bars is too noisy for a wide mixture; d = new champion −
         previous), looked at every bar of the probation window (``--probation-bars``,
         252): how often a new champion that is not worse is rolled back (H0 over the AR(1)
         coefficients, and one better by a Sharpe of 1); and, for new champions worse by a
         Sharpe of 1 to 8, the share caught within the window and the median bars to the
         rollback (over 2,000 bars).

The last line: ``AB false-positive rate X at alpha A`` (the worst φ, prewhitened).
Run: .venv/bin/python bench/ab_sequential.py [--runs 2000] [--alpha 0.05] [--tau-sd 0.05]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alphaplus_mlops.core.sequential import (
    DEFAULT_MIN_BARS,
    DEFAULT_TAU_SD,
    VARIANCE_ESTIMATORS,
    first_rejection,
)

YEAR = 252
PHIS = (0.0, 0.2, 0.5, 0.8)
SHARPES = (0.5, 1.0, 2.0, 4.0)


def ar1(phi: float, runs: int, bars: int, rng: np.random.Generator) -> np.ndarray:
    """AR(1) with unit-variance Student-t(5) shocks, started in its stationary law."""
    shocks = rng.standard_t(5, size=(runs, bars)) / np.sqrt(5 / 3)
    x = np.empty_like(shocks)
    x[:, 0] = shocks[:, 0] / np.sqrt(1 - phi * phi)
    for t in range(1, bars):
        x[:, t] = phi * x[:, t - 1] + shocks[:, t]
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--long-runs", type=int, default=200)
    parser.add_argument("--long-bars", type=int, default=100 * YEAR)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tau-sd", type=float, default=DEFAULT_TAU_SD)
    parser.add_argument("--min-bars", type=int, default=DEFAULT_MIN_BARS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probation-min-bars", type=int, default=40)
    parser.add_argument("--probation-bars", type=int, default=252)
    parser.add_argument("--probation-tau-sd", type=float, default=0.1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    print(
        f"mSPRT, tau = {args.tau_sd} sd, first look at {args.min_bars} bars, alpha "
        f"{args.alpha}; H0: {args.runs} series of {args.bars} bars per AR(1) coefficient"
    )
    print(f"\n{'AR(1)':<7}{'prewhitened NW':>16}{'plain NW':>10}{'sample variance':>17}  met")
    worst = 0.0
    for phi in PHIS:
        paths = ar1(phi, args.runs, args.bars, rng)
        rates = {
            v: float(
                np.mean(
                    first_rejection(
                        paths, args.alpha, tau_sd=args.tau_sd, min_bars=args.min_bars, variance=v
                    )
                    > 0
                )
            )
            for v in VARIANCE_ESTIMATORS
        }
        worst = max(worst, rates["prewhitened"])
        print(
            f"{phi:<7g}{rates['prewhitened']:>16.3f}{rates['newey_west']:>10.3f}"
            f"{rates['sample']:>17.3f}  {'yes' if rates['prewhitened'] <= args.alpha else 'NO'}"
        )

    print(
        f"\npower: annualized Sharpe of d; decided within {args.bars} bars ({args.runs} series) "
        f"/ median bars to a verdict ({args.long_runs} series of {args.long_bars} bars)"
    )
    print(f"{'Sharpe':<8}{'within':>8}{'median bars':>13}{'years':>8}")
    for sharpe in SHARPES:
        edge = sharpe / np.sqrt(YEAR)
        short = first_rejection(
            ar1(0.0, args.runs, args.bars, rng) + edge,
            args.alpha,
            tau_sd=args.tau_sd,
            min_bars=args.min_bars,
        )
        long = first_rejection(
            ar1(0.0, args.long_runs, args.long_bars, rng) + edge,
            args.alpha,
            tau_sd=args.tau_sd,
            min_bars=args.min_bars,
        )
        bars = np.where(long > 0, long, np.inf)
        median = np.median(bars)
        shown = (
            f"{median:>13.0f}{median / YEAR:>8.1f}"
            if np.isfinite(median)
            else (f"{'>' + str(args.long_bars):>13}{'>100':>8}")
        )
        print(f"{sharpe:<8g}{np.mean(short > 0):>8.3f}{shown}")
    probation(args, rng)
    print(f"\nseconds: {time.monotonic() - started:.0f}")
    print(f"AB false-positive rate {worst:.3f} at alpha {args.alpha:g}")


def probation(args: argparse.Namespace, rng: np.random.Generator) -> None:
    def rolled_back(paths: np.ndarray) -> np.ndarray:
        return first_rejection(
            paths,
            args.alpha,
            tau_sd=args.probation_tau_sd,
            min_bars=args.probation_min_bars,
            alternative="less",
        )

    print(
        f"\nprobation (one-sided, tau = {args.probation_tau_sd} sd, first look at "
        f"{args.probation_min_bars} bars): rolled back though not worse, looked at every "
        f"bar of the {args.probation_bars}-bar probation ({args.runs} series)"
    )
    print(f"{'AR(1)':<7}{'same':>8}{'better by Sharpe 1':>20}")
    for phi in PHIS:
        paths = ar1(phi, args.runs, args.probation_bars, rng)
        same = np.mean(rolled_back(paths) > 0)
        better = np.mean(rolled_back(paths + 1.0 / np.sqrt(YEAR)) > 0)
        print(f"{phi:<7g}{same:>8.3f}{better:>20.3f}")
    print(
        f"worse by an annualized Sharpe of: caught within {args.probation_bars} bars / "
        "median bars to the rollback (iid t shocks)"
    )
    print(f"{'Sharpe':<8}{'within':>8}{'median bars':>13}")
    for sharpe in (1.0, 2.0, 4.0, 8.0):
        found = rolled_back(ar1(0.0, args.runs, args.bars, rng) - sharpe / np.sqrt(YEAR))
        within = np.mean((found > 0) & (found <= args.probation_bars))
        bars = np.where(found > 0, found, np.inf)
        median = np.median(bars)
        shown = f"{median:>13.0f}" if np.isfinite(median) else f"{'>' + str(args.bars):>13}"
        print(f"{sharpe:<8g}{within:>8.3f}{shown}")


if __name__ == "__main__":
    main()
