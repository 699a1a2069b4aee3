"""Gates, decisions, promotion, rollback and the schedule: real Dagster runs on PostgreSQL."""

import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.schedules import model_age_schedule
from alphaplus_mlops.defs.sensors import run_mirror_sensor
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store import promotion
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import gate_status
from alphaplus_mlops.store.handoffs import read_asset_value, write_asset_value
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.versions import champion_since, version_trained_in_run

from .conftest import STRONG_SIGNAL, execute, rows

SYMBOLS = ["PRA", "PRB", "PRC"]
# Early stopping off: a test that alters one version's files needs versions whose rounds, and so
# whose files, differ (early stopping would pick the same rounds from any upper bound).
FAST = {"n_estimators": 60, "cv_splits": 3, "early_stopping_rounds": 0}


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    yield from promotion_world(create_database, tmp_path_factory)


@pytest.fixture
def own_env(create_database, tmp_path_factory):
    """A world of its own, for a test whose expectations depend on the whole history."""
    yield from promotion_world(create_database, tmp_path_factory)


def promotion_world(create_database, tmp_path_factory):
    url = create_database()
    migrate(url)
    db = Database(url)
    config = SimulationConfig(n_bars=1000, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    upsert_bars(db, simulate_market(SYMBOLS, seed=8, config=config).bars, source="test")
    home = tmp_path_factory.mktemp("home")
    settings = Settings(database_url=url, home=home)
    resources = build_resources(settings, PostgresResource(database_url=url))
    instance = dg.DagsterInstance.ephemeral()
    yield {
        "url": url,
        "db": db,
        "defs": build_definitions(settings, resources),
        "instance": instance,
        "resources": resources,
        "store": LocalArtifactStore(settings.artifacts_dir),
        "cli_env": {"ALPHAPLUS_DATABASE_URL": url, "ALPHAPLUS_HOME": str(home)},
    }
    db.close()


def train(env, family, shuffle=False, tags=None, rounds=FAST["n_estimators"]):
    """Train one family. Identical inputs give byte-identical models, which the
    content-addressed store keeps as one file: tests that alter files vary ``rounds``."""
    run_config = {
        "ops": {
            "training_dataset": {"config": {"symbols": SYMBOLS, "shuffle_labels": shuffle}},
            "trained_model": {"config": {**FAST, "n_estimators": rounds}},
        }
    }
    result = (
        env["defs"]
        .resolve_job_def("train_model")
        .execute_in_process(
            partition_key=family,
            run_config=run_config,
            instance=env["instance"],
            raise_on_error=False,
            tags=tags,
        )
    )
    version = version_trained_in_run(env["db"], result.run_id)
    return result, version


def champion(env, family):
    found = rows(
        env["url"],
        "SELECT * FROM model_versioning WHERE family = %s AND status = 'champion'",
        (family,),
    )
    assert len(found) <= 1
    return found[0] if found else None


@pytest.fixture(scope="module")
def first_lightgbm(env):
    return train(env, "lightgbm")


@pytest.fixture(scope="module")
def catboost_runs(env):
    good = train(env, "catboost")
    broken = train(env, "catboost", shuffle=True)
    return good, broken


def test_a_good_first_candidate_is_promoted_and_its_ledger_row_holds_the_evidence(
    env, first_lightgbm
):
    result, version = first_lightgbm
    assert result.success
    assert champion(env, "lightgbm")["id"] == version["id"]
    (entry,) = rows(
        env["url"],
        "SELECT * FROM model_promotion_ledger WHERE model_version_id = %s",
        (version["id"],),
    )
    assert entry["action"] == "promote"
    assert result.run_id in entry["actor"]
    assert set(entry["evidence"]["gates"]) == {
        "data_quality",
        "model_performance",
        "business_metrics",
        "serving",
    }
    assert all(g["passed"] for g in entry["evidence"]["gates"].values())
    assert entry["dataset_hash"] and entry["code_version"]
    (decision,) = rows(
        env["url"],
        "SELECT * FROM automated_decision_making WHERE model_version_id = %s",
        (version["id"],),
    )
    assert decision["outcome"] == "promote" and decision["rule"] == "deploy-v2"
    stages = [
        r["stage"]
        for r in rows(
            env["url"],
            "SELECT stage FROM model_deployment_pipeline "
            "WHERE model_version_id = %s ORDER BY created_at",
            (version["id"],),
        )
    ]
    assert stages == ["gated", "promoted"]


def test_a_shuffled_label_candidate_is_blocked_and_the_champion_stays(env, catboost_runs):
    (good_result, good), (broken_result, broken) = catboost_runs
    assert good_result.success and not broken_result.success
    assert champion(env, "catboost")["id"] == good["id"]
    assert (
        rows(env["url"], "SELECT status FROM model_versioning WHERE id = %s", (broken["id"],))[0][
            "status"
        ]
        == "rejected"
    )
    failed = [c for c in broken_result.get_asset_check_evaluations() if not c.passed]
    assert {c.check_name for c in failed} >= {"model_performance"}
    assert all(c.severity == dg.AssetCheckSeverity.ERROR for c in failed)
    results = rows(
        env["url"],
        "SELECT gate_name, passed, reason, measured FROM "
        "quality_gate_results WHERE model_version_id = %s",
        (broken["id"],),
    )
    perf = next(r for r in results if r["gate_name"] == "model_performance")
    assert not perf["passed"] and "roc_auc" in perf["reason"] and "fails" in perf["reason"]
    assert 0.4 < perf["measured"]["roc_auc"] < 0.56
    never_ran = {
        e.step_key
        for e in broken_result.all_events
        if e.event_type == dg.DagsterEventType.STEP_START
    }
    assert "champion_model" not in never_ran and "deployment_decision" not in never_ran


def test_promoting_the_rejected_candidate_in_a_separate_run_or_the_cli_is_refused(
    env, catboost_runs
):
    _, (_, broken) = catboost_runs
    config = {
        "ops": {
            "champion_model": {
                "config": {
                    "version": broken["version"],
                    "reason": "let me through",
                    "replace_champion": True,
                }
            }
        }
    }
    separate = (
        env["defs"]
        .resolve_job_def("train_model")
        .execute_in_process(
            partition_key="catboost",
            run_config=config,
            instance=env["instance"],
            asset_selection=[dg.AssetKey("champion_model")],
            raise_on_error=False,
        )
    )
    assert not separate.success
    (failure,) = [
        e for e in separate.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    assert "has not passed every quality gate" in failure.event_specific_data.error.message
    result = CliRunner().invoke(
        main,
        [
            "promote",
            "--family",
            "catboost",
            "--version",
            str(broken["version"]),
            "--reason",
            "let me through",
            "--yes",
        ],
        env=env["cli_env"],
    )
    assert result.exit_code != 0 and "has not passed every quality gate" in result.output
    assert champion(env, "catboost")["id"] == catboost_runs[0][1]["id"]


def test_changing_a_gate_threshold_in_the_database_changes_the_next_run(env):
    with psycopg.connect(env["url"]) as conn:
        # A p-value of "AUC above chance" no model can reach.
        conn.execute("UPDATE quality_gates SET threshold = -1 WHERE name = 'model_performance'")
    strict, strict_version = train(env, "xgboost")
    with psycopg.connect(env["url"]) as conn:
        conn.execute("UPDATE quality_gates SET threshold = 0.05 WHERE name = 'model_performance'")
    relaxed, relaxed_version = train(env, "xgboost")
    assert not strict.success and strict_version["id"] != relaxed_version["id"]
    reason = rows(
        env["url"],
        "SELECT reason FROM quality_gate_results WHERE model_version_id = %s"
        " AND gate_name = 'model_performance'",
        (strict_version["id"],),
    )[0]["reason"]
    assert "roc_auc_p_value" in reason and "fails <= -1" in reason
    assert relaxed.success
    assert champion(env, "xgboost")["id"] == relaxed_version["id"]


def test_two_promotions_racing_never_leave_two_champions_or_none(env):
    challengers = [train(env, "xgboost", rounds=n)[1] for n in (70, 80)]
    for version in challengers:
        assert gate_status(env["db"], str(version["id"])).all_passed
    counts, stop = [], threading.Event()

    def watch():
        with psycopg.connect(env["url"], autocommit=True) as conn:
            while not stop.is_set():
                counts.append(
                    conn.execute(
                        "SELECT count(*) FROM model_versioning WHERE family = 'xgboost' "
                        "AND status = 'champion'"
                    ).fetchone()[0]
                )

    barrier = threading.Barrier(2)
    outcomes = []

    def race(version):
        barrier.wait()
        try:
            outcomes.append(
                promotion.promote(
                    env["db"], env["store"], str(version["id"]), actor="race", reason="race"
                )
            )
        except promotion.PromotionRefused as exc:
            outcomes.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    racers = [threading.Thread(target=race, args=(v,)) for v in challengers]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    stop.set()
    watcher.join()
    assert set(counts) == {1}
    assert all(isinstance(o, promotion.LedgerEntry) for o in outcomes)
    assert champion(env, "xgboost")["id"] in {v["id"] for v in challengers}


def test_rollback_restores_the_previous_champion_even_when_the_current_files_are_gone(
    env, first_lightgbm
):
    _, v1 = first_lightgbm
    _, v2 = train(env, "lightgbm", rounds=70)
    promoted = CliRunner().invoke(
        main,
        ["promote", "--family", "lightgbm", "--version", str(v2["version"]), "--reason", "manual"],
        env=env["cli_env"],
    )
    assert promoted.exit_code == 2 and "add --yes to replace it" in promoted.output
    assert champion(env, "lightgbm")["id"] == v1["id"]
    promoted = CliRunner().invoke(
        main,
        ["promote", "--family", "lightgbm", "--version", str(v2["version"]), "--reason", " "],
        env=env["cli_env"],
    )
    assert promoted.exit_code == 2 and "--reason must say why" in promoted.output
    promoted = CliRunner().invoke(
        main,
        ["promote", "--family", "lightgbm", "--version", str(v2["version"]), "--reason", "manual"]
        + ["--yes"],
        env=env["cli_env"],
    )
    assert promoted.exit_code == 0, promoted.output
    assert champion(env, "lightgbm")["id"] == v2["id"]
    env["store"].path_of(v2["native_uri"]).unlink()
    env["store"].path_of(v2["onnx_uri"]).write_bytes(b"corrupted")

    result = CliRunner().invoke(
        main, ["rollback", "--family", "lightgbm", "--reason", "live losses"], env=env["cli_env"]
    )
    assert result.exit_code == 0, result.output
    assert f"v{v2['version']} -> v{v1['version']}" in result.output
    assert champion(env, "lightgbm")["id"] == v1["id"]
    last = rows(
        env["url"],
        "SELECT * FROM model_promotion_ledger WHERE family = 'lightgbm' ORDER BY seq DESC LIMIT 1",
    )[0]
    assert (last["action"], last["reason"]) == ("rollback", "live losses")
    assert last["previous_version_id"] == v2["id"]

    again = CliRunner().invoke(
        main,
        ["promote", "--family", "lightgbm", "--version", str(v2["version"]), "--reason", "retry"]
        + ["--yes"],
        env=env["cli_env"],
    )
    assert again.exit_code != 0 and "artifact missing" in again.output


def test_a_tampered_artifact_is_refused_by_rollback_and_the_champion_stays(env):
    before = champion(env, "lightgbm")
    _, v3 = train(env, "lightgbm", rounds=80)
    path = env["store"].path_of(v3["onnx_uri"])
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    result = CliRunner().invoke(
        main,
        ["rollback", "--family", "lightgbm", "--to", str(v3["version"]), "--reason", "try it"],
        env=env["cli_env"],
    )
    assert result.exit_code != 0
    assert "fails its checksum" in result.output
    assert champion(env, "lightgbm")["id"] == before["id"]


def test_rollback_as_a_dagster_job(env, catboost_runs):
    (_, good), _ = catboost_runs
    _, newer = train(env, "catboost", rounds=70)
    promotion.promote(env["db"], env["store"], str(newer["id"]), actor="test", reason="newer")
    result = (
        env["defs"]
        .resolve_job_def("rollback_job")
        .execute_in_process(
            run_config={
                "ops": {"rollback_champion": {"config": {"family": "catboost", "reason": "drill"}}}
            },
            instance=env["instance"],
        )
    )
    assert result.success
    assert champion(env, "catboost")["id"] == good["id"]


def test_which_model_served_at_a_time_is_answered_from_the_ledger(env, first_lightgbm):
    _, v1 = first_lightgbm
    promoted_at = rows(
        env["url"],
        "SELECT min(recorded_at) AS t FROM model_promotion_ledger WHERE model_version_id = %s",
        (v1["id"],),
    )[0]["t"]
    result = CliRunner().invoke(
        main,
        [
            "which",
            "--family",
            "lightgbm",
            "--at",
            (promoted_at + timedelta(milliseconds=1)).isoformat(),
        ],
        env=env["cli_env"],
    )
    assert f"lightgbm v{v1['version']} since" in result.output and "promote" in result.output
    before = CliRunner().invoke(
        main,
        ["which", "--family", "lightgbm", "--at", "2000-01-01T00:00:00+00:00"],
        env=env["cli_env"],
    )
    assert "no lightgbm model was serving" in before.output


def test_the_schedule_requests_runs_only_for_stale_families(env):
    url = env["url"]
    since = {f: champion_since(env["db"], f) for f in ("catboost", "xgboost", "lightgbm")}
    assert all(since.values())
    now = datetime.now(UTC)
    ages = sorted(((now - s["since"]).total_seconds(), f) for f, s in since.items())
    # A limit between the oldest champion's age and the next one: only the oldest is stale.
    limit_days = (ages[-1][0] + ages[-2][0]) / 2 / 86400
    execute(
        url,
        "UPDATE automated_retraining_triggers SET config = jsonb_set(config, "
        "'{max_model_age_days}', to_jsonb(%s::float)) WHERE trigger_type = 'time'",
        (limit_days,),
    )
    postgres = {"postgres": env["resources"]["postgres"]}

    def requested_at(when):
        with dg.build_schedule_context(scheduled_execution_time=when, resources=postgres) as c:
            return model_age_schedule(c)

    requests = requested_at(now)
    assert [r.partition_key for r in requests] == [ages[-1][1]]
    tags = requests[0].tags
    assert tags["alphaplus/trigger_type"] == "time" and tags["dagster/priority"] == "1"
    trigger_id = rows(
        url, "SELECT id FROM automated_retraining_triggers WHERE trigger_type = 'time'"
    )[0]["id"]
    assert tags["alphaplus/trigger_id"] == str(trigger_id)
    assert requests[0].run_key.startswith(f"time:{trigger_id}:{ages[-1][1]}:")

    tomorrow = now + timedelta(days=1)
    families = ["catboost", "lightgbm", "xgboost"]
    assert sorted(r.partition_key for r in requested_at(tomorrow)) == families
    # A training within the limit answers the schedule, whatever became of it (here a failed
    # one): the family is not asked again until the limit has passed since that training.
    execute(
        url,
        "INSERT INTO model_training_jobs (family, trigger_type, status, created_at) "
        "VALUES ('xgboost', 'time', 'failed', %s)",
        (tomorrow - timedelta(seconds=limit_days * 86400 / 2),),
    )
    assert sorted(r.partition_key for r in requested_at(tomorrow)) == ["catboost", "lightgbm"]
    stale = {r.partition_key: r.tags for r in requested_at(now + timedelta(days=2))}
    assert sorted(stale) == families
    assert "; last training " in stale["xgboost"]["alphaplus/reason"]
    execute(
        url,
        "UPDATE automated_retraining_triggers SET config = jsonb_set(config, "
        "'{max_model_age_days}', '30') WHERE trigger_type = 'time'",
    )
    assert isinstance(requested_at(now), dg.SkipReason)


def test_runs_are_mirrored_with_their_trigger_for_outside_readers(env, catboost_runs):
    (good_result, _), (broken_result, _) = catboost_runs
    with dg.build_sensor_context(
        instance=env["instance"], resources={"postgres": env["resources"]["postgres"]}
    ) as context:
        run_mirror_sensor(context)
    mirrored = {
        r["dagster_run_id"]: r for r in rows(env["url"], "SELECT * FROM ml_pipeline_orchestration")
    }
    assert mirrored[good_result.run_id]["status"] == "SUCCESS"
    assert mirrored[broken_result.run_id]["status"] == "FAILURE"
    assert mirrored[good_result.run_id]["trigger_type"] == "manual"
    assert mirrored[good_result.run_id]["finished_at"] is not None


def test_status_shows_champion_challenger_training_decision_and_gates(env):
    result = CliRunner().invoke(main, ["status"], env=env["cli_env"])
    assert result.exit_code == 0, result.output
    for family in ("catboost", "xgboost", "lightgbm"):
        assert family in result.output
    assert "champion       v" in result.output
    assert "last decision" in result.output and "pass " in result.output


def test_a_second_rollback_does_not_bring_back_the_model_that_was_pulled(own_env):
    _, first = train(own_env, "lightgbm")  # the family's first model: promoted
    _, pulled = train(own_env, "lightgbm", rounds=70)
    promotion.promote(own_env["db"], own_env["store"], str(pulled["id"]), actor="t", reason="try")
    rollback = ["rollback", "--family", "lightgbm", "--reason", "live losses"]
    assert CliRunner().invoke(main, rollback, env=own_env["cli_env"]).exit_code == 0
    assert champion(own_env, "lightgbm")["id"] == first["id"]

    again = CliRunner().invoke(main, rollback, env=own_env["cli_env"])
    assert again.exit_code != 0
    assert "no earlier champion to roll back to" in again.output
    assert champion(own_env, "lightgbm")["id"] == first["id"]


def test_an_automated_promotion_is_refused_when_the_champion_changed_after_the_decision(
    env, catboost_runs
):
    judged_against = champion(env, "catboost")
    _, candidate = train(env, "catboost", rounds=90)
    # Between the candidate's decision and its promotion, someone promotes another version.
    _, newer = train(env, "catboost", rounds=95)
    promotion.promote(env["db"], env["store"], str(newer["id"]), actor="test", reason="hotfix")
    with pytest.raises(promotion.PromotionRefused, match="decide again"):
        promotion.promote(
            env["db"],
            env["store"],
            str(candidate["id"]),
            actor="test",
            reason="the decision's promotion",
            replacing=str(judged_against["id"]),
        )
    assert champion(env, "catboost")["id"] == newer["id"]
    # Judged against the champion in office, the same call goes through.
    promotion.promote(
        env["db"],
        env["store"],
        str(candidate["id"]),
        actor="test",
        reason="decided again",
        replacing=str(newer["id"]),
    )
    assert champion(env, "catboost")["id"] == candidate["id"]


def test_each_run_reads_the_hand_off_its_own_run_wrote(env):
    db = env["db"]
    write_asset_value(db, "probe", "xgboost", "run-a", {"from": "a"})
    write_asset_value(db, "probe", "xgboost", "run-b", {"from": "b"})
    assert read_asset_value(db, "probe", "xgboost", "run-a") == {"from": "a"}
    assert read_asset_value(db, "probe", "xgboost", "run-c") == {"from": "b"}
    assert read_asset_value(db, "probe", "xgboost") == {"from": "b"}


def test_asset_launches_and_odd_trigger_tags_are_mirrored_too(env):
    odd, version = train(env, "lightgbm", rounds=65, tags={"alphaplus/trigger_id": "not-a-uuid"})
    bars = dg.materialize(
        [market_bars],
        instance=env["instance"],
        resources={k: env["resources"][k] for k in ("postgres", "market_data")},
        run_config={
            "ops": {
                "market_bars": {
                    "config": {"sources": ["simulator"], "sim_symbols": ["MIRROR"], "sim_bars": 120}
                }
            }
        },
    )
    with dg.build_sensor_context(
        instance=env["instance"], resources={"postgres": env["resources"]["postgres"]}
    ) as context:
        run_mirror_sensor(context)
    mirrored = {
        r["dagster_run_id"]: r for r in rows(env["url"], "SELECT * FROM ml_pipeline_orchestration")
    }
    assert mirrored[odd.run_id]["trigger_id"] is None
    assert mirrored[bars.run_id]["status"] == "SUCCESS"
    (job,) = rows(
        env["url"],
        "SELECT trigger_id FROM model_training_jobs WHERE dagster_run_id = %s",
        (odd.run_id,),
    )
    assert job["trigger_id"] is None
