"""probation_review: after a promotion the new champion is judged against the previous one
(answering in shadow) on the bars both answered. Worse: rolled back through the rollback
path (ledger actor auto-rollback, the evidence, an alert); not twice within the cooldown,
never back to a version an automatic rollback removed; not worse for max_bars: passed."""

import dagster as dg
import psycopg
import pytest

from alphaplus_mlops.defs.assets.probation import probation_review
from alphaplus_mlops.store.alerts import open_alerts
from alphaplus_mlops.store.promotion import PromotionRefused, promote
from alphaplus_mlops.store.serving_state import desired_serving

from .conftest import execute, realize_outcomes, rows, simulated_project

SYMBOLS = ["PRA", "PRB", "PRC"]


@pytest.fixture(scope="module")
def project(create_database, tmp_path_factory):
    project = simulated_project(
        create_database, tmp_path_factory.mktemp("probation"), SYMBOLS, n_bars=700, seed=5
    )
    for _ in range(2):
        project.train("lightgbm", SYMBOLS, rounds=20)
    execute(project.url, "UPDATE model_versioning SET status = 'champion' WHERE version = 1")
    execute(project.url, "UPDATE model_versioning SET status = 'challenger' WHERE version = 2")
    yield project
    project.db.close()


def version_ids(url):
    return {
        r["version"]: str(r["id"]) for r in rows(url, "SELECT id, version FROM model_versioning")
    }


def set_rule(url, **config):
    execute(
        url,
        "UPDATE quality_gates SET config = config || %s::jsonb WHERE name = 'auto_rollback'",
        (psycopg.types.json.Jsonb(config),),
    )


def realize(url, version, role, per_bar_mean, seed):
    realize_outcomes(url, version, role, per_bar_mean, seed, SYMBOLS)


def outcomes(url, champion, champion_mean, previous, previous_mean, bars=60):
    execute(url, "DELETE FROM live_outcome_bars")
    execute(url, "DELETE FROM live_outcomes")
    realize(url, champion, "champion", [champion_mean] * bars, seed=1)
    realize(url, previous, "previous", [previous_mean] * bars, seed=2)


