"""The fast replay: the policies driven through time on the pure core (no Dagster, no
database), for research over many seeds.

Every ``step_bars`` bars a tick: what is known then is every bar up to it and every label
that has ended by it. A policy may train at a tick (on rows whose label ended by then,
within its window) and the model it keeps serves the bars up to the next tick. The served
probabilities of all bars become one cost-aware backtest per policy (the trading rule and
costs of the business gate), so every policy is judged on the same rows the same way.

``automated`` is the project's loop as the database configures it (``gates``, ``trigger``):
the first model and every candidate go through the absolute gates (model_performance,
business_metrics: core.gates on the candidate's out-of-fold evaluation) and the deployment
decision (core.decision, on paired tests of the candidate's procedure refit after the
champion's training against the champion on the same bars); the performance trigger's CUSUM,
frozen per version from its out-of-fold per-bar net returns as performance_watch does, with
the sensor's cooldown, budget and training window (monitoring.retrain_policy); a shadowed
candidate answers beside the champion until the live experiment's verdict
(core.experiment) promotes or stops it; with ``time_trigger_days``, the model-age schedule.
Without a champion nothing answers and the desk is flat. Not here yet: the drift trigger
and probation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from alphaplus_mlops.core.backtest import backtest_signal
from alphaplus_mlops.core.decision import ComparisonRule, decide
from alphaplus_mlops.core.experiment import ExperimentRule, judge_experiment
from alphaplus_mlops.core.gates import judge
from alphaplus_mlops.core.labels import LabelConfig
from alphaplus_mlops.core.paired import log_loss_per_row
from alphaplus_mlops.core.splits import WalkForward
from alphaplus_mlops.data.simulator import SimulationConfig, simulate_market
from alphaplus_mlops.data.sources import load_packaged_sample
from alphaplus_mlops.families import get_family
from alphaplus_mlops.families.base import TrainingKnobs, training_params
from alphaplus_mlops.modeling.assessment import (
    compare_on_rows,
    evaluate_predictions,
    rows_to_judge,
)
from alphaplus_mlops.modeling.datasets import Dataset, build_dataset, instants
from alphaplus_mlops.modeling.fitting import (
    RefitSchedule,
    cross_validate,
    final_fit,
    refit_blocks,
    refit_predictions,
)
from alphaplus_mlops.monitoring.change_detection import Detector, calibrate_detector, fall_began
from alphaplus_mlops.monitoring.retrain_policy import (
    retrain_verdict,
    retrain_window,
    window_after_change,
)
from alphaplus_mlops.replay.scenario import Scenario
from alphaplus_mlops.retraining.performance_watch import DEFAULTS as PERFORMANCE_DEFAULTS

MODEL_GATES = ("model_performance", "business_metrics")
"""The gates a candidate is judged on here (data quality and ONNX serving judge the data and
the exported files, not the policy: the Dagster engine will run them)."""


@dataclass(frozen=True)
class ReplayMarket:
    dataset: Dataset
    """Features and labels of every symbol and bar, built once (features are causal)."""
    times: pd.DatetimeIndex
    """Every bar time, sorted."""
    break_ts: pd.Timestamp | None


def scenario_bars(scenario: Scenario) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Every bar of the scenario's market (OHLCV), and its break when known."""
    data = scenario.data
    if data.source == "simulator":
        config = SimulationConfig(
            n_bars=data.bars,
            break_fraction=data.break_fraction,
            signal_strength=data.signal_strength,
        )
        symbols = [f"S{i:02d}" for i in range(int(data.symbols))]
        market = simulate_market(symbols, seed=data.seed, config=config)
        return market.bars, market.break_ts
    return load_packaged_sample(tuple(data.symbols)), None


def prepare_market(scenario: Scenario) -> ReplayMarket:
    bars, break_ts = scenario_bars(scenario)
    dataset = build_dataset(bars, LabelConfig(horizon=scenario.model.label_horizon))
    times = pd.DatetimeIndex(dataset.frame["ts"].unique()).sort_values()
    return ReplayMarket(dataset, times, break_ts)


@dataclass(frozen=True)
class Event:
    """One decision a policy took, with its reason: a line of the replay's output."""

    ts: pd.Timestamp
    policy: str
    kind: str
    """train | promote | shadow | keep_champion | reject | alarm | refused |
    experiment_promote | experiment_stop | experiment_expired"""
    version: int | None
    reason: str

    def as_tuple(self) -> tuple:
        return (self.ts, self.policy, self.kind, self.version)


