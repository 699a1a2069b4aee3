"""Database faults (issue 9, fault suite): what the registry and the ledger look like after
a backend is killed mid-promotion, after PostgreSQL stops abruptly mid-training, and after
concurrent promotions, rollbacks and registrations race each other.

Nothing is mocked: real PostgreSQL backends are terminated with pg_terminate_backend, a
private embedded server is stopped with ``pg_ctl -m immediate`` while a real Dagster run is
fitting, and real threads call the store's functions at the same instant (a Barrier).

What a user relies on, after any of these:
* each family has at most one champion, and it is the version the ledger's latest row
  installed (``champion_ledger_mismatches`` finds nothing);
* a promotion either happened entirely (statuses, a ledger row, a deployment stage) or
  not at all;
* a training whose database vanished ends instead of hanging, leaves no half-registered
  version, and its orphaned ``running`` row is closed by the reaper's logic with a reason;
* version numbers stay unique and consecutive however many registrations race.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store import promotion
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.consistency import champion_ledger_mismatches, stale_training_jobs
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.embedded import start_embedded, stop_embedded
from alphaplus_mlops.store.gate_results import gate_status
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.versions import register_model_version, version_trained_in_run

from .conftest import STRONG_SIGNAL, rows

FAMILY = "lightgbm"
SYMBOLS = ["FDA", "FDB", "FDC"]
# As test_promotion: early stopping off, so versions trained with different rounds have
# different files (identical inputs give byte-identical, content-addressed models).
FAST = {"n_estimators": 60, "cv_splits": 3, "early_stopping_rounds": 0}


def train(defs, instance, family: str, rounds: int, cv_splits: int = FAST["cv_splits"]):
    return defs.resolve_job_def("train_model").execute_in_process(
        partition_key=family,
        run_config={
            "ops": {
                "training_dataset": {"config": {"symbols": SYMBOLS}},
                "trained_model": {
                    "config": {**FAST, "n_estimators": rounds, "cv_splits": cv_splits}
                },
            }
        },
        instance=instance,
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    """Three lightgbm versions that passed every quality gate (the first is champion)."""
    url = create_database()
    migrate(url)
    db = Database(url)
    config = SimulationConfig(n_bars=1000, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    upsert_bars(db, simulate_market(SYMBOLS, seed=8, config=config).bars, source="test")
    settings = Settings(database_url=url, home=tmp_path_factory.mktemp("fault db"))
    defs = build_definitions(
        settings, build_resources(settings, PostgresResource(database_url=url))
    )
    instance = dg.DagsterInstance.ephemeral()
    versions = []
    # Few rounds: on these bars 80 rounds overfit (log loss above the gate's 0.7).
    for rounds in (40, 50, 60):
        result = train(defs, instance, FAMILY, rounds)
        assert result.success
        version = version_trained_in_run(db, result.run_id)
        assert gate_status(db, str(version["id"])).all_passed
        versions.append(version)
    yield {
        "url": url,
        "db": db,
        "store": LocalArtifactStore(settings.artifacts_dir),
        "versions": versions,
    }
    db.close()


def champions(url: str, family: str) -> list[dict]:
    return rows(
        url,
        "SELECT id, version FROM model_versioning WHERE family = %s AND status = 'champion'",
        (family,),
    )


def ledger_rows(url: str, family: str) -> list[dict]:
    return rows(
        url,
        "SELECT seq, action, model_version_id, previous_version_id, recorded_at "
        "FROM model_promotion_ledger WHERE family = %s ORDER BY seq",
        (family,),
    )


def status_of(url: str, version_id) -> str:
    return rows(url, "SELECT status FROM model_versioning WHERE id = %s", (version_id,))[0][
        "status"
    ]


def stages_of(url: str, version_id) -> list[str]:
    return [
        r["stage"]
        for r in rows(
            url,
            "SELECT stage FROM model_deployment_pipeline WHERE model_version_id = %s "
            "ORDER BY created_at",
            (version_id,),
        )
    ]


def assert_champion_is_the_ledgers(db: Database, family: str) -> dict:
    """Exactly one champion, the one the latest promote/rollback row installed."""
    (champion,) = champions(db.url, family)
    latest = ledger_rows(db.url, family)[-1]
    assert latest["action"] in ("promote", "rollback")
    assert latest["model_version_id"] == champion["id"]
    assert champion_ledger_mismatches(db) == []
    return champion


def race(calls: dict) -> dict:
    """Run every call in a thread of its own, all released at the same instant; what each
    returned or raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: dict = {}

    def run(name, call):
        barrier.wait()
        try:
            outcomes[name] = call()
        except BaseException as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a call never returned"
    return outcomes


