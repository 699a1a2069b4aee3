"""``live_signals``: every stored bar since the last scored one, answered by the family's
champion and shadows through the signal service, and logged; and the sensor that runs it,
with the outcomes and live performance downstream of it, whenever bars arrive.

A sensor on the bar imports, not declarative automation on ``market_bars``: bars arrive
through ``market advance`` and ``data import`` as well as through the asset, and only the
import table sees all three, so a desk that only loads bars gets signals.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.serving.batch_features import due_bars, features_at_bars
from alphaplus_mlops.serving.features import MAX_BATCH_ROWS, FeatureRequestError
from alphaplus_mlops.serving.prediction_log import records_from_answers, write_predictions
from alphaplus_mlops.serving.service import DEFAULT_PROBATION_SECONDS, SignalService
from alphaplus_mlops.store.bars import all_symbols, load_bars
from alphaplus_mlops.store.db import DATABASE_UNAVAILABLE
from alphaplus_mlops.store.live import dataset_symbols, last_scored_bars, latest_bar_arrival
from alphaplus_mlops.store.serving_state import desired_serving


class LiveSignalsConfig(dg.Config):
    symbols: list[str] | None = Field(
        default=None,
        description="Symbols to score; default: those the champion was trained on.",
    )
    first_run_bars: int = Field(
        default=5, ge=1, description="Bars per symbol scored when none was scored before."
    )
    max_bars_per_symbol: int = Field(
        default=2520,
        ge=1,
        description="Bars per symbol per run; a larger backlog is left, oldest scored "
        "first, for the next run.",
    )
    probation_seconds: float = Field(
        default=DEFAULT_PROBATION_SECONDS,
        description="How long a replaced champion keeps answering in shadow.",
    )
    band: float = Field(default=0.0, ge=0.0, description="Flat band of the signal rule.")


@dg.asset(
    partitions_def=family_partitions,
    deps=[market_bars],
    group_name="live",
    kinds={"postgres", "onnx"},
    description="Per family: each bar stored since the last one scored, answered by the "
    "champion (the signal) and the challenger and previous champion (shadows) with the "
    "serving code, every answer logged to model_predictions (request_id: the run id).",
)
def live_signals(
    context: dg.AssetExecutionContext,
    config: LiveSignalsConfig,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    family, db = context.partition_key, postgres.db
    service = SignalService(
        db,
        artifacts.store,
        families=[family],
        probation_seconds=config.probation_seconds,
        band=config.band,
    )
    try:
        # refresh() without start(): the same loading (checksums verified) with no watcher.
        service.refresh()
        served = service.models().get(family)
        failed = [e for e in service.failed_versions().values() if e.role == "champion"]
        if failed:
            raise dg.Failure(f"the {family} champion cannot be loaded: {failed[0].error}")
        if served is None or served.champion is None:
            message = f"no {family} champion: nothing to score until one is promoted"
            context.log.info(message)
            return dg.MaterializeResult(metadata={"skipped": message, "bars_scored": 0})
        champion = served.champion
        symbols = config.symbols or dataset_symbols(db, champion.id) or all_symbols(db)
        bars = load_bars(db, symbols)
        due = due_bars(
            bars,
            last_scored_bars(db, family, symbols),
            first_run_bars=config.first_run_bars,
            max_bars=config.max_bars_per_symbol,
        )
        try:
            features = features_at_bars(
                bars,
                due.wanted,
                feature_names=champion.feature_names,
                feature_version=champion.feature_version,
            )
        except FeatureRequestError as exc:
            raise dg.Failure(f"{family} v{champion.version}: {exc}") from exc
        records = _answer(service, family, features, context.run.run_id)
    finally:
        service.close()

    logged = write_predictions(db, records)
    if due.left:
        context.log.warning(f"backlog left for the next run (bars per symbol): {due.left}")
    return dg.MaterializeResult(metadata=_metadata(served, features, due, records, logged))


def _answer(service: SignalService, family: str, features, run_id: str) -> list:
    records = []
    for start in range(0, len(features.symbols), MAX_BATCH_ROWS):
        end = start + MAX_BATCH_ROWS
        answers = service.answer(family, features.x[start:end], {"request_id": run_id})
        records += records_from_answers(
            answers, features.symbols[start:end], features.bar_ts[start:end], run_id
        )
    return records


def _metadata(served, features, due, records, logged: int) -> dict:
    by_symbol = pd.Series(features.symbols, dtype=object).value_counts().sort_index()
    champion_rows = [r for r in records if r.role == "champion"]
    preview = pd.DataFrame(
        [
            {
                "symbol": r.symbol,
                "bar": r.bar_ts.date(),
                "role": r.role,
                "probability": round(r.probability, 4),
                "signal": r.signal,
            }
            for r in sorted(records, key=lambda r: (r.bar_ts, r.symbol, r.role))[-12:]
        ]
    )
    return {
        "bars_scored": len(features.symbols),
        "bars_scored_by_symbol": {str(s): int(n) for s, n in by_symbol.items()},
        "models": ", ".join(f"{role} v{m.version}" for role, m in served.served()),
        "predictions_logged": logged,
        "time_range": f"{min(r.bar_ts for r in champion_rows).date()} .. "
        f"{max(r.bar_ts for r in champion_rows).date()}"
        if champion_rows
        else "nothing new since the last scored bar",
        "backlog_left_by_symbol": due.left,
        "undefined_features_skipped": list(features.undefined[:20]),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False) if records else "-"),
    }


# The live loop's run: new bars are scored, earlier predictions whose label interval the
# new bars close get their outcomes, the live windows are recomputed, and the running
# experiment and the probation after a promotion are looked at (by key: the monitoring
# assets import this module).
LIVE_LOOP = [
    live_signals.key,
    dg.AssetKey("prediction_outcomes"),
    dg.AssetKey("live_performance"),
    dg.AssetKey("ab_evaluation"),
    dg.AssetKey("probation_review"),
    dg.AssetKey("ml_ops_dashboard"),
]


@dg.sensor(
    asset_selection=LIVE_LOOP,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When an import adds bars to market_bars (the asset, `market advance` or "
    "`data import`), runs the live loop (live_signals, prediction_outcomes, live_performance, "
    "ab_evaluation, probation_review, ml_ops_dashboard) for every family with a champion.",
)
def live_signals_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    try:
        arrival = latest_bar_arrival(postgres.db)
        serving = desired_serving(postgres.db, 0)
    except DATABASE_UNAVAILABLE as exc:
        return dg.SkipReason(f"database unavailable, trying again next tick: {exc}")
    keys = set(family_partitions.get_partition_keys())
    families = sorted(f for f, roles in serving.items() if "champion" in roles and f in keys)
    if arrival is None or arrival.isoformat() == context.cursor:
        return dg.SkipReason("no new bars since the last tick")
    context.update_cursor(arrival.isoformat())
    if not families:
        return dg.SkipReason("new bars, but no family has a champion to score them")
    # The run key makes each arrival score once per family, however often the tick repeats.
    return [
        dg.RunRequest(
            run_key=f"live_signals:{f}:{arrival.isoformat()}",
            partition_key=f,
            asset_selection=LIVE_LOOP,
        )
        for f in families
    ]
