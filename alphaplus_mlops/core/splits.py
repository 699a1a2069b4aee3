"""Purged walk-forward splits over pooled samples with label intervals.

Time is the axis, not rows: samples of several symbols share timestamps, so folds are cut
on the sorted unique sample start times. For each fold: a test block of ``test_size``
times; a training window that ends ``gap`` times before the test block (expanding from the
start, or rolling over ``train_size`` times); then every training sample whose label
interval [t0, t1] overlaps the test span [min t0, max t1 of the test samples] is purged.

There is no embargo: training always precedes the test block here, and an embargo drops
training samples that start just *after* a test span, which only k-fold CV has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray
    """Row positions of the training samples."""
    test: np.ndarray
    """Row positions of the test samples."""
    test_span: tuple[int, int]
    """[first, last] time position touched by a test label (t0 of the first .. max t1)."""


@dataclass(frozen=True)
class WalkForward:
    n_splits: int = 5
    test_size: int | None = None
    """Times per test block; default: the last half of the times split evenly."""
    train_size: int | None = None
    """Rolling window length in times; None means expanding from the first time."""
    gap: int = 0
    min_train_size: int = 1

    def __post_init__(self) -> None:
        if self.n_splits < 1:
            raise ValueError("n_splits must be at least 1")
        if self.gap < 0:
            raise ValueError("gap must not be negative")
        if self.test_size is not None and self.test_size < 1:
            raise ValueError("test_size must be at least 1")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError("train_size must be at least 1")

    def split(self, t0: np.ndarray, t1: np.ndarray) -> list[Fold]:
        """Folds for samples starting at ``t0`` whose labels end at ``t1`` (t1 >= t0).

        ``t0`` and ``t1`` may be datetimes or numbers; they are compared as given.
        """
        t0, t1 = np.asarray(t0), np.asarray(t1)
        if t0.shape != t1.shape or t0.ndim != 1:
            raise ValueError("t0 and t1 must be 1-d arrays of the same length")
        if len(t0) == 0:
            raise ValueError("no samples to split")
        if (t1 < t0).any():
            raise ValueError("every label interval needs t1 >= t0")
        times = np.unique(np.concatenate([t0, t1]))
        start = np.searchsorted(times, t0)
        end = np.searchsorted(times, t1)
        starts = np.unique(start)
        test_size = self.test_size or max(1, len(starts) // (2 * self.n_splits))
        first_test = len(starts) - self.n_splits * test_size
        if first_test < 1:
            raise ValueError(
                f"{len(starts)} distinct sample times cannot hold {self.n_splits} test blocks "
                f"of {test_size} after a training window"
            )
        folds = []
        for k in range(self.n_splits):
            block = starts[first_test + k * test_size : first_test + (k + 1) * test_size]
            test = np.flatnonzero((start >= block[0]) & (start <= block[-1]))
            span = (int(start[test].min()), int(end[test].max()))
            train_end = block[0] - self.gap  # exclusive, a time position
            train_begin = 0 if self.train_size is None else train_end - self.train_size
            candidate = (start >= train_begin) & (start < train_end)
            overlaps = (start <= span[1]) & (end >= span[0])
            train = np.flatnonzero(candidate & ~overlaps)
            if len(train) < self.min_train_size:
                raise ValueError(
                    f"fold {k} keeps {len(train)} training samples after purging, fewer than "
                    f"min_train_size={self.min_train_size}"
                )
            folds.append(Fold(k, train, test, span))
        return folds