# 1. A backend killed between the version update and the ledger insert -----------------------


def test_a_promotion_whose_backend_is_killed_before_its_ledger_insert_changes_nothing(env):
    url, store = env["url"], env["store"]
    champion = assert_champion_is_the_ledgers(env["db"], FAMILY)
    candidate = next(v for v in env["versions"] if v["id"] != champion["id"])
    candidate_status = status_of(url, candidate["id"])
    ledger_before = ledger_rows(url, FAMILY)
    stages_before = stages_of(url, candidate["id"])
    outcome: dict = {}

    # Waits of 30 s for locks: the promotion must still be waiting when it is killed.
    with Database(url, lock_timeout=30) as db:

        def promote_it():
            try:
                outcome["entry"] = promotion.promote(
                    db, store, str(candidate["id"]), actor="operator", reason="fault test"
                )
            except BaseException as exc:
                outcome["error"] = exc

        # The lock holder's transaction stays open: every INSERT into the ledger waits.
        with psycopg.connect(url, row_factory=dict_row) as holder:
            holder.execute("LOCK TABLE model_promotion_ledger IN SHARE ROW EXCLUSIVE MODE")
            promoter = threading.Thread(target=promote_it)
            promoter.start()
            blocked = wait_for_ledger_insert_to_block(url, holder)
            # It has written already (the champion retired, the candidate made champion,
            # in its own uncommitted transaction): it holds a transaction id, and the
            # RowExclusiveLock on model_versioning that only its UPDATEs take.
            assert blocked["backend_xid"] is not None
            assert "RowExclusiveLock" in blocked["versioning_locks"]
            (killed,) = rows(url, "SELECT pg_terminate_backend(%s) AS ok", (blocked["pid"],))
            assert killed["ok"]
            promoter.join(timeout=30)
            assert not promoter.is_alive()
            holder.rollback()  # the lock goes

    assert "entry" not in outcome
    assert isinstance(outcome["error"], psycopg.OperationalError)
    assert "terminating connection due to administrator command" in str(outcome["error"])

    # Nothing of the attempt survives: the old champion serves, the candidate is what it
    # was, no ledger row and no deployment stage was written.
    assert assert_champion_is_the_ledgers(env["db"], FAMILY)["id"] == champion["id"]
    assert status_of(url, candidate["id"]) == candidate_status
    assert ledger_rows(url, FAMILY) == ledger_before
    assert stages_of(url, candidate["id"]) == stages_before

    # And nothing half-written stands in the way of doing it again.
    entry = promotion.promote(
        env["db"], store, str(candidate["id"]), actor="operator", reason="retry after crash"
    )
    assert entry.seq > ledger_before[-1]["seq"]
    assert assert_champion_is_the_ledgers(env["db"], FAMILY)["id"] == candidate["id"]
    assert status_of(url, champion["id"]) == "retired"
    assert stages_of(url, candidate["id"]) == [*stages_before, "promoted"]


def wait_for_ledger_insert_to_block(url: str, holder: psycopg.Connection) -> dict:
    """The backend waiting for a lock on its INSERT into the ledger (within 20 s)."""
    deadline = time.monotonic() + 20
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as watcher:
        while time.monotonic() < deadline:
            found = watcher.execute(
                """
                SELECT a.pid, a.backend_xid::text AS backend_xid,
                       array(SELECT l.mode FROM pg_locks l
                             WHERE l.pid = a.pid AND l.granted
                               AND l.relation = 'model_versioning'::regclass)::text
                           AS versioning_locks
                FROM pg_stat_activity a
                WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                  AND a.pid <> %s AND a.wait_event_type = 'Lock'
                  AND a.query ILIKE %s
                """,
                (holder.info.backend_pid, "%INSERT INTO model_promotion_ledger%"),
            ).fetchall()
            if found:
                (blocked,) = found
                return blocked
            time.sleep(0.02)
    pytest.fail("the promotion never reached its ledger insert")


# 2. PostgreSQL stopped abruptly while a training fits ----------------------------------------


def stop_immediately(data_dir: Path) -> None:
    """``pg_ctl -m immediate``: every backend is killed, nothing is shut down cleanly
    (crash recovery on the next start), as when the database's machine loses power."""
    import pgserver
    from pgserver._commands import pg_ctl

    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data_dir.resolve(), user=user)
    pgserver.PostgresServer._instances.pop(data_dir.resolve(), None)


