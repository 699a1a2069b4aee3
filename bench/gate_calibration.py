"""How often the quality gates and the deployment rule decide right, on the simulator.

A gate is a statistical test; this bench measures its size and power with many seeds,
using the project's own code end to end except Dagster: the simulator, datasets, the
walk-forward CV, the backtest, the gate judge with the gate rows a fresh installation has
(read from a freshly migrated database), the refits after the champion's window, the paired
tests and the deployment rule. Per seed, on a market of ``--symbols`` symbols with the
default (realistic) signal strength and a break at 60 % of 2,520 daily bars:

  size        no-skill candidates: the same procedure on shuffled labels, and on a market
              with no planted signal at all. Share that passes every model gate.
  power       a skilled candidate: the procedure on the bars before the break. Share that
              passes every model gate.
  equal-skill the champion is the same procedure trained two years before the break, the
              candidate the skilled one above (same regime, same procedure, two more years of
              data). Among candidates that pass the gates, the share that the comparison
              with the champion turns down (keep_champion).
  break       the champion is trained up to the break (stale), the candidate on a rolling
              window of the two years after it. Share promoted over the stale champion
              (of all, and of those passing the gates): reported, no goal.

Model gates: model_performance and business_metrics (the serving gate checks the ONNX
export, not statistics). Every candidate is judged as a first trial (N = 1 in the Deflated
Sharpe), the most lenient case for size.
Run: .venv/bin/python bench/gate_calibration.py [--seeds 60] [--symbols 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scratch import scratch_database

from alphaplus_mlops.core.decision import ComparisonRule, decide
from alphaplus_mlops.core.gates import judge
from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.families import get_family
from alphaplus_mlops.modeling.assessment import evaluate_predictions, paired_comparison
from alphaplus_mlops.modeling.datasets import Dataset, build_dataset
from alphaplus_mlops.modeling.fitting import (
    EarlyStopping,
    RefitSchedule,
    cross_validate,
    fit_procedure,
    refit_blocks,
    refit_predictions,
)
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import load_gates

MODEL_GATES = ("model_performance", "business_metrics")
AUC_P_CEILINGS = (1.0, 0.05, 0.01)
# The training procedure as the asset runs it by default (TrainingConfig).
STOPPING = EarlyStopping()
DSR_FLOORS = (0.5, 0.9, 0.95)
YEAR = 252


@dataclass(frozen=True)
class Scenario:
    symbols: int
    family: str
    params: dict
    gates: dict
    cost_bps: float
    rule: ComparisonRule
    schedule: RefitSchedule


def default_gates() -> dict[str, dict]:
    """The gate rows of a freshly migrated database, as a new installation has them."""
    with scratch_database("apm_gates") as url, Database(url) as db:
        return {k: dict(v) for k, v in load_gates(db).items()}


def measured(evaluation) -> dict:
    return {**evaluation.ml, **evaluation.business}


def gates_pass(values: dict, gates: dict) -> tuple[bool, list[str]]:
    failures = []
    for name in MODEL_GATES:
        judgement = judge(gates[name], values)
        failures += [f"{name}: {f}" for f in judgement.failures]
    return not failures, failures


def with_floors(gates: dict, auc_p: float, dsr: float) -> dict:
    """The gate rows with another ROC-AUC p-value ceiling and Deflated Sharpe floor."""
    performance = {
        **gates["model_performance"],
        "metric": "roc_auc_p_value",
        "comparator": "<=",
        "threshold": auc_p,
    }
    business = dict(gates["business_metrics"])
    config = dict(business.get("config") or {})
    floor = {"comparator": ">=", "threshold": dsr}
    config["also"] = {**config.get("also", {}), "deflated_sharpe": floor}
    business["config"] = config
    return {**gates, "model_performance": performance, "business_metrics": business}


def oof_evaluation(dataset: Dataset, scenario: Scenario, cost_bps: float | None = None):
    impl = get_family(scenario.family)
    splitter = WalkForward(n_splits=2, gap=1, min_train_size=50)
    cv = cross_validate(impl, dataset, scenario.params, splitter, stopping=STOPPING)
    cost = scenario.cost_bps if cost_bps is None else cost_bps
    return evaluate_predictions(cv.oof, cv.oof["proba"].to_numpy(), cost, 0.0)


def compare(champion_data: Dataset, candidate_data: Dataset, scenario: Scenario) -> dict | None:
    """The champion fitted on ``champion_data``; the candidate's procedure replayed on the
    candidate's rows after the champion's window; the paired comparison."""
    impl = get_family(scenario.family)
    everything = slice(0, len(champion_data.frame))
    champion = fit_procedure(impl, champion_data, everything, scenario.params, STOPPING).model
    window_end = champion_data.frame["ts"].max()
    blocks = refit_blocks(candidate_data, window_end, scenario.schedule)
    shared = refit_predictions(impl, candidate_data, scenario.params, blocks, stopping=STOPPING)
    if shared["ts"].nunique() < 10:
        return None
    rows = shared.merge(
        candidate_data.frame[["symbol", "ts", *candidate_data.features]], on=["symbol", "ts"]
    )
    champion_proba = impl.predict_proba(
        champion, rows[candidate_data.features].to_numpy(dtype=np.float32)
    )
    cand = evaluate_predictions(rows, rows["proba"].to_numpy(), scenario.cost_bps, 0.0)
    champ = evaluate_predictions(rows, champion_proba, scenario.cost_bps, 0.0)
    return paired_comparison(cand, champ, rows, champion_proba)


def before(dataset: Dataset, ts) -> Dataset:
    frame = dataset.frame[dataset.frame["ts"] < ts].reset_index(drop=True)
    return Dataset(frame, dataset.features, dataset.label_config)


def window(dataset: Dataset, end_ts, bars: int) -> Dataset:
    frame = dataset.frame[dataset.frame["ts"] <= end_ts]
    frame = frame.groupby("symbol", group_keys=False).tail(bars)
    frame = frame.sort_values(["ts", "symbol"]).reset_index(drop=True)
    return Dataset(frame, dataset.features, dataset.label_config)


def one_seed(seed: int, scenario: Scenario) -> dict:
    symbols = [f"S{i:02d}" for i in range(scenario.symbols)]
    labels = LabelConfig(horizon=1)
    market = simulate_market(symbols, seed=seed)
    full = build_dataset(market.bars, labels)
    times = pd.DatetimeIndex(full.frame["ts"].unique()).sort_values()
    break_at = int(times.searchsorted(market.break_ts))
    pre_break = before(full, market.break_ts)

    skilled = measured(oof_evaluation(pre_break, scenario))
    skilled_pass, skilled_failures = gates_pass(skilled, scenario.gates)
    shuffled_data = pre_break.with_shuffled_labels(seed)
    shuffled = measured(oof_evaluation(shuffled_data, scenario))
    # No-skill candidates at no cost at all: costs alone sink them, so this is the size
    # the gates keep when costs are small.
    shuffled_free = measured(oof_evaluation(shuffled_data, scenario, cost_bps=0.0))
    flat = simulate_market(symbols, seed=seed, config=SimulationConfig(signal_strength=0.0))
    flat_data = before(build_dataset(flat.bars, labels), flat.break_ts)
    noise = measured(oof_evaluation(flat_data, scenario))
    noise_free = measured(oof_evaluation(flat_data, scenario, cost_bps=0.0))

    equal = None
    if skilled_pass:
        early = before(pre_break, times[break_at - 2 * YEAR])
        comparison = compare(early, pre_break, scenario)
        equal = decide(True, "", True, comparison, scenario.rule).outcome

    stale = pre_break
    recovered = window(full, times[min(break_at + 2 * YEAR, len(times) - 1)], 2 * YEAR)
    recovered_values = measured(oof_evaluation(recovered, scenario))
    recovered_pass, _ = gates_pass(recovered_values, scenario.gates)
    comparison = compare(stale, recovered, scenario)
    after_break = decide(recovered_pass, "", True, comparison, scenario.rule).outcome
    return {
        "seed": seed,
        "skilled": skilled,
        "shuffled": shuffled,
        "noise": noise,
        "shuffled_free": shuffled_free,
        "noise_free": noise_free,
        "skilled_pass": skilled_pass,
        "skilled_failures": skilled_failures,
        "shuffled_pass": gates_pass(shuffled, scenario.gates)[0],
        "noise_pass": gates_pass(noise, scenario.gates)[0],
        "equal_skill": equal,
        "recovered_pass": recovered_pass,
        "after_break": after_break,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--cost-bps", type=float, default=None, help="default: the gate row's")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    gates = default_gates()
    cost = args.cost_bps
    if cost is None:
        cost = float(gates["business_metrics"]["config"].get("cost_bps", 5.0))
    scenario = Scenario(
        symbols=args.symbols,
        family="lightgbm",
        # Small models for many seeds; one thread each, one seed per worker process.
        params={"n_estimators": args.rounds, "num_leaves": 7, "num_threads": 1},
        gates=gates,
        cost_bps=cost,
        rule=ComparisonRule.from_gate(gates.get("champion_comparison")),
        schedule=RefitSchedule.from_gate(gates.get("champion_comparison")),
    )
    print(
        f"{args.seeds} seeds, {args.symbols} symbols, 2,520 daily bars, break at 60 %, "
        f"lightgbm {args.rounds} rounds, cost {cost:g} bps, rule {scenario.rule}"
    )
    for name in MODEL_GATES:
        g = gates[name]
        also = (g.get("config") or {}).get("also", {})
        rules = [f"{g['metric']} {g['comparator']} {g['threshold']:g}"] + [
            f"{m} {r['comparator']} {r['threshold']:g}" for m, r in also.items()
        ]
        print(f"  gate {name}: {', '.join(rules)}")
    started = time.monotonic()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(one_seed, seeds, [scenario] * args.seeds))
    frame = pd.DataFrame(results)

    size = float(np.mean(np.r_[frame["shuffled_pass"], frame["noise_pass"]]))
    power = float(frame["skilled_pass"].mean())
    judged = frame["equal_skill"].dropna()
    equal_rejection = float((judged == "keep_champion").mean()) if len(judged) else float("nan")
    promoted = frame["after_break"] == "promote"
    print(f"\nseconds: {time.monotonic() - started:.0f}")
    print(
        f"size: shuffled labels pass {frame['shuffled_pass'].mean():.3f}, "
        f"no-signal market pass {frame['noise_pass'].mean():.3f}"
    )
    print(
        f"power: skilled candidates pass {power:.3f} "
        f"(median OOF net Sharpe {np.median([m['net_sharpe'] for m in frame['skilled']]):.2f}, "
        f"ROC-AUC {np.median([m['roc_auc'] for m in frame['skilled']]):.4f})"
    )
    failures = pd.Series([f.split(" fails")[0] for fs in frame["skilled_failures"] for f in fs])
    if len(failures):
        print("  skilled candidates' failed rules: " + ", ".join(
            f"{k} {v}" for k, v in failures.value_counts().items()
        ))  # fmt: skip
    print(
        f"equal skill: of {len(judged)} candidates passing the gates, outcomes "
        f"{judged.value_counts().to_dict()}"
    )
    print(
        f"break: recovered candidates pass the gates {frame['recovered_pass'].mean():.3f}; "
        f"promoted over the stale champion {promoted.mean():.3f} of all, "
        f"{promoted[frame['recovered_pass']].mean():.3f} of those passing; outcomes "
        f"{frame['after_break'].value_counts().to_dict()}"
    )
    free = np.r_[
        [gates_pass(m, scenario.gates)[0] for m in frame["shuffled_free"]],
        [gates_pass(m, scenario.gates)[0] for m in frame["noise_free"]],
    ]
    print(f"size with no trading costs at all (no-skill candidates pass): {free.mean():.3f}")
    print(
        "\nthe same candidates under other thresholds "
        f"(size at {cost:g} bps / size at 0 bps / power):"
    )
    print("  AUC p-value <= | " + " | ".join(f"DSR >= {d:g}" for d in DSR_FLOORS))
    for auc_p in AUC_P_CEILINGS:
        cells = []
        for dsr in DSR_FLOORS:
            gates = with_floors(scenario.gates, auc_p, dsr)
            rate = {
                kind: np.mean([gates_pass(m, gates)[0] for m in frame[kind]])
                for kind in ("shuffled", "noise", "shuffled_free", "noise_free", "skilled")
            }
            cells.append(
                f"{(rate['shuffled'] + rate['noise']) / 2:.3f} / "
                f"{(rate['shuffled_free'] + rate['noise_free']) / 2:.3f} / {rate['skilled']:.3f}"
            )
        print(f"  {auc_p:<14g} | " + " | ".join(cells))
    print(f"gate size {size:.3f} power {power:.3f} equal-skill rejection {equal_rejection:.3f}")


if __name__ == "__main__":
    main()
