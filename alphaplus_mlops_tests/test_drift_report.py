"""drift_report: the champion's live features against its training rows, held to the
yardstick frozen with the version; a row, an alert and Evidently's report."""

import dagster as dg
import pytest

from alphaplus_mlops.defs.assets.drift import drift_report
from alphaplus_mlops.store.alerts import list_alerts

from .conftest import execute, rows, simulated_project

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture(scope="module")
def project(create_database, tmp_path_factory):
    project = simulated_project(
        create_database, tmp_path_factory.mktemp("drift"), SYMBOLS, n_bars=900, seed=5
    )
    bars = rows(project.url, "SELECT DISTINCT ts FROM market_bars ORDER BY ts")
    end = bars[600]["ts"].date().isoformat()
    result = project.defs.resolve_job_def("train_model").execute_in_process(
        partition_key="lightgbm",
        run_config={
            "ops": {
                "training_dataset": {"config": {"symbols": SYMBOLS, "end": end}},
                "trained_model": {
                    "config": {"n_estimators": 20, "cv_splits": 2, "early_stopping_rounds": 0}
                },
            }
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    yield project
    project.db.close()


def run(project, **config):
    result = dg.materialize(
        [drift_report],
        partition_key="lightgbm",
        resources=project.resources,
        run_config={"ops": {"drift_report": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    return result.asset_materializations_for_node("drift_report")[0].metadata


def test_a_check_records_every_features_verdict_against_the_frozen_yardstick(project):
    meta = run(project, html_report=True)
    (check,) = rows(project.url, "SELECT * FROM model_drift_detection")
    (version,) = rows(
        project.url, "SELECT id, feature_names, drift_yardstick FROM model_versioning"
    )
    stick = version["drift_yardstick"]
    assert stick["window_bars"] == 63 and len(stick["values"]) >= 5
    # Weighted by the model's gain per feature, the raw volatility as an average feature.
    weights = stick["importance"]
    assert set(weights) == {*version["feature_names"], "raw_volatility"}
    features = version["feature_names"]
    assert sum(weights[f] for f in features) == pytest.approx(1.0)
    assert weights["raw_volatility"] == pytest.approx(1 / len(features))
    assert len({round(weights[f], 9) for f in features}) > 1
    assert check["model_version_id"] == version["id"] and check["family"] == "lightgbm"
    assert check["threshold"] == pytest.approx(stick["limit"])
    assert set(check["feature_scores"]) == {*version["feature_names"], "raw_volatility"}
    # 63 bars x 4 symbols = 252 rows per window: Evidently's small-sample (p-value) tests.
    assert {s["method"] for s in check["feature_scores"].values()} <= {"ks", "chisquare", "z"}
    assert check["drifted"] == (check["dataset_drift_score"] > check["threshold"])
    # The live window starts strictly after the training window's end.
    assert check["current_window"]["start"] > check["reference_window"]["end"]
    assert check["current_window"]["rows"] == 63 * len(SYMBOLS)
    assert meta["statistic"].value == pytest.approx(check["dataset_drift_score"])
    report = meta["evidently_report"].value
    assert check["report_path"] and report.endswith(".html")
    with open(report) as f:
        assert "<html" in f.read(3000).lower()

    # A second check keeps the same yardstick.
    run(project, html_report=False, window_bars=21)
    (again,) = rows(project.url, "SELECT drift_yardstick FROM model_versioning")
    assert again["drift_yardstick"] == stick


def test_the_feature_drift_alert_follows_the_ratio_to_the_yardstick(project):
    def threshold(value):
        execute(
            project.url,
            "UPDATE ml_ops_alerts SET condition = jsonb_set(condition, '{threshold}', %s::jsonb)"
            " WHERE record_type = 'rule' AND name = 'feature_drift'",
            (str(value),),
        )

    threshold(1e9)  # no ratio reaches it: whatever an earlier check raised is resolved
    run(project, html_report=False)
    assert list_alerts(project.db, "open", "feature_drift") == []
    threshold(-1)  # any ratio exceeds it
    meta = run(project, html_report=False)
    (alert,) = list_alerts(project.db, "open", "feature_drift")
    assert meta["feature_drift_alert"].value == f"alert {alert['id']} raised"
    assert alert["subject"] == "lightgbm v1"
    assert "lightgbm v1: drift severity" in alert["message"]
    threshold(1e9)
    run(project, html_report=False)
    assert list_alerts(project.db, "open", "feature_drift") == []
    threshold(1.0)


def test_once_outcomes_are_realized_the_outputs_are_compared_beside_the_statistic(project):
    assert run(project, html_report=False)["outputs"].value == "no realized live rows yet"
    live = project.defs.resolve_job_def("live_loop").execute_in_process(
        partition_key="lightgbm", instance=dg.DagsterInstance.ephemeral()
    )
    assert live.success
    meta = run(project, html_report=False)
    check = rows(
        project.url, "SELECT * FROM model_drift_detection ORDER BY checked_at DESC LIMIT 1"
    )[0]
    beside = {k: v for k, v in check["feature_scores"].items() if "in_statistic" in v}
    assert set(beside) == {"prediction", "label_base_rate"}
    assert all(v["in_statistic"] is False for v in beside.values())
    assert meta["outputs"].value.startswith("long share ")
    assert meta["statistic"].value == pytest.approx(check["dataset_drift_score"])
