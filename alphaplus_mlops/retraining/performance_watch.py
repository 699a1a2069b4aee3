"""The performance trigger's watch over one champion: its detector (frozen from its
out-of-fold per-bar values under the trigger's configuration) run over its realized live
bars since its last alarm; a new alarm is recorded and returned as evidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphaplus_mlops.modeling.model_files import load_frame, load_returns
from alphaplus_mlops.monitoring.change_detection import (
    Detector,
    calibrate_detector,
    fall_began,
    no_skill_value,
    per_bar_values,
)
from alphaplus_mlops.store.artifacts import ArtifactStore
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.live import realized_window
from alphaplus_mlops.store.performance_alarms import (
    alarm_history,
    frozen_detector,
    last_alarm,
    oof_returns_location,
    record_alarm,
)

DEFAULTS = {
    "metric": "net_return",
    "shift_sd": 0.5,
    "false_alarm_probability": 0.4,
    "horizon_bars": 504,
    "block_bars": 10,
    "min_bars": 21,
}


@dataclass(frozen=True)
class Watch:
    """What one tick saw for one champion under one trigger."""

    detector: Detector | None
    alarm: dict | None
    """The new performance_alarms row, when the detector alarmed on unwatched bars."""
    bars: int
    """Realized bars watched since the last alarm (at most the detector's horizon)."""
    statistic: float
    note: str | None = None
    """Why nothing could be watched (no offline values to calibrate on, say)."""
    bars_since_change: int | None = None
    """With an alarm: realized bars from ``change_bar_ts`` to the latest one."""
    change_bar_ts: pd.Timestamp | None = None
    """With an alarm: where the champion's fall began (change_detection.fall_began: back
    through the alarms that continued it, since the detector restarts after each one)."""


def _setting(config: dict, name: str):
    return config.get(name, DEFAULTS[name])


def offline_values(
    store: ArtifactStore, db: Database, version: dict, metric: str
) -> tuple[np.ndarray, float]:
    """The version's out-of-fold per-bar values of ``metric`` and the metric's no-skill
    value on those rows. Raises LookupError when the version kept none."""
    if metric == "net_return":
        where = oof_returns_location(db, str(version["id"]))
        if where is None:
            raise LookupError(
                f"{version['family']} v{version['version']} kept no out-of-fold returns"
            )
        returns = load_returns(store, where["returns_uri"], where["returns_sha256"])
        return returns.to_numpy(), no_skill_value(pd.DataFrame(), metric)
    if not version.get("oof_uri"):
        raise LookupError(f"{version['family']} v{version['version']} kept no out-of-fold rows")
    rows = load_frame(store, version["oof_uri"], version["oof_sha256"])
    return per_bar_values(rows, metric).to_numpy(), no_skill_value(rows, metric)


def live_values(realized: pd.DataFrame, metric: str) -> pd.Series:
    """Per-bar values of ``metric`` over realized_window rows."""
    rows = realized.rename(
        columns={
            "bar_ts": "ts",
            "realized_net_return": "net_return",
            "probability": "proba",
            "realized_label": "label",
        }
    )
    return per_bar_values(rows, metric)


def _calibrate(store: ArtifactStore, db: Database, champion: dict, config: dict) -> Detector:
    metric = _setting(config, "metric")
    values, no_skill = offline_values(store, db, champion, metric)
    return calibrate_detector(
        values,
        metric=metric,
        target=no_skill,
        shift_sd=float(_setting(config, "shift_sd")),
        false_alarm_probability=float(_setting(config, "false_alarm_probability")),
        horizon_bars=int(_setting(config, "horizon_bars")),
        block_bars=int(_setting(config, "block_bars")),
        seed=int(champion["version"]),
    )


def watch_champion(
    db: Database, store: ArtifactStore, family: str, champion: dict, trigger: dict
) -> Watch:
    config = trigger.get("config") or {}
    metric = _setting(config, "metric")
    version_id, trigger_id = str(champion["id"]), str(trigger["id"])
    try:
        frozen = frozen_detector(
            db,
            version_id,
            trigger_id,
            config,
            lambda: _calibrate(store, db, champion, config).as_dict(),
        )
    except (LookupError, ValueError) as exc:
        return Watch(None, None, 0, 0.0, f"no detector for {family} v{champion['version']}: {exc}")
    detector = Detector.from_dict(frozen)
    watched = realized_window(db, version_id, "champion", detector.horizon_bars)
    realized = watched
    previous = last_alarm(db, version_id, trigger_id)
    if previous is not None and not realized.empty:
        realized = realized[realized["bar_ts"] > previous["alarm_bar_ts"]]
    values = live_values(realized, metric) if not realized.empty else pd.Series(dtype=float)
    x = values.to_numpy()
    if len(x) < int(_setting(config, "min_bars")):
        return Watch(detector, None, len(x), detector.statistic(x))
    alarms = detector.alarms(x)
    if not alarms:
        return Watch(detector, None, len(x), detector.statistic(x))
    first = alarms[0]
    row = record_alarm(
        db,
        {
            "version_id": version_id,
            "trigger_id": trigger_id,
            "family": family,
            "metric": metric,
            "alarm_bar_ts": values.index[first.at],
            "change_bar_ts": values.index[first.change_at],
            "statistic": first.statistic,
            "threshold": detector.h,
            "bars_watched": first.at + 1,
            "mean_since_change": float(np.nanmean(x[first.change_at : first.at + 1])),
        },
    )
    bars = pd.DatetimeIndex(watched["bar_ts"].unique())
    began = fall_began(alarm_history(db, version_id, trigger_id), bars)
    since = int((bars >= began).sum())
    return Watch(detector, row, len(x), first.statistic, None, since, began)
