"""What a Dagster replay reads back from its database: its decisions in order, the
champions' answers, the compute spent, and requests left without their training."""

from __future__ import annotations

import pandas as pd
from psycopg import sql

from alphaplus_mlops import run_tags
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.db import Database, connect, jsonb


def ensure_database(server_url: str, name: str, *, fresh: bool = False) -> bool:
    """Create the database ``name`` on the server unless it exists (with ``fresh``, drop
    it first). Whether it was created now."""
    with connect(server_url, autocommit=True) as conn:
        exists = conn.execute(queries.SELECT_DATABASE_EXISTS, (name,)).fetchone() is not None
        if exists and not fresh:
            return False
        if exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def recorded_replay(db: Database, name: str) -> dict | None:
    """The scenario the replay's database was started for (None before it is recorded)."""
    with db.connection() as conn:
        row = conn.execute(queries.SELECT_REPLAY_RUN, (name,)).fetchone()
    return None if row is None else row["scenario"]


def record_replay(db: Database, name: str, scenario: dict) -> None:
    with db.connection() as conn:
        conn.execute(queries.INSERT_REPLAY_RUN, (name, jsonb(scenario)))


def _kinds(row: dict) -> list[str]:
    """The replay's event kinds for one decision row (core replay's names)."""
    kind, outcome = row["decision_type"], row["outcome"]
    if kind == "deployment":
        return [outcome]
    if kind == "retrain_trigger":
        alarm = "alarm" if row["trigger_type"] == "performance" else f"{row['trigger_type']}_alarm"
        return [alarm] if outcome == "requested" else [alarm, "refused"]
    if kind == "live_experiment" and outcome != "continue":
        return [f"experiment_{outcome}"]
    if kind == "probation" and outcome != "continue":
        return [f"probation_{outcome}"]
    return []


def replay_decisions(db: Database, family: str) -> list[dict]:
    """Trainings and decisions of ``family``, oldest first: at, kind, version, reason."""
    with db.connection() as conn:
        trainings = conn.execute(queries.SELECT_REPLAY_TRAININGS, {"family": family}).fetchall()
        decided = conn.execute(queries.SELECT_REPLAY_DECISIONS, {"family": family}).fetchall()
    events = [dict(t) for t in trainings]
    for row in decided:
        reason = " ".join(row["reasons"] or [])
        for kind in _kinds(row):
            version = None if kind == "refused" else row["version"]
            events.append({"at": row["at"], "kind": kind, "version": version, "reason": reason})
    return sorted(events, key=lambda e: e["at"])


def served_by_champions(db: Database, family: str) -> pd.DataFrame:
    """symbol, ts, proba, version of every bar a champion of ``family`` answered."""
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_CHAMPION_ANSWERS, (family,)).fetchall()
    frame = pd.DataFrame(found, columns=["symbol", "ts", "proba", "version"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def trained_versions(db: Database, family: str) -> int:
    with db.connection() as conn:
        return conn.execute(queries.COUNT_VERSIONS_OF_FAMILY, (family,)).fetchone()["n"]


def training_seconds(db: Database, family: str) -> float:
    with db.connection() as conn:
        return float(
            conn.execute(queries.SELECT_TRAINING_CPU_SECONDS, (family,)).fetchone()["seconds"]
        )


def unfinished_requests(db: Database, family: str) -> list[dict]:
    """Recorded retrain requests with no training of the family after them: reason,
    run_config and tags, as the sensor would have requested the run."""
    with db.connection() as conn:
        found = conn.execute(queries.SELECT_UNFINISHED_REQUESTS, {"family": family}).fetchall()
    requests = []
    for row in found:
        inputs = row["inputs"] or {}
        window, change = inputs.get("retrain_window_bars"), inputs.get("change_bar_ts")
        ops = {"training_dataset": {"config": {"window_bars": window} if window else {}}}
        if change:
            ops["model_evaluation"] = {"config": {"compare_from": change}}
        requests.append(
            {
                "reason": "; ".join(row["reasons"] or []),
                "run_config": {"ops": ops},
                "tags": {
                    run_tags.TRIGGER_TYPE: row["trigger_type"],
                    run_tags.TRIGGER_ID: str(row["trigger_id"]),
                    run_tags.PRIORITY: str(row["priority"]),
                },
            }
        )
    return requests
