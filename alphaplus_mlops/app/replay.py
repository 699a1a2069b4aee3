"""``alphaplus-mlops replay``: a scenario's policies replayed, as a value table and a line
per decision. The fast engine runs on the pure core (alphaplus_mlops.replay.core) with the
gates and the performance trigger as the project's database holds them."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import replace

import pandas as pd

from alphaplus_mlops.app.replay_dagster import (
    DagsterReplay,
    automation_for,
    open_replay,
    run_dagster_replay,
)
from alphaplus_mlops.replay.core import PolicyRun, prepare_market, replay_core, replay_ticks
from alphaplus_mlops.replay.scenario import Scenario
from alphaplus_mlops.replay.value import format_table, value_row
from alphaplus_mlops.reports.plots import equity_svg
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.automation_settings import AutomationSettings
from alphaplus_mlops.store.db import Database, redact
from alphaplus_mlops.store.fleet import record_report
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


REPORT_TYPE = "replay"


def run_dagster_replay_command(
    settings: Settings,
    server_url: str,
    production: AutomationSettings,
    scenario: Scenario,
    echo: Callable[[str], None],
    *,
    fresh: bool = False,
    decisions: bool = False,
) -> list[PolicyRun]:
    """The automated policy on the Dagster engine, in the replay's own database; the other
    policies (and automated on the core, for comparison) on the core engine. Prints the
    value table and writes it, with the equity curves, into the replay's ml_ops_reports."""
    market = prepare_market(scenario)
    automation = automation_for(scenario, production)
    with open_replay(
        settings, server_url, scenario, automation, market, echo, fresh=fresh
    ) as replay:
        started = time.monotonic()
        dagster_run = run_dagster_replay(replay)
        echo(f"Dagster replay done in {time.monotonic() - started:.0f} s")
        runs = [dagster_run]
        # The core policies judged as the replay's database does (a resumed replay keeps
        # the settings it started with, whatever production holds now).
        gates, trigger = configured_automation(replay.db)
        for policy in scenario.policies.names:
            run = replay_core(scenario, policy, market=market, gates=gates, trigger=trigger)
            runs.append(replace(run, policy=f"{policy} (core)") if policy == "automated" else run)
        table = format_table([value_row(run, market.break_ts) for run in runs], market.break_ts)
        echo("")
        echo(table)
        written = write_replay_report(replay, runs, table)
        echo(f"\nreport: {written} (ml_ops_reports, report_type '{REPORT_TYPE}')")
        echo(
            f"the replay's database: {redact(replay.url)} (ALPHAPLUS_DATABASE_URL for status, "
            "which, report, dashboard and the UI)"
        )
        if decisions:
            echo("\ndecisions of the Dagster replay (tick, what, version: reason)")
            for e in dagster_run.events:
                echo(f"  {e.ts:%Y-%m-%d} {e.kind} v{e.version or '-'}: {e.reason}")
    return runs


def write_replay_report(replay: DagsterReplay, runs: list[PolicyRun], table: str) -> str:
    """The value table (Markdown, in the row) and a page with the equity curves and every
    decision of the Dagster replay (HTML, in the replay's artifact store)."""
    curves = pd.DataFrame({run.policy: run.returns.cumsum() for run in runs}).ffill().fillna(0.0)
    title = f"{replay.scenario.name}, seed {replay.scenario.data.seed}: cumulative net return"
    lines = "".join(
        f"<tr><td>{e.ts:%Y-%m-%d}</td><td>{html.escape(e.kind)}</td>"
        f"<td>{e.version or ''}</td><td>{html.escape(e.reason)}</td></tr>"
        for e in runs[0].events
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<h1>Replay {html.escape(replay.scenario.name)}</h1>{equity_svg(curves, title)}"
        f"<pre>{html.escape(table)}</pre><h2>Decisions of the Dagster replay</h2>"
        f"<table><tr><th>tick</th><th>what</th><th>version</th><th>why</th></tr>{lines}</table>"
    )
    store = replay.resources["artifacts"].store
    stored = store.put_bytes(page.encode(), ".html")
    times = replay.market.times
    ticks = replay_ticks(replay.scenario, replay.market)
    span = {"period_start": times[ticks[0]], "period_end": times[ticks[-1]]}
    record_report(replay.db, report_type=REPORT_TYPE, fmt="markdown", body=table, **span)
    record_report(replay.db, report_type=REPORT_TYPE, fmt="html", path=stored.uri, **span)
    return store.location(stored.uri)
