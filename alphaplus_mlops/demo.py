"""What `make demo` runs: the main job, end to end, on the project's PostgreSQL."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.db import redact, resolve_database_url
from alphaplus_mlops.store.migrations import migrate


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> None:
    import dagster as dg  # noqa: PLC0415

    from alphaplus_mlops.defs import build_definitions  # noqa: PLC0415
    from alphaplus_mlops.runtime import dagster_environment  # noqa: PLC0415
    from alphaplus_mlops.store.bars import summarize_bars  # noqa: PLC0415

    started = time.monotonic()
    url = resolve_database_url(settings)
    where = "external server" if settings.database_url else f"embedded, {settings.home}"
    echo(f"database: {redact(url)} ({where})")
    for migration in migrate(url):
        echo(f"applied migration {migration.filename}")
    os.environ.update(dagster_environment(settings, url))

    defs = build_definitions(settings)
    job = defs.resolve_job_def("ingest_market_bars")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance)
        if not result.success:
            raise SystemExit("the ingest_market_bars run failed; see the Dagster UI (make dev)")
        run_id = result.run_id
        materialization = result.asset_materializations_for_node("market_bars")[0]
    meta = {k: v.value for k, v in materialization.metadata.items()}
    echo(
        f"\ningest_market_bars run {run_id}: {meta['rows_received']} bars received, "
        f"{meta['rows_added']} new, {meta['rows_updated']} updated, "
        f"{meta['rows_unchanged']} unchanged"
    )
    if "simulator_break_ts" in meta:
        echo(f"simulator break (ground truth): {meta['simulator_break_ts']}")
    echo("")
    summary = summarize_bars(url)
    echo(f"{'symbol':<10} {'bars':>7}  {'first':<10}  {'last':<10}  sources")
    for s in summary:
        echo(
            f"{s.symbol:<10} {s.bars:>7}  {s.first_ts.date()!s:<10}  {s.last_ts.date()!s:<10}"
            f"  {s.sources}"
        )
    echo(
        f"\nDagster recorded the run in PostgreSQL. `make dev` opens the UI; the run is at "
        f"http://127.0.0.1:3000/runs/{run_id}\n"
        f"done in {time.monotonic() - started:.1f} s"
    )
