"""Resources: immutable configuration; connections live between setup and teardown."""

from pathlib import Path

import dagster as dg
import psycopg
from pydantic import Field, PrivateAttr

from alphaplus_mlops.settings import ENV_DATABASE_URL, Settings
from alphaplus_mlops.store.artifacts import ArtifactStore, open_artifact_store
from alphaplus_mlops.store.db import Database, redact, resolve_database_url
from alphaplus_mlops.store.handoffs import read_asset_value, write_asset_value
from alphaplus_mlops.store.migrations import prepare_schema


class PostgresResource(dg.ConfigurableResource):
    """The project's PostgreSQL: ``database_url`` when given, else the embedded server.

    On first use in a run it applies pending migrations (idempotent, under an advisory
    lock), so a run never meets a schema older than its code; with a separate migration
    role (ALPHAPLUS_MIGRATION_DATABASE_URL) it only checks that none is pending. ``db``
    lends pooled connections until the step ends.
    """

    database_url: str | None = None
    home: str = ".alphaplus"
    migrate_on_start: bool = True
    pool_timeout: float = Field(
        default=15.0, description="Seconds to wait for a connection before giving up."
    )

    _db: Database | None = PrivateAttr(default=None)
    _unreachable: psycopg.OperationalError | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = Settings(database_url=self.database_url or None, home=Path(self.home))
        url = resolve_database_url(settings)
        if self.migrate_on_start:
            try:
                applied = prepare_schema(url, Settings.from_env().migration_database_url)
            except psycopg.OperationalError as exc:
                # Unreachable: raised at first use instead, where a sensor can say so and
                # skip its tick; a step fails there just the same.
                self._unreachable = exc
                return
            if applied and context.log is not None:
                context.log.info(f"applied migrations: {[m.filename for m in applied]}")
        self._db = Database(url, timeout=self.pool_timeout)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> Database:
        if self._unreachable is not None:
            raise psycopg.OperationalError(
                f"the database is unreachable: {self._unreachable}"
            ) from self._unreachable
        if self._db is None:
            raise RuntimeError("PostgresResource used outside of a run (setup not called)")
        return self._db

    @property
    def display_url(self) -> str:
        return redact(self.db.url)


def postgres_from_settings(settings: Settings) -> PostgresResource:
    """The URL comes from the environment at run time (EnvVar), never from a file."""
    if settings.database_url is not None:
        return PostgresResource(database_url=dg.EnvVar(ENV_DATABASE_URL), home=str(settings.home))
    return PostgresResource(home=str(settings.home))


class ArtifactStoreResource(dg.ConfigurableResource):
    """Where datasets and model files live, content-addressed: a folder, or an object-store
    URL (``s3://bucket/prefix``; credentials from the environment, never in the config).

    Assets use ``store``, an ArtifactStore.
    """

    location: str = Field(description="A folder, file://, s3://, gs:// or az:// URL.")

    @property
    def store(self) -> ArtifactStore:
        return open_artifact_store(self.location)


class MarketDataResource(dg.ConfigurableResource):
    """What `market_bars` loads when its run config does not say: from the settings."""

    sources: list[str] = Field(description="'sample' (real daily indices) and/or 'simulator'.")
    sim_symbols: list[str]
    sim_seed: int
    sim_bars: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "MarketDataResource":
        return cls(
            sources=list(settings.market_sources),
            sim_symbols=list(settings.sim_symbols),
            sim_seed=settings.sim_seed,
            sim_bars=settings.sim_bars,
        )


class PostgresJsonIOManager(dg.IOManager):
    """Hands small JSON references (ids, URIs, checksums) from one asset to the next.

    Kept in PostgreSQL with everything else shared, so any run worker on any machine reads
    the same value; artifacts themselves go to the artifact store, never through here.
    """

    def __init__(self, postgres: PostgresResource):
        self.postgres = postgres

    def handle_output(self, context: dg.OutputContext, obj: dict) -> None:
        if not isinstance(obj, dict):
            raise TypeError(f"{context.asset_key.to_user_string()} must return a dict")
        partition = context.partition_key if context.has_partition_key else ""
        write_asset_value(
            self.postgres.db, context.asset_key.to_user_string(), partition, context.run_id, obj
        )

    def load_input(self, context: dg.InputContext) -> dict:
        key = context.upstream_output.asset_key.to_user_string()
        partition = context.partition_key if context.has_partition_key else ""
        value = read_asset_value(self.postgres.db, key, partition, context.step_context.run_id)
        if value is None:
            raise dg.Failure(f"{key} [{partition or 'unpartitioned'}] has not been materialized")
        return value


@dg.io_manager(
    required_resource_keys={"postgres"},
    description="Asset hand-offs as JSON rows in PostgreSQL (table dagster_asset_values).",
)
def postgres_json_io_manager(context: dg.InitResourceContext) -> PostgresJsonIOManager:
    # The step's own `postgres` resource, so the step keeps one pool, not one per user.
    return PostgresJsonIOManager(context.resources.postgres)
