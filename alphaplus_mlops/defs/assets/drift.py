"""Drift of the champion's live inputs from its training inputs: the calibrated statistic
for sensors and alerts, and Evidently's report for people."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from alphaplus_mlops.alerting.rules import check_feature_drift
from alphaplus_mlops.defs.assets.live import live_signals
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.resources import ArtifactStoreResource, PostgresResource
from alphaplus_mlops.families import get_family
from alphaplus_mlops.families.base import feature_importance
from alphaplus_mlops.modeling.model_files import load_dataset, load_frame, load_model
from alphaplus_mlops.monitoring.drift_yardstick import (
    RAW_VOLATILITY,
    check_latest_window,
    drift_weights,
    raw_volatility,
    yardstick,
)
from alphaplus_mlops.monitoring.output_drift import OutputDrift, output_drift
from alphaplus_mlops.serving.batch_features import features_at_bars
from alphaplus_mlops.store.bars import load_bars
from alphaplus_mlops.store.dataset_records import dataset_by_id
from alphaplus_mlops.store.drift import frozen_yardstick, record_drift_check
from alphaplus_mlops.store.live import realized_window
from alphaplus_mlops.store.versions import current_champion

METHOD = (
    "mean drift severity of the features and the raw volatility (Evidently's column tests, "
    "score over threshold)"
)


class DriftReportConfig(dg.Config):
    window_bars: int = Field(
        default=63,
        description="Bars per window compared (live and training, equal length) when the "
        "version's yardstick is first computed; later checks use the yardstick's window.",
    )
    html_report: bool = Field(
        default=True, description="Also run Evidently and store its HTML report (seconds)."
    )
    report_reference_rows: int = Field(
        default=20_000, description="Training rows sampled for the HTML report."
    )


@dg.asset(
    partitions_def=family_partitions,
    deps=[live_signals],
    group_name="live",
    description="The champion's features on the bars scored since its training ended, "
    "against its training rows: each feature's Evidently test on the latest live window vs "
    "the training's last window of equal length, and of the raw 21-bar volatility the "
    "normalized features hide; their mean severity, weighted by the model's gain per "
    "feature, held to the version's yardstick (the "
    "largest between windows of its training period, frozen with it); one "
    "model_drift_detection row, the feature_drift alert, and Evidently's HTML report. "
    "Beside the statistic: the champion's probabilities, long share and label base rate, "
    "live against out of fold.",
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftReportConfig,
    postgres: PostgresResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    db, store, family = postgres.db, artifacts.store, context.partition_key
    champion = current_champion(db, family)
    if champion is None or champion["dataset_id"] is None:
        return dg.MaterializeResult(metadata={"checked": "no champion with a dataset"})
    dataset_row = dataset_by_id(db, str(champion["dataset_id"]))
    dataset = load_dataset(store, dataset_row)
    features = list(champion["feature_names"])
    watched = [*features, RAW_VOLATILITY]
    bars = load_bars(db, list(dataset_row["symbols"]))
    volatility = raw_volatility(bars)
    reference = dataset.frame[["symbol", "ts", *features]].merge(
        volatility, on=["symbol", "ts"], how="left"
    )

    def freeze() -> dict:
        weights = _importance(store, family, champion, features)
        return {
            **yardstick(reference, watched, config.window_bars, weights).as_dict(),
            "importance": weights,
        }

    stick = frozen_yardstick(db, str(champion["id"]), freeze)
    current = _live_features(bars, dataset_row, champion, features).merge(
        volatility, on=["symbol", "ts"], how="left"
    )
    check = check_latest_window(
        reference, current, watched, stick["window_bars"], stick["limit"], stick.get("importance")
    )
    if check is None:
        return dg.MaterializeResult(
            metadata={
                "checked": f"fewer than {stick['window_bars']} bars scored since training",
                "yardstick_limit": stick["limit"],
            }
        )
    report_uri = (
        _html_report(store, reference, current, watched, config) if config.html_report else None
    )
    outputs = _outputs(db, store, champion, stick["window_bars"])
    beside = [] if outputs is None else [outputs.prediction, outputs.label]
    row = record_drift_check(
        db,
        {
            "family": family,
            "version_id": champion["id"],
            "dataset_id": champion["dataset_id"],
            "reference_window": _span(check.reference_span),
            "current_window": _span(check.current_span),
            "method": METHOD,
            "threshold": check.limit,
            "score": check.statistic,
            "drift_share": check.drift.drift_share,
            "drifted": check.drifted,
            "feature_scores": {
                c.column: {
                    "method": c.method,
                    "score": c.score,
                    "threshold": c.threshold,
                    "drifted": c.drifted,
                }
                for c in check.drift.columns
            }
            | {
                c.column: {
                    "method": c.method,
                    "score": c.score,
                    "threshold": c.threshold,
                    "drifted": c.drifted,
                    "in_statistic": False,
                }
                for c in beside
            },
            "report_path": report_uri,
        },
    )
    moved = check.drift.drifted_columns()
    alert = check_feature_drift(
        db,
        family=family,
        version=champion["version"],
        ratio=check.ratio,
        message=(
            f"{family} v{champion['version']}: drift severity {check.statistic:.2f} over "
            f"{check.current_span[0]:%Y-%m-%d}..{check.current_span[1]:%Y-%m-%d} (yardstick "
            f"limit {check.limit:.2f}); drifted: {', '.join(moved[:8])}"
            f"{' ...' if len(moved) > 8 else ''}"
        ),
        details={"drift_check_id": str(row["id"]), "ratio": check.ratio, "drifted": moved},
    )
    metadata = {
        "drift_check_id": str(row["id"]),
        "statistic": check.statistic,
        "yardstick_limit": check.limit,
        "drifted": check.drifted,
        "drifted_features": ", ".join(moved) or "none",
        "feature_drift_alert": alert.sentence() if alert else "none",
        "outputs": outputs.sentence() if outputs else "no realized live rows yet",
    }
    if report_uri:
        metadata["evidently_report"] = dg.MetadataValue.path(store.location(report_uri))
    return dg.MaterializeResult(metadata=metadata)


def _outputs(db, store, champion: dict, window_bars: int) -> OutputDrift | None:
    """The champion's probabilities and labels: its out-of-fold rows of the training's last
    ``window_bars`` bars against its realized live rows of the latest as many."""
    live = realized_window(db, str(champion["id"]), "champion", window_bars)
    if live.empty or not champion.get("oof_uri"):
        return None
    oof = load_frame(store, champion["oof_uri"], champion["oof_sha256"])
    last = np.sort(oof["ts"].unique())[-window_bars:]
    oof = oof[oof["ts"].isin(last)]
    return output_drift(
        oof["proba"].to_numpy(),
        oof["label"].to_numpy(),
        live["probability"].to_numpy(),
        live["realized_label"].to_numpy(),
    )


def _importance(store, family: str, champion: dict, features: list[str]) -> dict | None:
    """The champion's gain per feature (shares summing to 1), and the raw volatility at the
    average feature's weight; None (equal weights) when its family does not say."""
    impl = get_family(family)
    share = feature_importance(impl, load_model(store, impl, champion), len(features))
    return drift_weights(features, share)


