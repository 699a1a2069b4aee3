"""run_mirror_sensor, one evaluation per cursor case, against a real database and instance."""

import dagster as dg
import pytest

from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.sensors import run_mirror_sensor

from .conftest import rows


@dg.asset
def probe() -> int:
    return 1


@pytest.fixture
def mirror(create_database):
    """The sensor's world: an empty migrated database and an empty Dagster instance."""
    url = create_database()
    instance = dg.DagsterInstance.ephemeral()

    def evaluate(cursor: str | None = None):
        with dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"postgres": PostgresResource(database_url=url)},
        ) as context:
            result = run_mirror_sensor(context)
            return result, context.cursor

    yield url, instance, evaluate
    instance.dispose()


def mirrored(url: str) -> dict[str, dict]:
    return {r["dagster_run_id"]: r for r in rows(url, "SELECT * FROM ml_pipeline_orchestration")}


def test_no_runs_mirrors_nothing_and_leaves_the_cursor_at_the_start(mirror):
    url, _, evaluate = mirror
    result, cursor = evaluate()
    assert result is None
    assert float(cursor) == 0.0
    assert mirrored(url) == {}


def test_a_finished_run_is_mirrored_with_its_status_and_the_cursor_moves_past_it(mirror):
    url, instance, evaluate = mirror
    run = dg.materialize([probe], instance=instance, tags={"alphaplus/trigger_type": "manual"})
    result, cursor = evaluate()
    assert isinstance(result, dg.SkipReason) and "mirrored 1 run" in result.skip_message
    row = mirrored(url)[run.run_id]
    assert row["status"] == "SUCCESS" and row["trigger_type"] == "manual"
    assert row["started_at"] is not None and row["finished_at"] is not None
    record = instance.get_run_record_by_id(run.run_id)
    assert float(cursor) == record.update_timestamp.timestamp()


def test_a_later_tick_with_the_cursor_skips_runs_already_mirrored(mirror):
    url, instance, evaluate = mirror
    first = dg.materialize([probe], instance=instance)
    _, cursor = evaluate()
    result, same_cursor = evaluate(cursor)
    assert result is None and same_cursor == cursor
    second = dg.materialize([probe], instance=instance)
    result, newer_cursor = evaluate(cursor)
    assert "mirrored 1 run" in result.skip_message
    assert float(newer_cursor) > float(cursor)
    assert set(mirrored(url)) == {first.run_id, second.run_id}
