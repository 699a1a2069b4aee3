"""Readable summaries of the fleet for the CLI and the demo: status table and leaderboard
(the ML ops report and the dashboard: reports/)."""

from __future__ import annotations

from alphaplus_mlops.families import family_names
from alphaplus_mlops.reports.publish import STATUS_WINDOW
from alphaplus_mlops.store.db import Database
from alphaplus_mlops.store.gate_results import gate_status
from alphaplus_mlops.store.live import latest_live_window, offline_evaluation
from alphaplus_mlops.store.versions import family_status, leaderboard, version_by_number


def _when(value) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def _num(value, spec: str = ".3f") -> str:
    return "-" if value is None or value != value else format(value, spec)


def _live_line(db: Database, version: dict, role: str) -> str:
    """The version's latest live window in a role beside its out-of-fold evaluation."""
    live = latest_live_window(db, str(version["id"]), role, STATUS_WINDOW)
    offline = offline_evaluation(db, str(version["id"])) or {}
    ml, business = offline.get("ml_metrics") or {}, offline.get("business_metrics") or {}
    head = f"  live {role:<10}v{version['version']} {STATUS_WINDOW}"
    if not live:
        return f"{head}: no realized predictions"
    m = live["metrics"]
    return (
        f"{head} ({m['n_bars']} bars): hit {_num(m['hit_rate'])} AUC {_num(m['roc_auc'])} "
        f"net Sharpe {_num(m['net_sharpe'], '.2f')} max DD {_num(m['max_drawdown'], '.1%')}"
        f" | offline AUC {_num(ml.get('roc_auc'))} net Sharpe "
        f"{_num(business.get('net_sharpe'), '.2f')} "
        f"max DD {_num(business.get('max_drawdown'), '.1%')}"
    )


def status_report(db: Database) -> str:
    lines = []
    for family in family_names():
        s = family_status(db, family)
        champion, challenger = s["champion"], s["challenger"]
        training, decision = s["last_training"], s["last_decision"]
        lines.append(f"{family}")
        lines.append(f"  champion       {'v' + str(champion['version']) if champion else 'none'}")
        lines.append(
            f"  challenger     {'v' + str(challenger['version']) if challenger else 'none'}"
        )
        for role, version in (("champion", champion), ("challenger", challenger)):
            if version:
                lines.append(_live_line(db, version, role))
        if training:
            lines.append(
                f"  last training  {training['status']} ({training['trigger_type']}"
                f"{': ' + training['reason'] if training['reason'] else ''}) "
                f"at {_when(training['created_at'])}"
            )
        else:
            lines.append("  last training  none")
        if decision:
            reasons = "; ".join(decision["reasons"])
            lines.append(
                f"  last decision  v{decision['version']} {decision['outcome']}: {reasons}"
            )
            version = version_by_number(db, family, decision["version"])
            for gate in gate_status(db, str(version["id"])).gates:
                mark = {True: "pass", False: "FAIL", None: "----"}[gate["passed"]]
                lines.append(f"    {mark} {gate['reason'] or gate['gate_name'] + ': not run'}")
        else:
            lines.append("  last decision  none")
    return "\n".join(lines)


def leaderboard_report(db: Database) -> str:
    """The latest version of each family: out-of-fold AUC, net Sharpe, drawdown, parity."""
    lines = [
        f"{'family':<9} {'version':>7} {'status':<11} {'AUC':>6} {'net Sharpe':>10} "
        f"{'max DD':>7} {'ONNX parity':>11} {'train s':>7}"
    ]
    for row in leaderboard(db):
        lines.append(
            f"{row['family']:<9} {row['version']:>7} {row['status']:<11} {row['roc_auc']:>6.3f} "
            f"{row['net_sharpe']:>10.2f} {row['max_drawdown']:>7.1%} "
            f"{row['onnx_parity']:>11.1e} {row['train_seconds']:>7.1f}"
        )
    return "\n".join(lines)
