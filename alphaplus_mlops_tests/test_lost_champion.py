"""A champion whose files are lost no longer blocks its family's retrains: the retrain
finishes, the decision says why there was no comparison, and an alert is recorded.

Real Dagster runs on a real PostgreSQL, real files deleted from the store: before a retrain
starts, and by another thread while the retrain is fitting."""

import threading
import time

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.alerts import open_alerts
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.versions import version_trained_in_run

from .conftest import STRONG_SIGNAL, rows

SYMBOLS = ["LCA", "LCB", "LCC"]
N_BARS = 700
# The champion is trained on the first bars only, so a retrain has bars it never saw.
CHAMPION_END_BAR = 420
FAST = {"n_estimators": 30, "cv_splits": 2, "early_stopping_rounds": 0}


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    url = create_database()
    migrate(url)
    config = SimulationConfig(n_bars=N_BARS, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    market = simulate_market(SYMBOLS, seed=5, config=config)
    db = Database(url)
    upsert_bars(db, market.bars, source="test")
    settings = Settings(database_url=url, home=tmp_path_factory.mktemp("lost champion"))
    resources = build_resources(settings, PostgresResource(database_url=url))
    ts = market.bars["ts"].sort_values().unique()
    yield {
        "url": url,
        "db": db,
        "defs": build_definitions(settings, resources),
        "store": LocalArtifactStore(settings.artifacts_dir),
        "champion_end": str(ts[CHAMPION_END_BAR].date()),
    }
    db.close()


def train(env, family: str, end: str | None = None) -> tuple[dg.ExecuteInProcessResult, dict]:
    dataset = {"symbols": SYMBOLS, **({"end": end} if end else {})}
    result = (
        env["defs"]
        .resolve_job_def("train_model")
        .execute_in_process(
            partition_key=family,
            run_config={
                "ops": {
                    "training_dataset": {"config": dataset},
                    "trained_model": {"config": FAST},
                }
            },
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    )
    return result, version_trained_in_run(env["db"], result.run_id)


def champion_of(env, family: str) -> dict:
    v1 = train(env, family, end=env["champion_end"])[1]
    (row,) = rows(env["url"], "SELECT status FROM model_versioning WHERE id = %s", (v1["id"],))
    assert row["status"] == "champion"  # the first model of its family, gates passed
    return v1


def decision_of(env, version_id) -> dict:
    (decision,) = rows(
        env["url"],
        "SELECT outcome, reasons, inputs FROM automated_decision_making "
        "WHERE model_version_id = %s",
        (version_id,),
    )
    return decision


def status_of(env, version_id) -> str:
    return rows(env["url"], "SELECT status FROM model_versioning WHERE id = %s", (version_id,))[0][
        "status"
    ]


def the_alert_for(env, version) -> dict:
    (alert,) = [
        a
        for a in open_alerts(env["db"], "artifact_missing")
        if a["details"]["key"] == f"model_versioning:{version['id']}"
    ]
    return alert


def test_a_retrain_whose_champion_files_were_lost_trains_in_full_and_shadows(env):
    champion = champion_of(env, "xgboost")
    env["store"].path_of(champion["native_uri"]).unlink()

    result, candidate = train(env, "xgboost")
    assert result.success
    # XGBoost cannot continue from a booster nobody can read: a full retrain, and why.
    assert candidate["training_path"] == "full"
    assert candidate["parent_version_id"] is None
    (note,) = [n for n in candidate["notes"] if "missing or corrupt" in n]
    assert note.startswith(
        f"champion v{champion['version']}'s artifacts are missing or corrupt: native model "
        "missing (artifact missing: "
    )
    assert note.endswith(": full retrain")

    # One alert for the champion's record, raised by the training step; the evaluation
    # found it open and said so.
    alert = the_alert_for(env, champion)
    assert alert["message"] == f"xgboost v{champion['version']} (champion): native model missing"
    assert f"alert {alert['id']} raised" in note
    decision = decision_of(env, candidate["id"])
    assert decision["outcome"] == "shadow"
    assert decision["reasons"] == [
        f"insufficient evidence: champion v{champion['version']}'s artifacts are missing or "
        f"corrupt: native model missing (artifact missing: "
        f"{env['store'].path_of(champion['native_uri'])}); no comparison possible; "
        f"alert {alert['id']} already open; run as challenger until live outcomes decide"
    ]
    assert decision["inputs"]["comparison"] is None
    assert decision["inputs"]["no_comparison"] in decision["reasons"][0]
    assert status_of(env, candidate["id"]) == "challenger"
    assert status_of(env, champion["id"]) == "champion"  # no one replaced it unseen


def test_champion_files_deleted_while_a_retrain_runs(env):
    champion = champion_of(env, "lightgbm")
    store = env["store"]
    (returns,) = rows(
        env["url"],
        "SELECT returns_uri, returns_sha256 FROM model_performance_tracking "
        "WHERE model_version_id = %s AND split = 'walk_forward_oof'",
        (champion["id"],),
    )
    started = time.time()
    deleted = threading.Event()
    seen = {}

    def delete_once_fitting():
        # The run's training row reports its first boosting round: the retrain is under
        # way. Then the champion's model files and its evaluation's returns go.
        with psycopg.connect(env["url"], autocommit=True, row_factory=dict_row) as conn:
            while time.time() - started < 120:
                row = conn.execute(
                    "SELECT status, iteration FROM model_training_jobs WHERE family = 'lightgbm' "
                    "AND status = 'running' AND iteration > 0 ORDER BY created_at DESC LIMIT 1"
                ).fetchone()
                if row is not None:
                    seen.update(row)
                    for uri in (champion["native_uri"], champion["onnx_uri"]):
                        store.path_of(uri).unlink()
                    store.path_of(returns["returns_uri"]).unlink()
                    deleted.set()
                    return
                time.sleep(0.02)

    deleter = threading.Thread(target=delete_once_fitting)
    deleter.start()
    result, candidate = train(env, "lightgbm")
    deleter.join()

    assert deleted.is_set() and seen["status"] == "running"
    assert result.success
    assert candidate["version"] == champion["version"] + 1
    alert = the_alert_for(env, champion)
    assert alert["message"] == (
        f"lightgbm v{champion['version']} (champion): native model missing; ONNX model missing"
    )
    assert [p["kind"] for p in alert["details"]["problems"]] == ["native", "onnx"]
    decision = decision_of(env, candidate["id"])
    assert decision["outcome"] == "shadow"
    (reason,) = decision["reasons"]
    assert reason.startswith(
        f"insufficient evidence: champion v{champion['version']}'s artifacts are missing or "
        "corrupt: native model missing (artifact missing: "
    )
    assert "ONNX model missing (artifact missing: " in reason
    assert reason.endswith(
        f"; no comparison possible; alert {alert['id']} raised; "
        "run as challenger until live outcomes decide"
    )
    evaluation = result.asset_materializations_for_node("model_evaluation")[0].metadata
    # The champion's lost returns leave the trials' correlation one series short.
    assert evaluation["unreadable_trial_returns"].value == 1
    assert evaluation["no_comparison"].value == decision["inputs"]["no_comparison"]
    assert status_of(env, candidate["id"]) == "challenger"

    # The daily scan finds the same record and raises nothing new while the alert is open.
    scan = (
        env["defs"]
        .resolve_job_def("artifact_scan")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral())
    )
    assert scan.success
    assert the_alert_for(env, champion)["id"] == alert["id"]
    (returns_alert,) = [
        a
        for a in open_alerts(env["db"], "artifact_missing")
        if a["details"]["table"] == "model_performance_tracking"
    ]
    assert returns_alert["details"]["problems"][0]["uri"] == returns["returns_uri"]