@dataclass
class PolicyRun:
    policy: str
    served: pd.DataFrame
    """Every served row: KEY columns, close, label, proba and the version that answered."""
    returns: pd.Series
    """Per-bar net returns of the served signal (the backtest's, mean over symbols)."""
    events: list[Event] = field(default_factory=list)
    compute_seconds: float = 0.0
    cutoffs: dict[int, pd.Timestamp] = field(default_factory=dict)
    """Per version, the tick it was trained at: every label it learned from had ended by
    then, and it answers only bars after it."""

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.events)


@dataclass
class _Model:
    version: int
    model: object
    window_end: pd.Timestamp
    """The last bar of its training window (its labels ended by then)."""
    trained_at: int
    """Index of the bar at whose tick it was trained."""
    oof: pd.DataFrame | None = None
    """Its walk-forward out-of-fold rows (automated only: gates and detector)."""
    detector: Detector | None = None
    last_alarm: pd.Timestamp | None = None
    alarms: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    """(alarm bar, change bar) of its performance alarms, oldest first."""


def _rows(dataset: Dataset, keep: np.ndarray) -> Dataset:
    return Dataset(
        dataset.frame[keep].reset_index(drop=True), dataset.features, dataset.label_config
    )


class _Trainer:
    """Trains models of the scenario's family on windows of the market, timing the fits."""

    def __init__(self, scenario: Scenario, market: ReplayMarket):
        self.scenario, self.market = scenario, market
        self.family = get_family(scenario.model.family)
        # As train_model derives them from its config (the Dagster replay's runs).
        self.params = training_params(
            self.family,
            TrainingKnobs(
                scenario.model.rounds, scenario.model.learning_rate, scenario.model.max_depth
            ),
        )
        self.seconds = 0.0
        self.versions = 0
        self.cutoffs: dict[int, pd.Timestamp] = {}
        self.t1 = market.dataset.label_times[1]
        self.ts = instants(market.dataset.frame["ts"])

    def window(self, at: int, window_bars: int | None) -> Dataset:
        """Rows whose label ended by bar ``at``, from ``window_bars`` bars before it."""
        now = self.market.times[at].to_datetime64()
        keep = self.t1 <= now
        if window_bars is not None:
            keep &= self.ts >= self.market.times[max(0, at - window_bars)].to_datetime64()
        return _rows(self.market.dataset, keep)

    def train(self, at: int, window_bars: int | None, *, with_oof: bool) -> tuple[_Model, Dataset]:
        started = time.process_time()
        data = self.window(at, window_bars)
        oof = None
        if with_oof:
            splitter = WalkForward(
                n_splits=self.scenario.model.cv_splits,
                gap=self.scenario.model.label_horizon,
                min_train_size=50,
            )
            oof = cross_validate(self.family, data, self.params, splitter).oof
        model = final_fit(self.family, data, self.params).model
        self.seconds += time.process_time() - started
        self.versions += 1
        self.cutoffs[self.versions] = self.market.times[at]
        return _Model(self.versions, model, pd.Timestamp(data.frame["ts"].max()), at, oof), data

    def predict(self, model: _Model, rows: pd.DataFrame) -> np.ndarray:
        started = time.process_time()
        x = rows[self.market.dataset.features].to_numpy(dtype=np.float32)
        p = self.family.predict_proba(model.model, x)
        self.seconds += time.process_time() - started
        return p


def replay_ticks(scenario: Scenario, market: ReplayMarket) -> list[int]:
    """Bar indices of the ticks: from start_bar every step_bars, and the last bar served."""
    last = min(scenario.clock.end_bar or len(market.times), len(market.times)) - 1
    return [*range(scenario.clock.start_bar, last, scenario.clock.step_bars), last]


