"""run_mirror_sensor, one evaluation per cursor case, against a real database and instance."""

import dagster as dg
import pytest

from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.defs.sensors import MirrorCursor, run_mirror_sensor

from .conftest import execute, rows


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
    assert MirrorCursor.parse(cursor).after == 0.0
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
    assert MirrorCursor.parse(cursor).after == record.update_timestamp.timestamp()


def test_a_later_tick_with_the_cursor_skips_runs_already_mirrored(mirror):
    url, instance, evaluate = mirror
    first = dg.materialize([probe], instance=instance)
    _, cursor = evaluate()
    result, same_cursor = evaluate(cursor)
    assert result is None and same_cursor == cursor
    second = dg.materialize([probe], instance=instance)
    result, newer_cursor = evaluate(cursor)
    assert "mirrored 1 run" in result.skip_message
    assert MirrorCursor.parse(newer_cursor).after > MirrorCursor.parse(cursor).after
    assert set(mirrored(url)) == {first.run_id, second.run_id}


def test_runs_updated_while_the_database_is_away_are_mirrored_on_a_later_tick(mirror):
    url, instance, evaluate = mirror
    _, cursor = evaluate()
    during_outage = [dg.materialize([probe], instance=instance).run_id for _ in range(2)]
    unreachable = PostgresResource(
        database_url="postgresql://postgres@127.0.0.1:1/postgres",
        migrate_on_start=False,
        pool_timeout=1.0,
    )
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"postgres": unreachable}
    ) as context:
        run_mirror_sensor(context)
        cursor_after_outage = context.cursor
    assert MirrorCursor.parse(cursor_after_outage) == MirrorCursor.parse(cursor)
    assert mirrored(url) == {}
    result, _ = evaluate(cursor_after_outage)
    assert "mirrored 2 run" in result.skip_message
    assert set(mirrored(url)) == set(during_outage)


def test_the_cursor_passes_only_runs_written_and_keeps_those_sharing_its_instant():
    cursor = MirrorCursor().past("a", 10.0).past("b", 10.0)
    assert cursor == MirrorCursor(10.0, ("a", "b"))
    assert cursor.already_written("a", 10.0) and cursor.already_written("x", 9.0)
    assert not cursor.already_written("c", 10.0)  # same instant, not yet written
    assert not cursor.already_written("a", 10.5)  # updated again since
    assert cursor.past("c", 11.0) == MirrorCursor(11.0, ("c",))
    assert MirrorCursor.parse(cursor.dumps()) == cursor
    assert MirrorCursor.parse("12.5") == MirrorCursor(12.5)  # a cursor from before


def test_a_run_created_earlier_but_updated_later_is_not_passed_while_another_fails(mirror):
    """The cursor is an update time: runs are read in update order, so a run that cannot
    be written holds back the runs updated after it, whatever their creation order."""
    url, instance, evaluate = mirror
    _, cursor = evaluate()
    earlier = instance.create_run_for_job(
        dg.define_asset_job("probe_job", [probe]).resolve(
            asset_graph=dg.Definitions(assets=[probe]).resolve_asset_graph()
        )
    )
    blocked = dg.materialize([probe], instance=instance).run_id
    instance.report_run_failed(instance.get_run_by_id(earlier.run_id))  # updated last
    execute(
        url,
        "CREATE FUNCTION refuse_run() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.dagster_run_id = '{blocked}' THEN RAISE EXCEPTION 'refused'; END IF; "
        "RETURN NEW; END $$",
    )
    execute(
        url,
        "CREATE TRIGGER refuse_run BEFORE INSERT OR UPDATE ON ml_pipeline_orchestration "
        "FOR EACH ROW EXECUTE FUNCTION refuse_run()",
    )
    _, cursor = evaluate(cursor)
    assert mirrored(url) == {}  # the run updated after the refused one waits too
    assert MirrorCursor.parse(cursor).failing_run == blocked
    execute(url, "DROP TRIGGER refuse_run ON ml_pipeline_orchestration")
    result, _ = evaluate(cursor)
    assert set(mirrored(url)) == {earlier.run_id, blocked}
    assert mirrored(url)[earlier.run_id]["status"] == "FAILURE"
