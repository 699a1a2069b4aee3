"""performance_trigger_sensor: a champion whose realized live P&L falls is caught by the
detector frozen from its out-of-fold returns, once per alarm, and retrained on a rolling
window judged on the bars since the change; a champion earning what it did offline is not."""

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.defs.trigger_sensors import performance_trigger_sensor
from alphaplus_mlops.modeling.model_files import store_frame, store_returns
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate

from .conftest import execute, realize_outcomes, rows

CHAMPION = "00000000-0000-0000-0000-0000000000c1"
SYMBOLS = ("AAA", "BBB")
SCALE = 0.01  # the offline per-bar net returns' spread


@pytest.fixture
def world(empty_database_url, tmp_path):
    migrate(empty_database_url)
    execute(
        empty_database_url,
        "INSERT INTO model_versioning (id, family, version, model_name, status) "
        "VALUES (%s, 'lightgbm', 4, 'lightgbm-v4', 'champion')",
        (CHAMPION,),
    )
    store = LocalArtifactStore(str(tmp_path / "artifacts"))
    rng = np.random.default_rng(11)
    times = pd.bdate_range("2014-01-01", periods=300, tz="UTC")
    returns = store_returns(store, pd.Series(SCALE * rng.standard_normal(300) + 0.001, times))
    execute(
        empty_database_url,
        "INSERT INTO model_performance_tracking (model_version_id, split, n_rows, ml_metrics, "
        "business_metrics, returns_uri, returns_sha256) "
        "VALUES (%s, 'walk_forward_oof', 600, '{}', '{}', %s, %s)",
        (CHAMPION, returns.uri, returns.sha256),
    )
    with Database(empty_database_url) as database:
        yield database, store


def realize(db, start: str, per_bar_mean: list[float], seed: int) -> None:
    """Realized champion outcomes, one per symbol and bar, whose per-bar mean net return
    follows ``per_bar_mean`` plus noise of the offline spread."""
    realize_outcomes(
        db.url, CHAMPION, "champion", per_bar_mean, seed, SYMBOLS, start=start, noise=SCALE
    )


def tick(world, instance):
    db, store = world
    with dg.build_sensor_context(
        instance=instance,
        resources={
            "postgres": PostgresResource(database_url=db.url),
            "artifacts": ArtifactStoreResource(location=str(store.root)),
        },
    ) as context:
        return performance_trigger_sensor(context)


def decisions(db):
    return rows(
        db.url,
        "SELECT outcome, reasons, inputs, decided_by FROM automated_decision_making "
        "WHERE decision_type = 'retrain_trigger' ORDER BY decided_at",
    )


def test_a_champion_earning_its_offline_returns_raises_no_alarm(world):
    db, _ = world
    instance = dg.DagsterInstance.ephemeral()
    assert "no performance alarm" in tick(world, instance).skip_message  # nothing realized yet
    realize(db, "2016-01-04", [0.001] * 250, seed=1)
    skipped = tick(world, instance)
    assert "no performance alarm: lightgbm v4 S=" in skipped.skip_message
    assert "over 250 bars" in skipped.skip_message
    (frozen,) = rows(db.url, "SELECT config, detector FROM performance_detectors")
    assert frozen["detector"]["metric"] == "net_return"
    assert frozen["detector"]["scale"] == pytest.approx(SCALE, rel=0.15)
    assert frozen["config"]["shift_sd"] == 0.5
    assert rows(db.url, "SELECT * FROM performance_alarms") == []
    assert decisions(db) == []


