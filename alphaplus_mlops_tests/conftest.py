"""Shared fixtures: one real PostgreSQL server per session, fresh databases on it.

With ALPHAPLUS_DATABASE_URL set, tests create their databases on that server; unset, they
start the embedded server (pgserver) in a short temporary folder, as a user's machine would.
Either way every test talks to a real PostgreSQL over a real connection.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg.rows import dict_row

from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.defs import build_definitions, build_resources
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.distributed.local_cluster import deployment_environment
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.artifacts import ArtifactStore, open_artifact_store
from alphaplus_mlops.store.bars import upsert_bars
from alphaplus_mlops.store.db import Database, with_database
from alphaplus_mlops.store.embedded import start_embedded, stop_embedded
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.versions import version_trained_in_run

REPO_ROOT = Path(__file__).resolve().parents[1]

# A planted signal no real market offers (gross Sharpe about 3.7 per symbol): for tests of
# the machinery that needs a model to learn for certain (promotion, rollback, the ledger).
# What gates make of a realistic signal is measured by bench/gate_calibration.py.
STRONG_SIGNAL = 0.40


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches the session's PostgreSQL server (through any fixture that
    needs ``server_url``) as ``database``: CI runs the whole suite against the embedded server
    and, against an external one, only these (``make test PYTEST_ARGS="-m database"``)."""
    for item in items:
        if "server_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)


def rows(url: str, sql: str, params: tuple | dict = ()) -> list[dict]:
    """What a query returns, as dicts, on a connection of its own (committed)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def execute(url: str, sql: str, params: tuple | dict = ()) -> None:
    """Run one statement and commit it, as an operator editing a row would."""
    with psycopg.connect(url) as conn:
        conn.execute(sql, params)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL to a maintenance database on a running server."""
    external = os.environ.get("ALPHAPLUS_DATABASE_URL")
    if external:
        yield external
        return
    # Unix socket paths are limited to ~107 bytes: keep the folder short.
    folder = Path(tempfile.mkdtemp(prefix="apm-", dir="/tmp"))
    data_dir = folder / "pg"
    try:
        yield start_embedded(data_dir)
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def create_database(server_url: str) -> Iterator[Callable[[], str]]:
    """Factory: a new empty database on the session's server; all dropped at the end."""
    created: list[str] = []

    def create() -> str:
        name = f"apm_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return with_database(server_url, name)

    yield create
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(create_database: Callable[[], str]) -> str:
    """A migrated database shared by the session's tests."""
    url = create_database()
    migrate(url)
    return url


@dataclass(frozen=True)
class S3Server:
    """A real S3-compatible server on 127.0.0.1 (moto's standalone server, its own process)
    and the environment that points obstore at it."""

    endpoint: str
    env: dict

    def new_bucket(self) -> str:
        """A fresh bucket; the ``s3://`` URL of a prefix in it."""
        import boto3

        name = f"apm-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=name)
        return f"s3://{name}/artifacts"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on {endpoint}") from None
                time.sleep(0.2)
        yield S3Server(
            endpoint,
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ALLOW_HTTP": "true",
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "alphaplus-test",
                "AWS_SECRET_ACCESS_KEY": "alphaplus-test-secret",
            },
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server's settings in this process's environment, for one test."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def empty_database_url(create_database: Callable[[], str]) -> str:
    """A database with no schema at all, for one test."""
    return create_database()


@pytest.fixture
def runtime_role(server_url, create_database):
    """A login role with no privileges of its own and a database owned by the server's
    superuser (the migration role here)."""
    role = f"apm_runtime_{uuid.uuid4().hex[:8]}"
    url = create_database()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    runtime_url = urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, ""))
    yield url, runtime_url, role
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    """The session's migrated database, with a connection pool, as the store takes it."""
    with Database(database_url) as db:
        yield db