class Policy:
    """When to train and what to keep; the loop serves whatever ``champion`` is."""

    name: str

    def __init__(self, scenario: Scenario, trainer: _Trainer, events: list[Event]):
        self.scenario, self.trainer, self.events = scenario, trainer, events
        self.champion: _Model | None = None
        self.challenger: _Model | None = None
        """Answers in shadow (automated only): its outcomes are paired with the champion's."""

    def log(self, at: int, kind: str, version: int | None, reason: str) -> None:
        ts = self.trainer.market.times[at]
        self.events.append(Event(ts, self.name, kind, version, reason))

    def start(self, at: int) -> None:
        window = None if self.name == "calendar" else self.scenario.policies.rolling_window_bars
        self.champion, _ = self.trainer.train(at, window, with_oof=False)
        self.log(at, "train", self.champion.version, "first model")
        self.log(at, "promote", self.champion.version, "first model of the replay")

    def tick(self, at: int, answers: pd.DataFrame) -> None:
        """Called at every tick after the first; ``answers`` holds every answer so far
        (the rows, proba, version and role)."""


class Frozen(Policy):
    name = "frozen"


class Calendar(Policy):
    """Retrain every ``calendar_every_bars`` on an expanding (calendar) or rolling window."""

    name = "calendar"
    window: int | None = None

    def tick(self, at: int, answers: pd.DataFrame) -> None:
        if at - self.champion.trained_at < self.scenario.policies.calendar_every_bars:
            return
        self.champion, _ = self.trainer.train(at, self.window, with_oof=False)
        every = self.scenario.policies.calendar_every_bars
        self.log(at, "train", self.champion.version, f"every {every} bars")
        self.log(at, "promote", self.champion.version, f"calendar: every {every} bars")


class CalendarRolling(Calendar):
    name = "calendar_rolling"

    def __init__(self, *args):
        super().__init__(*args)
        self.window = self.scenario.policies.rolling_window_bars


