"""The Dagster replay: the automated policy through the real jobs, sensors and schedule in
a database of its own on the market's clock, resumable, and taking the same decisions as
the fast core replay on the short scenario."""

from dataclasses import replace
from datetime import timedelta
from importlib.resources import files

import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.app.replay_dagster import (
    automation_for,
    collect_run,
    open_replay,
    replay_database_name,
    run_dagster_replay,
)
from alphaplus_mlops.replay.core import prepare_market, replay_core, replay_ticks
from alphaplus_mlops.replay.scenario import load_scenario
from alphaplus_mlops.replay.value import value_row
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.automation_settings import read_automation
from alphaplus_mlops.store.db import Database, with_database
from alphaplus_mlops.store.promotion import serving_at
from alphaplus_mlops_tests.conftest import rows

HALF_BAR = 551  # the first run ends at the tick of bar 550; the CLI resumes it to the end


@pytest.fixture(scope="module")
def replayed(database_url, tmp_path_factory):
    """``short`` replayed on Dagster in two parts (cut off at HALF_BAR, then resumed to the
    end by the CLI), with the test database's configuration; the core's run beside it."""
    scenario = load_scenario("short")
    market = prepare_market(scenario)
    with Database(database_url) as db:
        production = read_automation(db)
    home = tmp_path_factory.mktemp("replay")
    settings = Settings(database_url=database_url, home=home)
    half = replace(scenario, clock=replace(scenario.clock, end_bar=HALF_BAR))
    said: list[str] = []
    automation = automation_for(half, production)
    with open_replay(
        settings, database_url, half, automation, market, said.append, fresh=True
    ) as replay:
        run_dagster_replay(replay)
    cli = CliRunner().invoke(
        main,
        ["replay", "short", "--engine", "dagster", "--decisions"],
        env={"ALPHAPLUS_DATABASE_URL": database_url, "ALPHAPLUS_HOME": str(home)},
    )
    assert cli.exit_code == 0, cli.output
    with open_replay(settings, database_url, scenario, automation, market, said.append) as replay:
        dagster = collect_run(replay)
    gates = {g["name"]: g for g in production.gates if g["enabled"]}
    trigger = next(t for t in production.triggers if t["trigger_type"] == "performance")
    core = replay_core(scenario, "automated", market=market, gates=gates, trigger=trigger)
    url = with_database(database_url, replay_database_name(scenario))
    yield {
        "dagster": dagster,
        "core": core,
        "cli": cli.output,
        "url": url,
        "server": database_url,
        "home": home,
    }
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{replay_database_name(scenario)}" WITH (FORCE)')


def _decisions(run) -> list[tuple]:
    return [(e.ts, e.kind, e.version) for e in run.events]


def test_the_dagster_and_core_replays_take_the_same_decisions(replayed):
    dagster, core = _decisions(replayed["dagster"]), _decisions(replayed["core"])
    assert dagster == core
    kinds = {kind for _, kind, _ in dagster}
    # Not a vacuous agreement: the loop promoted, was alarmed, retrained and ran a challenger.
    assert {"promote", "alarm", "train", "shadow", "reject"} <= kinds


def test_they_serve_the_same_signal_and_are_worth_the_same(replayed):
    market = prepare_market(load_scenario("short"))
    dagster = value_row(replayed["dagster"], market.break_ts)
    core = value_row(replayed["core"], market.break_ts)
    for key in ("before_net_sharpe", "after_net_sharpe", "after_max_drawdown", "flat_bars"):
        assert dagster[key] == pytest.approx(core[key], abs=1e-9), key
    served = replayed["dagster"].served
    assert served["version"].gt(0).all()  # the first model passed: no bar was left flat


def test_a_cut_off_replay_resumes_where_its_database_stands(replayed):
    assert "resuming after" in replayed["cli"]
    assert "replay database alphaplus_replay_short_s3 (resumed)" in replayed["cli"]
    # Each bar answered once by a champion across the two runs, none twice.
    counts = rows(
        replayed["url"],
        "SELECT count(*) AS n, count(DISTINCT (symbol, bar_ts)) AS distinct_bars "
        "FROM model_predictions WHERE role = 'champion'",
    )[0]
    assert counts["n"] == counts["distinct_bars"]


def test_the_replays_database_describes_it_in_market_time(replayed):
    scenario = load_scenario("short")
    market = prepare_market(scenario)
    ticks = replay_ticks(scenario, market)
    first, last = market.times[ticks[0]], market.times[ticks[-1]]
    with Database(replayed["url"]) as db:
        entry = serving_at(db, "lightgbm", (first + timedelta(days=1)).to_pydatetime())
        assert entry["version"] == 1 and entry["reason"]
        stamps = rows(
            replayed["url"],
            "SELECT min(decided_at) AS first, max(decided_at) AS last "
            "FROM automated_decision_making",
        )[0]
    assert first <= pd.Timestamp(stamps["first"]) and pd.Timestamp(stamps["last"]) < last
    reports = rows(
        replayed["url"],
        "SELECT format, body, path FROM ml_ops_reports WHERE report_type = 'replay' "
        "ORDER BY format",
    )
    assert [r["format"] for r in reports] == ["html", "markdown"]
    assert "| automated (dagster) |" in reports[1]["body"]
    # The page the row records, read back verified from the replay's artifact store.
    name = replay_database_name(load_scenario("short"))
    store = LocalArtifactStore(replayed["home"] / "replays" / name / "artifacts")
    page = store.path_of(reports[0]["path"]).read_text()
    assert "<svg" in page and "experiment_stop" in page


def test_resuming_with_another_scenario_is_refused_naming_what_differs(replayed, tmp_path):
    text = files("alphaplus_mlops.replay.scenarios").joinpath("short.toml").read_text()
    other = tmp_path / "short_again.toml"
    other.write_text(text.replace("rounds = 10", "rounds = 11"))
    before = rows(replayed["url"], "SELECT count(*) AS n FROM model_versioning")[0]["n"]
    refused = CliRunner().invoke(
        main,
        ["replay", str(other), "--engine", "dagster"],
        env={"ALPHAPLUS_DATABASE_URL": replayed["server"], "ALPHAPLUS_HOME": str(tmp_path)},
    )
    assert refused.exit_code != 0
    assert "holds a replay of another scenario (model.rounds differ)" in refused.output
    assert "--fresh" in refused.output
    after = rows(replayed["url"], "SELECT count(*) AS n FROM model_versioning")[0]["n"]
    assert after == before  # nothing trained into the other replay's history