def look(project):
    result = dg.materialize(
        [probation_review],
        partition_key="lightgbm",
        resources=project.resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    (materialization,) = result.asset_materializations_for_node("probation_review")
    return {name: value.value for name, value in materialization.metadata.items()}


def latest_ledger(url):
    return rows(
        url,
        "SELECT l.action, l.actor, l.reason, l.evidence, v.version FROM model_promotion_ledger l "
        "JOIN model_versioning v ON v.id = l.model_version_id ORDER BY l.seq DESC LIMIT 1",
    )[0]


def champion_version(url):
    return rows(url, "SELECT version FROM model_versioning WHERE status = 'champion'")[0]["version"]


def test_a_worse_champion_is_rolled_back_once_and_never_flaps(project):
    url, db, store = project.url, project.db, project.store
    v1, v2 = version_ids(url)[1], version_ids(url)[2]
    assert look(project)["probation"].startswith("none")  # no promotion yet

    promote(db, store, v2, actor="test", reason="v2 looked better offline")
    outcomes(url, v2, 0.0, v1, 0.0, bars=10)
    assert look(project)["probation"] == "continue"  # 10 bars: too few to judge
    # While the probation is open the previous champion keeps answering in shadow, however
    # short the serving's own window (0 s here).
    assert str(desired_serving(db, 0)["lightgbm"]["previous"]["id"]) == v1

    outcomes(url, v2, -0.002, v1, 0.001)
    meta = look(project)
    assert meta["probation"] == "rollback" and meta["one_sided_p"] <= 0.05
    entry = latest_ledger(url)
    assert (entry["action"], entry["actor"], entry["version"]) == ("rollback", "auto-rollback", 1)
    assert entry["reason"].startswith("probation of v2: worse than the previous champion")
    assert entry["evidence"]["probation"]["previous_version"] == 1
    assert entry["evidence"]["gates"]  # the target's gates, as every rollback records
    assert champion_version(url) == 1
    (alert,) = open_alerts(db, "auto_rollback")
    assert alert["subject"] == "lightgbm v2"
    assert "rolled back automatically to v1" in alert["message"]
    assert look(project)["probation"].startswith("none")  # the latest move is the rollback
    assert "previous" not in desired_serving(db, 0)["lightgbm"]

    # A person promotes v2 again and it is still worse: the cooldown refuses a second
    # automatic rollback within a week; the alert is repeated, not duplicated.
    promote(db, store, v2, actor="test", reason="try v2 again")
    outcomes(url, v2, -0.002, v1, 0.001)
    meta = look(project)
    assert meta["probation"] == "rollback_refused"
    assert "not rolled back: cooldown: the family's last automatic rollback" in meta["reasons"]
    assert champion_version(url) == 2
    (alert,) = open_alerts(db, "auto_rollback")
    assert alert["occurrences"] == 2 and "was not rolled back" in alert["message"]

    # Without the cooldown, v1 is promoted over v2 and found worse: going back to v2, which
    # an automatic rollback removed, would be flapping between the two; a person decides.
    set_rule(url, cooldown_seconds=0)
    promote(db, store, v1, actor="test", reason="back to v1 by hand")
    outcomes(url, v1, -0.002, v2, 0.001)
    meta = look(project)
    assert meta["probation"] == "rollback_refused"
    assert "no flapping: v2 was itself removed by an automatic rollback" in meta["reasons"]
    assert champion_version(url) == 1
    outcomes_seen = rows(
        url,
        "SELECT outcome FROM automated_decision_making WHERE decision_type = 'probation' "
        "ORDER BY decided_at",
    )
    assert [r["outcome"] for r in outcomes_seen] == [
        "continue",
        "rollback",
        "rollback_refused",
        "rollback_refused",
    ]


def test_a_drill_promotion_takes_only_a_shuffled_label_version(project):
    url, db, store = project.url, project.db, project.store
    # Its gates reject it; the version is registered all the same.
    project.defs.resolve_job_def("train_model").execute_in_process(
        partition_key="lightgbm",
        run_config={
            "ops": {
                "training_dataset": {"config": {"symbols": SYMBOLS, "shuffle_labels": True}},
                "trained_model": {
                    "config": {"n_estimators": 20, "cv_splits": 2, "early_stopping_rounds": 0}
                },
            }
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    (shuffled,) = rows(
        url,
        "SELECT v.id, v.version, v.status FROM model_versioning v "
        "JOIN training_data_management d ON d.id = v.dataset_id WHERE d.labels_shuffled",
    )
    assert shuffled["status"] == "rejected"
    current = champion_version(url)
    other = version_ids(url)[2 if current == 1 else 1]
    with pytest.raises(PromotionRefused, match="trained on real labels"):
        promote(db, store, other, actor="test", reason="drill", drill=True)
    with pytest.raises(PromotionRefused, match="has not passed every quality gate"):
        promote(db, store, str(shuffled["id"]), actor="test", reason="no drill")
    promote(db, store, str(shuffled["id"]), actor="test", reason="drill", drill=True)
    entry = latest_ledger(url)
    assert entry["version"] == shuffled["version"] and entry["action"] == "promote"
    assert entry["evidence"]["drill"] == "gates bypassed: shuffled-label drill"
    assert False in {gate["passed"] for gate in entry["evidence"]["gates"].values()}
    # Put the family back as the next test expects it: a real champion.
    execute(url, "UPDATE model_versioning SET status = 'rejected' WHERE id = %s", (shuffled["id"],))
    execute(
        url,
        "UPDATE model_versioning SET status = 'champion' WHERE version = %s",
        (current,),
    )


def test_a_champion_not_worse_for_max_bars_passes_probation(project):
    url, db, store = project.url, project.db, project.store
    set_rule(url, max_bars=40, cooldown_seconds=0)
    current = champion_version(url)
    other = 2 if current == 1 else 1
    ids = version_ids(url)
    promote(db, store, ids[other], actor="test", reason="a fine model")
    outcomes(url, ids[other], 0.001, ids[current], 0.001, bars=40)
    meta = look(project)
    assert meta["probation"] == "passed" and meta["paired_bars"] == 40
    assert look(project)["probation"] == "ended: passed"
    assert champion_version(url) == other
