"""The Dagster replay: the ``automated`` policy as production runs it, driven through a
scenario's market in a database of its own.

The replay's database (``alphaplus_replay_<scenario>_s<seed>`` on the project's server)
runs on the market's clock (sql/023_market_clock.sql), takes the gates and triggers as the
project's database configures them (the model-age trigger as the scenario says), and keeps
Dagster's runs too, so ``status``, ``which``, the report, the dashboard and the UI describe
the replay afterwards (ALPHAPLUS_DATABASE_URL pointing at it). At each tick the market
clock reveals the bars up to the tick; the live_loop job scores them with the models in
office and realizes what has ended (experiment and probation included); the drift check
runs; the retrain sensors (and the model-age schedule when on) are evaluated against the
instance, and the run they request executes (one per tick: below), gates and
decision included. A replay interrupted at any point resumes from its database: the bars
stored say which tick comes next, and a request recorded without its training is run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import dagster as dg
import pandas as pd

from alphaplus_mlops import run_tags
from alphaplus_mlops.app.dagster_env import environment_applied, prepare_dagster
from alphaplus_mlops.app.market_clock import reveal_bars
from alphaplus_mlops.core.backtest import backtest_signal
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.schedules import model_age_schedule
from alphaplus_mlops.defs.trigger_sensors import drift_trigger_sensor, performance_trigger_sensor
from alphaplus_mlops.monitoring.retrain_policy import retrain_window
from alphaplus_mlops.replay.core import Event, PolicyRun, ReplayMarket, replay_ticks, scenario_bars
from alphaplus_mlops.replay.scenario import Scenario
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.automation_settings import AutomationSettings, write_automation
from alphaplus_mlops.store.bars import summarize_bars
from alphaplus_mlops.store.clock import use_market_clock
from alphaplus_mlops.store.db import Database, with_database
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.replay_records import (
    ensure_database,
    record_replay,
    recorded_replay,
    replay_decisions,
    served_by_champions,
    trained_versions,
    training_seconds,
    unfinished_requests,
)
from alphaplus_mlops.store.triggers import triggers_of_type
from alphaplus_mlops.store.versions import version_trained_in_run

POLICY = "automated (dagster)"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
REQUESTED_BY = "alphaplus-mlops replay"
SOURCE = "replay"
SENSORS = (performance_trigger_sensor, drift_trigger_sensor)


def replay_database_name(scenario: Scenario) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in scenario.name.lower())[:30]
    return f"alphaplus_replay_{slug}_s{scenario.data.seed}"


@dataclass
class DagsterReplay:
    scenario: Scenario
    market: ReplayMarket
    bars: pd.DataFrame
    db: Database
    defs: dg.Definitions
    resources: dict
    instance: dg.DagsterInstance
    url: str
    echo: Callable[[str], None]

    @property
    def family(self) -> str:
        return self.scenario.model.family


def automation_for(scenario: Scenario, production: AutomationSettings) -> AutomationSettings:
    """Production's gates and triggers; the model-age trigger on only when the scenario
    sets time_trigger_days (its schedule is off by default, as in the core replay)."""
    triggers = []
    for trigger in production.triggers:
        if trigger["trigger_type"] == "time":
            days = scenario.policies.time_trigger_days
            config = {**(trigger["config"] or {}), "max_model_age_days": days or 30}
            trigger = {**trigger, "config": config, "enabled": bool(days)}
        triggers.append(trigger)
    return AutomationSettings(production.gates, triggers)


@contextmanager
def open_replay(
    settings: Settings,
    server_url: str,
    scenario: Scenario,
    automation: AutomationSettings,
    market: ReplayMarket,
    echo: Callable[[str], None],
    *,
    fresh: bool = False,
) -> Iterator[DagsterReplay]:
    """The replay's database (created, or dropped and created with ``fresh``), migrated,
    on the market clock, with ``automation``; Dagster's instance on it."""
    name = replay_database_name(scenario)
    created = ensure_database(server_url, name, fresh=fresh)
    echo(f"replay database {name} ({'new' if created else 'resumed'})")
    url = with_database(server_url, name)
    use_market_clock(url)
    migrate(url)
    replay_settings = replace(settings, database_url=url, home=settings.home / "replays" / name)
    bars, _ = scenario_bars(scenario)
    env = prepare_dagster(replay_settings, url)
    with environment_applied(env), Database(url) as db, dg.DagsterInstance.get() as instance:
        _claim(db, name, scenario, automation)
        # Migrated above (as the runtime role, which owns the replay's database).
        postgres = PostgresResource(
            database_url=url, home=str(replay_settings.home), migrate_on_start=False
        )
        resources = build_resources(replay_settings, postgres)
        yield DagsterReplay(
            scenario,
            market,
            bars,
            db,
            build_definitions(replay_settings, resources),
            resources,
            instance,
            url,
            echo,
        )


