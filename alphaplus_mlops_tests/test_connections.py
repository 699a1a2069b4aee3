"""Connections a desk can leave running: no secret in any output, no wait without end, and a
runtime role that cannot change the schema under the ledger."""

import datetime
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.settings import Settings, SettingsError
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database, connect, redact, session_settings, with_database
from alphaplus_mlops.store.migrations import (
    MigrationError,
    migrate_as_owner,
    prepare_schema,
)
from alphaplus_mlops.store.promotion import PromotionRefused, promote, rollback

from .conftest import rows, simulated_project

SECRET = "Sup3r-s3cret"


def with_secret(url: str, secret: str = SECRET) -> str:
    """The same server, with a password in the user part and in the query string (a
    trust-authenticated server accepts and ignores it)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.netloc.rsplit("@", 1)[0].split(":")[0] if "@" in parts.netloc else "postgres"
    query = "&".join(filter(None, [parts.query, f"password={secret}"]))
    return urlunsplit((parts.scheme, f"{user}:{secret}@{host}", parts.path, query, ""))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://u@h/db?password=pw&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://h/db?PASSWORD=pw", "postgresql://h/db?PASSWORD=***"),
        ("postgresql://h/db?pass%77ord=pw", "postgresql://h/db?pass%77ord=***"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p#ss@h:1/db", "postgresql://u:***@h:1/db"),
        ("postgresql://u:p?ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pw@h?password=pw", "postgresql://u:***@h?password=***"),
        ("postgresql://h/db?password=a#b&x=1", "postgresql://h/db?password=***&x=1"),
        ("postgresql://u:@/db?host=/tmp/x&password=", "postgresql://u:@/db?host=/tmp/x&password="),
        ("postgresql:///db?host=/tmp/x", "postgresql:///db?host=/tmp/x"),
        ("not a url at all", "<database URL not shown>"),
    ],
)
def test_redact_masks_every_password_and_keeps_the_rest_as_written(url, shown):
    assert redact(url) == shown


def test_no_command_prints_a_password_from_the_user_part_or_the_query(database_url, tmp_path):
    url = with_secret(database_url)
    env = {"ALPHAPLUS_DATABASE_URL": url, "ALPHAPLUS_HOME": str(tmp_path)}
    outputs = {}
    for command in (
        ["db", "url"],
        ["db", "start"],
        ["db", "status"],
        ["env"],
        ["status"],
        ["doctor"],
        ["data", "summary"],
    ):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), command
        outputs[" ".join(command)] = result.output
        assert SECRET not in result.output, command
    assert "password=***" in outputs["db url"] and ":***@" in outputs["db url"]
    shown = CliRunner().invoke(main, ["db", "url", "--show-password"], env=env)
    assert shown.output.strip() == url  # asked for explicitly, for a script's own use
    assert "${ALPHAPLUS_DATABASE_URL#*://}" in outputs["env"]
    assert repr(Settings.from_env(env)).count(SECRET) == 0


def test_a_run_with_a_secret_url_writes_it_to_no_log_or_metadata(database_url, tmp_path):
    url = with_secret(database_url)
    settings = Settings(database_url=url, home=tmp_path, market_sources=("simulator",))
    defs = build_definitions(
        settings, build_resources(settings, PostgresResource(database_url=url))
    )
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("ingest_market_bars").execute_in_process(instance=instance)
    assert result.success
    logged = " ".join(str(record) for record in instance.all_logs(result.run_id))
    assert "database" in logged and SECRET not in logged


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("host=db user=app password=Sup3r-s3cret", "got something else"),
        ("mysql://app:Sup3r-s3cret@db/x", "got the scheme 'mysql'"),
        ("postgresql://app:Sup3r-s3cr%zzet@db/x", "encode a literal % in a password as %25"),
    ],
)
def test_a_bad_database_url_is_refused_without_being_quoted(value, says):
    for name in ("ALPHAPLUS_DATABASE_URL", "ALPHAPLUS_MIGRATION_DATABASE_URL"):
        env = {"ALPHAPLUS_DATABASE_URL": "postgresql://h/db", name: value}
        with pytest.raises(SettingsError, match=says) as refused:
            Settings.from_env(env)
        assert SECRET not in str(refused.value) and "s3cr" not in str(refused.value)


def test_session_settings_keep_the_urls_own_options():
    options = session_settings(1, 2, "postgresql://h/db?options=-csearch_path%3Dfoo")["options"]
    assert options == (
        "-csearch_path=foo -c lock_timeout=1000 -c statement_timeout=2000 -c TimeZone=UTC"
    )


def test_sessions_run_in_utc_whatever_the_servers_default(create_database):
    url = create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        name = conn.info.dbname
        conn.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'America/New_York'")
    with Database(url) as db, db.connection() as conn:
        row = conn.execute(
            "SELECT current_setting('TimeZone') AS tz,"
            " '2020-01-02 03:00+00'::timestamptz::date AS day,"
            " '2020-01-02 03:00+00'::timestamptz AS at"
        ).fetchone()
    # New York's date at 03:00 UTC would be January 1st.
    assert (row["tz"], str(row["day"])) == ("UTC", "2020-01-02")
    assert row["at"].tzinfo is datetime.UTC


def test_settings_refuse_a_stale_limit_shorter_than_two_heartbeats():
    with pytest.raises(SettingsError, match="at least twice ALPHAPLUS_HEARTBEAT_SECONDS"):
        Settings.from_env(
            {"ALPHAPLUS_HEARTBEAT_SECONDS": "30", "ALPHAPLUS_TRAINING_STALE_SECONDS": "45"}
        )
    with pytest.raises(SettingsError, match="ALPHAPLUS_LOCK_TIMEOUT_SECONDS must be an integer"):
        Settings.from_env({"ALPHAPLUS_LOCK_TIMEOUT_SECONDS": "soon"})


# Timeouts -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def champion_world(create_database, tmp_path_factory):
    """One promoted lightgbm model and a second candidate that passed every gate."""
    symbols = ["CNA", "CNB", "CNC"]
    home = tmp_path_factory.mktemp("connections")
    project = simulated_project(create_database, home, symbols, n_bars=700, seed=5)
    versions = [project.train("lightgbm", symbols, rounds) for rounds in (30, 40)]
    project.db.close()
    url, settings = project.url, project.settings
    return url, settings, versions


def test_a_held_family_lock_fails_promotion_after_its_timeout_with_a_message(champion_world):
    from alphaplus_mlops.store.artifacts import LocalArtifactStore

    url, settings, (first, second) = champion_world
    store = LocalArtifactStore(settings.artifacts_dir)
    before = rows(url, "SELECT id FROM model_versioning WHERE status = 'champion'")
    with psycopg.connect(url) as holder:  # a hung transaction holding the family lock
        holder.execute(queries.LOCK_FAMILY_VERSIONS, ("lightgbm",))
        with Database(url, lock_timeout=1) as db:
            started = time.monotonic()
            with pytest.raises(PromotionRefused, match="held the lightgbm promotion lock"):
                promote(db, store, str(second["id"]), actor="test", reason="lock test")
            with pytest.raises(PromotionRefused, match="more than 1s"):
                rollback(db, store, "lightgbm", actor="test", reason="lock test")
            assert time.monotonic() - started < 10
    assert rows(url, "SELECT id FROM model_versioning WHERE status = 'champion'") == before


def test_a_statement_over_the_statement_timeout_is_cancelled(database_url):
    with Database(database_url, statement_timeout=0.5) as db, db.connection() as conn:
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")


# A migration role -------------------------------------------------------------------------


def test_the_runtime_role_reads_and_writes_data_but_cannot_alter_the_schema(runtime_role):
    owner_url, runtime_url, role = runtime_role
    applied = migrate_as_owner(owner_url, runtime_url)
    assert applied  # every migration, as the owner
    with Database(runtime_url) as db:
        bars = simulate_market(["RTA"], seed=1, config=SimulationConfig(n_bars=50)).bars
        assert upsert_bars(db, bars, source="runtime").inserted == 50
    with connect(runtime_url, autocommit=True) as conn:
        for forbidden in (
            "DROP TRIGGER model_promotion_ledger_no_update_delete ON model_promotion_ledger",
            "ALTER TABLE model_versioning DROP CONSTRAINT model_versioning_status_check",
            "DROP TABLE market_bars",
            "UPDATE model_promotion_ledger SET reason = 'rewritten'",
            "DELETE FROM schema_migrations",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)


def test_runs_refuse_a_stale_schema_under_a_migration_role_instead_of_migrating(
    runtime_role, monkeypatch
):
    owner_url, runtime_url, _ = runtime_role
    monkeypatch.setenv("ALPHAPLUS_DATABASE_URL", runtime_url)
    monkeypatch.setenv("ALPHAPLUS_MIGRATION_DATABASE_URL", owner_url)
    resource = PostgresResource(database_url=runtime_url)
    with pytest.raises(MigrationError, match="run `alphaplus-mlops db migrate`"):
        resource.setup_for_execution(dg.build_init_resource_context())
    result = CliRunner().invoke(main, ["db", "migrate"])
    assert result.exit_code == 0, result.output
    assert "applied 001_core_schema.sql" in result.output
    resource.setup_for_execution(dg.build_init_resource_context())  # current now: no error
    resource.teardown_after_execution(dg.build_init_resource_context())


def test_without_the_owner_url_the_runtime_role_runs_on_a_current_schema_only(runtime_role):
    owner_url, runtime_url, _ = runtime_role
    with pytest.raises(MigrationError, match="(?s)may not make .* `alphaplus-mlops db migrate`"):
        prepare_schema(runtime_url, None)  # nothing applied yet: it may not create tables
    migrate_as_owner(owner_url, runtime_url)
    assert prepare_schema(runtime_url, None) == []


def test_one_role_for_both_urls_is_refused(database_url):
    with pytest.raises(MigrationError, match="same role"):
        migrate_as_owner(database_url, with_database(database_url, urlsplit(database_url).path[1:]))


def test_concurrent_waiters_are_released_in_order_after_a_short_hold(champion_world):
    """The timeout bounds a wait, it does not make ordinary contention fail."""
    url, settings, (first, _) = champion_world
    outcomes = []
    with psycopg.connect(url) as holder:
        holder.execute(queries.LOCK_FAMILY_VERSIONS, ("lightgbm",))

        def wait() -> None:
            with Database(url, lock_timeout=10) as db, db.connection() as conn:
                conn.execute(queries.LOCK_FAMILY_VERSIONS, ("lightgbm",))
                outcomes.append("locked")

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)
    waiter.join(timeout=15)
    assert outcomes == ["locked"]
