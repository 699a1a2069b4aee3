"""The definitions as tools see them: `dg list defs` from the project root."""

import json
import os
import subprocess
import sys
from pathlib import Path

from alphaplus_mlops.app.dagster_env import dagster_environment
from alphaplus_mlops.settings import Settings

from .conftest import REPO_ROOT


def test_dg_list_defs_names_every_asset_check_job_schedule_and_sensor(database_url, tmp_path):
    settings = Settings(database_url=database_url, home=tmp_path)
    env = {**os.environ, "ALPHAPLUS_DATABASE_URL": database_url}
    env.update(dagster_environment(settings, database_url))
    dg_cli = Path(sys.executable).with_name("dg")
    done = subprocess.run(
        [str(dg_cli), "list", "defs", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout)
    assert {a["asset_key"] for a in listed["assets"]} == {
        "market_bars",
        "training_dataset",
        "trained_model",
        "model_evaluation",
        "deployment_decision",
        "champion_model",
        "live_signals",
        "prediction_outcomes",
        "live_performance",
        "ab_evaluation",
        "probation_review",
        "drift_report",
        "ml_ops_dashboard",
        "ml_ops_report",
    }
    assert {c["key"] for c in listed["asset_checks"]} == {
        "training_dataset:data_quality",
        "model_evaluation:model_performance",
        "model_evaluation:business_metrics",
        "model_evaluation:serving",
    }
    assert {j["name"] for j in listed["jobs"]} == {
        "ingest_market_bars",
        "train_model",
        "live_loop",
        "drift_check",
        "rollback_job",
        "artifact_scan",
        "ml_ops_report_job",
    }
    assert sorted(s["name"] for s in listed["schedules"]) == [
        "artifact_scan_schedule",
        "drift_check_schedule",
        "ml_ops_report_schedule",
        "model_age_schedule",
    ]
    assert sorted(s["name"] for s in listed["sensors"]) == [
        "alert_delivery_sensor",
        "drift_trigger_sensor",
        "live_signals_sensor",
        "performance_trigger_sensor",
        "pipeline_failure_sensor",
        "pipeline_recovery_sensor",
        "prediction_months",
        "run_mirror_sensor",
        "stale_data_sensor",
        "training_reaper",
    ]
