"""Adding a model family touches families/ only: registered, it trains through the real
train_model job (dataset, data-quality gate, CV, final fit, ONNX, the four model gates,
decision) like the built-ins.

The family is registered before the Dagster definitions are imported, as the line in
families/__init__.py does (the registry closes when the partitions are made); the run
happens in a fresh process so that this test session's definitions keep the built-ins.
"""

import json
import subprocess
import sys
import textwrap

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.migrations import migrate

from .conftest import REPO_ROOT, rows

CHILD = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    from alphaplus_mlops.families import register_family
    from alphaplus_mlops_tests.logistic_family import LogisticFamily

    register_family(LogisticFamily())

    import dagster as dg

    from alphaplus_mlops.defs import build_definitions, build_resources
    from alphaplus_mlops.defs.resources import PostgresResource
    from alphaplus_mlops.settings import Settings

    url, home = sys.argv[1], Path(sys.argv[2])
    settings = Settings(database_url=url, home=home)
    resources = build_resources(settings, PostgresResource(database_url=url))
    defs = build_definitions(settings, resources)
    partitions = defs.resolve_job_def("train_model").partitions_def.get_partition_keys()
    result = defs.resolve_job_def("train_model").execute_in_process(
        partition_key="logistic",
        run_config={
            "ops": {
                "training_dataset": {"config": {"symbols": ["LGA", "LGB"]}},
                "trained_model": {"config": {"n_estimators": 100, "cv_splits": 3}},
            }
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    print(json.dumps({"run_id": result.run_id, "partitions": list(partitions)}))
    """
)


def test_a_family_added_in_families_only_trains_gates_and_registers(create_database, tmp_path):
    url = create_database()
    migrate(url)
    market = simulate_market(["LGA", "LGB"], seed=5, config=SimulationConfig(n_bars=700))
    with Database(url) as db:
        upsert_bars(db, market.bars[market.bars["ts"] < market.break_ts], source="test")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(tmp_path / "home")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["partitions"] == ["catboost", "xgboost", "lightgbm", "logistic"]

    (version,) = rows(
        url,
        "SELECT v.* FROM model_versioning v JOIN model_training_jobs j "
        "ON j.id = v.training_job_id WHERE j.dagster_run_id = %s",
        (report["run_id"],),
    )
    assert version["family"] == "logistic" and version["version"] == 1
    assert version["native_uri"].endswith(".json") and version["onnx_sha256"]
    gates = rows(
        url,
        "SELECT gate_name, passed FROM quality_gate_results WHERE model_version_id = %s",
        (version["id"],),
    )
    assert {g["gate_name"] for g in gates} == {
        "model_performance",
        "business_metrics",
        "serving",
    }
    (evaluation,) = rows(
        url,
        "SELECT ml_metrics FROM model_performance_tracking "
        "WHERE model_version_id = %s AND split = 'walk_forward_oof'",
        (version["id"],),
    )
    assert evaluation["ml_metrics"]["onnx_parity"] < 1e-5
    assert rows(
        url,
        "SELECT outcome FROM automated_decision_making WHERE model_version_id = %s",
        (version["id"],),
    )