def test_postgres_stopped_abruptly_during_training(monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHAPLUS_HEARTBEAT_SECONDS", "1")
    # Unix socket paths are limited to ~107 bytes: a short folder of its own.
    folder = Path(tempfile.mkdtemp(prefix="apm-f-", dir="/tmp"))
    data_dir = folder / "pg"
    try:
        url = start_embedded(data_dir)
        migrate(url)
        with Database(url) as db:
            config = SimulationConfig(
                n_bars=700, break_fraction=0.95, signal_strength=STRONG_SIGNAL
            )
            upsert_bars(db, simulate_market(SYMBOLS, seed=5, config=config).bars, source="test")
        settings = Settings(database_url=url, home=tmp_path / "home")
        # A short pool wait: once the server is gone, each borrow gives up after 2 s.
        resources = build_resources(settings, PostgresResource(database_url=url, pool_timeout=2))
        defs = build_definitions(settings, resources)
        instance = dg.DagsterInstance.ephemeral()
        first = train(defs, instance, FAMILY, 30, cv_splits=2)
        assert first.success
        with Database(url) as db:
            champion = version_trained_in_run(db, first.run_id)
            assert_champion_is_the_ledgers(db, FAMILY)
        ledger_before = ledger_rows(url, FAMILY)

        # Enough rounds to be fitting for several seconds after its first progress report.
        outcome: dict = {}

        def train_long():
            try:
                outcome["result"] = train(defs, instance, FAMILY, 400, cv_splits=2)
            except BaseException as exc:
                outcome["error"] = exc

        trainer = threading.Thread(target=train_long, daemon=True)
        trainer.start()
        fitting = wait_for_progress(url, first.run_id)
        stop_immediately(data_dir)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()  # gone, not restarting

        # The run notices and ends: progress and heartbeats are best-effort, registering
        # the version cannot be, and nothing waits for the server forever.
        trainer.join(timeout=40)
        assert not trainer.is_alive(), "the training hung after PostgreSQL stopped"
        assert "error" not in outcome
        result = outcome["result"]
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert failure.step_key == "trained_model"
        assert "couldn't get a connection" in str(failure.step_failure_data.error)
        run = instance.get_run_by_id(result.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE

        url = start_embedded(data_dir)  # crash recovery on the same data
        with Database(url) as db:
            # The registry is as the last committed transaction left it.
            assert version_trained_in_run(db, result.run_id) is None
            assert assert_champion_is_the_ledgers(db, FAMILY)["id"] == champion["id"]
            assert ledger_rows(url, FAMILY) == ledger_before
            (job,) = rows(
                url,
                "SELECT id, status, error, iteration, total_iterations "
                "FROM model_training_jobs WHERE dagster_run_id = %s",
                (result.run_id,),
            )
            # No handler could write: the row is left running, stopped mid-fit.
            assert job["status"] == "running" and job["error"] is None
            assert 0 < fitting["iteration"] <= job["iteration"] < job["total_iterations"]

            # Were Dagster's record of the run lost too, the silence alone would find it:
            # its last beat came before the stop, and two 2 s pool waits followed it.
            (silent,) = stale_training_jobs(
                db, stale_after=2, run_status=lambda r: None, end_run=lambda r, s: None
            )
            assert silent.problem.startswith("no heartbeat for ")
            assert silent.problem.endswith(
                " s (limit 2 s); the run worker is gone (killed, "
                "out of memory, or its machine lost)"
            )

            # The reaper's logic, with the run's real status from its Dagster instance.
            ended = []
            findings = stale_training_jobs(
                db,
                stale_after=2,
                run_status=lambda run_id: instance.get_run_by_id(run_id).status.value,
                end_run=lambda run_id, reason: ended.append(run_id),
            )
            (finding,) = findings
            assert finding.subject.startswith(f"training job {job['id']} ({FAMILY}, run ")
            assert finding.problem == "its Dagster run ended (FAILURE) without closing the row"
            assert finding.repair() == "marked failed"
            assert ended == [result.run_id]
            (closed,) = rows(
                url, "SELECT status, error FROM model_training_jobs WHERE id = %s", (job["id"],)
            )
            assert closed == {
                "status": "failed",
                "error": "reaped: its Dagster run ended (FAILURE) without closing the row",
            }
            assert (
                stale_training_jobs(
                    db, stale_after=2, run_status=lambda r: "FAILURE", end_run=lambda r, s: None
                )
                == []
            )
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_progress(url: str, previous_run: str) -> dict:
    """The new run's training row once it reports its first boosting round (within 40 s)."""
    deadline = time.monotonic() + 40
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT status, iteration, total_iterations FROM model_training_jobs "
                "WHERE dagster_run_id <> %s AND status = 'running' AND iteration > 0",
                (previous_run,),
            ).fetchone()
            if row is not None:
                assert row["iteration"] < row["total_iterations"]
                return row
            time.sleep(0.02)
    pytest.fail("the training never reported a boosting round")


# 3. An automated promotion racing a manual promotion and a rollback -------------------------


def test_an_automated_promotion_racing_a_manual_one_and_a_rollback(env):
    db, store, url = env["db"], env["store"], env["url"]
    ids = [str(v["id"]) for v in env["versions"]]
    for round_ in range(4):
        champion = assert_champion_is_the_ledgers(db, FAMILY)
        seen = str(champion["id"])
        automated, manual = [i for i in ids if i != seen]
        before = ledger_rows(url, FAMILY)
        outcomes = race(
            {
                # Judged against the champion it saw: refused if another took office first.
                "automated": partial(
                    promotion.promote,
                    db,
                    store,
                    automated,
                    actor="deployment_decision",
                    reason="won",
                    replacing=seen,
                ),
                "manual": partial(
                    promotion.promote, db, store, manual, actor="operator", reason="manual pick"
                ),
                "rollback": partial(
                    promotion.rollback,
                    db,
                    store,
                    FAMILY,
                    actor="operator",
                    reason="live numbers fell",
                ),
            }
        )

        # Each call either made a ledger row or was refused with a reason; no other error
        # (a second champion would be a UniqueViolation, a deadlock an OperationalError).
        succeeded = {}
        for name, got in outcomes.items():
            if isinstance(got, promotion.LedgerEntry):
                succeeded[name] = got
            else:
                assert isinstance(got, promotion.PromotionRefused), (round_, name, got)
                assert str(got).strip()
        assert len(outcomes) == 3 and succeeded, outcomes

        # The new ledger rows are exactly the successes, one after another, each replacing
        # the champion the previous one installed: the calls were serialized.
        new = ledger_rows(url, FAMILY)[len(before) :]
        assert ledger_rows(url, FAMILY)[: len(before)] == before
        assert sorted(e.seq for e in succeeded.values()) == [r["seq"] for r in new]
        assert all(a["seq"] < b["seq"] for a, b in zip(new, new[1:], strict=False))
        assert all(a["recorded_at"] <= b["recorded_at"] for a, b in zip(new, new[1:], strict=False))
        assert new[0]["seq"] > before[-1]["seq"]
        previous = champion["id"]
        for entry in new:
            assert entry["previous_version_id"] == previous
            previous = entry["model_version_id"]
        if "automated" in succeeded:
            # An automated decision never replaces a champion it was not judged against.
            (row,) = [r for r in new if r["seq"] == succeeded["automated"].seq]
            assert str(row["previous_version_id"]) == seen
        assert str(assert_champion_is_the_ledgers(db, FAMILY)["id"]) == str(
            new[-1]["model_version_id"]
        )


# 4. register_model_version racing itself -----------------------------------------------------


def test_concurrent_registrations_get_distinct_consecutive_version_numbers(env):
    source = env["versions"][0]
    fields = {
        name: source[name]
        for name in (
            "dataset_id",
            "training_job_id",
            "params",
            "feature_names",
            "code_version",
            "native_uri",
            "native_sha256",
            "onnx_uri",
            "onnx_sha256",
            "training_path",
            "oof_uri",
            "oof_sha256",
            "train_seconds",
        )
    }
    family = "xgboost"  # no version of it yet in this module's database
    threads_n = 8
    # A connection per thread: all eight transactions are in the server at once.
    with Database(env["url"], max_size=threads_n) as db:
        for round_ in range(2):
            results = list(
                race(
                    {
                        i: lambda: register_model_version(db, family=family, **fields)
                        for i in range(threads_n)
                    }
                ).values()
            )
            assert all(isinstance(r, tuple) for r in results), results
            first = round_ * threads_n + 1
            assert sorted(v for _, v in results) == list(range(first, first + threads_n))
            assert len({i for i, _ in results}) == threads_n
    stored = rows(
        env["url"],
        "SELECT id::text AS id, version, status FROM model_versioning WHERE family = %s "
        "ORDER BY version",
        (family,),
    )
    assert [r["version"] for r in stored] == list(range(1, 2 * threads_n + 1))
    assert {r["status"] for r in stored} == {"candidate"}
