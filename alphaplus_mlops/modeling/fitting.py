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
    stopping_rounds: list[int | None]
    """Per fold, the rounds early stopping chose (None: configured rounds)."""


@dataclass(frozen=True)
class Parent:
    """A model to continue from, and the last sample time its training labels started at."""

    model: Any
    trained_until: pd.Timestamp


def unseen_by_parent(frame: pd.DataFrame, parent: Parent, test_start) -> bool:
    """True when the parent never saw the block starting at ``test_start``, labels
    included: the block starts once the last label the parent trained on has ended (the
    same rule as :func:`rows_after_champion`, for all symbols at once)."""
    seen = frame["t0"] <= parent.trained_until
    last_end = frame["t1"][seen].max() if seen.any() else parent.trained_until
    return test_start > parent.trained_until and test_start >= last_end


def row_selector(positions: np.ndarray) -> np.ndarray | slice:
    """The row positions as a slice when they are one contiguous run (walk-forward folds on
    time-sorted data are), so that taking them is a view rather than a copy of the rows."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


@dataclass(frozen=True)
class EarlyStopping:
    """How a training procedure chooses its number of rounds: fit on all but a validation
    block at the end of its window (the last ``validation_fraction`` of its bars, at least
    ``min_validation_bars``; rows whose labels reach into the block are purged), stop once
    the validation log loss has not improved for ``patience`` rounds, then refit on every
    row with the rounds that did best. ``patience`` 0 turns it off."""

    patience: int = 20
    validation_fraction: float = 0.2
    min_validation_bars: int = 20

    def __post_init__(self) -> None:
        if self.patience < 0:
            raise ValueError("early-stopping patience must not be negative")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must lie strictly between 0 and 1")


def stopping_split(
    t0: np.ndarray, t1: np.ndarray, stopping: EarlyStopping
) -> tuple[np.ndarray, np.ndarray] | None:
    """(fit rows, validation rows) for early stopping, or None when the window is too short
    to spare a validation block and as many bars again to fit on. Fit rows' labels end by
    the block's first bar."""
    times = np.unique(t0)
    size = max(
        stopping.min_validation_bars, int(np.ceil(len(times) * stopping.validation_fraction))
    )
    if len(times) < 2 * size:
        return None
    start = times[-size]
    return np.flatnonzero(t1 <= start), np.flatnonzero(t0 >= start)


def fit_procedure(
    family: ModelFamily,
    dataset: Dataset,
    rows: np.ndarray | slice,
    params: dict[str, Any],
    stopping: EarlyStopping | None,
    progress: ProgressCallback | None = None,
    parent: Parent | None = None,
) -> FitResult:
    """The training procedure on ``rows`` of the dataset: with ``stopping``, choose the
    rounds on a purged validation block at the end of the rows, then refit on all of them
    with those rounds; otherwise one fit with the configured rounds. ``parent``: the model
    to continue from (its training must not reach the validation block, else the
    configured rounds are kept)."""
    x, y = dataset.x[rows], dataset.y[rows]
    init = parent.model if parent is not None else None
    split = None
    if stopping is not None and stopping.patience > 0 and family.rounds_key is not None:
        t0, t1 = dataset.label_times
        split = stopping_split(t0[rows], t1[rows], stopping)
    if split is not None and parent is not None:
        start = dataset.frame["t0"].iloc[rows].iloc[int(split[1][0])]
        if not unseen_by_parent(dataset.frame, parent, start):
            split = None
    if split is None:
        return family.fit(x, y, params, progress=progress, init_model=init)
    fit_rows, validation = split
    probe = family.fit(
        x[fit_rows],
        y[fit_rows],
        params,
        progress=progress,
        init_model=init,
        eval_set=(x[validation], y[validation]),
        early_stopping_rounds=stopping.patience,
    )
    rounds = probe.best_rounds or int(params[family.rounds_key])
    final = family.fit(
        x, y, {**params, family.rounds_key: rounds}, progress=progress, init_model=init
    )
    final.best_rounds = rounds
    final.params = {
        **final.params,
        "early_stopping": {
            "patience": stopping.patience,
            "validation_rows": len(validation),
            "max_rounds": int(params[family.rounds_key]),
            "best_rounds": rounds,
        },
    }
    final.notes.append(
        f"early stopping chose {rounds} of {params[family.rounds_key]} rounds on a purged "
        f"validation block of {len(validation)} rows"
    )
    return final


