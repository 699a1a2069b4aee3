"""Hot swap through HTTP: clients keep asking while champions change 20 times. No request
fails, every logged prediction names the version that really answered, and a new champion
answers within 2 s of its ledger row.

Two real lightgbm versions trained by the train_model job; the real SignalService (LISTEN
on the ledger), PredictionLog and FastAPI app; promotions and rollbacks through the store.
"""

import threading
import time

import dagster as dg
import numpy as np
import pytest
from fastapi.testclient import TestClient

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.serving.features import serving_features
from alphaplus_mlops.serving.http import create_app
from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.serving.prediction_log import PredictionLog
from alphaplus_mlops.serving.service import SignalService
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import gate_status
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.promotion import promote
from alphaplus_mlops.store.versions import version_trained_in_run

from .conftest import STRONG_SIGNAL, rows

SYMBOLS = ["HSA", "HSB"]
CYCLES = 20


@pytest.fixture(scope="module")
def world(create_database, tmp_path_factory):
    url = create_database()
    migrate(url)
    db = Database(url, max_size=8)
    config = SimulationConfig(n_bars=1000, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    upsert_bars(db, simulate_market(SYMBOLS, seed=8, config=config).bars, source="test")
    home = tmp_path_factory.mktemp("swaps")
    settings = Settings(database_url=url, home=home)
    defs = build_definitions(
        settings, build_resources(settings, PostgresResource(database_url=url))
    )
    versions = []
    for rounds in (40, 60):
        result = defs.resolve_job_def("train_model").execute_in_process(
            partition_key="lightgbm",
            run_config={
                "ops": {
                    "training_dataset": {"config": {"symbols": SYMBOLS}},
                    "trained_model": {
                        "config": {
                            "n_estimators": rounds,
                            "cv_splits": 2,
                            "early_stopping_rounds": 0,
                        }
                    },
                }
            },
            instance=dg.DagsterInstance.ephemeral(),
        )
        version = version_trained_in_run(db, result.run_id)
        assert gate_status(db, str(version["id"])).all_passed
        versions.append(version)
    store = LocalArtifactStore(settings.artifacts_dir)
    features = serving_features(
        db, SYMBOLS, feature_names=versions[0]["feature_names"], feature_version="features-v1"
    )
    expected = {
        str(v["id"]): dict(
            zip(
                SYMBOLS,
                OnnxModel(store.path_of(v["onnx_uri"])).predict_proba(features.x),
                strict=True,
            )
        )
        for v in versions
    }
    yield {
        "url": url,
        "db": db,
        "store": store,
        "versions": versions,
        "expected": expected,
        "home": home,
    }
    db.close()


def test_clients_never_fail_and_every_logged_prediction_names_who_answered(world):
    db, store = world["db"], world["store"]
    first, second = world["versions"]
    with (
        SignalService(db, store, poll_seconds=30, probation_seconds=0) as service,
        PredictionLog(db, world["home"] / "spool", flush_seconds=0.05) as prediction_log,
    ):
        client = TestClient(create_app(service, db, prediction_log))
        failures: list[str] = []
        answered = 0
        stop = threading.Event()

        def ask() -> None:
            nonlocal answered
            while not stop.is_set():
                response = client.post("/v1/signals", json={"symbols": SYMBOLS})
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text}")
                else:
                    answered += 1

        clients = [threading.Thread(target=ask) for _ in range(3)]
        for thread in clients:
            thread.start()
        delays = []
        try:
            for cycle in range(CYCLES):
                target = second if cycle % 2 == 0 else first
                promote(db, store, str(target["id"]), actor="test", reason=f"cycle {cycle}")
                promoted = time.monotonic()
                while True:
                    answer = client.post(
                        "/v1/signals", json={"family": "lightgbm", "symbols": SYMBOLS[:1]}
                    ).json()
                    champion = [a for a in answer if a["role"] == "champion"][0]
                    if champion["version"] == target["version"]:
                        delays.append(time.monotonic() - promoted)
                        break
                    assert time.monotonic() - promoted < 2.0, f"cycle {cycle}: still old champion"
                    time.sleep(0.01)
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=30)
    assert failures == []
    assert answered > CYCLES
    assert max(delays) < 2.0
    logged = rows(
        world["url"],
        "SELECT model_version_id, symbol, probability, role FROM model_predictions",
    )
    assert len(logged) >= answered * len(SYMBOLS)
    for row in logged:
        truth = world["expected"][str(row["model_version_id"])][row["symbol"]]
        assert np.float64(row["probability"]) == truth, row