class Automated(Policy):
    """The performance trigger, the gates, the deployment decision and the live experiment
    (module docstring)."""

    name = "automated"

    def __init__(self, scenario, trainer, events, gates: dict, trigger: dict):
        super().__init__(scenario, trainer, events)
        self.config = {**PERFORMANCE_DEFAULTS, **(trigger.get("config") or {})}
        self.gates = gates
        self.trigger = {"name": "performance_degradation", **trigger, "config": self.config}
        self.rule = ComparisonRule.from_gate(gates.get("champion_comparison"))
        self.refits = RefitSchedule.from_gate(gates.get("champion_comparison"))
        self.experiment_rule = ExperimentRule.from_gate(gates.get("live_experiment"))
        self.experiment_from: pd.Timestamp | None = None
        self.last_trained = 0
        """Bar index of the latest training (the model-age schedule counts from it)."""
        self.fired: list[datetime] = []
        """When the trigger requested retrains, oldest first."""
        business = (gates.get("business_metrics") or {}).get("config") or {}
        self.cost = float(business.get("cost_bps", scenario.model.cost_bps))

    def start(self, at: int) -> None:
        self._train_and_decide(at, "first model of the replay", None, retrain_window(self.trigger))

    def _freeze(self, model: _Model) -> None:
        oof = model.oof
        returns = evaluate_predictions(oof, oof["proba"].to_numpy(), self.cost, 0.0).returns
        model.detector = calibrate_detector(
            returns.to_numpy(),
            metric="net_return",
            shift_sd=float(self.config["shift_sd"]),
            false_alarm_probability=float(self.config["false_alarm_probability"]),
            horizon_bars=int(self.config["horizon_bars"]),
            block_bars=int(self.config["block_bars"]),
            seed=model.version,
        )

    def _returns(self, rows: pd.DataFrame) -> pd.Series:
        """Per-bar net returns of answered rows: the backtest alone (every tick reads them;
        the ML metrics evaluate_predictions adds are not needed here)."""
        if rows.empty:
            return pd.Series(dtype=float)
        return backtest_signal(rows, cost_bps=self.cost)[1]

    def tick(self, at: int, answers: pd.DataFrame) -> None:
        now = self.trainer.market.times[at]
        realized = answers[answers["t1"] <= now]
        if self.challenger is not None:
            self._judge_experiment(at, realized)
        if self.champion is not None:
            self._watch_champion(at, realized)
        self._model_age(at)

    def _model_age(self, at: int) -> None:
        """model_age_schedule, when the scenario turns it on (its default is off): retrain
        when there is no champion, or when the champion has served longer than the limit,
        and the family has not trained within it."""
        days = self.scenario.policies.time_trigger_days
        if not days:
            return
        times = self.trainer.market.times
        # As stale_families: a training within the limit answered it, promoted or not.
        if times[at] - times[self.last_trained] <= pd.Timedelta(days=days):
            return
        if self.champion is None:
            why = "no champion"
        elif times[at] - times[self.champion.trained_at] > pd.Timedelta(days=days):
            why = f"champion v{self.champion.version} older than {days} days"
        else:
            return
        self._train_and_decide(at, f"time trigger: {why}", None, retrain_window(self.trigger))

    def _judge_experiment(self, at: int, realized: pd.DataFrame) -> None:
        """ab_evaluation: the challenger's and the champion's outcomes on the same bars."""
        since = realized[realized["ts"] > self.experiment_from]
        mine = since[since["version"] == self.challenger.version]
        theirs = since[since["version"] == self.champion.version]
        theirs = theirs.merge(mine[["symbol", "ts"]], on=["symbol", "ts"])
        if mine.empty or theirs.empty:
            return
        a, b = self._returns(mine), self._returns(theirs)
        both = a.to_frame("a").join(b.to_frame("b"), how="inner")
        labels = mine["label"].to_numpy(dtype=float)
        verdict = judge_experiment(
            both["a"].to_numpy(),
            both["b"].to_numpy(),
            float(log_loss_per_row(labels, mine["proba"].to_numpy()).mean()),
            float(
                log_loss_per_row(
                    theirs["label"].to_numpy(dtype=float), theirs["proba"].to_numpy()
                ).mean()
            ),
            self.experiment_rule,
        )
        if verdict.outcome == "continue":
            return
        self.log(
            at, f"experiment_{verdict.outcome}", self.challenger.version, " ".join(verdict.reasons)
        )
        if verdict.outcome == "promote":
            self._freeze(self.challenger)
            self.champion, self.challenger = self.challenger, None
        else:
            self.challenger = None

    def _watch_champion(self, at: int, realized: pd.DataFrame) -> None:
        """performance_trigger_sensor: the champion's CUSUM over its bars since its last
        alarm; an alarm retrains, within the cooldown and the 30-day budget."""
        times = self.trainer.market.times
        answered = realized[
            (realized["version"] == self.champion.version) & (realized["role"] == "champion")
        ]
        # The live outcomes' returns, continuous from the version's first answer: restarting
        # the backtest at the last alarm would charge a spurious entry cost on its first bar.
        values = self._returns(answered)
        if self.champion.last_alarm is not None:
            values = values[values.index > self.champion.last_alarm]
        if len(values) < int(self.config["min_bars"]):
            return
        alarms = self.champion.detector.alarms(values.to_numpy())
        if not alarms:
            return
        first = alarms[0]
        self.champion.last_alarm = values.index[first.at]
        self.champion.alarms.append((values.index[first.at], values.index[first.change_at]))
        reason = (
            f"v{self.champion.version}: live net return fell from "
            f"{values.index[first.change_at]:%Y-%m-%d} (CUSUM {first.statistic:.1f} > "
            f"{self.champion.detector.h:.1f} at {values.index[first.at]:%Y-%m-%d})"
        )
        self.log(at, "alarm", self.champion.version, reason)
        now = times[at].to_pydatetime()
        verdict = retrain_verdict(
            trigger=self.trigger,
            requested_before=self.fired[::-1],
            run_in_flight=False,
            now=now,
            why=reason,
        )
        if not verdict.request:
            self.log(at, "refused", None, "; ".join(verdict.reasons))
            return
        self.fired.append(now)
        bars = pd.DatetimeIndex(answered["ts"].unique())
        began = fall_began(self.champion.alarms, bars)  # as performance_watch
        since = int((bars >= began).sum())
        window, over = window_after_change(self.trigger, since)
        self._train_and_decide(
            at, f"performance trigger: {reason}; retrained on {over}", began, window
        )

    def _train_and_decide(
        self, at: int, why: str, change: pd.Timestamp | None, window: int
    ) -> None:
        """train_model, its gates and deployment_decision: a promoted candidate becomes the
        champion, a shadowed one the challenger (its experiment starts now)."""
        candidate, data = self.trainer.train(at, window, with_oof=True)
        self.last_trained = at
        self.log(at, "train", candidate.version, why)
        oof = candidate.oof
        own = evaluate_predictions(oof, oof["proba"].to_numpy(), self.cost, 0.0)
        judgements = [
            judge(self.gates[name], {**own.ml, **own.business})
            for name in MODEL_GATES
            if name in self.gates
        ]
        passed = all(j.passed for j in judgements)
        summary = "; ".join(j.reason for j in judgements)
        has_champion = self.champion is not None
        comparison = self._compare(candidate, data, change) if passed and has_champion else None
        decision = decide(passed, summary, has_champion, comparison, self.rule)
        self.log(at, decision.outcome, candidate.version, " ".join(decision.reasons))
        if decision.outcome == "promote":
            self._freeze(candidate)
            self.champion = candidate
            self.challenger = None
        elif decision.outcome == "shadow":
            # A newer challenger's experiment replaces the older one.
            self.challenger, self.experiment_from = candidate, self.trainer.market.times[at]

    def _compare(
        self, candidate: _Model, data: Dataset, change: pd.Timestamp | None
    ) -> dict | None:
        """model_evaluation's comparison: the candidate's procedure refit on the bars after
        the champion's training (within the candidate's window), against the champion on the
        same bars; only the bars since the detected change when there are enough of them."""
        blocks = refit_blocks(data, self.champion.window_end, self.refits)
        started = time.process_time()
        shared = refit_predictions(self.trainer.family, data, self.trainer.params, blocks)
        self.trainer.seconds += time.process_time() - started
        if shared.empty:
            return None
        shared = shared.merge(data.frame[["symbol", "ts", *data.features]], on=["symbol", "ts"])
        shared = rows_to_judge(shared, change)
        if shared is None:
            return None
        champion_proba = self.trainer.predict(self.champion, shared)
        return compare_on_rows(shared, champion_proba, self.cost, 0.0)[2]


