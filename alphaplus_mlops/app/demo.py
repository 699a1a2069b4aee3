"""What `make demo` runs: the whole path, end to end, on the project's PostgreSQL.

A replay on the simulator (realistic signal strength), as of a date before its planted
break and one after it:
1. load market data as of T1 and train every family: gates, decision, promotion; then a
   second lightgbm candidate on a shorter window: with no bars after the champion's
   training to judge it on, it shadows the champion as challenger and a live experiment
   starts;
2. train a deliberately broken candidate (shuffled labels): the gates block it and the
   champion stays; then the drill forces it into production through the one path past the
   gates (it takes only shuffled-label versions), so that probation can catch it;
3. go live: the market clock reveals the simulator's bars up to T2, past the break, half a
   year at a time; after each step the live loop scores the new bars with the champions,
   realizes the outcomes and recomputes the live windows, looks at the experiment and at
   the forced champion's probation (rolled back automatically once live outcomes show it
   worse than the champion it replaced), and the champions' live performance is printed:
   good before the break, decaying after it. Then the drift check
   runs and the drift and performance triggers tick (in process, as the daemon would): a
   retrain they request runs at once, through the gates, with their reason;
4. retrain every family as of T2: each candidate's procedure meets its champion on the
   bars after the champion's training, paired tests decide;
5. retrain every family on a rolling window that lies wholly after the break;
6. roll one family back to its previous champion;
7. print the leaderboard, the status table, what the triggers, the experiment and the
   probation decided and why, the alerts and the stored market data, and write the ML ops
   report (the live loop has kept the dashboard's snapshot current all along).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

from alphaplus_mlops import run_tags
from alphaplus_mlops.alerting.rules import LIVE_PERFORMANCE_DECAY
from alphaplus_mlops.app.dagster_env import prepare_dagster
from alphaplus_mlops.app.market_clock import advance_simulated_market
from alphaplus_mlops.app.reporting import STATUS_WINDOW, leaderboard_report, status_report
from alphaplus_mlops.data.sources import inclusive_end
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.trigger_sensors import drift_trigger_sensor, performance_trigger_sensor
from alphaplus_mlops.families import family_names
from alphaplus_mlops.reports.publish import write_ops_report
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.alerts import list_alerts
from alphaplus_mlops.store.artifacts import open_artifact_store
from alphaplus_mlops.store.bars import summarize_bars
from alphaplus_mlops.store.db import Database, redact, resolve_database_url
from alphaplus_mlops.store.experiments import live_verdicts, running_experiment
from alphaplus_mlops.store.gate_results import gate_status
from alphaplus_mlops.store.live import latest_live_window
from alphaplus_mlops.store.migrations import prepare_schema
from alphaplus_mlops.store.promotion import PromotionRefused, ledger, promote, rollback
from alphaplus_mlops.store.triggers import trigger_decisions
from alphaplus_mlops.store.versions import champion_since, family_status, version_trained_in_run

# With a signal as weak as real ones, evidence comes from breadth: twenty symbols.
SIM_SYMBOLS = [f"SIM{i}" for i in range(1, 21)]
BREAK = "2015-10-21"  # the simulator's planted break (60 % of 2,520 bars from 2010-01-04)
FIRST_AS_OF, SECOND_AS_OF = "2014-12-31", "2017-12-29"
# The market clock's steps from FIRST_AS_OF to SECOND_AS_OF; one lands just before the break.
LIVE_STEPS = ("2015-06-30", "2015-10-20", "2016-04-29", "2016-10-31", "2017-06-30", SECOND_AS_OF)
LIVE_WINDOW = STATUS_WINDOW  # the window `status` shows: the last 63 realized bars
ROLLING_BARS = 500  # the last 500 bars as of SECOND_AS_OF: all after the break
# Small models: a weak signal is learned by a few shallow trees and lost in many deep ones
# (bench/gate_calibration.py measures these gates with the same sizes).
DEMO_TRAINING = {"n_estimators": 60, "max_depth": 3, "cv_splits": 2}
# The demo prints its own summary; engine events and gate failures stay in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
TRIGGER_SENSORS = (drift_trigger_sensor, performance_trigger_sensor)
EXPERIMENT_FAMILY = "lightgbm"  # a second candidate shadows its champion: a live experiment
CHALLENGER_TRAINING = {"n_estimators": 120, "max_depth": 2}  # more, shallower trees
DRILL_FAMILY = "catboost"  # the sabotage and probation drills


@dataclass
class Demo:
    """What every step needs: the database, the Dagster jobs and instance, an output."""

    settings: Settings
    db: Database
    defs: dg.Definitions
    instance: dg.DagsterInstance
    echo: Callable[[str], None]


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> None:
    started = time.monotonic()
    url = resolve_database_url(settings)
    where = "external server" if settings.database_url else f"embedded, {settings.home}"
    echo(f"database: {redact(url)} ({where})")
    for migration in prepare_schema(url, settings.migration_database_url):
        echo(f"applied migration {migration.filename}")
    os.environ.update(prepare_dagster(settings, url))
    with Database(url) as db, dg.DagsterInstance.get() as instance:
        demo = Demo(settings, db, build_definitions(settings), instance, echo)
        train_first_models(demo)
        sabotage_drill(demo)
        live_across_the_break(demo)
        retrain_after_the_break(demo)
        rolling_window_retrain(demo)
        rollback_drill(demo)
        summarize(demo)
    echo(f"done in {time.monotonic() - started:.1f} s")


def run_training(demo: Demo, family: str, run_config: dict, tags: dict) -> str:
    """One train_model run of ``family``; its run id. In this process, or with
    ALPHAPLUS_EXECUTOR=celery as a run whose steps go to the workers (a run that executes
    in-process cannot send steps anywhere)."""
    if demo.settings.executor != "celery":
        result = demo.defs.resolve_job_def("train_model").execute_in_process(
            partition_key=family,
            run_config=run_config,
            instance=demo.instance,
            raise_on_error=False,
            tags=tags,
        )
        return result.run_id
    job = ReconstructableRepository.for_module(
        "alphaplus_mlops.definitions", "defs", working_directory=os.getcwd()
    ).get_reconstructable_job("train_model")
    with dg.execute_job(
        job,
        instance=demo.instance,
        run_config=run_config,
        tags={**tags, run_tags.PARTITION: family},
        raise_on_error=False,
    ) as result:
        return result.run_id


def train_first_models(demo: Demo) -> None:
    demo.echo(f"\n1. as of {FIRST_AS_OF}: train every family on {', '.join(SIM_SYMBOLS)}")
    load_market_data(demo, FIRST_AS_OF)
    for family in family_names():
        train_family(demo, family, FIRST_AS_OF, "make demo: first models")
    demo.echo(
        f"  a second {EXPERIMENT_FAMILY} candidate, {CHALLENGER_TRAINING}: no bar after the "
        "champion's training to judge it on, so live outcomes will"
    )
    train_family(
        demo,
        EXPERIMENT_FAMILY,
        FIRST_AS_OF,
        "make demo: a challenger for a live experiment",
        run_config={"ops": {"trained_model": {"config": CHALLENGER_TRAINING}}},
    )
    running = running_experiment(demo.db, EXPERIMENT_FAMILY)
    demo.echo(f"  live experiment running: {'yes' if running else 'no'}")


def sabotage_drill(demo: Demo) -> None:
    demo.echo("\n2. a deliberately broken candidate (labels shuffled) must not get through")
    before = champion_since(demo.db, DRILL_FAMILY)
    broken = train_family(
        demo, DRILL_FAMILY, FIRST_AS_OF, "make demo: sabotage drill", shuffle_labels=True
    )
    after = champion_since(demo.db, DRILL_FAMILY)
    unchanged = (before["id"] if before else None) == (after["id"] if after else None)
    shown = f" (v{after['version']})" if after else ""
    demo.echo(f"  {DRILL_FAMILY} champion unchanged: {'yes' if unchanged else 'NO'}{shown}")
    entry = promote(
        demo.db,
        open_artifact_store(demo.settings.artifact_location),
        str(broken["id"]),
        actor="make demo",
        reason="make demo: probation drill (a shuffled-label model forced past its gates)",
        drill=True,
    )
    demo.echo(
        f"  drill: {DRILL_FAMILY} v{entry.version} forced into production past its gates "
        f"(ledger #{entry.seq}); v{entry.previous_version} answers in shadow during its "
        "probation"
    )


def live_across_the_break(demo: Demo) -> None:
    demo.echo(
        f"\n3. live: the market clock moves to {SECOND_AS_OF} half a year at a time, across "
        f"the break of {BREAK} (the momentum signal flips, volatility doubles); after each "
        "step the live_loop job scores the new bars with the champions, realizes outcomes "
        f"and recomputes the live windows (champions' last {LIVE_WINDOW} realized bars)"
    )
    run_live_loop(demo)  # the champions score the bars they were trained up to
    seen: set[str] = set()
    for as_of in LIVE_STEPS:
        advance_simulated_market(
            demo.db,
            symbols=SIM_SYMBOLS,
            seed=demo.settings.sim_seed,
            total_bars=demo.settings.sim_bars,
            to=inclusive_end(as_of),
        )
        run_live_loop(demo)
        lines = []
        for family in family_names():
            champion = family_status(demo.db, family)["champion"]
            live = champion and latest_live_window(
                demo.db, str(champion["id"]), "champion", LIVE_WINDOW
            )
            if live:
                m = live["metrics"]
                lines.append(
                    f"{family} v{champion['version']} net Sharpe {m['net_sharpe']:+.2f} "
                    f"hit {m['hit_rate']:.3f}"
                )
        after = "after" if as_of > BREAK else "before"
        demo.echo(f"  {as_of} ({after} the break): {'; '.join(lines) or 'no outcomes yet'}")
        print_live_verdicts(demo, seen)
        watch_and_retrain(demo, as_of)
    for alert in list_alerts(demo.db, rule_name=LIVE_PERFORMANCE_DECAY):
        if alert["state"] != "resolved":
            demo.echo(f"  alert {LIVE_PERFORMANCE_DECAY} ({alert['severity']}): {alert['message']}")


def print_live_verdicts(demo: Demo, seen: set[str]) -> None:
    """The experiment's and the probation's conclusions since the last call."""
    for verdict in live_verdicts(demo.db):
        key = f"{verdict['decision_type']}:{verdict['decided_at'].isoformat()}"
        if key in seen:
            continue
        seen.add(key)
        what = "experiment" if verdict["decision_type"] == "live_experiment" else "probation"
        demo.echo(
            f"    {what} {verdict['family']} v{verdict['version']}: {verdict['outcome']} "
            f"({'; '.join(verdict['reasons'])})"
        )


def run_live_loop(demo: Demo) -> None:
    for family in family_names():
        result = demo.defs.resolve_job_def("live_loop").execute_in_process(
            partition_key=family,
            instance=demo.instance,
            run_config=QUIET,
            raise_on_error=False,
            tags={run_tags.REQUESTED_BY: "make demo"},
        )
        if not result.success:
            raise SystemExit(f"the {family} live loop failed: see the UI (run {result.run_id})")


def watch_and_retrain(demo: Demo, as_of: str) -> None:
    """The drift check, then one tick of each retrain trigger; what they request runs now."""
    for family in family_names():
        result = demo.defs.resolve_job_def("drift_check").execute_in_process(
            partition_key=family,
            instance=demo.instance,
            run_config={
                **QUIET,
                "ops": {"drift_report": {"config": {"html_report": False}}},
            },
            raise_on_error=False,
            tags={run_tags.REQUESTED_BY: "make demo"},
        )
        if not result.success:
            raise SystemExit(f"the {family} drift check failed: see the UI (run {result.run_id})")
    resources = build_resources(demo.settings)
    for sensor in TRIGGER_SENSORS:
        name = sensor.name
        with dg.build_sensor_context(instance=demo.instance, resources=resources) as context:
            context.log.setLevel(logging.WARNING)  # refusals are printed below
            outcome = sensor(context)
        if isinstance(outcome, dg.SkipReason):
            if "cooldown" in (outcome.skip_message or ""):
                demo.echo(f"    {name}: refused, {outcome.skip_message}")
            continue
        for request in outcome:
            family = request.partition_key
            demo.echo(f"    {name} -> retrain {family}: {request.tags[run_tags.REASON]}")
            train_family(
                demo,
                family,
                as_of,
                f"make demo: {request.tags[run_tags.REASON]}",
                run_config=request.run_config,
                tags=request.tags,
            )


def retrain_after_the_break(demo: Demo) -> None:
    demo.echo(
        f"\n4. as of {SECOND_AS_OF}, past the break: retrain; each candidate meets its "
        "champion on the bars after the champion's training"
    )
    load_market_data(demo, SECOND_AS_OF)
    for family in family_names():
        train_family(demo, family, SECOND_AS_OF, "make demo: after the break")


def rolling_window_retrain(demo: Demo) -> None:
    demo.echo(f"\n5. every family on a rolling window of the last {ROLLING_BARS} bars")
    for family in family_names():
        train_family(
            demo, family, SECOND_AS_OF, "make demo: rolling window", window_bars=ROLLING_BARS
        )


def rollback_drill(demo: Demo) -> None:
    demo.echo("\n6. rollback")
    store = open_artifact_store(demo.settings.artifact_location)
    for family in family_names():
        promotions = [e for e in ledger(demo.db, family) if e["action"] == "promote"]
        if len(promotions) >= 2:
            try:
                entry = rollback(
                    demo.db, store, family, actor="make demo", reason="make demo: rollback drill"
                )
            except PromotionRefused as exc:  # e.g. its earlier champion was rolled back
                demo.echo(f"  {family}: {exc}")
                continue
            demo.echo(
                f"  {family}: v{entry.previous_version} -> v{entry.version} "
                f"(ledger #{entry.seq}); `alphaplus-mlops rollback` does the same"
            )
            return
    demo.echo("  no family has an earlier champion to roll back to by hand: nothing to do")


def summarize(demo: Demo) -> None:
    echo = demo.echo
    echo("\nleaderboard (latest version per family; walk-forward out-of-fold, net of 5 bps)")
    echo(leaderboard_report(demo.db))
    echo("\nstatus (alphaplus-mlops status)")
    echo(status_report(demo.db))
    decided = trigger_decisions(demo.db)
    echo(f"\nretrain triggers' decisions (automated_decision_making): {len(decided)}")
    for d in decided:
        echo(f"  {d['decided_at']:%H:%M:%S} {d['family']:<9} {d['outcome']:<9} {d['reasons'][-1]}")
        echo(f"      {d['reasons'][0]}")
    verdicts = live_verdicts(demo.db)
    echo(
        f"\nlive experiments and probations concluded (automated_decision_making): {len(verdicts)}"
    )
    for v in verdicts:
        echo(f"  {v['decided_at']:%H:%M:%S} {v['family']:<9} v{v['version']} {v['outcome']}")
        echo(f"      {'; '.join(v['reasons'])}")
    unresolved = [a for a in list_alerts(demo.db) if a["state"] != "resolved"]
    echo(f"\nalerts not resolved (alphaplus-mlops alerts): {len(unresolved)}")
    for a in unresolved:
        echo(f"  {a['rule']:<24} {a['severity']:<8} {a['subject']}: seen {a['occurrences']}x")
    echo("\nmarket data")
    for s in summarize_bars(demo.db):
        echo(f"  {s.symbol:<8} {s.bars:>6} bars  {s.first_ts.date()} .. {s.last_ts.date()}")
    written = write_ops_report(demo.db, open_artifact_store(demo.settings.artifact_location))
    echo(
        f"\nthe ML ops report (alphaplus-mlops report): {written.html_path}\n  and its "
        f"Markdown: {written.markdown_path}\nthe fleet's dashboard: `alphaplus-mlops serve`, "
        "then http://127.0.0.1:8000/dashboard"
    )
    echo(
        "\nEvery run is recorded in Dagster's PostgreSQL storage: `make dev` opens the UI at "
        "http://127.0.0.1:3000 (Runs, and the asset graph with its checks)."
    )


def load_market_data(demo: Demo, as_of: str) -> None:
    config = {"sim_symbols": SIM_SYMBOLS, "as_of": as_of}
    result = demo.defs.resolve_job_def("ingest_market_bars").execute_in_process(
        instance=demo.instance,
        run_config={**QUIET, "ops": {"market_bars": {"config": config}}},
    )
    meta = result.asset_materializations_for_node("market_bars")[0].metadata
    demo.echo(
        f"market data as of {as_of}: {meta['rows_added'].value} bars added, "
        f"{meta['rows_unchanged'].value} unchanged (run {result.run_id})"
    )


def train_family(
    demo: Demo,
    family: str,
    as_of: str,
    reason: str,
    run_config: dict | None = None,
    tags: dict | None = None,
    **dataset,
) -> dict:
    """One train_model run; prints the gates' verdict and the decision, returns the version.
    ``run_config`` and ``tags``: a trigger's request, merged over the demo's own."""
    ops = {
        "training_dataset": {"config": {"symbols": SIM_SYMBOLS, "end": as_of, **dataset}},
        "trained_model": {"config": DEMO_TRAINING},
    }
    for op, settings in ((run_config or {}).get("ops") or {}).items():
        config = {**ops.get(op, {}).get("config", {}), **settings.get("config", {})}
        ops[op] = {"config": config}
    run_id = run_training(
        demo,
        family,
        {**QUIET, "ops": ops},
        {**(tags or {}), run_tags.REASON: reason, run_tags.REQUESTED_BY: "make demo"},
    )
    version = version_trained_in_run(demo.db, run_id)
    if version is None:
        raise SystemExit(
            f"training {family} failed before a model existed: see the UI (run {run_id})"
        )
    status = gate_status(demo.db, str(version["id"]))
    decision = family_status(demo.db, family)["last_decision"]
    outcome = (
        decision["outcome"] if decision and decision["version"] == version["version"] else "reject"
    )
    passed = sum(1 for g in status.gates if g["passed"])
    demo.echo(
        f"  {family:<9} v{version['version']}: gates {passed}/{len(status.gates)} passed "
        f"-> {outcome}"
    )
    for gate in status.gates:
        if gate["passed"] is False:
            demo.echo(f"      {gate['reason']}")
    if outcome != "reject" and decision:
        for reason in decision["reasons"]:
            demo.echo(f"      {reason}")
    return version
