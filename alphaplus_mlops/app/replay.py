"""``alphaplus-mlops replay``: a scenario's policies replayed, as a value table and a line
per decision. The fast engine runs on the pure core (alphaplus_mlops.replay.core) with the
gates and the performance trigger as the project's database holds them."""

from __future__ import annotations

from collections.abc import Callable

from alphaplus_mlops.replay.core import PolicyRun, prepare_market, replay_core
from alphaplus_mlops.replay.scenario import Scenario
from alphaplus_mlops.replay.value import format_table, value_row
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import load_gates
from alphaplus_mlops.store.triggers import triggers_of_type


def configured_automation(db: Database) -> tuple[dict, dict]:
    """The enabled gates by name and the first enabled performance trigger ({} for none)."""
    gates = {name: dict(row) for name, row in load_gates(db).items()}
    triggers = triggers_of_type(db, "performance")
    return gates, dict(triggers[0]) if triggers else {}


def run_core_replay(
    scenario: Scenario,
    gates: dict,
    trigger: dict,
    echo: Callable[[str], None],
    decisions: bool = False,
) -> list[PolicyRun]:
    market = prepare_market(scenario)
    span = (
        f"break at {market.break_ts:%Y-%m-%d}"
        if market.break_ts is not None
        else "no known break: the whole span"
    )
    echo(
        f"{scenario.name}: {len(market.times)} bars of {market.dataset.frame['symbol'].nunique()} "
        f"symbols ({span}); a tick every {scenario.clock.step_bars} bars from "
        f"{market.times[scenario.clock.start_bar]:%Y-%m-%d}"
    )
    if "automated" in scenario.policies.names and not trigger:
        echo("no enabled performance trigger: the automated policy never retrains")
    runs = []
    for policy in scenario.policies.names:

        def progress(done: int, total: int, policy=policy) -> None:
            if done == total or done % 50 == 0:
                echo(f"  {policy}: tick {done}/{total}")

        runs.append(
            replay_core(
                scenario, policy, market=market, gates=gates, trigger=trigger, progress=progress
            )
        )
    echo("")
    echo(format_table([value_row(run, market.break_ts) for run in runs], market.break_ts))
    if decisions:
        echo("\ndecisions (bar, policy, what, version: reason)")
        for run in runs:
            for e in run.events:
                echo(f"  {e.ts:%Y-%m-%d} {e.policy} {e.kind} v{e.version or '-'}: {e.reason}")
    return runs
