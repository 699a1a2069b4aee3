"""What `make demo` runs: the main job, end to end, on the project's PostgreSQL."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from alphaplus_mlops.families.base import FAMILIES
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.db import redact, resolve_database_url
from alphaplus_mlops.store.migrations import migrate
from alphaplus_mlops.store.registry import leaderboard

# Enough rounds to learn something, few enough that the demo takes about a minute.
DEMO_TRAINING = {"n_estimators": 150, "cv_splits": 4}
# Progress and results on the console; step-by-step engine events stay in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


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
        result = job.execute_in_process(instance=instance, run_config=QUIET)
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

    train_job = defs.resolve_job_def("train_model")
    train_config = {"ops": {"trained_model": {"config": DEMO_TRAINING}}, **QUIET}
    run_ids = {}
    with dg.DagsterInstance.get() as instance:
        for family in FAMILIES:
            echo(f"\ntraining {family} ...")
            result = train_job.execute_in_process(
                partition_key=family,
                run_config=train_config,
                instance=instance,
                tags={"alphaplus/reason": "make demo", "alphaplus/requested_by": "demo"},
            )
            if not result.success:
                raise SystemExit(f"the train_model run for {family} failed: see `make dev`")
            run_ids[family] = result.run_id

    echo("\nleaderboard (walk-forward out-of-fold, net of 5 bps costs)")
    echo(
        f"{'family':<9} {'version':>7} {'AUC':>6} {'net Sharpe':>10} {'max DD':>7} "
        f"{'ONNX parity':>11} {'train s':>7}"
    )
    for row in leaderboard(url):
        echo(
            f"{row['family']:<9} {row['version']:>7} {row['roc_auc']:>6.3f} "
            f"{row['net_sharpe']:>10.2f} {row['max_drawdown']:>7.1%} "
            f"{row['onnx_parity']:>11.1e} {row['train_seconds']:>7.1f}"
        )
    echo(
        f"\nDagster recorded every run in PostgreSQL. `make dev` opens the UI at "
        f"http://127.0.0.1:3000; the ingest run is /runs/{run_id}, the training runs "
        f"{', '.join(f'{f}: /runs/{r}' for f, r in run_ids.items())}\n"
        f"done in {time.monotonic() - started:.1f} s"
    )
