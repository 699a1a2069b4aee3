"""A training dataset: features and labels with their intervals, one row per sample.

No Dagster and no database here: the assets call these functions and store what they return.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa

from alphaplus_mlops.core.features import FEATURE_VERSION, build_features, feature_names
from alphaplus_mlops.core.labels import LabelConfig, build_labels

KEY_COLUMNS = ["symbol", "ts", "t0", "t1", "label", "forward_return", "close"]


def instants(times: pd.Series) -> np.ndarray:
    """Times as a NumPy array that compares fast. Time-zone-aware columns become UTC
    datetime64 (the same instants, in the same order) rather than an object array of
    Timestamps, which is slow to build and slow to sort and search."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert(None)
    return times.to_numpy()


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    """KEY_COLUMNS then the features, one row per labelled sample, sorted by (ts, symbol)."""
    features: list[str]
    label_config: LabelConfig

    @cached_property
    def x(self) -> np.ndarray:
        """The features as float32, converted once: CV and the final fit share the array."""
        return self.frame[self.features].to_numpy(dtype=np.float32)

    @cached_property
    def label_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(t0, t1) of every row as UTC datetime64, converted once: the splitter, early
        stopping and the refits after a champion all compare them."""
        return instants(self.frame["t0"]), instants(self.frame["t1"])

    @property
    def y(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=int)

    def class_balance(self) -> dict[str, float]:
        counts = self.frame["label"].value_counts().to_dict()
        total = max(len(self.frame), 1)
        return {str(int(k)): round(v / total, 6) for k, v in sorted(counts.items())}

    def content_hash(self) -> str:
        """SHA-256 of the rows' values and the definitions that made them."""
        digest = hashlib.sha256()
        digest.update(
            json.dumps(
                {
                    "features": self.features,
                    "feature_version": FEATURE_VERSION,
                    "labels": self.label_config.__dict__,
                },
                sort_keys=True,
            ).encode()
        )
        digest.update(pd.util.hash_pandas_object(self.frame, index=False).to_numpy().tobytes())
        return digest.hexdigest()

    def with_shuffled_labels(self, seed: int) -> Dataset:
        """The same rows with labels permuted: a model can learn nothing from it."""
        frame = self.frame.copy()
        frame["label"] = np.random.default_rng(seed).permutation(frame["label"].to_numpy())
        return Dataset(frame, self.features, self.label_config)

    def to_parquet_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.frame.to_parquet(buffer, index=False)
        return buffer.getvalue()

    @classmethod
    def from_parquet_bytes(cls, data: bytes, label_config: LabelConfig) -> Dataset:
        # A zero-copy Arrow buffer: through io.BytesIO, pyarrow copies via Python calls.
        frame = pd.read_parquet(pa.BufferReader(data))
        features = [c for c in frame.columns if c not in KEY_COLUMNS]
        return cls(frame, features, label_config)


def build_dataset(
    bars: pd.DataFrame, label_config: LabelConfig, window_bars: int | None = None
) -> Dataset:
    """Features and labels for every symbol in ``bars``; rows lacking either are dropped.

    ``window_bars`` keeps only the most recent bars per symbol *after* computing features
    on the full history, so a rolling training window still gets warmed-up features.
    """
    if bars.empty:
        raise ValueError("no bars to build a dataset from")
    features = build_features(bars)
    labels = build_labels(bars, label_config)
    names = feature_names()
    closes = bars.sort_values(["symbol", "ts"])[["symbol", "ts", "close"]].reset_index(drop=True)
    frame = pd.concat([labels, features[names], closes[["close"]]], axis=1).assign(
        ts=features["ts"]
    )
    frame = frame.dropna(subset=[*names, "label"])
    if window_bars is not None:
        frame = frame.groupby("symbol", group_keys=False).tail(window_bars)
    frame = frame[KEY_COLUMNS + names].sort_values(["ts", "symbol"]).reset_index(drop=True)
    frame["label"] = frame["label"].astype(int)
    if frame.empty:
        raise ValueError("no labelled rows after warm-up: load more bars")
    return Dataset(frame, names, label_config)
