"""Readable summaries of the fleet for the CLI and the demo."""

from __future__ import annotations

from alphaplus_mlops.families.base import FAMILIES
from alphaplus_mlops.store import deployment


def _when(value) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def status_report(url: str) -> str:
    lines = []
    for family in FAMILIES:
        s = deployment.family_status(url, family)
        champion, challenger = s["champion"], s["challenger"]
        training, decision = s["last_training"], s["last_decision"]
        lines.append(f"{family}")
        lines.append(f"  champion       {'v' + str(champion['version']) if champion else 'none'}")
        lines.append(
            f"  challenger     {'v' + str(challenger['version']) if challenger else 'none'}"
        )
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
            version = deployment.version_by_number(url, family, decision["version"])
            gates = deployment.gate_status(url, str(version["id"]))
            for gate in gates.gates:
                mark = {True: "pass", False: "FAIL", None: "----"}[gate["passed"]]
                lines.append(f"    {mark} {gate['reason'] or gate['gate_name'] + ': not run'}")
        else:
            lines.append("  last decision  none")
    return "\n".join(lines)
