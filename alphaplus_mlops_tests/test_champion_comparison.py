"""A retrain meets its champion on the bars after the champion's training: the decision is
taken on the paired evidence recorded beside it, and the candidate's status follows."""

import dagster as dg
import pytest

from alphaplus_mlops.core.decision import ComparisonRule, decide
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import load_gates
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.versions import version_trained_in_run

from .conftest import STRONG_SIGNAL, rows

SYMBOLS = ["CMA", "CMB", "CMC"]
STATUS = {
    "promote": "champion",
    "shadow": "challenger",
    "keep_champion": "not_promoted",
    "reject": "rejected",
}


@pytest.fixture(scope="module")
def env(create_database, tmp_path_factory):
    url = create_database()
    migrate(url)
    config = SimulationConfig(n_bars=900, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    market = simulate_market(SYMBOLS, seed=3, config=config)
    db = Database(url)
    upsert_bars(db, market.bars, source="test")
    settings = Settings(database_url=url, home=tmp_path_factory.mktemp("home"))
    resources = build_resources(settings, PostgresResource(database_url=url))
    yield {"url": url, "db": db, "defs": build_definitions(settings, resources), "bars": market}
    db.close()


def train(env, end=None, compare_from=None):
    dataset = {"symbols": SYMBOLS, **({"end": end} if end else {})}
    evaluation = {"model_evaluation": {"config": {"compare_from": compare_from}}}
    result = (
        env["defs"]
        .resolve_job_def("train_model")
        .execute_in_process(
            partition_key="lightgbm",
            run_config={
                "ops": {
                    "training_dataset": {"config": dataset},
                    "trained_model": {"config": {"n_estimators": 40, "cv_splits": 2}},
                    **(evaluation if compare_from else {}),
                }
            },
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    )
    return version_trained_in_run(env["db"], result.run_id)


def test_the_decision_is_the_rule_applied_to_the_recorded_paired_evidence(env):
    ts = env["bars"].bars["ts"].sort_values().unique()
    first = train(env, end=str(ts[500].date()))
    assert (
        rows(env["url"], "SELECT status FROM model_versioning WHERE id = %s", (first["id"],))[0][
            "status"
        ]
        == "champion"
    )
    second = train(env)
    (decision,) = rows(
        env["url"],
        "SELECT outcome, inputs, reasons, rule FROM automated_decision_making "
        "WHERE model_version_id = %s",
        (second["id"],),
    )
    comparison = decision["inputs"]["comparison"]
    assert decision["rule"] == "deploy-v2"
    assert comparison["evidence_bars"] >= 250  # about 390 bars after the champion's window
    assert comparison["refits"] >= 1
    rule = ComparisonRule.from_gate(load_gates(env["db"]).get("champion_comparison"))
    assert decision["inputs"]["comparison_rule"] == rule.__dict__
    again = decide(True, "", True, comparison, rule)
    assert (again.outcome, again.reasons) == (decision["outcome"], decision["reasons"])
    (status,) = rows(
        env["url"], "SELECT status FROM model_versioning WHERE id = %s", (second["id"],)
    )
    assert status["status"] == STATUS[decision["outcome"]]


def comparison_of(env, version) -> dict:
    (decision,) = rows(
        env["url"],
        "SELECT inputs FROM automated_decision_making WHERE model_version_id = %s",
        (version["id"],),
    )
    return decision["inputs"]["comparison"]


def test_after_a_detected_change_the_candidate_is_judged_on_the_bars_since(env):
    ts = env["bars"].bars["ts"].sort_values().unique()
    if not rows(env["url"], "SELECT 1 FROM model_versioning WHERE status = 'champion'"):
        train(env, end=str(ts[500].date()))
    since_change = comparison_of(env, train(env, compare_from=str(ts[860].date())))
    assert 10 <= since_change["evidence_bars"] <= 40  # 900 bars; the change at bar 860
    # Too few bars since the change to test: judged on every bar after the champion's.
    too_recent = comparison_of(env, train(env, compare_from=str(ts[-3].date())))
    assert too_recent["evidence_bars"] > 40
