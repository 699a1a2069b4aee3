"""Operator jobs: rollback, as a Dagster job beside the CLI verb."""

import dagster as dg
from pydantic import Field

from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.families.base import FAMILIES
from alphaplus_mlops.store import deployment


class RollbackConfig(dg.Config):
    family: str = Field(description=f"One of {', '.join(FAMILIES)}.")
    reason: str = Field(description="Why, for the ledger.")
    to_version: int | None = Field(
        default=None, description="Version to restore; default: the previous champion."
    )
    actor: str = Field(default="", description="Who; default: the run.")


@dg.op(description="Restore the previous known-good champion in one transaction.")
def rollback_champion(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> None:
    if config.family not in FAMILIES:
        raise dg.Failure(f"unknown family {config.family!r}; choose from {list(FAMILIES)}")
    try:
        entry = deployment.rollback(
            postgres.url,
            artifacts.store,
            config.family,
            actor=config.actor or f"dagster run {context.run.run_id}",
            reason=config.reason,
            to_version=config.to_version,
        )
    except deployment.PromotionRefused as exc:
        raise dg.Failure(str(exc)) from exc
    context.log.info(
        f"{entry.family}: v{entry.previous_version} -> v{entry.version} (ledger #{entry.seq})"
    )


@dg.job(description="Roll a family's champion back to the previous known-good version.")
def rollback_job():
    rollback_champion()
