"""The embedded server: outlives its starter, stops on request, survives a crash."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from alphaplus_mlops.app.cli import main
from alphaplus_mlops.store.embedded import embedded_status, start_embedded, stop_embedded


@pytest.fixture
def home():
    folder = Path(tempfile.mkdtemp(prefix="apm-h-", dir="/tmp"))
    yield folder
    stop_embedded(folder / "pg")
    shutil.rmtree(folder, ignore_errors=True)


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ALPHAPLUS_DATABASE_URL"}
    env["ALPHAPLUS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "alphaplus_mlops.app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_start_leaves_a_server_running_for_later_commands_until_db_stop(home):
    started = run_cli(home, "db", "start")
    assert started.returncode == 0, started.stderr
    assert "running (embedded" in started.stdout
    status = embedded_status(home / "pg")
    assert status.running  # the starting process has exited; the server has not

    url = run_cli(home, "db", "url").stdout.strip()
    assert url == status.url
    migrated = run_cli(home, "db", "migrate")
    assert "applied 001_core_schema.sql" in migrated.stdout
    listed = run_cli(home, "db", "status")
    assert "001_core_schema.sql" in listed.stdout and "pending" not in listed.stdout

    stopped = run_cli(home, "db", "stop")
    assert stopped.stdout.strip() == "stopped"
    assert not embedded_status(home / "pg").running
    assert run_cli(home, "db", "stop").stdout.strip() == "the embedded server was not running"


def test_a_crashed_server_is_restarted_on_the_same_data(home):
    url = start_embedded(home / "pg")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survives (x int)")
        conn.execute("INSERT INTO survives VALUES (42)")
    pid = embedded_status(home / "pg").pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while embedded_status(home / "pg").running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (home / "pg" / "postmaster.pid").exists()  # stale state left by the crash

    restarted = run_cli(home, "db", "start")
    assert restarted.returncode == 0, restarted.stderr
    with psycopg.connect(embedded_status(home / "pg").url) as conn:
        assert conn.execute("SELECT x FROM survives").fetchone()[0] == 42


def test_db_stop_refuses_to_touch_an_external_server():
    result = CliRunner().invoke(
        main, ["db", "stop"], env={"ALPHAPLUS_DATABASE_URL": "postgresql://somewhere/db"}
    )
    assert result.exit_code != 0
    assert "not ours to stop" in result.output


def test_a_non_postgres_database_url_is_named_as_the_problem():
    result = CliRunner().invoke(main, ["db", "url"], env={"ALPHAPLUS_DATABASE_URL": "mysql://x/y"})
    assert result.exit_code != 0
    assert "ALPHAPLUS_DATABASE_URL must be a postgresql:// URL" in result.output
