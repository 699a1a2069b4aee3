"""The fast replay on the pure core: scenarios read with clear errors, and policies that
serve every bar once, never with a model that learned from that bar's label."""

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.replay.core import prepare_market, replay_core
from alphaplus_mlops.replay.scenario import (
    ScenarioError,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)
from alphaplus_mlops.replay.value import value_row


@pytest.fixture(scope="module")
def short():
    scenario = load_scenario("short")
    return scenario, prepare_market(scenario)


def test_the_shipped_scenarios_load():
    assert {"short", "simulated_break", "sp500_nasdaq"} <= set(shipped_scenarios())
    for name in shipped_scenarios():
        assert load_scenario(name).name == name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\n[clock]\nstep = 5', r"\[clock\] has unknown keys step"),
        ('name = "x"\n[clock]\nstep_bars = "5"', r"\[clock\] step_bars = '5': expected int"),
        ('name = "x"\n[policies]\nnames = ["weekly"]', "each one of automated, frozen"),
        ('name = "x"\n[clock]\nstart_bar = 10', "too little history for a first model"),
        ('name = "x"\n[data]\nsource = "packaged"', "must name the packaged symbols"),
        ("[clock]\nstep_bars = 5", "a scenario needs a name"),
        ('name = "x"\n[clock', "is not valid TOML"),
    ],
)
def test_a_bad_scenario_is_refused_with_the_key_named(text, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(text)


def test_an_unknown_scenario_names_the_shipped_ones(tmp_path):
    with pytest.raises(ScenarioError, match="shipped: short, simulated_break"):
        load_scenario("no_such_scenario")
    with pytest.raises(ScenarioError, match="no scenario file"):
        load_scenario(tmp_path / "missing.toml")


@pytest.mark.parametrize("policy", ["frozen", "calendar", "calendar_rolling", "automated"])
def test_every_bar_is_served_once_by_a_model_trained_before_it(short, policy):
    scenario, market = short
    run = replay_core(scenario, policy, market=market)
    times = market.times
    first, last = scenario.clock.start_bar + 1, scenario.clock.end_bar - 1
    expected = market.dataset.frame[
        (market.dataset.frame["ts"] >= times[first]) & (market.dataset.frame["ts"] <= times[last])
    ]
    assert len(run.served) == len(expected)
    assert not run.served.duplicated(["symbol", "ts"]).any()
    # No leakage: a version answers only bars after the tick it was trained at (version 0:
    # no champion, the desk is flat).
    answered = run.served[run.served["version"] > 0]
    assert (answered["ts"] > answered["version"].map(run.cutoffs)).all()
    assert run.served.loc[run.served["version"] == 0, "proba"].isna().all()
    assert len(run.returns) == last - first + 1


def test_frozen_trains_once_and_calendar_every_n_bars(short):
    scenario, market = short
    frozen = replay_core(scenario, "frozen", market=market)
    assert frozen.count("train") == 1 and set(frozen.served["version"]) == {1}
    calendar = replay_core(scenario, "calendar_rolling", market=market)
    trained = [market.times.get_loc(e.ts) for e in calendar.events if e.kind == "train"]
    gaps = np.diff(trained)
    every, step = scenario.policies.calendar_every_bars, scenario.clock.step_bars
    assert len(trained) > 1 and (gaps >= every).all() and (gaps < every + step).all()
    assert value_row(calendar, market.break_ts)["retrains"] == len(trained) - 1


def test_the_trainer_sees_only_labels_that_ended(short):
    scenario, market = short
    run = replay_core(scenario, "calendar", market=market)
    # Rows served by version 2 came after its cutoff; rows it trained on ended by then.
    frame = market.dataset.frame
    cutoff = run.cutoffs[2]
    learned = frame[frame["t1"] <= cutoff]
    assert learned["ts"].max() < cutoff
    assert (run.served.loc[run.served["version"] == 2, "t0"] > cutoff).all()


def test_automated_retrains_only_on_an_alarm_and_decides_every_candidate():
    scenario = load_scenario("short")
    # A trigger that alarms easily (a 95 % false-alarm chance over 40 bars, no cooldown):
    # every retrain must still follow an alarm at its tick and end in a decision there.
    config = {"false_alarm_probability": 0.95, "min_bars": 5, "horizon_bars": 40}
    trigger = {"config": config, "cooldown_seconds": 0}
    run = replay_core(scenario, "automated", trigger=trigger)
    kinds = [(e.ts, e.kind) for e in run.events]
    trains = [i for i, (_, kind) in enumerate(kinds) if kind == "train"][1:]
    assert trains, "the easy trigger never fired: the test would not test anything"
    for i in trains:
        assert kinds[i - 1] == (kinds[i][0], "alarm")
        assert kinds[i + 1][0] == kinds[i][0]
        assert kinds[i + 1][1] in ("promote", "shadow", "keep_champion", "reject")
    again = replay_core(scenario, "automated", trigger=trigger)
    assert [e.as_tuple() for e in again.events] == [e.as_tuple() for e in run.events]
    pd.testing.assert_series_equal(again.returns, run.returns)


def test_the_cli_replays_a_scenario_with_the_databases_configuration(database_url, tmp_path):
    env = {"ALPHAPLUS_DATABASE_URL": database_url, "ALPHAPLUS_HOME": str(tmp_path)}
    done = CliRunner().invoke(
        main,
        ["replay", "short", "--policy", "frozen", "--policy", "automated", "--decisions"],
        env=env,
    )
    assert done.exit_code == 0, done.output
    table = [line for line in done.output.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| policy | before: net Sharpe")
    assert [line.split(" | ")[0] for line in table[1:]] == ["| frozen", "| automated"]  # as asked
    # The first model goes through the database's gates: promoted, or rejected with them named.
    assert "automated train v1: first model of the replay" in done.output
    assert re.search(r"automated (promote v1: first model|reject v1: quality gates)", done.output)
    refused = CliRunner().invoke(main, ["replay", "nowhere"], env=env)
    assert refused.exit_code != 0 and "no shipped scenario 'nowhere'" in refused.output


def test_with_no_model_past_the_gates_the_automated_desk_stays_flat(short):
    scenario, market = short
    impossible = {
        "business_metrics": {
            "name": "business_metrics",
            "metric": "net_sharpe",
            "comparator": ">=",
            "threshold": 99.0,
            "config": {},
        }
    }
    run = replay_core(scenario, "automated", market=market, gates=impossible)
    assert [e.kind for e in run.events] == ["train", "reject"]
    assert (run.served["version"] == 0).all() and (run.returns == 0).all()
    assert value_row(run, market.break_ts)["flat_bars"] == len(run.returns)
    # With the model-age schedule on, a family without a champion retrains once the limit
    # has passed since its last training (not at every tick: that was a retrain storm).
    retrying = replace(scenario, policies=replace(scenario.policies, time_trigger_days=40))
    again = replay_core(retrying, "automated", market=market, gates=impossible)
    trained = [e.ts for e in again.events if e.kind == "train"]
    assert again.count("reject") == len(trained) > 1
    gaps = pd.Series(trained).diff().dropna().dt.days
    tick_days = scenario.clock.step_bars * 7 // 5  # 20 business days: 28 calendar days
    assert gaps.between(41, 40 + tick_days).all()


def test_a_replays_identity_is_everything_but_its_end():
    """A Dagster replay may be resumed to a later end, never with another market or model."""
    scenario = load_scenario("short")
    longer = replace(scenario, clock=replace(scenario.clock, end_bar=750))
    assert longer.identity() == scenario.identity()
    other = replace(scenario, model=replace(scenario.model, rounds=11))
    assert other.identity()["model"]["rounds"] == 11 != scenario.identity()["model"]["rounds"]
    assert scenario.with_seed(4).identity()["data"]["seed"] == 4
    assert "end_bar" not in scenario.identity()["clock"]
