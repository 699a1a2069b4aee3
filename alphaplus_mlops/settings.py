"""One typed settings object, read from the environment once.

Every environment variable the project understands is named here, so that the README,
the CLI and the Dagster resources agree on one list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DATABASE_URL = "ALPHAPLUS_DATABASE_URL"
ENV_HOME = "ALPHAPLUS_HOME"
ENV_DAGSTER_PG_URL = "ALPHAPLUS_DAGSTER_PG_URL"
ENV_DAGSTER_STORAGE = "ALPHAPLUS_DAGSTER_STORAGE"
ENV_MARKET_SOURCES = "ALPHAPLUS_MARKET_SOURCES"
ENV_SIM_SYMBOLS = "ALPHAPLUS_SIM_SYMBOLS"
ENV_SIM_SEED = "ALPHAPLUS_SIM_SEED"
ENV_SIM_BARS = "ALPHAPLUS_SIM_BARS"

DEFAULT_MARKET_SOURCES = ("sample", "simulator")
DEFAULT_SIM_SYMBOLS = ("SIM1",)
DEFAULT_SIM_SEED = 7
DEFAULT_SIM_BARS = 2520


class SettingsError(ValueError):
    """An environment variable holds a value the project cannot use."""


def _csv(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None or not value.strip():
        return default
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _positive_int(name: str, value: str | None, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from exc
    if number <= 0:
        raise SettingsError(f"{name} must be positive, got {number}")
    return number


@dataclass(frozen=True)
class Settings:
    """What the environment says. Build it with :func:`Settings.from_env`."""

    database_url: str | None
    home: Path
    market_sources: tuple[str, ...] = DEFAULT_MARKET_SOURCES
    sim_symbols: tuple[str, ...] = DEFAULT_SIM_SYMBOLS
    sim_seed: int = DEFAULT_SIM_SEED
    sim_bars: int = DEFAULT_SIM_BARS

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_data_dir(self) -> Path:
        return self.home / "pg"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def dagster_storage_dir(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get(ENV_DATABASE_URL) or None
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise SettingsError(
                f"{ENV_DATABASE_URL} must be a postgresql:// URL, got a value starting "
                f"with {url.split(':', 1)[0]!r}"
            )
        home = Path(env.get(ENV_HOME) or ".alphaplus").expanduser().resolve()
        sources = _csv(env.get(ENV_MARKET_SOURCES), DEFAULT_MARKET_SOURCES)
        unknown = sorted(set(sources) - {"sample", "simulator"})
        if unknown:
            raise SettingsError(
                f"{ENV_MARKET_SOURCES} accepts 'sample' and 'simulator', got {unknown}"
            )
        return cls(
            database_url=url,
            home=home,
            market_sources=sources,
            sim_symbols=_csv(env.get(ENV_SIM_SYMBOLS), DEFAULT_SIM_SYMBOLS),
            sim_seed=_positive_int(ENV_SIM_SEED, env.get(ENV_SIM_SEED), DEFAULT_SIM_SEED),
            sim_bars=_positive_int(ENV_SIM_BARS, env.get(ENV_SIM_BARS), DEFAULT_SIM_BARS),
        )
