"""A replay scenario: the market, the clock, the model and the policies to compare, read
from a small TOML file (a few are shipped in ``replay/scenarios``). Pure: no Dagster, no
database."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from alphaplus_mlops.data.simulator import SimulationConfig

POLICIES = ("automated", "frozen", "calendar", "calendar_rolling")
SOURCES = ("simulator", "packaged")


class ScenarioError(ValueError):
    """The scenario file is unreadable or says something the replay cannot do."""


@dataclass(frozen=True)
class DataSpec:
    source: str = "simulator"
    """simulator (seeded, with a break) or packaged (the S&P 500 / NASDAQ sample bars)."""
    seed: int = 1
    symbols: int | tuple[str, ...] = 10
    """A count of simulated symbols, or the names of packaged ones."""
    bars: int = SimulationConfig.n_bars
    break_fraction: float = SimulationConfig.break_fraction
    signal_strength: float = SimulationConfig.signal_strength
    """The simulator's own defaults unless the file says otherwise."""


@dataclass(frozen=True)
class ClockSpec:
    start_bar: int = 756
    """Index of the first bar the policies serve (the bars before it are history)."""
    end_bar: int | None = None
    """Index after the last bar served (None: every bar with a realized label)."""
    step_bars: int = 5
    """Bars per tick: the live loop's batch (a week of daily bars)."""


@dataclass(frozen=True)
class ModelSpec:
    family: str = "lightgbm"
    rounds: int = 60
    max_depth: int = 3
    """Tree depth, as train_model's config names it (lightgbm: 2**depth - 1 leaves)."""
    learning_rate: float = 0.05
    label_horizon: int = 1
    cost_bps: float = 5.0
    cv_splits: int = 4


@dataclass(frozen=True)
class PolicySpec:
    names: tuple[str, ...] = POLICIES
    calendar_every_bars: int = 63
    rolling_window_bars: int = 504
    """The window of calendar_rolling and of the first model of every policy but calendar's
    expanding one (automated retrains on its trigger row's window)."""
    time_trigger_days: int = 0
    """automated: the model-age schedule's limit, 0 for off (the schedule's default): with
    it, no champion or one older than this retrains at the next tick."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    clock: ClockSpec = field(default_factory=ClockSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    policies: PolicySpec = field(default_factory=PolicySpec)

    def identity(self) -> dict:
        """What a resumed replay must share with the one it resumes: everything but its
        end (a replay may be extended), as JSON values."""
        sections = {"name": self.name}
        for name in ("data", "clock", "model", "policies"):
            sections[name] = json.loads(json.dumps(_as_dict(getattr(self, name))))
        del sections["clock"]["end_bar"]
        return sections

    def with_seed(self, seed: int) -> Scenario:
        return Scenario(
            self.name,
            self.description,
            DataSpec(**{**_as_dict(self.data), "seed": seed}),
            self.clock,
            self.model,
            self.policies,
        )


def _as_dict(spec) -> dict:
    return {f.name: getattr(spec, f.name) for f in fields(spec)}


def _section(cls, raw: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ScenarioError(
            f"[{where}] has unknown keys {', '.join(unknown)}; known: {', '.join(known)}"
        )
    values = {}
    for name, value in raw.items():
        default = getattr(cls(), name)
        if isinstance(value, list):
            value = tuple(value)
        expected = type(default) if default is not None else int
        if name == "symbols":
            ok = (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, tuple) and value and all(isinstance(v, str) for v in value)
            )
        elif expected is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, expected) and not isinstance(value, bool)
        if not ok:
            raise ScenarioError(
                f"[{where}] {name} = {value!r}: expected {expected.__name__}"
                + (" or a list of symbol names" if name == "symbols" else "")
            )
        values[name] = value
    return cls(**values)


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """A Scenario from TOML text; ScenarioError names the problem and the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source} is not valid TOML: {exc}") from exc
    top = {"name", "description", "data", "clock", "model", "policies"}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ScenarioError(f"{source}: unknown keys {', '.join(unknown)}")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ScenarioError(f"{source}: a scenario needs a name")
    scenario = Scenario(
        name=raw["name"],
        description=str(raw.get("description", "")),
        data=_section(DataSpec, raw.get("data", {}), "data"),
        clock=_section(ClockSpec, raw.get("clock", {}), "clock"),
        model=_section(ModelSpec, raw.get("model", {}), "model"),
        policies=_section(PolicySpec, raw.get("policies", {}), "policies"),
    )
    validate(scenario)
    return scenario


def validate(s: Scenario) -> None:
    problems = []
    if s.data.source not in SOURCES:
        problems.append(f"data.source {s.data.source!r} is not one of {', '.join(SOURCES)}")
    if s.data.source == "simulator" and not isinstance(s.data.symbols, int):
        problems.append("data.symbols must be a count for the simulator")
    if s.data.source == "packaged" and isinstance(s.data.symbols, int):
        problems.append('data.symbols must name the packaged symbols (e.g. ["SPY"])')
    if isinstance(s.data.symbols, int) and s.data.symbols < 1:
        problems.append("data.symbols must be at least 1")
    if not 0.0 < s.data.break_fraction < 1.0:
        problems.append("data.break_fraction must lie strictly between 0 and 1")
    unknown = [p for p in s.policies.names if p not in POLICIES]
    if unknown or not s.policies.names:
        problems.append(
            f"policies.names {list(s.policies.names)}: each one of {', '.join(POLICIES)}"
        )
    for name, value in (
        ("clock.step_bars", s.clock.step_bars),
        ("policies.calendar_every_bars", s.policies.calendar_every_bars),
        ("policies.rolling_window_bars", s.policies.rolling_window_bars),
        ("model.rounds", s.model.rounds),
        ("model.label_horizon", s.model.label_horizon),
    ):
        if value < 1:
            problems.append(f"{name} must be at least 1, got {value}")
    if s.clock.start_bar < s.policies.rolling_window_bars // 2:
        problems.append(
            f"clock.start_bar {s.clock.start_bar} leaves too little history for a first "
            f"model (at least half of policies.rolling_window_bars, "
            f"{s.policies.rolling_window_bars // 2})"
        )
    if s.clock.end_bar is not None and s.clock.end_bar <= s.clock.start_bar:
        problems.append("clock.end_bar must come after clock.start_bar")
    if s.model.cost_bps < 0:
        problems.append("model.cost_bps must not be negative")
    if problems:
        raise ScenarioError(f"scenario {s.name!r}: " + "; ".join(problems))


def shipped_scenarios() -> list[str]:
    folder = resources.files("alphaplus_mlops.replay") / "scenarios"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"no scenario file at {path}")
        return parse_scenario(path.read_text(encoding="utf-8"), str(path))
    shipped = resources.files("alphaplus_mlops.replay") / "scenarios" / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise ScenarioError(
            f"no shipped scenario {str(name_or_path)!r}; shipped: {', '.join(shipped_scenarios())}"
        )
    return parse_scenario(shipped.read_text(encoding="utf-8"), f"{name_or_path}.toml")