def test_a_fall_is_caught_once_retrained_on_a_rolling_window_judged_since_the_change(world):
    db, _ = world
    instance = dg.DagsterInstance.ephemeral()
    (trigger,) = rows(
        db.url, "SELECT * FROM automated_retraining_triggers WHERE trigger_type = 'performance'"
    )
    # A year that earns, then a loss of one offline standard deviation per bar.
    realize(db, "2016-01-04", [0.001] * 120 + [-SCALE] * 60, seed=2)
    (request,) = tick(world, instance)
    (alarm,) = rows(db.url, "SELECT * FROM performance_alarms")
    assert alarm["change_bar_ts"] >= pd.Timestamp("2016-01-04", tz="UTC") + pd.offsets.BDay(110)
    assert alarm["alarm_bar_ts"] <= alarm["change_bar_ts"] + pd.offsets.BDay(40)
    assert alarm["statistic"] > alarm["threshold"]
    assert request.partition_key == "lightgbm"
    assert request.run_key == f"performance:{trigger['id']}:{alarm['id']}"
    assert request.tags["alphaplus/trigger_type"] == "performance"
    assert request.tags["dagster/priority"] == "8"
    change = alarm["change_bar_ts"].isoformat()
    assert request.run_config == {
        "ops": {
            "training_dataset": {"config": {"window_bars": 504}},
            "model_evaluation": {"config": {"compare_from": change}},
        }
    }
    reason = request.tags["alphaplus/reason"]
    assert reason.startswith(f"lightgbm v4: live net_return fell from {change[:10]}")
    assert reason.endswith(f"judged against the champion on the bars since {change[:10]}")
    (decision,) = decisions(db)
    assert decision["outcome"] == "requested"
    assert decision["inputs"]["evidence"] == f"performance_alarm:{alarm['id']}"
    assert decision["decided_by"] == "performance_trigger_sensor"

    # The detector restarts after an alarm: the loss went on, so later ticks find later
    # alarms, each refused within the cooldown and recorded once; then nothing is new.
    later = [tick(world, instance) for _ in range(8)]
    assert all(isinstance(t, dg.SkipReason) for t in later)
    assert "cooldown: last request" in later[0].skip_message
    assert "no performance alarm" in later[-1].skip_message
    outcomes = [d["outcome"] for d in decisions(db)]
    assert outcomes[0] == "requested" and set(outcomes[1:]) == {"refused"}
    assert len(outcomes) >= 2
    assert len(rows(db.url, "SELECT * FROM performance_alarms")) == len(outcomes)

    # Earning again raises nothing new.
    realize(db, "2016-10-03", [0.001] * 60, seed=3)
    assert "no performance alarm" in tick(world, instance).skip_message
    assert len(decisions(db)) == len(outcomes)


def test_no_offline_returns_no_trigger_and_no_database_are_said(world):
    db, store = world
    instance = dg.DagsterInstance.ephemeral()
    execute(db.url, "UPDATE model_performance_tracking SET returns_uri = NULL")
    assert "kept no out-of-fold returns" in tick(world, instance).skip_message
    execute(
        db.url,
        "UPDATE automated_retraining_triggers SET enabled = false "
        "WHERE trigger_type = 'performance'",
    )
    assert tick(world, instance).skip_message == "no enabled performance trigger"
    nowhere = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    with dg.build_sensor_context(
        instance=instance,
        resources={
            "postgres": PostgresResource(database_url=nowhere),
            "artifacts": ArtifactStoreResource(location=str(store.root)),
        },
    ) as context:
        assert "database unavailable" in performance_trigger_sensor(context).skip_message


def test_from_the_change_point_once_enough_bars_have_passed_else_rolling(world):
    db, _ = world
    execute(
        db.url,
        "UPDATE automated_retraining_triggers SET config = config || "
        '\'{"retrain_from": "change_point", "min_window_bars": 300}\'::jsonb '
        "WHERE trigger_type = 'performance'",
    )
    realize(db, "2016-01-04", [0.001] * 120 + [-SCALE] * 60, seed=2)
    (request,) = tick(world, dg.DagsterInstance.ephemeral())
    (decision,) = decisions(db)
    since = decision["inputs"]["bars_since_change"]
    assert 40 <= since <= 70  # the loss began at bar 120 of 180
    assert request.run_config["ops"]["training_dataset"] == {"config": {"window_bars": 504}}
    assert (
        f"retrain on the last 504 bars (only {since} since the change"
        in (request.tags["alphaplus/reason"])
    )

    execute(
        db.url,
        "UPDATE automated_retraining_triggers SET config = config || "
        "'{\"min_window_bars\": 21}'::jsonb, cooldown_seconds = 0 "
        "WHERE trigger_type = 'performance'",
    )
    requested = tick(world, dg.DagsterInstance.ephemeral())  # the loss went on: a new alarm
    (request,) = requested
    # The loss never paused, so the second alarm continues the first one's fall: the window
    # still starts where it began, not where the restarted detector's second alarm says.
    second = decisions(db)[-1]["inputs"]
    assert second["change_bar_ts"] == decision["inputs"]["change_bar_ts"]
    assert second["bars_since_change"] == since
    assert request.run_config["ops"]["training_dataset"] == {"config": {"window_bars": since}}
    assert f"retrain on the {since} bars since the change" in request.tags["alphaplus/reason"]
    assert "before an earlier alarm" in request.tags["alphaplus/reason"]

    # The champion recovers, then falls again: a new fall, whose window starts where it began.
    execute(
        db.url,
        "UPDATE automated_retraining_triggers SET config = config || "
        "'{\"max_retrains_per_30_days\": 100}'::jsonb WHERE trigger_type = 'performance'",
    )
    while isinstance(tick(world, dg.DagsterInstance.ephemeral()), list):
        pass  # the rest of the first fall, an alarm a tick
    realize(db, "2016-10-03", [0.003] * 80 + [-SCALE] * 60, seed=3)
    (request,) = tick(world, dg.DagsterInstance.ephemeral())
    third = decisions(db)[-1]["inputs"]
    recovered_until = pd.Timestamp("2016-10-03", tz="UTC") + pd.offsets.BDay(80)
    assert pd.Timestamp(third["change_bar_ts"]) >= recovered_until - pd.offsets.BDay(5)
    assert third["bars_since_change"] <= 60 + 5  # the same 5 bars of noise either way
    assert "before an earlier alarm" not in request.tags["alphaplus/reason"]


