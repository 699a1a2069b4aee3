"""The in-process signal service: hot swap on real promotions and rollbacks, LISTEN/NOTIFY
with polling as the fallback, checksum-failing files never served, probation shadows.

Two real lightgbm versions trained by the train_model job on a real PostgreSQL; every
answer is checked against the ONNX file of the version the answer names.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import numpy as np
import pytest

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.serving.models import BATCH_MIN_ROWS, BATCH_PARITY, load_served_model
from alphaplus_mlops.serving.onnx_model import OnnxModel
from alphaplus_mlops.serving.service import NoChampionError, SignalService
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.alerts import open_alerts
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import gate_status
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.promotion import promote
from alphaplus_mlops.store.versions import current_champion, version_trained_in_run

from .conftest import STRONG_SIGNAL, execute, rows

FAMILY = "lightgbm"
SYMBOLS = ["SVA", "SVB", "SVC"]


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    """Two lightgbm versions that passed every quality gate, and fixed feature rows with
    each version's probabilities for them, from its own ONNX file."""
    url = create_database()
    migrate(url)
    db = Database(url, max_size=6)
    config = SimulationConfig(n_bars=1000, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    upsert_bars(db, simulate_market(SYMBOLS, seed=8, config=config).bars, source="test")
    settings = Settings(database_url=url, home=tmp_path_factory.mktemp("serving"))
    defs = build_definitions(
        settings, build_resources(settings, PostgresResource(database_url=url))
    )
    instance = dg.DagsterInstance.ephemeral()
    store = LocalArtifactStore(settings.artifacts_dir)
    versions = []
    for rounds in (40, 60):
        result = defs.resolve_job_def("train_model").execute_in_process(
            partition_key=FAMILY,
            run_config={
                "ops": {
                    "training_dataset": {"config": {"symbols": SYMBOLS}},
                    "trained_model": {
                        "config": {
                            "n_estimators": rounds,
                            "cv_splits": 3,
                            "early_stopping_rounds": 0,
                        }
                    },
                }
            },
            instance=instance,
        )
        version = version_trained_in_run(db, result.run_id)
        assert gate_status(db, str(version["id"])).all_passed
        versions.append(version)
    width = len(versions[0]["feature_names"])
    x = np.random.default_rng(3).normal(size=(4, width)).astype(np.float32)
    expected = {
        str(v["id"]): OnnxModel(store.path_of(v["onnx_uri"])).predict_proba(x) for v in versions
    }
    assert not np.array_equal(*expected.values())  # answers tell the versions apart
    yield {"url": url, "db": db, "store": store, "versions": versions, "x": x, "expected": expected}
    db.close()


def make_champion(env, version: dict) -> None:
    champion = current_champion(env["db"], FAMILY)
    if champion is None or champion["id"] != version["id"]:
        promote(env["db"], env["store"], str(version["id"]), actor="test", reason="test")


def wait_for(predicate, timeout: float) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


def champion_answer(service, env):
    return service.answer(FAMILY, env["x"])[0]


def test_a_new_champion_answers_within_two_seconds_through_listen(env):
    first, second = env["versions"]
    make_champion(env, first)
    with SignalService(env["db"], env["store"], poll_seconds=60) as service:
        assert wait_for(lambda: service.listening, 5) >= 0
        answer = champion_answer(service, env)
        assert (answer.role, answer.version_id) == ("champion", str(first["id"]))
        np.testing.assert_array_equal(answer.probability, env["expected"][str(first["id"])])
        assert answer.signal.tolist() == [
            1.0 if p > 0.5 else -1.0 if p < 0.5 else 0.0 for p in answer.probability
        ]
        assert answer.latency_us > 0

        promote(env["db"], env["store"], str(second["id"]), actor="test", reason="test")
        took = wait_for(lambda: champion_answer(service, env).version_id == str(second["id"]), 2)
        answer = champion_answer(service, env)
        np.testing.assert_array_equal(answer.probability, env["expected"][str(second["id"])])
        assert service.metrics()["notifications"] >= 1 and took < 2
        with pytest.raises(NoChampionError, match="xgboost"):
            service.answer("xgboost", env["x"])
        with pytest.raises(ValueError, match="features"):
            service.answer(FAMILY, env["x"][:, :-1])


def test_probation_previous_champion_answers_in_shadow(env):
    first, second = env["versions"]
    make_champion(env, first)
    with SignalService(env["db"], env["store"], poll_seconds=60) as service:
        promote(env["db"], env["store"], str(second["id"]), actor="test", reason="probation")
        wait_for(lambda: champion_answer(service, env).version_id == str(second["id"]), 2)
        answers = service.answer(FAMILY, env["x"])
        assert [(a.role, a.version_id) for a in answers] == [
            ("champion", str(second["id"])),
            ("previous", str(first["id"])),
        ]
        for a in answers:
            np.testing.assert_array_equal(a.probability, env["expected"][a.version_id])
    # Without probation the replaced champion does not answer; a new challenger (a status
    # change, no ledger row) answers in shadow as soon as it is one, and stops when it is not.
    with SignalService(env["db"], env["store"], probation_seconds=0, poll_seconds=60) as service:
        assert [a.role for a in service.answer(FAMILY, env["x"])] == ["champion"]
        wait_for(lambda: service.listening, 5)
        set_status = "UPDATE model_versioning SET status = %s WHERE id = %s"
        execute(env["url"], set_status, ("challenger", first["id"]))
        try:
            wait_for(lambda: len(service.answer(FAMILY, env["x"])) == 2, 2)
            (_, shadow) = service.answer(FAMILY, env["x"])
            assert (shadow.role, shadow.version_id) == ("challenger", str(first["id"]))
            np.testing.assert_array_equal(shadow.probability, env["expected"][str(first["id"])])
        finally:
            execute(env["url"], set_status, ("retired", first["id"]))
        wait_for(lambda: len(service.answer(FAMILY, env["x"])) == 1, 2)
        assert service.metrics()["requests"][FAMILY]["challenger"] >= 1


def test_answers_under_twenty_promotion_cycles_name_the_version_that_answered(env):
    first, second = env["versions"]
    make_champion(env, first)
    stop = threading.Event()
    seen: dict[str, int] = {}

    def hammer() -> int:
        n = 0
        while not stop.is_set():
            for a in service.answer(FAMILY, env["x"]):
                np.testing.assert_array_equal(a.probability, env["expected"][a.version_id])
                assert a.role in ("champion", "previous")
                seen[a.version_id] = seen.get(a.version_id, 0) + 1
            n += 1
        return n

    with (
        SignalService(env["db"], env["store"], poll_seconds=60) as service,
        ThreadPoolExecutor(3) as pool,
    ):
        swaps = service.metrics()["swaps"]
        workers = [pool.submit(hammer) for _ in range(3)]
        for cycle in range(20):
            target = second if cycle % 2 == 0 else first
            promote(env["db"], env["store"], str(target["id"]), actor="test", reason="cycle")
            wait_for(lambda t=target: champion_answer(service, env).version_id == str(t["id"]), 2)
        stop.set()
        counts = [w.result(timeout=10) for w in workers]  # re-raises any failed answer
        assert min(counts) > 0
        assert service.metrics()["swaps"] - swaps >= 20
        assert set(seen) == {str(first["id"]), str(second["id"])}
        assert not service.errors


def test_a_corrupt_onnx_file_is_never_served(env):
    first, second = env["versions"]
    make_champion(env, first)
    path = env["store"].path_of(second["onnx_uri"])
    good = path.read_bytes()
    # Not started: the test decides when the service looks, between the promotion's own
    # check of the files and the corruption.
    service = SignalService(env["db"], env["store"], probation_seconds=0)
    try:
        service.refresh()
        promote(env["db"], env["store"], str(second["id"]), actor="test", reason="corrupt")
        path.write_bytes(b"not an onnx model" + good[:100])
        assert service.refresh() is False  # nothing to swap in
        answer = champion_answer(service, env)
        assert answer.version_id == str(first["id"])  # the old champion keeps answering
        np.testing.assert_array_equal(answer.probability, env["expected"][str(first["id"])])
        (error,) = service.errors
        assert error.version_id == str(second["id"]) and "checksum" in error.error
        (alert,) = open_alerts(env["db"], "serving_load_failed")
        assert alert["details"]["key"] == f"model_versioning:{second['id']}"
        assert "v2" in alert["message"]
        # The same version is not tried again on every refresh.
        service.refresh()
        assert service.metrics()["load_failures"] == 1
    finally:
        path.write_bytes(good)
        service.close()
    make_champion(env, first)


def test_changes_are_picked_up_when_the_notification_connection_is_killed(env):
    first, second = env["versions"]
    make_champion(env, first)
    with SignalService(env["db"], env["store"], poll_seconds=0.5) as service:
        wait_for(lambda: service.listening, 5)
        killed = rows(
            env["url"],
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%%'",
        )
        assert killed and all(r["done"] for r in killed)
        wait_for(lambda: service.metrics()["notify_connection_lost"] >= 1, 5)
        promote(env["db"], env["store"], str(second["id"]), actor="test", reason="no listen")
        wait_for(lambda: champion_answer(service, env).version_id == str(second["id"]), 5)
        wait_for(lambda: service.listening, 5)  # and it listens again


def test_batches_use_the_fastest_engine_that_agrees_with_the_onnx_file(env):
    first, _ = env["versions"]
    served = load_served_model(env["store"], first)
    timed = served.batch.milliseconds
    assert set(timed) == {"onnxruntime 1 thread", "onnxruntime all cores", "native"}
    assert served.batch.name == min(timed, key=timed.__getitem__) and not served.batch.excluded
    onnx = OnnxModel(env["store"].path_of(first["onnx_uri"]))
    x = np.random.default_rng(4).normal(size=(BATCH_MIN_ROWS, len(first["feature_names"])))
    x = x.astype(np.float32)
    assert np.max(np.abs(served.predict_proba(x) - onnx.predict_proba(x))) <= BATCH_PARITY
    small = x[: BATCH_MIN_ROWS - 1]  # below the batch size: the one-thread session, exactly
    np.testing.assert_array_equal(served.predict_proba(small), onnx.predict_proba(small))


def test_a_version_whose_native_file_fails_its_checksum_batches_on_onnxruntime(env):
    first, _ = env["versions"]
    path = env["store"].path_of(first["native_uri"])
    good = path.read_bytes()
    try:
        path.write_bytes(good[:-10])
        served = load_served_model(env["store"], first)
    finally:
        path.write_bytes(good)
    assert "checksum" in served.batch.excluded["native"]
    assert served.batch.name.startswith("onnxruntime") and "native" not in served.batch.milliseconds
