"""The training job per family, through Dagster, on a real PostgreSQL and real artifacts."""

import dagster as dg
import pytest

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.modeling.model_files import load_frame
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifacts import LocalArtifactStore, sha256_file
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate

from .conftest import execute
from .conftest import rows as query

FAMILIES = ["catboost", "xgboost", "lightgbm"]
SYMBOLS = ["TRA", "TRB"]
FAST = {"n_estimators": 20, "cv_splits": 2}


def run_config(training=None, dataset=None):
    return {
        "ops": {
            "training_dataset": {"config": {"symbols": SYMBOLS, **(dataset or {})}},
            "trained_model": {"config": {**FAST, **(training or {})}},
        }
    }


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    url = create_database()
    migrate(url)
    market = simulate_market(SYMBOLS, seed=21, config=SimulationConfig(n_bars=420))
    with Database(url) as db:
        upsert_bars(db, market.bars, source="test-sim")
    # Promotion is judged in test_promotion.py; here no candidate may become champion.
    execute(url, "UPDATE quality_gates SET threshold = -1 WHERE name = 'model_performance'")
    settings = Settings(database_url=url, home=tmp_path_factory.mktemp("home"))
    defs = build_definitions(
        settings, build_resources(settings, PostgresResource(database_url=url))
    )
    return {
        "url": url,
        "defs": defs,
        "store": LocalArtifactStore(settings.artifacts_dir),
        "market": market,
    }