class ReplayMismatch(RuntimeError):
    """The replay's database holds a replay of another scenario."""


def _claim(db: Database, name: str, scenario: Scenario, automation: AutomationSettings) -> None:
    """A new replay takes ``automation`` and records its scenario; a resumed one keeps the
    settings it started with and must replay the same scenario (its end aside)."""
    recorded = recorded_replay(db, name)
    if recorded is None:
        write_automation(db, automation)
        record_replay(db, name, scenario.identity())
        return
    wanted = scenario.identity()
    differs = [
        f"{section}.{key}"
        for section, values in wanted.items()
        if isinstance(values, dict)
        for key in values
        if recorded.get(section, {}).get(key) != values[key]
    ]
    if differs:
        raise ReplayMismatch(
            f"{name} holds a replay of another scenario ({', '.join(differs)} differ): "
            "replay with --fresh to start it over"
        )


def run_dagster_replay(replay: DagsterReplay) -> PolicyRun:
    """Drive the automated policy through the scenario's ticks (resuming where the
    database stands); the run, its events and its served signal."""
    market, scenario = replay.market, replay.scenario
    ticks = replay_ticks(scenario, market)
    times = market.times
    stored_end = _stored_end(replay.db)
    done = [at for at in ticks if stored_end is not None and times[at] <= stored_end]
    started = time.monotonic()
    if done:
        replay.echo(f"resuming after {times[done[-1]]:%Y-%m-%d} (tick {len(done)}/{len(ticks)})")
        reveal_bars(replay.db, replay.bars, SOURCE, stored_end)  # refuses another market
    else:
        reveal_bars(replay.db, replay.bars, SOURCE, times[ticks[0]])
        done = [ticks[0]]
    if not trained_versions(replay.db, replay.family):
        replay.echo(f"first model as of {times[ticks[0]]:%Y-%m-%d}")
        _train(replay, "first model of the replay", {}, None)
    elif len(done) > 1:
        # Cut off within the last tick it reached: a request recorded without its training
        # runs now, and the tick's steps run again (each is idempotent: bars already scored,
        # evidence already decided on, are not taken twice).
        for request in unfinished_requests(replay.db, replay.family):
            _train(replay, request["reason"], request["run_config"], request["tags"])
        _tick(replay, done[-1], decide=done[-1] != ticks[-1])
    for n, at in enumerate(ticks[len(done) :], start=len(done)):
        reveal_bars(replay.db, replay.bars, SOURCE, times[at], check=False)
        _tick(replay, at, decide=at != ticks[-1])  # after the last bar nothing is served
        if n % 10 == 0:
            elapsed = time.monotonic() - started
            replay.echo(f"  tick {n}/{len(ticks) - 1} ({times[at]:%Y-%m-%d}), {elapsed:.0f} s")
    return collect_run(replay)


def _tick(replay: DagsterReplay, at: int, *, decide: bool) -> None:
    """The live loop on the bars revealed up to the tick; with ``decide``, the drift check,
    the retrain sensors and schedule, and the trainings they ask for."""
    # A symbol's first scoring takes its last first_run_bars bars: the tick's own.
    first = {"config": {"first_run_bars": replay.scenario.clock.step_bars}}
    _run_job(replay, "live_loop", {"live_signals": first})
    if not decide:
        return
    if triggers_of_type(replay.db, "drift"):
        _run_job(replay, "drift_check", {"drift_report": {"config": {"html_report": False}}})
    for request in _requests(replay):
        _train(replay, request.tags[run_tags.REASON], request.run_config, request.tags)


def _stored_end(db: Database) -> pd.Timestamp | None:
    ends = [s.last_ts for s in summarize_bars(db)]
    return pd.Timestamp(max(ends)).tz_convert("UTC") if ends else None


