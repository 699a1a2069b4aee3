"""Resources: immutable configuration; connections are opened where they are used."""

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from alphaplus_mlops.settings import ENV_DATABASE_URL, Settings
from alphaplus_mlops.store.db import redact
from alphaplus_mlops.store.embedded import start_embedded
from alphaplus_mlops.store.migrations import migrate


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
