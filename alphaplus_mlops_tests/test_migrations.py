"""The migration runner on a real, initially empty PostgreSQL database."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alphaplus_mlops.store.migrations import (
    DEFAULT_SQL_DIR,
    MigrationError,
    discover,
    migrate,
    status,
)

from .conftest import execute, rows

SEED_TABLES = {
    "model_training_jobs",
    "training_data_management",
    "model_performance_tracking",
    "model_deployment_pipeline",
    "ab_testing_framework",
    "model_versioning",
    "real_time_model_performance",
    "model_drift_detection",
    "automated_retraining_triggers",
    "ml_pipeline_orchestration",
    "automated_decision_making",
    "quality_gates",
    "ml_ops_dashboard",
    "ml_ops_alerts",
    "ml_ops_reports",
}
LOOP_TABLES = {
    "market_bars",
    "model_predictions",
    "model_promotion_ledger",
    "alert_channels",
    "alert_deliveries",
}


def scalar(url: str, sql: str, params=()):
    (row,) = rows(url, sql, params)
    return next(iter(row.values()))


def tables(url: str) -> set[str]:
    return {
        r["tablename"]
        for r in rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }


def test_migrating_an_empty_database_creates_every_table_index_and_default_row(
    empty_database_url,
):
    applied = migrate(empty_database_url)
    assert [m.filename for m in applied] == [m.filename for m in discover()]
    assert SEED_TABLES | LOOP_TABLES | {"schema_migrations"} <= tables(empty_database_url)
    explicit_indexes = scalar(
        empty_database_url,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' "
        "AND indexname NOT LIKE '%%_pkey' AND indexname NOT LIKE '%%_key'",
    )
    assert explicit_indexes >= 20
    url = empty_database_url
    assert scalar(url, "SELECT count(*) FROM automated_retraining_triggers") == 3
    gates = scalar(url, "SELECT array_agg(name ORDER BY name) FROM quality_gates")
    # The seed's three, the data-quality and serving gates the promotion path needs, the
    # champion comparison's settings, the live experiment's rule (021) and the automatic
    # rollback's (022); drift is disabled: it never rejects a candidate.
    assert set(gates) == {
        "model_performance",
        "drift",
        "business_metrics",
        "data_quality",
        "serving",
        "champion_comparison",
        "live_experiment",
        "auto_rollback",
    }
    enabled = scalar(url, "SELECT array_agg(name ORDER BY name) FROM quality_gates WHERE enabled")
    assert "drift" not in enabled
    # The seed's four, artifact_missing (009), serving_load_failed (011), stale_market_data
    # (018) and auto_rollback (022).
    assert scalar(url, "SELECT count(*) FROM ml_ops_alerts WHERE record_type = 'rule'") == 8
    trigger_types = scalar(
        url,
        "SELECT array_agg(trigger_type ORDER BY trigger_type) FROM automated_retraining_triggers",
    )
    assert trigger_types == ["drift", "performance", "time"]


def test_migrating_again_is_a_no_op(empty_database_url):
    migrate(empty_database_url)
    before = scalar(empty_database_url, "SELECT max(applied_at) FROM schema_migrations")
    assert migrate(empty_database_url) == []
    assert scalar(empty_database_url, "SELECT max(applied_at) FROM schema_migrations") == before
    assert scalar(empty_database_url, "SELECT count(*) FROM quality_gates") == 8


def test_status_lists_pending_then_applied(empty_database_url):
    assert not any(s.applied for s in status(empty_database_url))
    migrate(empty_database_url)
    assert all(s.applied for s in status(empty_database_url))


def copy_of_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    shutil.copytree(DEFAULT_SQL_DIR, folder)
    return folder


def test_an_applied_migration_that_was_edited_is_refused(empty_database_url, tmp_path):
    folder = copy_of_migrations(tmp_path)
    migrate(empty_database_url, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=f"{first.name} was edited after it was applied"):
        migrate(empty_database_url, folder)
    with pytest.raises(MigrationError, match="edited"):
        status(empty_database_url, folder)


def test_a_new_migration_is_applied_alone_and_a_failing_one_leaves_no_trace(
    empty_database_url, tmp_path
):
    folder = copy_of_migrations(tmp_path)
    migrate(empty_database_url, folder)
    (folder / "900_extra_table.sql").write_text("CREATE TABLE extra_table (id int);")
    assert [m.filename for m in migrate(empty_database_url, folder)] == ["900_extra_table.sql"]

    (folder / "901_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nINSERT INTO no_such_table VALUES (1);"
    )
    with pytest.raises(MigrationError, match="901_broken.sql failed and was rolled back"):
        migrate(empty_database_url, folder)
    assert "half_done" not in tables(empty_database_url)
    assert scalar(empty_database_url, "SELECT max(version) FROM schema_migrations") == 900


def test_a_database_newer_than_the_code_is_refused(empty_database_url, tmp_path):
    folder = copy_of_migrations(tmp_path)
    (folder / "900_extra_table.sql").write_text("CREATE TABLE extra_table (id int);")
    migrate(empty_database_url, folder)
    with pytest.raises(MigrationError, match="code is older than the database"):
        migrate(empty_database_url)


def test_badly_named_migration_files_are_refused(tmp_path):
    (tmp_path / "create_things.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_lower_snake_name.sql"):
        discover(tmp_path)


def test_two_concurrent_migrate_processes_end_with_one_schema(empty_database_url):
    script = (
        "import sys; from alphaplus_mlops.store.migrations import migrate; "
        "print(len(migrate(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    applied_counts = sorted(int(out.strip()) for out, _ in results)
    assert applied_counts == [0, len(discover())]
    assert scalar(empty_database_url, "SELECT count(*) FROM schema_migrations") == len(discover())
    assert scalar(empty_database_url, "SELECT count(*) FROM quality_gates") == 8


def test_live_outcomes_are_backfilled_with_each_bars_first_realized_answer(
    empty_database_url, tmp_path
):
    url = empty_database_url
    folder = copy_of_migrations(tmp_path)
    (folder / "016_live_outcome_table.sql").unlink()
    (folder / "017_monitoring_reads.sql").unlink()
    (folder / "025_prediction_partitions.sql").unlink()  # the log as it was then
    migrate(url, folder)
    execute(
        url,
        "INSERT INTO model_versioning (id, family, version, model_name) VALUES "
        "('00000000-0000-0000-0000-000000000001', 'lightgbm', 1, 'lightgbm-v1')",
    )
    # Bar 1 was answered twice (the earlier answer counts) and realized; bar 2 waits.
    execute(
        url,
        "INSERT INTO model_predictions (model_version_id, family, role, symbol, bar_ts,"
        " probability, signal, predicted_at, realized_return, realized_label,"
        " realized_net_return, realized_at) VALUES"
        " ('00000000-0000-0000-0000-000000000001', 'lightgbm', 'champion', 'AAA',"
        "  '2020-01-02', 0.7, 1, '2020-01-02 22:10', 0.01, 1, 0.0095, now()),"
        " ('00000000-0000-0000-0000-000000000001', 'lightgbm', 'champion', 'AAA',"
        "  '2020-01-02', 0.6, 1, '2020-01-02 22:00', 0.01, 1, 0.0095, now()),"
        " ('00000000-0000-0000-0000-000000000001', 'lightgbm', 'champion', 'AAA',"
        "  '2020-01-03', 0.4, -1, '2020-01-03 22:00', NULL, NULL, NULL, NULL)",
    )
    assert [m.filename for m in migrate(url)] == [
        "016_live_outcome_table.sql",
        "017_monitoring_reads.sql",
        "025_prediction_partitions.sql",
    ]
    backfilled = rows(
        url, "SELECT symbol, probability, realized_label, realized_net_return FROM live_outcomes"
    )
    assert backfilled == [
        {"symbol": "AAA", "probability": 0.6, "realized_label": 1, "realized_net_return": 0.0095}
    ]
    # The series' bar list holds the realized bar, not the one still waiting.
    bars = rows(url, "SELECT role, bar_ts::date::text AS bar FROM live_outcome_bars")
    assert bars == [{"role": "champion", "bar": "2020-01-02"}]


def test_alerts_from_before_the_lifecycle_get_a_state_and_one_unresolved_row_per_subject(
    empty_database_url, tmp_path
):
    url = empty_database_url
    folder = copy_of_migrations(tmp_path)
    (folder / "018_alert_lifecycle.sql").unlink()
    migrate(url, folder)
    # Before 018 an acknowledged alert let a second one fire for the same record.
    insert = (
        "INSERT INTO ml_ops_alerts (record_type, rule_id, name, category, severity, message,"
        " details, fired_at, acknowledged_at, acknowledged_by) SELECT 'alert', id, name,"
        " category, severity, %s, %s, %s, %s, %s FROM ml_ops_alerts"
        " WHERE record_type = 'rule' AND name = 'artifact_missing'"
    )
    execute(url, insert, ("first", '{"key": "rec:1"}', "2026-01-01", "2026-01-02", "ops"))
    execute(url, insert, ("second", '{"key": "rec:1"}', "2026-01-03", None, None))
    execute(url, insert, ("other", "{}", "2026-01-04", None, None))
    assert [m.filename for m in migrate(url)] == ["018_alert_lifecycle.sql"]
    found = rows(
        url,
        "SELECT message, subject = id::text AS subject_is_id, subject, state, occurrences,"
        " last_seen_at = fired_at AS seen_when_fired FROM ml_ops_alerts"
        " WHERE record_type = 'alert' ORDER BY fired_at",
    )
    assert [(r["message"], r["state"], r["occurrences"]) for r in found] == [
        ("first", "resolved", 1),  # superseded by the later one about the same record
        ("second", "open", 1),
        ("other", "open", 1),
    ]
    assert [r["subject"] for r in found[:2]] == ["rec:1", "rec:1"]
    assert found[2]["subject_is_id"]  # no key: the alert is its own subject
    assert all(r["seen_when_fired"] for r in found)
    assert rows(url, "SELECT name, kind FROM alert_channels") == [{"name": "log", "kind": "log"}]