def _run_job(replay: DagsterReplay, job: str, ops: dict | None = None) -> None:
    result = replay.defs.resolve_job_def(job).execute_in_process(
        partition_key=replay.family,
        instance=replay.instance,
        run_config={**QUIET, **({"ops": ops} if ops else {})},
        raise_on_error=False,
        tags={run_tags.REQUESTED_BY: REQUESTED_BY},
    )
    if not result.success:
        raise RuntimeError(
            f"the replay's {job} run {result.run_id} failed: {_first_failure(result)}"
        )


def _first_failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        return f"{event.step_key}: {error.message.strip() if error else 'no message'}"
    return "no step failed (see the run in the UI)"


def _requests(replay: DagsterReplay) -> list[dg.RunRequest]:
    """The run the retrain sensors and (when on) the model-age schedule ask for this tick.
    They are evaluated one after another (performance, drift, model age: the seeded
    priorities' order) and the first request of the family ends the tick's evaluation: in
    production its run would be queued or running while the others tick, and they would
    refuse (a run in flight); here they see their evidence again at the next tick."""
    where = {"instance": replay.instance, "resources": replay.resources}
    evaluations = [(sensor, dg.build_sensor_context) for sensor in SENSORS]
    if triggers_of_type(replay.db, "time"):
        evaluations.append((model_age_schedule, dg.build_schedule_context))
    for definition, build_context in evaluations:
        with build_context(**where) as context:
            context.log.setLevel(logging.WARNING)
            outcome = definition(context)
        if isinstance(outcome, dg.SkipReason):
            continue
        mine = [r for r in outcome if r.partition_key == replay.family]
        if mine:
            return mine[:1]
    return []


def _train(replay: DagsterReplay, reason: str, run_config: dict | None, tags: dict | None) -> None:
    """One train_model run of the scenario's model on the bars revealed so far."""
    model = replay.scenario.model
    trigger = triggers_of_type(replay.db, "performance")
    window = retrain_window(trigger[0]) if trigger else None
    dataset = {
        "horizon": model.label_horizon,
        "end": f"{_stored_end(replay.db):%Y-%m-%d}",
        **({"window_bars": window} if window else {}),
    }
    ops = {
        "training_dataset": {"config": dataset},
        "trained_model": {
            "config": {
                "n_estimators": model.rounds,
                "max_depth": model.max_depth,
                "learning_rate": model.learning_rate,
                "cv_splits": model.cv_splits,
                "early_stopping_rounds": 0,
            }
        },
    }
    for op, settings in ((run_config or {}).get("ops") or {}).items():
        ops[op] = {"config": {**ops.get(op, {}).get("config", {}), **settings.get("config", {})}}
    result = replay.defs.resolve_job_def("train_model").execute_in_process(
        partition_key=replay.family,
        run_config={**QUIET, "ops": ops},
        instance=replay.instance,
        raise_on_error=False,
        tags={**(tags or {}), run_tags.REASON: reason, run_tags.REQUESTED_BY: REQUESTED_BY},
    )
    if version_trained_in_run(replay.db, result.run_id) is None:
        raise RuntimeError(
            f"the replay's training failed before a model (run {result.run_id}): "
            f"{_first_failure(result)}"
        )


def collect_run(replay: DagsterReplay) -> PolicyRun:
    """The replay as a PolicyRun: every bar after the first tick answered by the champion in
    office (flat where none was), the backtest of the scenario's costs, the decisions."""
    market, scenario = replay.market, replay.scenario
    ticks = replay_ticks(scenario, market)
    times = market.times
    frame = market.dataset.frame
    span = frame[(frame["ts"] > times[ticks[0]]) & (frame["ts"] <= times[ticks[-1]])]
    answered = served_by_champions(replay.db, replay.family)
    served = span.merge(answered, on=["symbol", "ts"], how="left")
    served["version"] = pd.to_numeric(served["version"]).fillna(0).astype(int)
    served["role"] = "champion"
    _, returns = backtest_signal(served, cost_bps=scenario.model.cost_bps)
    tick_times = times[ticks]
    events = [
        Event(_tick_of(tick_times, row["at"]), POLICY, row["kind"], row["version"], row["reason"])
        for row in replay_decisions(replay.db, replay.family)
    ]
    return PolicyRun(POLICY, served, returns, events, training_seconds(replay.db, replay.family))


def _tick_of(tick_times: pd.DatetimeIndex, at) -> pd.Timestamp:
    """The tick a market-clock stamp belongs to: the latest tick at or before it."""
    i = int(tick_times.searchsorted(pd.Timestamp(at), side="right"))
    return tick_times[max(0, i - 1)]
