"""What a replay is worth: per policy, the served signal's net Sharpe, PSR and drawdown
before and after the break (or over the whole span), and what the policy did. Pure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphaplus_mlops.core.backtest import annualized_sharpe
from alphaplus_mlops.core.experiment import drawdown
from alphaplus_mlops.core.stats import probabilistic_sharpe

YEAR = 252


def span_metrics(returns: pd.Series) -> dict:
    r = returns.to_numpy(dtype=float)
    return {
        "bars": len(r),
        "net_sharpe": annualized_sharpe(r, YEAR) if len(r) > 1 else float("nan"),
        "psr": probabilistic_sharpe(r),
        "max_drawdown": drawdown(r),
    }


def value_row(run, break_ts: pd.Timestamp | None) -> dict:
    """One policy's row: metrics over the whole span, and before / after ``break_ts``;
    counts of its decisions (the first model is not a retrain)."""
    row = {"policy": run.policy}
    spans = {"all": run.returns}
    if break_ts is not None:
        spans |= {
            "before": run.returns[run.returns.index < break_ts],
            "after": run.returns[run.returns.index >= break_ts],
        }
    for name, returns in spans.items():
        row |= {f"{name}_{k}": v for k, v in span_metrics(returns).items()}
    alarms_before = (
        sum(e.kind == "alarm" and e.ts < break_ts for e in run.events)
        if break_ts is not None
        else None
    )
    first_promoted = any(e.kind == "promote" and e.version == 1 for e in run.events)
    row |= {
        "retrains": run.count("train") - 1,
        "promotions": run.count("promote") + run.count("experiment_promote") - first_promoted,
        "flat_bars": int((run.served["version"] == 0).groupby(run.served["ts"]).all().sum()),
        "rejections": run.count("reject") + run.count("keep_champion"),
        "challengers": run.count("shadow"),
        "alarms": run.count("alarm"),
        "alarms_before_break": alarms_before,
        "compute_seconds": run.compute_seconds,
    }
    return row


def format_table(rows: list[dict], break_ts) -> str:
    """The value table as Markdown."""
    spans = ("before", "after") if break_ts is not None else ("all",)
    head = ["policy"]
    for span in spans:
        head += [f"{span}: net Sharpe", "PSR", "max DD"]
    head += ["retrains", "promotions", "rejections", "challengers", "alarms", "flat bars"]
    head += ["compute s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["policy"]]
        for span in spans:
            cells += [
                f"{row[f'{span}_net_sharpe']:+.2f}",
                f"{row[f'{span}_psr']:.2f}",
                f"{row[f'{span}_max_drawdown']:.1%}",
            ]
        cells += [
            str(row[k])
            for k in ("retrains", "promotions", "rejections", "challengers", "alarms", "flat_bars")
        ]
        cells.append(f"{row['compute_seconds']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_of(rows: list[dict], policy: str, key: str) -> float:
    return float(np.nanmean([r[key] for r in rows if r["policy"] == policy]))
