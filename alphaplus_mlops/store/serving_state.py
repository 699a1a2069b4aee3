"""What should serve, per family: read by the signal service (serving/service.py)."""

from __future__ import annotations

from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database

ROLES = ("champion", "challenger", "previous")
"""Serving roles, in answer order: the champion's answer is the signal, the others shadow."""


def desired_serving(db: Database, probation_seconds: float) -> dict[str, dict[str, dict]]:
    """{family: {role: version row}} for the roles that should serve now.

    ``champion``: the version with status champion. ``challenger``: the latest version with
    status challenger. ``previous``: the champion that the family's latest promotion or
    rollback replaced, while that ledger row is younger than ``probation_seconds`` or, after
    a promotion, while probation_review keeps its probation open (its ``since`` is the
    ledger row's time). Rows carry id, family, version, status,
    feature_names, onnx_uri and onnx_sha256. Read in one statement, so the roles are from
    one snapshot of the database.
    """
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_SERVING_DESIRED, (float(probation_seconds),))
        state: dict[str, dict[str, dict]] = {}
        for row in found.fetchall():
            state.setdefault(row["family"], {})[row["role"]] = row
    return state
