"""The promotion ledger is append-only, enforced by the database itself."""

import psycopg
import pytest


@pytest.fixture
def ledger_row(database_url):
    with psycopg.connect(database_url) as conn:
        version_id = conn.execute(
            "INSERT INTO model_versioning (family, version, model_name) "
            "VALUES ('lightgbm', (SELECT coalesce(max(version), 0) + 1 FROM model_versioning "
            "WHERE family = 'lightgbm'), 'signal-lightgbm') RETURNING id"
        ).fetchone()[0]
        row_id = conn.execute(
            "INSERT INTO model_promotion_ledger (family, action, model_version_id, actor, reason)"
            " VALUES ('lightgbm', 'promote', %s, 'test', 'first model') RETURNING id",
            (version_id,),
        ).fetchone()[0]
    return row_id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE model_promotion_ledger SET reason = 'rewritten' WHERE id = %s",
        "DELETE FROM model_promotion_ledger WHERE id = %s",
    ],
    ids=["update", "delete"],
)
def test_ledger_rows_cannot_be_updated_or_deleted(database_url, ledger_row, statement):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement, (ledger_row,))
        conn.rollback()
        reason = conn.execute(
            "SELECT reason FROM model_promotion_ledger WHERE id = %s", (ledger_row,)
        ).fetchone()[0]
    assert reason == "first model"


def test_ledger_cannot_be_truncated(database_url, ledger_row):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="TRUNCATE"):
            conn.execute("TRUNCATE model_promotion_ledger")


def test_the_database_refuses_a_second_champion_per_family(database_url):
    with psycopg.connect(database_url) as conn:
        for version in (101, 102):
            conn.execute(
                "INSERT INTO model_versioning (family, version, model_name, status) "
                "VALUES ('catboost', %s, 'signal-catboost', 'candidate')",
                (version,),
            )
        conn.execute(
            "UPDATE model_versioning SET status = 'champion' "
            "WHERE family = 'catboost' AND version = 101"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "UPDATE model_versioning SET status = 'champion' "
                "WHERE family = 'catboost' AND version = 102"
            )
