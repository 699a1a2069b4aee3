"""Evidently's DataDriftPreset on two frames: the report people read (HTML) and its
per-column verdicts, in the same shape as ``column_drift`` gives them.

Slow (seconds to tens of seconds on 10k-100k rows: it builds every plot) and imported only
here, so the sensors that use ``column_drift`` never load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from alphaplus_mlops.monitoring.column_drift import (
    DEFAULT_DRIFT_SHARE,
    ColumnDrift,
    DatasetDrift,
)

# Evidently's display names of its tests, to the names used here.
_METHODS = {
    "K-S p_value": "ks",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
}


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    html_path: Path | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DatasetDrift:
    """Run DataDriftPreset over ``columns`` (numeric), save its HTML report to
    ``html_path`` when given, and return its verdicts. Infinite values become NaN first:
    Evidently drops them from the per-column tests but not from its summary."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(columns)
    frames = [
        f[columns].astype(float).replace([np.inf, -np.inf], np.nan) for f in (reference, current)
    ]
    definition = DataDefinition(numerical_columns=columns)
    report = Report([DataDriftPreset(drift_share=drift_share)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(frames[1], data_definition=definition),  # current first
        Dataset.from_pandas(frames[0], data_definition=definition),
    )
    if html_path is not None:
        snapshot.save_html(str(html_path))
    return _verdicts(snapshot.dict(), columns)


def _verdicts(result: dict, columns: list[str]) -> DatasetDrift:
    failed = {
        t["metric_config"]["metric_id"]: t["status"] == "FAIL"
        for t in result["tests"]
        if t["id"] == "drift"
    }
    found: dict[str, ColumnDrift] = {}
    share, dataset_drifted = 0.0, False
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            method = _METHODS.get(config["method"], config["method"])
            found[config["column"]] = ColumnDrift(
                config["column"],
                method,
                float(metric["value"]),
                float(config["threshold"]),
                failed[metric["id"]],
            )
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
            dataset_drifted = share >= config["drift_share"]
    return DatasetDrift(tuple(found[c] for c in columns), share, dataset_drifted)
