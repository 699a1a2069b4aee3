"""The prediction log (issue 10) on real PostgreSQL: batches, the spool, and a database
stopped abruptly (``pg_ctl -m immediate``) in the middle of a stream of predictions.

What serving relies on: ``log()`` neither blocks for long nor raises while the database is
away, and once it is back the table holds every logged prediction exactly once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alphaplus_mlops.serving.prediction_log import (
    SPOOL_PATTERN,
    PredictionLog,
    PredictionRecord,
    replay_spool_file,
)
from alphaplus_mlops.store.dataset_records import record_dataset
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.embedded import start_embedded, stop_embedded
from alphaplus_mlops.store.migrations import DEFAULT_SQL_DIR, migrate
from alphaplus_mlops.store.versions import register_model_version

from .conftest import execute, rows

FAMILY = "lightgbm"
BAR = datetime(2024, 1, 2, 15, 30, tzinfo=UTC)


def make_versions(db: Database, n: int = 2) -> list[str]:
    """Version rows with valid foreign keys; logging needs no trained model behind them."""
    dataset = record_dataset(
        db,
        content_hash=os.urandom(32).hex(),
        symbols=["AAA"],
        window_start=datetime(2020, 1, 1, tzinfo=UTC),
        window_end=datetime(2021, 1, 1, tzinfo=UTC),
        n_rows=10,
        class_balance={"1": 0.5},
        feature_names=["f"],
        label_config={"horizon": 1},
        artifact_uri="file:///dataset",
        artifact_sha256="d" * 64,
        feature_version="v1",
    )
    return [
        register_model_version(
            db,
            family=FAMILY,
            dataset_id=dataset.id,
            training_job_id=None,
            params={},
            feature_names=["f"],
            code_version="test",
            native_uri=f"file:///native{i}",
            native_sha256="a" * 64,
            onnx_uri=f"file:///onnx{i}",
            onnx_sha256="b" * 64,
            training_path="full",
            oof_uri=f"file:///oof{i}",
            oof_sha256="c" * 64,
            train_seconds=1.0,
        )[0]
        for i in range(n)
    ]


def records(versions: list[str], n: int, request_id: str = "r") -> list[PredictionRecord]:
    roles = ("champion", "challenger", "previous")
    return [
        PredictionRecord(
            model_version_id=versions[i % len(versions)],
            family=FAMILY,
            role=roles[i % 3],
            symbol=f"S{i % 5}",
            bar_ts=BAR + timedelta(minutes=i % 7),  # the same bars asked for again and again
            probability=(i % 100) / 100,
            signal=(i % 3) - 1,
            latency_us=12.5,
            request_id=f"{request_id}-{i}",
        )
        for i in range(n)
    ]


def stored_ids(url: str) -> list[str]:
    return [str(r["id"]) for r in rows(url, "SELECT id FROM model_predictions")]


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def live(create_database):
    url = create_database()
    migrate(url)
    with Database(url) as db:
        yield url, db, make_versions(db)


def stop_immediately(data_dir: Path) -> None:
    """``pg_ctl -m immediate``: every backend killed, no clean shutdown (as test_fault_database)."""
    import pgserver
    from pgserver._commands import pg_ctl

    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data_dir.resolve(), user=user)
    pgserver.PostgresServer._instances.pop(data_dir.resolve(), None)


def test_a_database_stopped_mid_stream_loses_no_prediction_and_duplicates_none(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="apm-pl-", dir="/tmp"))  # short: a unix socket
    data_dir = folder / "pg"
    try:
        url = start_embedded(data_dir)
        migrate(url)
        db = Database(url, timeout=2)
        versions = make_versions(db)
        log = PredictionLog(
            db, tmp_path / "spool", batch_size=200, flush_seconds=0.05, retry_seconds=0.2
        )
        done = threading.Event()
        logged: list[list[str]] = [[] for _ in range(4)]
        errors: list[BaseException] = []

        def stream(worker: int) -> None:
            try:
                n = 0
                while not done.is_set():
                    # One request: the champion's answer and its two shadows.
                    batch = records(versions, 3, request_id=f"w{worker}-{n}")
                    log.log(batch)
                    logged[worker].extend(r.id for r in batch)
                    n += 1
                    time.sleep(0.002)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        stop_immediately(data_dir)
        # Requests keep being logged while the database is away (it restarts only after).
        # The writer finds the database gone and spools; callers are not held meanwhile.
        wait_for(lambda: log.stats()["spooled"] > 0, timeout=60)
        spooling = sum(map(len, logged))
        wait_for(lambda: sum(map(len, logged)) > spooling + 100, timeout=60)
        assert start_embedded(data_dir) == url  # crash recovery on the same data
        time.sleep(0.7)
        done.set()
        for thread in threads:
            thread.join(timeout=10)
        assert not errors

        # The spool is replayed once the database answers; close() flushes the rest.
        wait_for(lambda: log.stats()["spool_files"] == 0 and log.stats()["queue_depth"] == 0)
        log.close()
        stats = log.stats()
        assert stats["spooled"] > 0 and stats["replayed"] == stats["spooled"]
        assert stats["db_errors"] >= 1 and stats["rejected"] == 0

        expected = [i for ids in logged for i in ids]
        stored = stored_ids(url)
        assert len(stored) == len(set(stored))  # no duplicates
        assert set(stored) == set(expected)  # no loss
        assert len(expected) == len(set(expected))
        assert not list((tmp_path / "spool").glob(SPOOL_PATTERN))
        db.close()
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_spool_left_by_a_crash_is_replayed_once_on_start(live, tmp_path):
    url, db, versions = live
    spool = tmp_path / "spool"
    batch = records(versions, 50)
    # No database at all: port 1 refuses at once.
    with Database("postgresql://postgres@127.0.0.1:1/postgres", timeout=0.5) as gone:
        dead = PredictionLog(gone, spool, connect_timeout=0.5, flush_seconds=0.02)
        dead.log(batch)
        dead.close()
    assert dead.stats()["spooled"] == 50 and dead.stats()["written"] == 0
    (left,) = spool.glob(SPOOL_PATTERN)
    kept = tmp_path / "kept.jsonl"
    shutil.copy(left, kept)

    with PredictionLog(db, spool) as log:
        wait_for(lambda: log.stats()["spool_files"] == 0)
    assert log.stats()["replayed"] == 50 and log.stats()["replay_inserted"] == 50
    assert sorted(stored_ids(url)) == sorted(r.id for r in batch)

    # The same file again (a crash between commit and delete): nothing new; a torn last
    # line (a process killed mid-append) is skipped.
    with open(kept, "a") as handle:
        handle.write('{"model_version_id": "tor')
    again = replay_spool_file(db, kept)
    assert (again.records, again.inserted) == (50, 0)
    assert not kept.exists()
    assert len(stored_ids(url)) == 50


def test_many_records_go_in_few_transactions(live, tmp_path):
    url, db, versions = live
    batch = records(versions, 5000)
    with PredictionLog(db, tmp_path / "spool", batch_size=1000, flush_seconds=0.2) as log:
        log.log(batch)
    stats = log.stats()
    assert stats["written"] == stats["inserted"] == 5000
    assert 5 <= stats["batches"] <= 10
    assert stats["spooled"] == 0
    assert len(stored_ids(url)) == 5000
    (row,) = rows(
        url,
        "SELECT family, role, symbol, request_id, latency_us FROM model_predictions WHERE id = %s",
        (batch[1].id,),
    )
    assert row == {
        "family": FAMILY,
        "role": "challenger",
        "symbol": "S1",
        "request_id": "r-1",
        "latency_us": 12.5,
    }


def test_a_full_queue_spills_to_the_spool_instead_of_blocking(live, tmp_path):
    url, db, versions = live
    batch = records(versions, 5000)
    log = PredictionLog(db, tmp_path / "spool", max_queue=10, flush_seconds=0.05)
    log.log(batch)
    log.close()
    stats = log.stats()
    assert stats["spilled"] > 0 and stats["replayed"] == stats["spilled"]
    assert stats["written"] + stats["replayed"] == 5000
    stored = stored_ids(url)
    assert len(stored) == len(set(stored)) == 5000


def test_a_record_the_database_refuses_is_set_aside_not_retried(live, tmp_path):
    url, db, versions = live
    good = records(versions, 20)
    unknown = records(["00000000-0000-0000-0000-000000000000"], 1, request_id="bad")
    with PredictionLog(db, tmp_path / "spool", flush_seconds=0.1) as log:
        log.log(good + unknown)
    assert log.stats()["rejected"] == 1 and log.stats()["written"] == 20
    assert sorted(stored_ids(url)) == sorted(r.id for r in good)
    (rejected,) = (tmp_path / "spool").glob("rejected-*.jsonl")
    assert unknown[0].id in rejected.read_text()


def test_records_are_checked_where_they_are_made():
    with pytest.raises(ValueError, match="role"):
        PredictionRecord(
            model_version_id="x", family=FAMILY, role="shadow", symbol="S",
            bar_ts=BAR, probability=0.5, signal=0,
        )  # fmt: skip
    with pytest.raises(ValueError, match="timezone"):
        PredictionRecord(
            model_version_id="x", family=FAMILY, role="champion", symbol="S",
            bar_ts=BAR.replace(tzinfo=None), probability=0.5, signal=0,
        )  # fmt: skip
    record = records(["v"], 1)[0]
    assert PredictionRecord.from_json(record.to_json()) == record
    # What serving has at hand: a uuid from a row, numpy scalars from onnxruntime.
    version = uuid.uuid4()
    served = PredictionRecord(
        model_version_id=version, family=FAMILY, role="champion", symbol="S", bar_ts=BAR,
        probability=np.float32(0.25), signal=np.int64(-1), latency_us=np.float64(9),
    )  # fmt: skip
    assert (served.model_version_id, served.probability, served.signal) == (str(version), 0.25, -1)
    assert type(served.signal) is int and type(served.probability) is float
    assert PredictionRecord.from_json(served.to_json()) == served


def test_migration_012_keeps_predictions_logged_before_it(empty_database_url, tmp_path):
    url = empty_database_url
    before = tmp_path / "sql"
    before.mkdir()
    for path in sorted(DEFAULT_SQL_DIR.glob("*.sql")):
        if int(path.name[:3]) < 12:
            shutil.copy(path, before)
    migrate(url, before)
    with Database(url) as db:
        (version,) = make_versions(db, 1)
    execute(
        url,
        "INSERT INTO model_predictions (model_version_id, role, symbol, bar_ts, "
        "probability, signal) VALUES (%s, 'champion', 'S', %s, 0.5, 1)",
        (version, BAR),
    )
    shutil.copy(DEFAULT_SQL_DIR / "012_prediction_log.sql", before)
    migrate(url, before)
    (row,) = rows(url, "SELECT family, request_id FROM model_predictions")
    assert row == {"family": FAMILY, "request_id": None}
    # Now the same bar may be logged again, and a probation shadow is a role.
    for role in ("champion", "previous"):
        execute(
            url,
            "INSERT INTO model_predictions (model_version_id, family, role, symbol, bar_ts, "
            "probability, signal) VALUES (%s, %s, %s, 'S', %s, 0.5, 1)",
            (version, FAMILY, role, BAR),
        )
    assert len(stored_ids(url)) == 3
