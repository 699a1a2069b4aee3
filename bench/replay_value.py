"""Is the automated loop worth running? The fast core replay of a scenario's policies over
several seeds, with the gates and the performance trigger configured as a freshly migrated
database seeds them.

Per seed (``--first-seed`` on), the scenario's market (the default: simulated_break, ten
years of daily bars with a break at 60 %) is replayed from its start bar, a tick every
``step_bars``, by each policy:
  automated         the performance trigger (CUSUM), gates, deployment decision and live
                    experiment, as alphaplus_mlops.replay.core describes;
  frozen            the first model, never retrained;
  calendar          retrained every calendar_every_bars on an expanding window;
  calendar_rolling  retrained every calendar_every_bars on the rolling window.
Every policy's first model is the same (trained on the rolling window before the start;
calendar's on everything before it). The table: net Sharpe, PSR and max drawdown of the
served signal before and after the break, retrains (the first model not counted),
promotions, rejections, challengers, performance alarms and CPU seconds of the fits.

Goal (issue 13): automated reaches at least calendar_rolling's net Sharpe after the break on
at least 4 of 5 seeds, with at most a third of its retrains. The last line:
  replay automated/calendar_rolling sharpe ratio X retrain share Y seeds_ok N/5
X: automated's mean net Sharpe after the break over calendar_rolling's; Y: automated's
retrains over calendar_rolling's (all seeds); N: seeds where automated's net Sharpe after
the break is at least calendar_rolling's.
Run: .venv/bin/python bench/replay_value.py [--scenario simulated_break] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
from scratch import scratch_database

from alphaplus_mlops.replay.core import prepare_market, replay_core
from alphaplus_mlops.replay.scenario import load_scenario
from alphaplus_mlops.replay.value import format_table, mean_of, value_row
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import load_gates
from alphaplus_mlops.store.triggers import triggers_of_type


def seeded_configuration() -> tuple[dict, dict]:
    """The gates and the performance trigger as a freshly migrated database holds them."""
    with scratch_database("apm_bench") as url, Database(url) as db:
        gates = {k: dict(v) for k, v in load_gates(db).items()}
        (trigger,) = triggers_of_type(db, "performance")
        return gates, dict(trigger)


def one_seed(
    scenario_name: str, seed: int, gates: dict, trigger: dict, time_trigger_days: int | None
) -> tuple[list, list]:
    scenario = load_scenario(scenario_name).with_seed(seed)
    if time_trigger_days is not None:
        policies = replace(scenario.policies, time_trigger_days=time_trigger_days)
        scenario = replace(scenario, policies=policies)
    market = prepare_market(scenario)
    rows, events = [], []
    for policy in scenario.policies.names:
        run = replay_core(scenario, policy, market=market, gates=gates, trigger=trigger)
        rows.append({"seed": seed, **value_row(run, market.break_ts)})
        events += [(seed, e) for e in run.events if e.kind not in ("train",)]
    return rows, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="simulated_break")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--decisions", action="store_true", help="print every decision")
    parser.add_argument(
        "--time-trigger-days",
        type=int,
        default=None,
        help="automated: turn the model-age schedule on with this limit (0: off)",
    )
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    gates, trigger = seeded_configuration()
    schedule = args.time_trigger_days or scenario.policies.time_trigger_days
    print(
        f"automated: model-age schedule {f'{schedule} days' if schedule else 'off'}; "
        f"scenario {scenario.name}: {scenario.description}; seeds {args.first_seed}.."
        f"{args.first_seed + args.seeds - 1}; {scenario.model.family} {scenario.model.rounds} "
        f"rounds; a tick every {scenario.clock.step_bars} bars from bar {scenario.clock.start_bar}"
    )
    started = time.monotonic()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(
            pool.map(
                one_seed,
                [args.scenario] * len(seeds),
                seeds,
                [gates] * len(seeds),
                [trigger] * len(seeds),
                [args.time_trigger_days] * len(seeds),
            )
        )
    print(f"seconds: {time.monotonic() - started:.0f}")
    rows = [row for seed_rows, _ in results for row in seed_rows]
    events = [event for _, seed_events in results for event in seed_events]
    has_break = scenario.data.source == "simulator"
    span = "after" if has_break else "all"
    for seed in seeds:
        print(f"\nseed {seed}")
        print(format_table([r for r in rows if r["seed"] == seed], has_break or None))
    print("\nmean over seeds (net Sharpe; sd over seeds in brackets), retrains in all")
    for policy in scenario.policies.names:
        mine = [r for r in rows if r["policy"] == policy]
        values = np.array([r[f"{span}_net_sharpe"] for r in mine])
        before = f"before {mean_of(rows, policy, 'before_net_sharpe'):+.2f}  " if has_break else ""
        spread = f"{values.std(ddof=1):.2f}" if len(values) > 1 else "-"
        alarms = (
            f"  alarms before the break {sum(r['alarms_before_break'] for r in mine)}"
            if has_break
            else ""
        )
        print(
            f"  {policy:<17} {before}{span} {values.mean():+.2f} ({spread})  "
            f"retrains {sum(r['retrains'] for r in mine):4d}  promotions "
            f"{sum(r['promotions'] for r in mine):3d}{alarms}"
        )
    if args.decisions:
        print("\ndecisions (seed, bar, policy, what, version: reason)")
        for seed, e in events:
            print(f"  {seed} {e.ts:%Y-%m-%d} {e.policy} {e.kind} v{e.version}: {e.reason}")
    auto = [r for r in rows if r["policy"] == "automated"]
    rolling = [r for r in rows if r["policy"] == "calendar_rolling"]
    ok = sum(
        a[f"{span}_net_sharpe"] >= b[f"{span}_net_sharpe"]
        for a, b in zip(auto, rolling, strict=True)
    )
    ratio = mean_of(rows, "automated", f"{span}_net_sharpe") / mean_of(
        rows, "calendar_rolling", f"{span}_net_sharpe"
    )
    share = sum(r["retrains"] for r in auto) / max(1, sum(r["retrains"] for r in rolling))
    print(
        f"replay automated/calendar_rolling sharpe ratio {ratio:.2f} retrain share {share:.2f} "
        f"seeds_ok {ok}/{len(seeds)}"
    )


if __name__ == "__main__":
    main()
