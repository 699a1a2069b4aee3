"""`alphaplus-mlops doctor` and the reaper sensor: each finding reported with its fix, the
fix applied, and the exit status non-zero while anything is unresolved.

Real Dagster runs on a real PostgreSQL. Where a test needs a state that only a crash
leaves (a decision whose promotion never ran, a champion changed outside the ledger) it
runs the real steps up to that point and makes the change a crash or an operator would.
"""

import subprocess
import uuid
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.defs.upkeep import build_training_reaper
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.consistency import unfinished_promotions
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.training_jobs import start_training_job
from alphaplus_mlops.store.versions import version_trained_in_run

from .conftest import STRONG_SIGNAL, execute, rows

SYMBOLS = ["DRA", "DRB", "DRC"]
FAST = {"n_estimators": 30, "cv_splits": 2, "early_stopping_rounds": 0}
UP_TO_THE_DECISION = [
    dg.AssetKey(name)
    for name in ("training_dataset", "trained_model", "model_evaluation", "deployment_decision")
]


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    url = create_database()
    migrate(url)
    config = SimulationConfig(n_bars=700, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    with Database(url) as db:
        upsert_bars(db, simulate_market(SYMBOLS, seed=5, config=config).bars, source="test")
    home = tmp_path_factory.mktemp("doctor")
    settings = Settings(database_url=url, home=home)
    yield {
        "url": url,
        "home": home,
        "settings": settings,
        "defs": build_definitions(
            settings, build_resources(settings, PostgresResource(database_url=url))
        ),
        "store": LocalArtifactStore(settings.artifacts_dir),
        "cli_env": {"ALPHAPLUS_DATABASE_URL": url, "ALPHAPLUS_HOME": str(home)},
    }


def doctor(env, *args):
    return CliRunner().invoke(main, ["doctor", *args], env=env["cli_env"])


def champion(env, family):
    found = rows(
        env["url"],
        "SELECT * FROM model_versioning WHERE family = %s AND status = 'champion'",
        (family,),
    )
    return found[0] if found else None


def train_up_to_the_decision(env, family: str) -> dict:
    """A real run of train_model that stops after the decision, as a crash there would."""
    result = (
        env["defs"]
        .resolve_job_def("train_model")
        .execute_in_process(
            partition_key=family,
            run_config={
                "ops": {
                    "training_dataset": {"config": {"symbols": SYMBOLS}},
                    "trained_model": {"config": FAST},
                }
            },
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=UP_TO_THE_DECISION,
        )
    )
    with Database(env["url"]) as db:
        return version_trained_in_run(db, result.run_id)


@pytest.fixture(scope="module")
def decided_not_promoted(env):
    """The first lightgbm model, decided `promote`, its run stopped before the promotion:
    what a crash between the two transactions leaves behind."""
    version = train_up_to_the_decision(env, "lightgbm")
    (decision,) = rows(
        env["url"],
        "SELECT * FROM automated_decision_making WHERE model_version_id = %s",
        (version["id"],),
    )
    assert decision["outcome"] == "promote" and champion(env, "lightgbm") is None
    return version, decision


def test_a_promote_decision_without_its_promotion_is_reported_then_completed(
    env, decided_not_promoted
):
    version, decision = decided_not_promoted
    young = doctor(env)
    assert "unfinished_promotion" not in young.output  # its promotion step may still run
    execute(
        env["url"],
        "UPDATE automated_decision_making SET decided_at = decided_at - interval '1 hour' "
        "WHERE id = %s",
        (decision["id"],),
    )
    found = doctor(env)
    assert found.exit_code == 1, found.output
    assert f"[unfinished_promotion] decision {decision['id']}" in found.output
    assert "--fix would: complete the promotion if the decision still holds" in found.output
    assert champion(env, "lightgbm") is None  # reporting changes nothing

    # While a hung transaction holds the family lock, nothing is judged: the decision is
    # left for the next attempt, not abandoned.
    with psycopg.connect(env["url"]) as holder, Database(env["url"], lock_timeout=1) as db:
        holder.execute(queries.LOCK_FAMILY_VERSIONS, ("lightgbm",))
        (waiting,) = unfinished_promotions(db, env["store"], family="lightgbm")
        assert waiting.repair().startswith("left for the next attempt: another transaction")
    assert (
        rows(
            env["url"],
            "SELECT id FROM automated_decision_making WHERE decision_type = 'reconciliation'",
        )
        == []
    )

    fixed = doctor(env, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert "fixed: promoted (ledger #" in fixed.output and "all consistent" in fixed.output
    assert champion(env, "lightgbm")["id"] == version["id"]
    (entry,) = rows(
        env["url"],
        "SELECT * FROM model_promotion_ledger WHERE model_version_id = %s",
        (version["id"],),
    )
    assert entry["actor"] == "reconciler" and str(decision["id"]) in entry["reason"]
    (reconciliation,) = rows(
        env["url"],
        "SELECT * FROM automated_decision_making WHERE decision_type = 'reconciliation'",
    )
    assert reconciliation["outcome"] == "promotion_completed"
    assert reconciliation["inputs"] == {"decision_id": str(decision["id"])}

    clean = doctor(env)
    assert clean.exit_code == 0 and "no findings" in clean.output


def test_a_promotion_that_no_longer_holds_is_recorded_abandoned(env, decided_not_promoted):
    """A decision judged against a champion that has since been replaced is stale."""
    version = train_up_to_the_decision(env, "catboost")
    execute(
        env["url"],
        "UPDATE automated_decision_making SET decided_at = decided_at - interval '1 hour', "
        "inputs = jsonb_set(inputs, '{champion_version_id}', to_jsonb(%s::text)) "
        "WHERE model_version_id = %s",
        (str(decided_not_promoted[0]["id"]), version["id"]),
    )
    fixed = doctor(env, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert "fixed: abandoned:" in fixed.output and "decide again" in fixed.output
    assert champion(env, "catboost") is None
    (row,) = rows(env["url"], "SELECT status FROM model_versioning WHERE id = %s", (version["id"],))
    assert row["status"] == "not_promoted"


def test_the_next_run_of_the_family_completes_a_promotion_left_undone(env):
    undone = train_up_to_the_decision(env, "xgboost")
    execute(
        env["url"],
        "UPDATE automated_decision_making SET decided_at = decided_at - interval '1 hour' "
        "WHERE model_version_id = %s",
        (undone["id"],),
    )
    result = (
        env["defs"]
        .resolve_job_def("train_model")
        .execute_in_process(
            partition_key="xgboost",
            run_config={
                "ops": {
                    "training_dataset": {"config": {"symbols": SYMBOLS}},
                    "trained_model": {"config": {**FAST, "n_estimators": 40}},
                }
            },
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    )
    (entry,) = rows(
        env["url"],
        "SELECT * FROM model_promotion_ledger WHERE model_version_id = %s",
        (undone["id"],),
    )
    assert entry["actor"] == "reconciler"
    with Database(env["url"]) as db:
        newer = version_trained_in_run(db, result.run_id)
    (decision,) = rows(
        env["url"],
        "SELECT inputs FROM automated_decision_making WHERE model_version_id = %s",
        (newer["id"],),
    )
    # The new candidate was judged against the champion the reconciliation installed.
    assert decision["inputs"]["champion_version_id"] == str(undone["id"])


def test_a_champion_changed_outside_the_ledger_is_restored_from_it(env, decided_not_promoted):
    version, _ = decided_not_promoted
    execute(
        env["url"],
        "UPDATE model_versioning SET status = 'retired' WHERE id = %s",
        (version["id"],),
    )
    found = doctor(env)
    assert found.exit_code == 1
    assert "[champion_ledger] family lightgbm: champion by status is none" in found.output
    fixed = doctor(env, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert champion(env, "lightgbm")["id"] == version["id"]


def test_a_lost_champion_file_is_reported_alerted_and_stays_unresolved(env, decided_not_promoted):
    version, _ = decided_not_promoted
    path = env["store"].path_of(version["onnx_uri"])
    saved = path.read_bytes()
    path.unlink()
    try:
        found = doctor(env)
        assert found.exit_code == 1
        assert "[artifact] lightgbm v1 (champion) ONNX" in found.output
        assert "missing" in found.output
        fixed = doctor(env, "--fix")
        assert fixed.exit_code == 1  # lost bytes need a person: restore, retrain, roll back
        assert "alert" in fixed.output and "open" in fixed.output
        (alert,) = rows(
            env["url"],
            "SELECT * FROM ml_ops_alerts WHERE record_type = 'alert' AND name = 'artifact_missing'",
        )
        assert str(version["id"]) in alert["details"]["key"]
    finally:
        path.write_bytes(saved)
    assert doctor(env).exit_code == 0


def test_pending_migrations_are_reported_and_applied_by_fix(create_database, tmp_path):
    url = create_database()
    cli_env = {"ALPHAPLUS_DATABASE_URL": url, "ALPHAPLUS_HOME": str(tmp_path)}
    found = CliRunner().invoke(main, ["doctor"], env=cli_env)
    assert found.exit_code == 1
    assert "[pending_migrations] database schema:" in found.output
    assert "001_core_schema.sql" in found.output
    fixed = CliRunner().invoke(main, ["doctor", "--fix"], env=cli_env)
    assert fixed.exit_code == 0, fixed.output
    assert rows(url, "SELECT count(*) AS n FROM schema_migrations")[0]["n"] == len(
        list(Path(__file__).resolve().parents[1].joinpath("sql").glob("*.sql"))
    )


# The reaper ---------------------------------------------------------------------------------


@pytest.fixture
def reaper(env):
    instance = dg.DagsterInstance.ephemeral()
    sensor = build_training_reaper(
        Settings(
            database_url=env["url"],
            home=env["home"],
            heartbeat_seconds=1,
            training_stale_seconds=60,
        )
    )

    def tick() -> str:
        with dg.build_sensor_context(
            instance=instance,
            resources={
                "postgres": PostgresResource(database_url=env["url"]),
                "artifacts": ArtifactStoreResource(location=str(env["settings"].artifacts_dir)),
            },
        ) as context:
            return sensor(context).skip_message

    yield instance, tick
    instance.dispose()


def running_job(env, instance, status: dg.DagsterRunStatus) -> tuple[str, str]:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="train_model", run_id=run_id, status=status))
    with Database(env["url"]) as db:
        job_id = start_training_job(
            db,
            family="xgboost",
            trigger_type="manual",
            trigger_id=None,
            priority=0,
            run_id=run_id,
            requested_by="test",
            reason="reaper test",
            dataset_id=None,
            config={},
        )
    return job_id, run_id


def exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def job_row(env, job_id):
    return rows(env["url"], "SELECT * FROM model_training_jobs WHERE id = %s", (job_id,))[0]


def test_the_reaper_fails_a_silent_row_and_ends_its_run_and_spares_a_live_one(env, reaper):
    instance, tick = reaper
    dead_job, dead_run = running_job(env, instance, dg.DagsterRunStatus.STARTED)
    live_job, live_run = running_job(env, instance, dg.DagsterRunStatus.STARTED)
    # The dead worker's last beat was two minutes ago and its process is gone (a process
    # that has exited stands in for it); the live one beats on.
    execute(
        env["url"],
        "UPDATE model_training_jobs SET heartbeat_at = now() - interval '2 minutes', "
        "worker_pid = %s WHERE id = %s",
        (exited_pid(), dead_job),
    )
    message = tick()
    assert f"run {dead_run}" in message and "-> marked failed" in message
    dead = job_row(env, dead_job)
    assert dead["status"] == "failed" and dead["finished_at"] is not None
    assert dead["error"].startswith("reaped: no heartbeat for 1") and "limit 60 s" in dead["error"]
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    assert job_row(env, live_job)["status"] == "running"
    assert instance.get_run_by_id(live_run).status == dg.DagsterRunStatus.STARTED
    assert tick() == "nothing to reap"


def test_a_silent_row_whose_worker_still_runs_here_is_spared(env, reaper):
    """Beats lost in a database outage do not make a live training dead: this test's own
    process is the row's worker."""
    instance, tick = reaper
    job, run = running_job(env, instance, dg.DagsterRunStatus.STARTED)
    execute(
        env["url"],
        "UPDATE model_training_jobs SET heartbeat_at = now() - interval '2 minutes' WHERE id = %s",
        (job,),
    )
    assert tick() == "nothing to reap"
    assert job_row(env, job)["status"] == "running"
    assert instance.get_run_by_id(run).status == dg.DagsterRunStatus.STARTED
    execute(env["url"], "UPDATE model_training_jobs SET status = 'failed' WHERE id = %s", (job,))


def test_the_reaper_closes_a_row_whose_run_ended_however_fresh_its_heartbeat(env, reaper):
    instance, tick = reaper
    job, run = running_job(env, instance, dg.DagsterRunStatus.CANCELED)
    assert "-> marked failed" in tick()
    row = job_row(env, job)
    assert row["status"] == "failed"
    assert row["error"] == "reaped: its Dagster run ended (CANCELED) without closing the row"