def _live_features(bars, dataset_row, champion, features) -> pd.DataFrame:
    """Serving features of every stored bar strictly after the training window's end."""
    end = pd.Timestamp(dataset_row["window_end"])
    wanted = bars.loc[bars["ts"] > end, ["symbol", "ts"]]
    found = features_at_bars(
        bars,
        wanted,
        feature_names=features,
        feature_version=champion.get("feature_version") or dataset_row.get("feature_version"),
    )
    frame = pd.DataFrame(found.x.astype(np.float64), columns=features)
    frame.insert(0, "ts", pd.DatetimeIndex(found.bar_ts))
    frame.insert(0, "symbol", list(found.symbols))
    return frame


def _html_report(store, reference, current, features, config) -> str:
    """Evidently's report of a sample of the training rows against every live row, stored
    in the artifact store; its URI. (Imported here: Evidently takes seconds to import.)"""
    from alphaplus_mlops.monitoring.evidently_drift import evidently_drift

    sample = reference.sample(n=min(len(reference), config.report_reference_rows), random_state=0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "drift.html"
        evidently_drift(sample, current, features, html_path=path)
        return store.put_file(path, ".html").uri


def _span(span) -> dict:
    start, end, rows = span
    return {
        "start": pd.Timestamp(start).isoformat(),
        "end": pd.Timestamp(end).isoformat(),
        "rows": rows,
    }
