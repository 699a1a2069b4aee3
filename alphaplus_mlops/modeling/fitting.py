"""Training a family on a dataset: walk-forward cross-validation and the final fit.

No Dagster and no database here: the assets call these functions and store what they return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaplus_mlops.core.splits import Fold, WalkForward
from alphaplus_mlops.families.base import FitResult, ModelFamily, ProgressCallback
from alphaplus_mlops.modeling.datasets import KEY_COLUMNS, Dataset


@dataclass
class CrossValidation:
    oof: pd.DataFrame
    """symbol, ts, t0, t1, label, forward_return, close, proba, fold: out-of-fold rows."""
    fold_sizes: list[tuple[int, int]]
    warm_started_folds: list[int]


@dataclass(frozen=True)
class Parent:
    """A model to continue from, and the last sample time its training labels started at."""

    model: Any
    trained_until: pd.Timestamp
    horizon: int


def _parent_unseen(frame: pd.DataFrame, parent: Parent, test_start) -> bool:
    """True when the parent never saw the test block, labels included."""
    between = frame["t0"][(frame["t0"] > parent.trained_until) & (frame["t0"] <= test_start)]
    return test_start > parent.trained_until and between.nunique() >= parent.horizon


def _instants(times: pd.Series) -> np.ndarray:
    """Times as a NumPy array the splitter compares fast. Time-zone-aware columns become
    UTC datetime64 (the same instants, in the same order) rather than an object array of
    Timestamps, which is slow to build and slow to sort and search."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert(None)
    return times.to_numpy()


def row_selector(positions: np.ndarray) -> np.ndarray | slice:
    """The row positions as a slice when they are one contiguous run (walk-forward folds on
    time-sorted data are), so that taking them is a view rather than a copy of the rows."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def walk_forward_folds(dataset: Dataset, splitter: WalkForward) -> list[Fold]:
    """The folds ``splitter`` cuts on the dataset's label intervals [t0, t1]."""
    frame = dataset.frame
    return splitter.split(_instants(frame["t0"]), _instants(frame["t1"]))


def cross_validate(
    family: ModelFamily,
    dataset: Dataset,
    params: dict[str, Any],
    splitter: WalkForward,
    progress: ProgressCallback | None = None,
    parent: Parent | None = None,
) -> CrossValidation:
    """Out-of-fold predictions. With a ``parent`` (incremental training), every fold whose
    test block the parent never saw continues from it, as the final fit will; earlier folds
    train from scratch, because warm-starting them would leak the parent's knowledge."""
    frame = dataset.frame
    folds = walk_forward_folds(dataset, splitter)
    x, y, keys = dataset.x, dataset.y, frame[KEY_COLUMNS]
    parts, sizes, warm = [], [], []
    for fold in folds:
        init = None
        if parent is not None and _parent_unseen(frame, parent, frame["t0"].iloc[fold.test].min()):
            init = parent.model
            warm.append(fold.index)
        train, test = row_selector(fold.train), row_selector(fold.test)
        fitted = family.fit(x[train], y[train], params, progress=progress, init_model=init)
        proba = family.predict_proba(fitted.model, x[test])
        part = keys.iloc[test].copy()
        part["proba"] = proba
        part["fold"] = fold.index
        parts.append(part)
        sizes.append((len(fold.train), len(fold.test)))
    return CrossValidation(pd.concat(parts, ignore_index=True), sizes, warm)


def final_fit(
    family: ModelFamily,
    dataset: Dataset,
    params: dict[str, Any],
    progress: ProgressCallback | None = None,
    init_model: Any | None = None,
) -> FitResult:
    return family.fit(dataset.x, dataset.y, params, progress=progress, init_model=init_model)


@dataclass(frozen=True)
class RefitSchedule:
    """How the candidate's procedure is replayed on the bars after the champion's training:
    refit every ``refit_every`` bars (at most ``max_refits`` times: blocks grow instead),
    each refit on every row whose label had ended by the block's first bar, skipping blocks
    with fewer than ``min_train_bars`` bars of training."""

    refit_every: int = 63
    max_refits: int = 4
    min_train_bars: int = 126

    @classmethod
    def from_gate(cls, row: dict | None) -> RefitSchedule:
        """From the champion_comparison row of quality_gates (its config), else defaults."""
        config = (row or {}).get("config") or {}
        return cls(
            refit_every=int(config.get("refit_every_bars", cls.refit_every)),
            max_refits=int(config.get("max_refits", cls.max_refits)),
            min_train_bars=int(config.get("min_train_bars", cls.min_train_bars)),
        )


@dataclass(frozen=True)
class RefitBlock:
    index: int
    cutoff: pd.Timestamp
    """Training rows are those whose label ended at or before this bar."""
    train: np.ndarray
    test: np.ndarray


def rows_after_champion(frame: pd.DataFrame, champion_window_end) -> np.ndarray:
    """Row positions the champion never saw, even in part: per symbol, the rows starting at
    or after the end of the champion's last label for that symbol (its last t1)."""
    seen = frame["t0"] <= pd.Timestamp(champion_window_end)
    last_t1 = frame["t1"].where(seen).groupby(frame["symbol"]).transform("max")
    # A symbol the champion never trained on is unseen from its window's end on.
    last_t1 = last_t1.fillna(pd.Timestamp(champion_window_end))
    return np.flatnonzero((frame["t0"] >= last_t1) & (frame["t0"] > champion_window_end))


def refit_blocks(
    dataset: Dataset, champion_window_end, schedule: RefitSchedule
) -> list[RefitBlock]:
    """The blocks of bars after the champion's training, each with the rows its refit
    trains on (labels ended by the block's first bar: no row of the block, nor any later
    outcome, informs its own prediction)."""
    frame = dataset.frame
    unseen = rows_after_champion(frame, champion_window_end)
    times = np.sort(frame["t0"].iloc[unseen].unique())
    if len(times) == 0:
        return []
    size = max(schedule.refit_every, -(-len(times) // max(schedule.max_refits, 1)))
    t0, t1 = _instants(frame["t0"]), _instants(frame["t1"])
    unseen_t0 = t0[unseen]
    blocks = []
    for k, start in enumerate(range(0, len(times), size)):
        span = _instants(pd.Series(times[start : start + size]))
        train = np.flatnonzero(t1 <= span[0])
        if len(np.unique(t0[train])) < schedule.min_train_bars:
            continue
        test = unseen[(unseen_t0 >= span[0]) & (unseen_t0 <= span[-1])]
        blocks.append(RefitBlock(k, pd.Timestamp(times[start]), train, test))
    return blocks


def refit_predictions(
    family: ModelFamily,
    dataset: Dataset,
    params: dict[str, Any],
    blocks: list[RefitBlock],
    progress: ProgressCallback | None = None,
    init_model: Any | None = None,
) -> pd.DataFrame:
    """The candidate's procedure replayed over ``blocks``: KEY_COLUMNS, proba, refit (the
    block's index) and cutoff for every test row. ``init_model``: the champion, for a
    family that continues from it (it saw none of the blocks, so it may)."""
    x, y, keys = dataset.x, dataset.y, dataset.frame[KEY_COLUMNS]
    parts = []
    for block in blocks:
        train, test = row_selector(block.train), row_selector(block.test)
        fitted = family.fit(x[train], y[train], params, progress=progress, init_model=init_model)
        part = keys.iloc[test].copy()
        part["proba"] = family.predict_proba(fitted.model, x[test])
        part["refit"] = block.index
        part["cutoff"] = block.cutoff
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "proba", "refit", "cutoff"])
    return pd.concat(parts, ignore_index=True)
