"""Judging a candidate against gate configuration: pure, so every rule is testable alone.

A gate row names a metric, a comparator and a threshold, and optionally more metrics under
``config.also``. The
judgement says passed or not, with a sentence a person can read.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_COMPARATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class GateJudgement:
    gate: str
    passed: bool
    measured: dict[str, float]
    thresholds: dict[str, Any]
    reason: str
    failures: list[str] = field(default_factory=list)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def judge(gate: dict, measured: dict[str, float]) -> GateJudgement:
    """Judge ``measured`` against ``gate`` (a quality_gates row as a dict): absolute
    floors and ceilings only. How a candidate compares with the champion is the deployment
    rule's business (core.decision), on paired tests rather than a tolerance."""
    rules = {gate["metric"]: {"comparator": gate["comparator"], "threshold": gate["threshold"]}}
    rules.update((gate.get("config") or {}).get("also", {}))
    passes, failures, values = [], [], {}
    for metric, rule in rules.items():
        value = measured.get(metric)
        values[metric] = value
        compare = _COMPARATORS[rule["comparator"]]
        sentence = f"{metric} {_fmt(value)} {rule['comparator']} {_fmt(rule['threshold'])}"
        if value is None or not math.isfinite(value):
            failures.append(f"{metric} was not measured")
        elif compare(value, rule["threshold"]):
            passes.append(sentence)
        else:
            failures.append(
                f"{metric} {_fmt(value)} fails {rule['comparator']} {_fmt(rule['threshold'])}"
            )

    thresholds = dict(rules)
    passed = not failures
    reason = (
        (f"{gate['name']} passed: " + "; ".join(passes))
        if passed
        else (f"{gate['name']} failed: " + "; ".join(failures))
    )
    return GateJudgement(gate["name"], passed, values, thresholds, reason, failures)


def data_quality_measurements(frame, features: list[str]) -> dict[str, float]:
    """rows, non-finite feature values, smallest class share, duplicate (symbol, ts) rows."""
    values = frame[features].to_numpy(dtype=float)
    shares = frame["label"].value_counts(normalize=True)
    return {
        "rows": float(len(frame)),
        "non_finite_values": float((~np.isfinite(values)).sum()),
        "min_class_share": float(shares.min()) if len(shares) == 2 else 0.0,
        "duplicate_rows": float(frame.duplicated(subset=["symbol", "ts"]).sum()),
    }


def data_quality_gate(gate: dict) -> dict:
    """The data-quality gate row with its fixed rules added: no NaN/inf, no duplicates."""
    config = dict(gate.get("config") or {})
    also = {
        "non_finite_values": {"comparator": "<=", "threshold": 0},
        "duplicate_rows": {"comparator": "<=", "threshold": 0},
        "min_class_share": {"comparator": ">=", "threshold": config.get("min_class_share", 0.2)},
        **config.get("also", {}),
    }
    return {**gate, "config": {**config, "also": also}}