def walk_forward_folds(dataset: Dataset, splitter: WalkForward) -> list[Fold]:
    """The folds ``splitter`` cuts on the dataset's label intervals [t0, t1]."""
    return splitter.split(*dataset.label_times)


def cross_validate(
    family: ModelFamily,
    dataset: Dataset,
    params: dict[str, Any],
    splitter: WalkForward,
    progress: ProgressCallback | None = None,
    parent: Parent | None = None,
    stopping: EarlyStopping | None = None,
) -> CrossValidation:
    """Out-of-fold predictions of the training procedure (with ``stopping``: early
    stopping inside each fold's training rows). With a ``parent`` (incremental training),
    every fold whose test block the parent never saw continues from it, as the final fit
    will; earlier folds train from scratch, because warm-starting them would leak the
    parent's knowledge."""
    frame = dataset.frame
    folds = walk_forward_folds(dataset, splitter)
    x, keys = dataset.x, frame[KEY_COLUMNS]
    parts, sizes, warm, stopped = [], [], [], []
    for fold in folds:
        warm_from = None
        if parent is not None and unseen_by_parent(
            frame, parent, frame["t0"].iloc[fold.test].min()
        ):
            warm_from = parent
            warm.append(fold.index)
        train, test = row_selector(fold.train), row_selector(fold.test)
        fitted = fit_procedure(family, dataset, train, params, stopping, progress, warm_from)
        stopped.append(fitted.best_rounds)
        proba = family.predict_proba(fitted.model, x[test])
        part = keys.iloc[test].copy()
        part["proba"] = proba
        part["fold"] = fold.index
        parts.append(part)
        sizes.append((len(fold.train), len(fold.test)))
    return CrossValidation(pd.concat(parts, ignore_index=True), sizes, warm, stopped)


def final_fit(
    family: ModelFamily,
    dataset: Dataset,
    params: dict[str, Any],
    progress: ProgressCallback | None = None,
    parent: Parent | None = None,
    stopping: EarlyStopping | None = None,
) -> FitResult:
    """The training procedure on every row: the model that is deployed."""
    everything = slice(0, len(dataset.frame))
    return fit_procedure(family, dataset, everything, params, stopping, progress, parent)


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
    unseen = rows_after_champion(dataset.frame, champion_window_end)
    t0, t1 = dataset.label_times
    unseen_t0 = t0[unseen]
    times = np.unique(unseen_t0)
    if len(times) == 0:
        return []
    size = max(schedule.refit_every, -(-len(times) // max(schedule.max_refits, 1)))
    blocks = []
    for k, start in enumerate(range(0, len(times), size)):
        span = times[start : start + size]
        train = np.flatnonzero(t1 <= span[0])
        if len(np.unique(t0[train])) < schedule.min_train_bars:
            continue
        test = unseen[(unseen_t0 >= span[0]) & (unseen_t0 <= span[-1])]
        blocks.append(RefitBlock(k, pd.Timestamp(span[0], tz="UTC"), train, test))
    return blocks


def refit_predictions(
    family: ModelFamily,
    dataset: Dataset,
    params: dict[str, Any],
    blocks: list[RefitBlock],
    progress: ProgressCallback | None = None,
    parent: Parent | None = None,
    stopping: EarlyStopping | None = None,
) -> pd.DataFrame:
    """The candidate's procedure replayed over ``blocks``: KEY_COLUMNS, proba, refit (the
    block's index) and cutoff for every test row. ``parent``: the champion, for a family
    that continues from it (it saw none of the blocks, so it may)."""
    if not blocks:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "proba", "refit", "cutoff"])
    x, keys = dataset.x, dataset.frame[KEY_COLUMNS]
    parts = []
    for block in blocks:
        train, test = row_selector(block.train), row_selector(block.test)
        fitted = fit_procedure(family, dataset, train, params, stopping, progress, parent)
        part = keys.iloc[test].copy()
        part["proba"] = family.predict_proba(fitted.model, x[test])
        part["refit"] = block.index
        part["cutoff"] = block.cutoff
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
