"""Judging a candidate against gate configuration: pure, so every rule is testable alone.

A gate row names a metric, a comparator and a threshold, optionally more metrics under
``config.also``, and optionally a tolerance against the champion on shared rows. The
judgement says passed or not, with a sentence a person can read.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_COMPARATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_HIGHER_IS_BETTER = {">=": True, ">": True, "<=": False, "<": False}


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


def judge(
    gate: dict,
    measured: dict[str, float],
    champion: dict[str, float] | None = None,
    candidate_on_shared: dict[str, float] | None = None,
) -> GateJudgement:
    """Judge ``measured`` against ``gate`` (a quality_gates row as a dict).

    ``champion`` and ``candidate_on_shared`` are the same metrics for both models on the
    rows they share; given both and a ``champion_tolerance``, the candidate must not be
    worse than the champion by more than the tolerance on the gate's main metric.
    """
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

    tolerance = gate.get("champion_tolerance")
    main = gate["metric"]
    if tolerance is not None and champion and candidate_on_shared:
        mine, theirs = candidate_on_shared.get(main), champion.get(main)
        if (
            mine is not None
            and theirs is not None
            and math.isfinite(mine)
            and math.isfinite(theirs)
        ):
            higher = _HIGHER_IS_BETTER[gate["comparator"]]
            bound = theirs - tolerance if higher else theirs + tolerance
            values[f"champion_{main}"] = theirs
            values[f"candidate_{main}_on_shared_rows"] = mine
            sentence = (
                f"{main} on shared rows {_fmt(mine)} vs champion {_fmt(theirs)} "
                f"(tolerance {_fmt(tolerance)})"
            )
            if _COMPARATORS[">=" if higher else "<="](mine, bound):
                passes.append(sentence)
            else:
                failures.append(f"worse than the champion: {sentence}")
    thresholds = {**rules, "champion_tolerance": tolerance}
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
