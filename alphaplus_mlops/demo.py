"""What `make demo` runs: the whole path, end to end, on the project's PostgreSQL.

A replay on the simulator, as of two dates before its planted break:
1. load market data as of T1 and train every family: gates, decision, promotion;
2. train a deliberately broken candidate (shuffled labels): the gates block it and the
   champion stays;
3. load data up to T2 and retrain every family: each candidate is compared with its
   champion on bars the champion never saw;
4. roll one family back to its previous champion;
5. print the leaderboard, the status table and the ledger's answer to "which model served".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from alphaplus_mlops import run_tags
from alphaplus_mlops.families.base import FAMILIES
from alphaplus_mlops.settings import Settings
from alphaplus_mlops.store.db import redact, resolve_database_url
from alphaplus_mlops.store.migrations import migrate

SIM_SYMBOLS = ["SIM1", "SIM2", "SIM3"]
FIRST_AS_OF, SECOND_AS_OF = "2014-06-30", "2015-09-30"  # the simulator's break: 2015-10-21
# Enough rounds to learn the planted signal, few enough for a demo of about a minute.
DEMO_TRAINING = {"n_estimators": 150, "cv_splits": 4}
# The demo prints its own summary; engine events and gate failures stay in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> None:
    import dagster as dg

    from alphaplus_mlops.defs import build_definitions
    from alphaplus_mlops.reporting import status_report
    from alphaplus_mlops.runtime import prepare_dagster
    from alphaplus_mlops.store import deployment
    from alphaplus_mlops.store.artifacts import LocalArtifactStore
    from alphaplus_mlops.store.bars import summarize_bars
    from alphaplus_mlops.store.registry import leaderboard

    started = time.monotonic()
    url = resolve_database_url(settings)
    where = "external server" if settings.database_url else f"embedded, {settings.home}"
    echo(f"database: {redact(url)} ({where})")
    for migration in migrate(url):
        echo(f"applied migration {migration.filename}")
    os.environ.update(prepare_dagster(settings, url))
    defs = build_definitions(settings)
    ingest, train = defs.resolve_job_def("ingest_market_bars"), defs.resolve_job_def("train_model")

    with dg.DagsterInstance.get() as instance:

        def load(as_of: str) -> None:
            config = {"sim_symbols": SIM_SYMBOLS, "as_of": as_of}
            result = ingest.execute_in_process(
                instance=instance, run_config={**QUIET, "ops": {"market_bars": {"config": config}}}
            )
            meta = result.asset_materializations_for_node("market_bars")[0].metadata
            echo(
                f"market data as of {as_of}: {meta['rows_added'].value} bars added, "
                f"{meta['rows_unchanged'].value} unchanged (run {result.run_id})"
            )

        def train_family(family: str, as_of: str, reason: str, **dataset) -> None:
            run_config = {
                **QUIET,
                "ops": {
                    "training_dataset": {
                        "config": {"symbols": SIM_SYMBOLS, "end": as_of, **dataset}
                    },
                    "trained_model": {"config": DEMO_TRAINING},
                },
            }
            result = train.execute_in_process(
                partition_key=family,
                run_config=run_config,
                instance=instance,
                raise_on_error=False,
                tags={run_tags.REASON: reason, run_tags.REQUESTED_BY: "make demo"},
            )
            version = deployment.version_trained_in_run(url, result.run_id)
            if version is None:
                raise SystemExit(
                    f"training {family} failed before a model existed: see the UI "
                    f"(run {result.run_id})"
                )
            status = deployment.gate_status(url, str(version["id"]))
            decision = deployment.family_status(url, family)["last_decision"]
            outcome = (
                decision["outcome"]
                if decision and decision["version"] == version["version"]
                else "reject"
            )
            echo(f"  {family:<9} v{version['version']}: gates {_gates(status)} -> {outcome}")
            for gate in status.gates:
                if gate["passed"] is False:
                    echo(f"      {gate['reason']}")

        echo(f"\n1. as of {FIRST_AS_OF}: train every family on {', '.join(SIM_SYMBOLS)}")
        load(FIRST_AS_OF)
        for family in FAMILIES:
            train_family(family, FIRST_AS_OF, "make demo: first models")

        echo("\n2. a deliberately broken candidate (labels shuffled) must not get through")
        before = deployment.champion_since(url, "catboost")
        train_family("catboost", FIRST_AS_OF, "make demo: sabotage drill", shuffle_labels=True)
        after = deployment.champion_since(url, "catboost")
        unchanged = (before["id"] if before else None) == (after["id"] if after else None)
        shown = f" (v{after['version']})" if after else ""
        echo(f"  catboost champion unchanged: {'yes' if unchanged else 'NO'}{shown}")

        echo(f"\n3. as of {SECOND_AS_OF}: retrain; candidates meet their champions on new bars")
        load(SECOND_AS_OF)
        for family in FAMILIES:
            train_family(family, SECOND_AS_OF, "make demo: newer data")

    echo("\n4. rollback")
    store = LocalArtifactStore(settings.artifacts_dir)
    for family in FAMILIES:
        promotions = [e for e in deployment.ledger(url, family) if e["action"] == "promote"]
        if len(promotions) >= 2:
            entry = deployment.rollback(
                url, store, family, actor="make demo", reason="make demo: rollback drill"
            )
            echo(
                f"  {family}: v{entry.previous_version} -> v{entry.version} "
                f"(ledger #{entry.seq}); `alphaplus-mlops rollback` does the same"
            )
            break
    else:
        echo("  no family has an earlier champion yet: nothing to roll back")

    echo("\nleaderboard (latest version per family; walk-forward out-of-fold, net of 5 bps)")
    echo(
        f"{'family':<9} {'version':>7} {'status':<11} {'AUC':>6} {'net Sharpe':>10} "
        f"{'max DD':>7} {'ONNX parity':>11} {'train s':>7}"
    )
    for row in leaderboard(url):
        echo(
            f"{row['family']:<9} {row['version']:>7} {row['status']:<11} {row['roc_auc']:>6.3f} "
            f"{row['net_sharpe']:>10.2f} {row['max_drawdown']:>7.1%} "
            f"{row['onnx_parity']:>11.1e} {row['train_seconds']:>7.1f}"
        )
    echo("\nstatus (alphaplus-mlops status)")
    echo(status_report(url))
    echo("\nmarket data")
    for s in summarize_bars(url):
        echo(f"  {s.symbol:<8} {s.bars:>6} bars  {s.first_ts.date()} .. {s.last_ts.date()}")
    echo(
        f"\nEvery run is recorded in Dagster's PostgreSQL storage: `make dev` opens the UI at "
        f"http://127.0.0.1:3000 (Runs, and the asset graph with its checks).\n"
        f"done in {time.monotonic() - started:.1f} s"
    )


def _gates(status) -> str:
    passed = sum(1 for g in status.gates if g["passed"])
    return f"{passed}/{len(status.gates)} passed"
