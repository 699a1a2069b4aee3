"""Resources: immutable configuration; connections are opened where they are used."""

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from alphaplus_mlops.settings import ENV_DATABASE_URL, Settings
from alphaplus_mlops.store.artifacts import LocalArtifactStore
from alphaplus_mlops.store.db import redact
from alphaplus_mlops.store.embedded import start_embedded
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.registry import read_asset_value, write_asset_value


class PostgresResource(dg.ConfigurableResource):
    """The project's PostgreSQL: ``database_url`` when given, else the embedded server.

    On first use in a run it applies pending migrations (idempotent, under an advisory
    lock), so a run never meets a schema older than its code.
    """

    database_url: str | None = None
    home: str = ".alphaplus"
    migrate_on_start: bool = True

    _resolved_url: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        url = self.database_url or start_embedded(Path(self.home) / "pg")
        if self.migrate_on_start:
            applied = migrate(url)
            if applied and context.log is not None:
                context.log.info(f"applied migrations: {[m.filename for m in applied]}")
        self._resolved_url = url

    @property
    def url(self) -> str:
        if self._resolved_url is None:
            raise RuntimeError("PostgresResource used outside of a run (setup not called)")
        return self._resolved_url

    @property
    def display_url(self) -> str:
        return redact(self.url)


def postgres_from_settings(settings: Settings) -> PostgresResource:
    """The URL comes from the environment at run time (EnvVar), never from a file."""
    if settings.database_url is not None:
        return PostgresResource(database_url=dg.EnvVar(ENV_DATABASE_URL), home=str(settings.home))
    return PostgresResource(home=str(settings.home))


class ArtifactStoreResource(dg.ConfigurableResource):
    """Where datasets and model files live, content-addressed. A folder by default."""

    root: str

    @property
    def store(self) -> LocalArtifactStore:
        return LocalArtifactStore(self.root)


class PostgresJsonIOManager(dg.ConfigurableIOManager):
    """Hands small JSON references (ids, URIs, checksums) from one asset to the next.

    Kept in PostgreSQL with everything else shared, so any run worker on any machine reads
    the same value; artifacts themselves go to the artifact store, never through here.
    """

    postgres: dg.ResourceDependency[PostgresResource]

    def handle_output(self, context: dg.OutputContext, obj: dict) -> None:
        if not isinstance(obj, dict):
            raise TypeError(f"{context.asset_key.to_user_string()} must return a dict")
        partition = context.partition_key if context.has_partition_key else ""
        write_asset_value(
            self.postgres.url, context.asset_key.to_user_string(), partition, context.run_id, obj
        )

    def load_input(self, context: dg.InputContext) -> dict:
        key = context.upstream_output.asset_key.to_user_string()
        partition = context.partition_key if context.has_partition_key else ""
        value = read_asset_value(self.postgres.url, key, partition, context.step_context.run_id)
        if value is None:
            raise dg.Failure(f"{key} [{partition or 'unpartitioned'}] has not been materialized")
        return value
