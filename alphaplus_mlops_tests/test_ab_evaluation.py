"""ab_evaluation: a running experiment is looked at on the bars champion and challenger both
answered; a clearly better challenger is promoted through the gated path (ledger actor
ab_evaluation), a worse one is stopped, and an experiment whose champion changed is
aborted. Every look is a decision row."""

import dagster as dg
import pytest

from alphaplus_mlops.core.experiment import ExperimentRule
from alphaplus_mlops.defs.assets.experiments import ab_evaluation
from alphaplus_mlops.store.experiments import experiments, running_experiment, start_experiment

from .conftest import execute, realize_outcomes, rows, simulated_project

SYMBOLS = ["ABA", "ABB", "ABC"]
RULE = ExperimentRule(min_bars=20, max_bars=300).as_dict()


@pytest.fixture(scope="module")
def project(create_database, tmp_path_factory):
    project = simulated_project(
        create_database, tmp_path_factory.mktemp("ab"), SYMBOLS, n_bars=700, seed=4
    )
    for _ in range(2):
        project.train("lightgbm", SYMBOLS, rounds=20)
    yield project
    project.db.close()


@pytest.fixture
def pair(project):
    """v1 champion, v2 challenger, no experiment and no live outcomes yet."""
    url = project.url
    for sql in (
        "DELETE FROM live_outcome_bars",
        "DELETE FROM live_outcomes",
        "DELETE FROM ab_testing_framework",
        "UPDATE model_versioning SET status = 'challenger' WHERE version = 2",
        "UPDATE model_versioning SET status = 'champion' WHERE version = 1",
    ):
        execute(url, sql)
    versions = {
        r["version"]: str(r["id"]) for r in rows(url, "SELECT id, version FROM model_versioning")
    }
    return versions[1], versions[2]


def realize(url, version, role, per_bar_mean, seed):
    realize_outcomes(url, version, role, per_bar_mean, seed, SYMBOLS)


def look(project):
    result = dg.materialize(
        [ab_evaluation],
        partition_key="lightgbm",
        resources=project.resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    return result.asset_materializations_for_node("ab_evaluation")[0].metadata


def looks(url):
    return rows(
        url,
        "SELECT outcome, reasons, inputs FROM automated_decision_making "
        "WHERE decision_type = 'live_experiment' ORDER BY decided_at",
    )


def test_a_clearly_better_challenger_is_promoted_through_the_gated_path(project, pair):
    champion, challenger = pair
    assert look(project)["experiment"].value == "none running"
    experiment = start_experiment(
        project.db, family="lightgbm", champion_id=champion, challenger_id=challenger, rule=RULE
    )
    realize(project.url, champion, "champion", [0.0] * 10, seed=1)
    realize(project.url, challenger, "challenger", [0.003] * 10, seed=2)
    meta = look(project)  # 10 paired bars: too few to look
    assert meta["verdict"].value == "continue" and meta["paired_bars"].value == 10

    execute(project.url, "DELETE FROM live_outcome_bars")
    execute(project.url, "DELETE FROM live_outcomes")
    realize(project.url, champion, "champion", [0.0] * 120, seed=1)
    realize(project.url, challenger, "challenger", [0.003] * 120, seed=2)
    meta = look(project)
    assert meta["verdict"].value == "promote"
    assert meta["always_valid_p"].value <= 0.05 and meta["mean_edge_per_bar"].value > 0
    (entry,) = rows(
        project.url,
        "SELECT actor, evidence FROM model_promotion_ledger WHERE model_version_id = %s",
        (challenger,),
    )
    assert entry["actor"] == "ab_evaluation"
    assert entry["evidence"]["experiment_id"] == str(experiment["id"])
    (done,) = experiments(project.db, "lightgbm")
    assert (done["status"], done["verdict"], done["n_observations"]) == (
        "concluded",
        "promote",
        120,
    )
    assert [d["outcome"] for d in looks(project.url)] == ["continue", "promote"]
    assert running_experiment(project.db, "lightgbm") is None


def test_a_worse_challenger_is_stopped_and_retired(project, pair):
    champion, challenger = pair
    start_experiment(
        project.db, family="lightgbm", champion_id=champion, challenger_id=challenger, rule=RULE
    )
    realize(project.url, champion, "champion", [0.002] * 120, seed=3)
    realize(project.url, challenger, "challenger", [-0.001] * 120, seed=4)
    meta = look(project)
    assert meta["verdict"].value == "stop"
    assert meta["reasons"].value.startswith("challenger worse")
    (status,) = rows(
        project.url, "SELECT status FROM model_versioning WHERE id = %s", (challenger,)
    )
    assert status["status"] == "not_promoted"
    (done,) = experiments(project.db, "lightgbm")
    assert (done["status"], done["verdict"]) == ("concluded", "stop")


def test_a_new_experiment_replaces_the_running_one_and_a_changed_champion_aborts_it(project, pair):
    champion, challenger = pair
    first = start_experiment(
        project.db, family="lightgbm", champion_id=champion, challenger_id=challenger, rule=RULE
    )
    second = start_experiment(
        project.db, family="lightgbm", champion_id=champion, challenger_id=challenger, rule=RULE
    )
    by_id = {str(e["id"]): e for e in experiments(project.db, "lightgbm")}
    assert by_id[str(first["id"])]["status"] == "aborted"
    assert by_id[str(second["id"])]["status"] == "running"
    execute(project.url, "UPDATE model_versioning SET status = 'retired' WHERE version = 1")
    meta = look(project)
    assert "changed since the experiment started" in meta["aborted"].value
    assert running_experiment(project.db, "lightgbm") is None