def run(env, family, config=None, tags=None, raise_on_error=False):
    """Train one family. Quality gates may reject these small models: that is a later
    stage's concern (test_promotion.py); here the training and evaluation steps are judged."""
    job = env["defs"].resolve_job_def("train_model")
    return job.execute_in_process(
        partition_key=family,
        run_config=config or run_config(),
        tags=tags,
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="module")
def first_runs(env):
    tags = {
        "alphaplus/trigger_type": "time",
        "dagster/priority": "7",
        "alphaplus/reason": "age limit reached",
    }
    return {
        family: run(env, family, tags=tags if family == "lightgbm" else None) for family in FAMILIES
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_and_registers_a_candidate_with_verified_artifacts(
    env, first_runs, family
):
    result = first_runs[family]
    assert result.output_for_node("model_evaluation")  # trained and evaluated
    handoff = result.output_for_node("trained_model")
    (version,) = query(
        env["url"], "SELECT * FROM model_versioning WHERE id = %s", (handoff["model_version_id"],)
    )
    # Registered as a candidate; the gates of the same run may have rejected it since.
    assert version["status"] == "rejected"
    assert version["family"] == family
    assert version["code_version"]
    assert version["params"]  # every hyperparameter used is on record
    stopped = version["params"]["early_stopping"]
    assert 1 <= stopped["best_rounds"] <= stopped["max_rounds"] == 20
    rounds_key = {"catboost": "iterations"}.get(family, "n_estimators")
    assert version["params"][rounds_key] == stopped["best_rounds"]
    for kind in ("native", "onnx", "oof"):
        path = env["store"].path_of(version[f"{kind}_uri"])
        assert sha256_file(path) == version[f"{kind}_sha256"]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_training_job_row_follows_the_run(env, first_runs, family):
    run_id = first_runs[family].run_id
    (job,) = query(
        env["url"], "SELECT * FROM model_training_jobs WHERE dagster_run_id = %s", (run_id,)
    )
    assert job["status"] == "succeeded"
    # 2 folds + final fit, each window fitted twice (early stopping, then on all of it).
    assert job["iteration"] == job["total_iterations"] == 3 * 20 * 2
    assert job["last_metric_name"].endswith("logloss")
    assert 0 < job["last_metric_value"] < 1
    assert job["cpu_seconds"] > 0 and job["peak_rss_bytes"] > 0
    assert job["finished_at"] >= job["started_at"]
    expected = ("time", 7, "age limit reached") if family == "lightgbm" else ("manual", 0, None)
    assert (job["trigger_type"], job["priority"], job["reason"]) == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluation_records_ml_business_and_parity_metrics(env, first_runs, family):
    handoff = first_runs[family].output_for_node("trained_model")
    (perf,) = query(
        env["url"],
        "SELECT * FROM model_performance_tracking WHERE model_version_id = %s "
        "AND split = 'walk_forward_oof'",
        (handoff["model_version_id"],),
    )
    assert set(perf["ml_metrics"]) >= {"accuracy", "f1", "roc_auc", "log_loss", "brier"}
    assert perf["ml_metrics"]["onnx_parity"] < 1e-4
    assert set(perf["business_metrics"]) >= {
        "net_sharpe",
        "profit_factor",
        "max_drawdown",
        "hit_rate",
        "turnover",
        "probabilistic_sharpe",
        "deflated_sharpe",
        "bars_per_year",
    }
    assert 240 < perf["business_metrics"]["bars_per_year"] < 270  # measured: business days
    meta = first_runs[family].asset_materializations_for_node("model_evaluation")[0].metadata
    assert "| roc_auc |" in meta["candidate_vs_champion"].value
    assert meta["equity_curve"].value.startswith("![equity curve](data:image/png;base64,")


def test_the_same_inputs_give_the_same_dataset_hash_and_no_duplicate_row(env, first_runs):
    hashes = {r.output_for_node("training_dataset")["content_hash"] for r in first_runs.values()}
    assert len(hashes) == 1
    rows = query(
        env["url"],
        "SELECT count(*) AS n FROM training_data_management WHERE content_hash = %s",
        (hashes.pop(),),
    )
    assert rows[0]["n"] == 1


def test_deflated_sharpe_counts_every_trial_on_the_label_across_families_but_no_drill(
    env, first_runs
):
    def trials_so_far():
        return query(
            env["url"],
            "SELECT count(DISTINCT p.model_version_id) AS n FROM model_performance_tracking p "
            "JOIN model_versioning v ON v.id = p.model_version_id "
            "JOIN training_data_management d ON d.id = v.dataset_id "
            "WHERE p.split = 'walk_forward_oof' AND NOT d.labels_shuffled "
            "AND d.label_config->>'horizon' = '1'",
        )[0]["n"]

    assert trials_so_far() >= len(FAMILIES)  # every family's first candidate counts
    drill = run(env, "xgboost", run_config(dataset={"shuffle_labels": True}))
    assert drill.output_for_node("trained_model")
    before = trials_so_far()
    again = run(env, "catboost")
    meta = again.asset_materializations_for_node("model_evaluation")[0].metadata
    assert meta["n_trials"].value == before + 1
    # The trials share data and features, so their returns correlate: fewer independent.
    assert 1 <= meta["n_effective_trials"].value <= before + 1
    other_label = run(env, "lightgbm", run_config(dataset={"horizon": 2}))
    meta = other_label.asset_materializations_for_node("model_evaluation")[0].metadata
    assert meta["n_trials"].value == 1


def test_xgboost_continues_from_the_champion_and_names_it_as_parent(env, first_runs):
    first = first_runs["xgboost"].output_for_node("trained_model")["model_version_id"]
    # Promotion is a later issue; here the first version is made champion directly.
    execute(env["url"], "UPDATE model_versioning SET status = 'champion' WHERE id = %s", (first,))
    second = run(env, "xgboost")
    handoff = second.output_for_node("trained_model")
    (row,) = query(
        env["url"], "SELECT * FROM model_versioning WHERE id = %s", (handoff["model_version_id"],)
    )
    assert row["training_path"] == "incremental"
    assert str(row["parent_version_id"]) == first
    assert row["version"] > 1
    # Another label definition is another problem: no parent, and nothing to compare on.
    other = run(env, "xgboost", run_config(dataset={"horizon": 3}))
    handoff = other.output_for_node("trained_model")
    (row,) = query(
        env["url"], "SELECT * FROM model_versioning WHERE id = %s", (handoff["model_version_id"],)
    )
    assert row["training_path"] == "full" and row["parent_version_id"] is None
    assert any("differs in label definition" in note for note in row["notes"])
    assert handoff["champion_comparison"] is None


def test_a_champion_trained_on_an_older_window_is_compared_on_unseen_rows(env, first_runs):
    cutoff = env["market"].bars["ts"].iloc[300].date().isoformat()
    old = run(env, "lightgbm", run_config(dataset={"end": cutoff}))
    old_id = old.output_for_node("trained_model")["model_version_id"]
    execute(env["url"], "UPDATE model_versioning SET status = 'champion' WHERE id = %s", (old_id,))
    new = run(env, "lightgbm")
    new_id = new.output_for_node("trained_model")["model_version_id"]
    planned = new.output_for_node("trained_model")["champion_comparison"]
    assert planned["champion_version_id"] == old_id and planned["refits"] >= 1
    # The candidate's side: its procedure refitted after the champion's window, never a
    # CV fold trained before it; only bars whose labels start after the champion's last.
    predicted = load_frame(env["store"], planned["predictions_uri"], planned["predictions_sha256"])
    (champion,) = query(
        env["url"],
        "SELECT d.window_end FROM model_versioning v "
        "JOIN training_data_management d ON d.id = v.dataset_id WHERE v.id = %s",
        (old_id,),
    )
    assert (predicted["t0"] > champion["window_end"]).all()
    assert (predicted["cutoff"] > champion["window_end"]).all()
    evaluation = new.output_for_node("model_evaluation")
    assert evaluation["champion_version_id"] == old_id
    meta = new.asset_materializations_for_node("model_evaluation")[0].metadata
    assert "champion v" in meta["candidate_vs_champion"].value
    assert "Paired tests on" in meta["candidate_vs_champion"].value
    shared = query(
        env["url"],
        "SELECT model_version_id, n_rows, business_metrics FROM model_performance_tracking "
        "WHERE split = %s",
        (f"vs_champion:{old_id}:{new_id}",),
    )
    assert len(shared) == 2 and shared[0]["n_rows"] == shared[1]["n_rows"] == len(predicted)
    (mine,) = [r for r in shared if str(r["model_version_id"]) == new_id]
    paired = mine["business_metrics"]["paired"]
    assert set(paired["tests"]) == {"net_return", "log_loss", "roc_auc"}
    assert paired["evidence_bars"] == predicted.groupby("symbol").size().min()


def test_a_failing_training_marks_its_job_failed_with_the_error(env):
    result = run(env, "catboost", run_config(training={"cv_splits": 500}))
    assert not result.success
    (job,) = query(
        env["url"], "SELECT * FROM model_training_jobs WHERE dagster_run_id = %s", (result.run_id,)
    )
    assert job["status"] == "failed"
    assert "test blocks" in job["error"]


def test_an_invalid_label_configuration_fails_with_its_name(env):
    result = run(env, "catboost", run_config(dataset={"horizon": 0}))
    assert not result.success
    failure = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "horizon must be at least 1" in failure[0].event_specific_data.error.message