def replay_core(
    scenario: Scenario,
    policy: str,
    *,
    market: ReplayMarket | None = None,
    gates: dict | None = None,
    trigger: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PolicyRun:
    """Drive one policy through the scenario's clock. ``gates`` (quality_gates rows by
    name) and ``trigger`` (the performance trigger's row) configure ``automated`` as the
    database would; without them it runs on the trigger's defaults and judges no gate."""
    market = market or prepare_market(scenario)
    trainer = _Trainer(scenario, market)
    events: list[Event] = []
    classes = {"frozen": Frozen, "calendar": Calendar, "calendar_rolling": CalendarRolling}
    if policy == "automated":
        chosen: Policy = Automated(scenario, trainer, events, gates or {}, trigger or {})
    elif policy in classes:
        chosen = classes[policy](scenario, trainer, events)
    else:
        raise ValueError(f"unknown policy {policy!r}")
    ticks = replay_ticks(scenario, market)
    frame, times = market.dataset.frame, market.times
    parts: list[pd.DataFrame] = []
    answers = frame.iloc[:0].assign(proba=[], version=[], role=[])
    chosen.start(ticks[0])
    for i, (at, until) in enumerate(zip(ticks[:-1], ticks[1:], strict=True)):
        if i > 0:
            chosen.tick(at, answers)
        # The bars after this tick, up to and including the next one's, answered by the
        # models in office now (the next tick decides after its own bar is scored).
        span = frame[(frame["ts"] > times[at]) & (frame["ts"] <= times[until])]
        if chosen.champion is None and not span.empty:  # nothing may serve: the desk is flat
            parts.append(span.assign(proba=np.nan, version=0, role="champion"))
        for role, model in (("champion", chosen.champion), ("challenger", chosen.challenger)):
            if model is not None and not span.empty:
                proba = trainer.predict(model, span)
                parts.append(span.assign(proba=proba, version=model.version, role=role))
        if parts:
            answers = (
                pd.concat([answers, *parts], ignore_index=True)
                if len(answers)
                else pd.concat(parts, ignore_index=True)
            )
            parts = []
        if progress is not None:
            progress(i + 1, len(ticks) - 1)
    served = answers[answers["role"] == "champion"].reset_index(drop=True)
    # The backtest alone: a bar without a champion has no probability (flat, no ML metric).
    _, returns = backtest_signal(served, cost_bps=scenario.model.cost_bps)
    return PolicyRun(policy, served, returns, events, trainer.seconds, trainer.cutoffs)