def dagster_deployment(url: str, folder: Path, **settings: str) -> tuple[dict, Path]:
    """The environment and DAGSTER_HOME of a deployment on ``url``: the project's own
    dagster.yaml and workspace.yaml (edit the copies to vary them), storage in ``folder``,
    and ``settings`` as further environment variables."""
    home = folder / "dagster_home"
    home.mkdir()
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(REPO_ROOT / name, home / name)
    return deployment_environment(url, folder, home, **settings), home


@contextmanager
def dagster_daemon(env: dict, home: Path) -> Iterator[subprocess.Popen]:
    """A real `dagster-daemon run` (queue, sensors, retries, run monitoring) for the block;
    stopped with its code server and run workers at the end."""
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-daemon")),
            "run",
            "-w",
            str(home / "workspace.yaml"),
        ],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield daemon
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


@dataclass
class SimulatedProject:
    """A migrated database with simulated bars, and the project's Dagster definitions and
    artifact store on it, as the tests of trained models need them."""

    url: str
    db: Database
    settings: Settings
    resources: dict
    defs: dg.Definitions
    store: ArtifactStore

    def train(self, family: str, symbols: list[str], rounds: int, cv_splits: int = 2) -> dict:
        """One real train_model run (early stopping off); the version it registered."""
        result = self.defs.resolve_job_def("train_model").execute_in_process(
            partition_key=family,
            run_config={
                "ops": {
                    "training_dataset": {"config": {"symbols": symbols}},
                    "trained_model": {
                        "config": {
                            "n_estimators": rounds,
                            "cv_splits": cv_splits,
                            "early_stopping_rounds": 0,
                        }
                    },
                }
            },
            instance=dg.DagsterInstance.ephemeral(),
        )
        return version_trained_in_run(self.db, result.run_id)


def simulated_project(
    create_database: Callable[[], str],
    home: Path,
    symbols: list[str],
    *,
    n_bars: int = 1000,
    seed: int = 8,
    pool_size: int = 4,
    artifact_url: str | None = None,
) -> SimulatedProject:
    """Bars with the STRONG_SIGNAL planted and a break late (at 95 %), so that a first
    model passes its gates for certain."""
    url = create_database()
    migrate(url)
    db = Database(url, max_size=pool_size)
    config = SimulationConfig(n_bars=n_bars, break_fraction=0.95, signal_strength=STRONG_SIGNAL)
    upsert_bars(db, simulate_market(symbols, seed=seed, config=config).bars, source="test")
    settings = Settings(database_url=url, home=home, artifact_url=artifact_url)
    resources = build_resources(settings, PostgresResource(database_url=url))
    return SimulatedProject(
        url,
        db,
        settings,
        resources,
        build_definitions(settings, resources),
        open_artifact_store(settings.artifact_location),
    )


def realize_outcomes(
    url: str,
    version: str,
    role: str,
    per_bar_mean: list[float],
    seed: int,
    symbols: list[str] | tuple[str, ...],
    *,
    start: str = "2019-01-02",
    noise: float = 0.002,
) -> None:
    """Realized lightgbm outcomes of ``version`` in ``role`` from ``start``, one per symbol
    and business day: ``per_bar_mean`` per bar plus normal noise of sd ``noise``."""
    rng = np.random.default_rng(seed)
    bars = pd.bdate_range(start, periods=len(per_bar_mean), tz="UTC")
    with psycopg.connect(url) as conn:
        for ts, mean in zip(bars, per_bar_mean, strict=True):
            for symbol in symbols:
                conn.execute(
                    "INSERT INTO live_outcomes (model_version_id, role, bar_ts, symbol, family, "
                    "probability, signal, predicted_at, realized_label, realized_net_return) "
                    "VALUES (%s, %s, %s, %s, 'lightgbm', 0.55, 1, now(), 1, %s)",
                    (version, role, ts, symbol, mean + noise * rng.standard_normal()),
                )
            conn.execute(
                "INSERT INTO live_outcome_bars (model_version_id, role, bar_ts) "
                "VALUES (%s, %s, %s)",
                (version, role, ts),
            )
