"""drift_trigger_sensor: evidence beyond the yardstick retrains once, within the trigger
row's cooldown and budget, and every request and refusal is a decision row."""

import dagster as dg
import pandas as pd
import pytest

from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.trigger_sensors import drift_trigger_sensor
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.drift import record_drift_check
from alphaplus_mlops.store.migrations import migrate

from .conftest import execute, rows

CHAMPION = "00000000-0000-0000-0000-0000000000c1"


@pytest.fixture
def db(empty_database_url):
    migrate(empty_database_url)
    execute(
        empty_database_url,
        "INSERT INTO model_versioning (id, family, version, model_name, status) "
        "VALUES (%s, 'xgboost', 3, 'xgboost-v3', 'champion')",
        (CHAMPION,),
    )
    with Database(empty_database_url) as database:
        yield database


def drift_check(db, drifted=True, score=0.6, window=("2016-01-04", "2016-03-31")):
    return record_drift_check(
        db,
        {
            "family": "xgboost",
            "version_id": CHAMPION,
            "dataset_id": None,
            "reference_window": {"start": "2015-07-01", "end": "2015-09-30", "rows": 1260},
            "current_window": {
                "start": f"{window[0]}T00:00:00+00:00",
                "end": f"{window[1]}T00:00:00+00:00",
                "rows": 1260,
            },
            "method": "test",
            "threshold": 0.3,
            "score": score,
            "drift_share": score,
            "drifted": drifted,
            "feature_scores": {},
            "report_path": None,
        },
    )


def tick(db, instance):
    with dg.build_sensor_context(
        instance=instance, resources={"postgres": PostgresResource(database_url=db.url)}
    ) as context:
        return drift_trigger_sensor(context)


def decisions(db):
    return rows(
        db.url,
        "SELECT family, rule, outcome, reasons, inputs, decided_by FROM automated_decision_making "
        "WHERE decision_type = 'retrain_trigger' ORDER BY decided_at",
    )


def test_drift_beyond_the_yardstick_requests_one_rolling_window_retrain_per_evidence(db):
    instance = dg.DagsterInstance.ephemeral()
    assert "no new drift" in tick(db, instance).skip_message
    check = drift_check(db)
    (trigger,) = rows(
        db.url, "SELECT * FROM automated_retraining_triggers WHERE name = 'drift_threshold'"
    )

    (request,) = tick(db, instance)
    assert request.partition_key == "xgboost"
    assert request.run_key == f"drift:{trigger['id']}:{check['id']}"
    assert request.tags["alphaplus/trigger_type"] == "drift"
    assert request.tags["alphaplus/trigger_id"] == str(trigger["id"])
    assert request.tags["dagster/priority"] == "5"
    assert request.tags["alphaplus/reason"] == (
        "xgboost v3: drift 0.600 beyond its yardstick 0.300 over 2016-01-04..2016-03-31; "
        "retrain on the last 504 bars"
    )
    assert request.run_config == {"ops": {"training_dataset": {"config": {"window_bars": 504}}}}
    (decision,) = decisions(db)
    assert (decision["outcome"], decision["rule"]) == ("requested", "drift_threshold")
    assert decision["inputs"]["evidence"] == f"drift_check:{check['id']}"
    assert decision["decided_by"] == "drift_trigger_sensor"
    assert (
        rows(
            db.url,
            "SELECT last_fired_at FROM automated_retraining_triggers "
            "WHERE name = 'drift_threshold'",
        )[0]["last_fired_at"]
        is not None
    )

    # The same evidence again: nothing new, nothing recorded.
    assert isinstance(tick(db, instance), dg.SkipReason)
    assert len(decisions(db)) == 1

    # A later check on a window that shares bars with the decided one: the same evidence.
    drift_check(db, score=0.7, window=("2016-02-01", "2016-04-29"))
    assert isinstance(tick(db, instance), dg.SkipReason)
    assert len(decisions(db)) == 1

    # New bars drifted within the cooldown: refused, with the reason, once.
    drift_check(db, score=0.7, window=("2016-04-01", "2016-06-30"))
    skipped = tick(db, instance)
    assert "cooldown: last request" in skipped.skip_message
    tick(db, instance)
    assert [d["outcome"] for d in decisions(db)] == ["requested", "refused"]


def test_a_check_within_the_yardstick_a_disabled_trigger_and_a_lost_database_request_nothing(
    db,
):
    instance = dg.DagsterInstance.ephemeral()
    drift_check(db, drifted=False, score=0.1)
    assert isinstance(tick(db, instance), dg.SkipReason)
    drift_check(db)
    execute(
        db.url,
        "UPDATE automated_retraining_triggers SET enabled = false WHERE trigger_type = 'drift'",
    )
    assert tick(db, instance).skip_message == "no enabled drift trigger"
    assert decisions(db) == []

    nowhere = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    with dg.build_sensor_context(
        instance=instance, resources={"postgres": PostgresResource(database_url=nowhere)}
    ) as context:
        assert "database unavailable" in drift_trigger_sensor(context).skip_message


def test_a_flood_of_evidence_queues_one_run_per_family_per_cooldown(db):
    instance = dg.DagsterInstance.ephemeral()
    requested = []
    start = pd.Timestamp("2016-01-04")
    for i in range(100):  # a new drifted check before every tick, within a minute
        first = start + pd.offsets.BDay(63 * i)  # each on new bars
        last = first + pd.offsets.BDay(62)
        drift_check(db, score=0.5 + i / 1000, window=(f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"))
        result = tick(db, instance)
        if not isinstance(result, dg.SkipReason):
            requested += list(result)
    assert len(requested) == 1
    outcomes = [d["outcome"] for d in decisions(db)]
    assert outcomes == ["requested"] + ["refused"] * 99
    assert all("cooldown" in d["reasons"][-1] for d in decisions(db)[1:])


def test_checks_on_overlapping_windows_are_one_piece_of_evidence(db):
    instance = dg.DagsterInstance.ephemeral()
    for i in range(30):  # daily checks of a 63-bar window that stays drifted
        first = pd.Timestamp("2016-01-04") + pd.offsets.BDay(i)
        last = first + pd.offsets.BDay(62)
        drift_check(db, window=(f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"))
        tick(db, instance)
    assert [d["outcome"] for d in decisions(db)] == ["requested"]