def realize_forecasts(db, start: str, hit_rates: list[float], seed: int) -> None:
    """Realized champion outcomes whose forecast class matches the label with the bar's
    ``hit_rates`` probability (labels a fair coin)."""
    rng = np.random.default_rng(seed)
    bars = pd.bdate_range(start, periods=len(hit_rates), tz="UTC")
    with psycopg.connect(db.url) as conn:
        for ts, hit_rate in zip(bars, hit_rates, strict=True):
            for symbol in SYMBOLS:
                label = int(rng.random() < 0.5)
                right = rng.random() < hit_rate
                probability = 0.7 if (label == 1) == right else 0.3
                conn.execute(
                    "INSERT INTO live_outcomes (model_version_id, role, bar_ts, symbol, family, "
                    "probability, signal, predicted_at, realized_label, realized_net_return) "
                    "VALUES (%s, 'champion', %s, %s, 'lightgbm', %s, 1, now(), %s, 0)",
                    (CHAMPION, ts, symbol, probability, label),
                )
            conn.execute(
                "INSERT INTO live_outcome_bars (model_version_id, role, bar_ts) "
                "VALUES (%s, 'champion', %s)",
                (CHAMPION, ts),
            )


def test_an_f1_trigger_catches_forecasts_that_stopped_matching_the_labels(world):
    db, store = world
    rng = np.random.default_rng(5)
    times = pd.bdate_range("2014-01-01", periods=300, tz="UTC")
    label = (rng.random((300, 2)) < 0.5).astype(int)
    right = rng.random((300, 2)) < 0.75
    oof = pd.DataFrame(
        {
            "ts": np.repeat(times, 2),
            "symbol": list(SYMBOLS) * 300,
            "label": label.ravel(),
            "proba": np.where((label == 1) == right, 0.7, 0.3).ravel(),
        }
    )
    stored = store_frame(store, oof)
    execute(
        db.url,
        "UPDATE model_versioning SET oof_uri = %s, oof_sha256 = %s WHERE id = %s",
        (stored.uri, stored.sha256, CHAMPION),
    )
    execute(
        db.url,
        'UPDATE automated_retraining_triggers SET config = config || \'{"metric": "f1"}\' '
        "WHERE trigger_type = 'performance'",
    )
    realize_forecasts(db, "2016-01-04", [0.75] * 150, seed=3)
    assert "no performance alarm" in tick(world, dg.DagsterInstance.ephemeral()).skip_message
    (frozen,) = rows(db.url, "SELECT detector FROM performance_detectors")
    detector = frozen["detector"]
    assert detector["metric"] == "f1"
    # Measured on the out-of-fold rows with their forecasts shuffled: about what a coin
    # scores on two symbols a bar, well below the champion's offline per-bar F1.
    assert 0.4 < detector["target"] < 0.55 and detector["offline_mean"] > 0.6

    realize_forecasts(db, "2016-08-01", [0.25] * 60, seed=4)
    (request,) = tick(world, dg.DagsterInstance.ephemeral())
    (alarm,) = rows(db.url, "SELECT metric, mean_since_change FROM performance_alarms")
    assert alarm["metric"] == "f1" and alarm["mean_since_change"] < detector["target"]
    assert request.tags["alphaplus/trigger_type"] == "performance"
