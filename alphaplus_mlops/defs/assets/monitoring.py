"""The live half's measurements: what logged predictions turned out to be, and how each
version does live, per role, beside what its offline evaluation promised."""

import dagster as dg
import pandas as pd
from pydantic import Field

from alphaplus_mlops.alerting.rules import check_live_decay
from alphaplus_mlops.core.backtest import median_bars_per_year
from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.live_metrics import DEFAULT_WINDOWS, realized_outcomes, rolling_windows
from alphaplus_mlops.defs.assets.evaluation import EvaluationConfig, cost_bps_for
from alphaplus_mlops.defs.assets.live import live_signals
from alphaplus_mlops.defs.assets.market import market_bars
from alphaplus_mlops.defs.partitions import family_partitions
from alphaplus_mlops.defs.plots import equity_plot_markdown
from alphaplus_mlops.defs.resources import PostgresResource
from alphaplus_mlops.store.bars import load_bars
from alphaplus_mlops.store.live import (
    label_configs,
    offline_evaluation,
    pending_series,
    realized_series,
    realized_window,
    record_outcomes,
    record_windows,
)
from alphaplus_mlops.store.versions import current_champion, get_model_version

ROLES = ("champion", "challenger", "previous")


class OutcomesConfig(dg.Config):
    cost_bps: float | None = Field(
        default=None,
        description="One-way cost in bps of the paper P&L; default: the cost_bps of the "
        "business_metrics gate row (the cost the offline evaluation charged), else 5.",
    )


@dg.asset(
    partitions_def=family_partitions,
    deps=[market_bars, live_signals],
    group_name="live",
    description="Fills each logged prediction whose label interval has ended (t1 <= the "
    "symbol's latest stored bar) with its realized forward return and label, by its "
    "model's own label definition, and its paper P&L net of the business gate's costs.",
)
def prediction_outcomes(
    context: dg.AssetExecutionContext, config: OutcomesConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    db, family = postgres.db, context.partition_key
    pending = pending_series(db, family)
    cost = cost_bps_for(db, EvaluationConfig(cost_bps=config.cost_bps))
    realized = {role: 0 for role in ROLES}
    if not pending.empty:
        configs = label_configs(db, sorted(pending["model_version_id"].unique()))
        bars = load_bars(db, sorted(pending["symbol"].unique()))
        parts = [
            realized_outcomes(rows, bars, LabelConfig(**configs[version]), cost)
            for version, rows in pending.groupby("model_version_id")
            if version in configs  # a version without a dataset has no label to realize
        ]
        realized.update(record_outcomes(db, pd.concat(parts)) if parts else {})
    return dg.MaterializeResult(
        metadata={
            "rows_realized": sum(realized.values()),
            **{f"realized_{role}": n for role, n in realized.items()},
            "cost_bps": cost,
        }
    )


class LivePerformanceConfig(dg.Config):
    windows: list[int] = Field(
        default=list(DEFAULT_WINDOWS), description="Rolling window lengths, in bars."
    )


@dg.asset(
    partitions_def=family_partitions,
    deps=[prediction_outcomes],
    group_name="live",
    description="Rolling live metrics (hit rate, ROC-AUC, log loss, Brier, net Sharpe, PSR(0), "
    "drawdown, counts) per version and role over realized predictions, in "
    "real_time_model_performance, beside the versions' offline expectations.",
)
def live_performance(
    context: dg.AssetExecutionContext, config: LivePerformanceConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    db = postgres.db
    windows = tuple(sorted(set(config.windows)))
    family = context.partition_key
    lines, curves, served = [], [], {}
    for series in realized_series(db, family):
        version_id, role = series["model_version_id"], series["role"]
        rows = realized_window(db, version_id, role, max(windows))
        bars = load_bars(db, sorted(rows["symbol"].unique()))
        results = rolling_windows(rows, median_bars_per_year(bars), windows)
        record_windows(db, version_id, role, results)
        served[str(version_id), role] = results
        version = get_model_version(db, version_id)
        offline = offline_evaluation(db, version_id)
        lines += [_table_row(version["version"], role, w, offline) for w in results]
        net = rows.groupby("bar_ts")["realized_net_return"].mean()
        curves.append((f"v{version['version']} {role}", (1 + net).cumprod()))
    champion = current_champion(db, family)
    decay = check_live_decay(
        db,
        family=family,
        champion=(str(champion["id"]), champion["version"]) if champion else None,
        windows=served.get((str(champion["id"]), "champion"), []) if champion else [],
    )
    metadata = {
        "series": len(curves),
        "windows": ", ".join(f"{w}b" for w in windows),
        "live_performance_decay_alert": decay.sentence() if decay else "none",
    }
    if lines:
        metadata["live_vs_offline"] = dg.MetadataValue.md(_TABLE_HEAD + "\n".join(lines))
        metadata["live_equity"] = dg.MetadataValue.md(_equity_plot(curves))
    return dg.MaterializeResult(metadata=metadata)


_TABLE_HEAD = (
    "| version | role | window | bars | hit rate | AUC | log loss | Brier | net Sharpe | PSR(0) "
    "| max DD | offline AUC | offline net Sharpe | offline max DD |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def _table_row(version: int, role: str, w, offline: dict | None) -> str:
    m, ml, business = w.metrics, {}, {}
    if offline:
        ml, business = offline["ml_metrics"] or {}, offline["business_metrics"] or {}

    def f(value, spec=".3f"):
        return "-" if value is None or value != value else format(value, spec)

    return (
        f"| v{version} | {role} | {w.label} | {m['n_bars']} | {f(m['hit_rate'])} "
        f"| {f(m['roc_auc'])} | {f(m['log_loss'])} | {f(m['brier'])} | {f(m['net_sharpe'], '.2f')} "
        f"| {f(m['probabilistic_sharpe'])} | {f(m['max_drawdown'], '.1%')} "
        f"| {f(ml.get('roc_auc'))} | {f(business.get('net_sharpe'), '.2f')} "
        f"| {f(business.get('max_drawdown'), '.1%')} |"
    )


def _equity_plot(curves: list[tuple[str, pd.Series]]) -> str:
    return equity_plot_markdown(curves, "live equity, net of costs", "live equity")
