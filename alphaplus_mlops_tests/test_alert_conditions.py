"""Alert rule conditions, judged on values (pure)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaplus_mlops.monitoring.alert_conditions import (
    condition_holds,
    condition_sentence,
    watches_job,
)


def test_each_comparator_judges_the_value_against_the_threshold():
    assert condition_holds({"comparator": "<", "threshold": 0.0}, -0.1) is True
    assert condition_holds({"comparator": "<", "threshold": 0.0}, 0.0) is False
    assert condition_holds({"comparator": "<=", "threshold": 0.0}, 0.0) is True
    assert condition_holds({"comparator": ">", "threshold": 8.0}, 9) is True
    assert condition_holds({"comparator": ">=", "threshold": 8.0}, 7.9) is False


def test_an_unmeasured_value_neither_fires_nor_clears():
    for value in (None, math.nan, math.inf):
        assert condition_holds({"comparator": ">", "threshold": 1}, value) is None


def test_a_malformed_condition_is_named():
    with pytest.raises(ValueError, match="comparator '=>' is not one of"):
        condition_holds({"comparator": "=>", "threshold": 1}, 2)
    with pytest.raises(ValueError, match="no threshold"):
        condition_holds({"comparator": ">"}, 2)


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(-1e6, 1e6))
def test_opposite_strict_and_loose_comparators_never_both_hold(value, threshold):
    below = condition_holds({"comparator": "<", "threshold": threshold}, value)
    at_or_above = condition_holds({"comparator": ">=", "threshold": threshold}, value)
    assert below != at_or_above


def test_a_failure_rule_watches_the_jobs_it_lists_or_all():
    assert watches_job({"jobs": ["*"]}, "train_model")
    assert watches_job({}, "anything")
    assert watches_job({"jobs": ["train_model"]}, "train_model")
    assert not watches_job({"jobs": ["train_model"]}, "artifact_scan")


def test_the_sentence_names_metric_comparator_and_threshold():
    condition = {"metric": "net_sharpe", "comparator": "<", "threshold": 0.0}
    assert condition_sentence(condition) == "net_sharpe < 0"
