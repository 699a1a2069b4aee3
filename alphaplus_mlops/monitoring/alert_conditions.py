"""Alert rule conditions (the ``condition`` of an ml_ops_alerts rule row), judged on values.

Pure: the evaluators in ``alerting.rules`` read the rows and the measurements and ask here
whether the condition holds.
"""

from __future__ import annotations

import math
import operator

_COMPARATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def condition_holds(condition: dict, value: float | None) -> bool | None:
    """Whether ``value`` meets ``condition`` ({"comparator", "threshold"}); None when the
    value was not measured (missing or not finite): neither firing nor clearing."""
    comparator = condition.get("comparator")
    if comparator not in _COMPARATORS:
        raise ValueError(
            f"alert condition comparator {comparator!r} is not one of {', '.join(_COMPARATORS)}"
        )
    if "threshold" not in condition:
        raise ValueError("alert condition has no threshold")
    if value is None or not math.isfinite(float(value)):
        return None
    return bool(_COMPARATORS[comparator](float(value), float(condition["threshold"])))


def watches_job(condition: dict, job_name: str) -> bool:
    """Whether a run-failure rule covers ``job_name``: its ``jobs`` list names it or "*"
    (no list: every job)."""
    jobs = condition.get("jobs", ["*"])
    return "*" in jobs or job_name in jobs


def condition_sentence(condition: dict) -> str:
    return (
        f"{condition.get('metric', 'value')} {condition['comparator']} {condition['threshold']:g}"
    )
