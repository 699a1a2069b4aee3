"""Which model families exist: the one list the assets, CLI, schedules and reports read.

Families are known by name and built on first use, so reading the list (the CLI's
`--family`, the status table) does not import every boosting library. The list is closed
once the Dagster definitions have made a partition per family: a family registered later
could be asked for by the CLI or the schedule without being a partition, so it is refused.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from alphaplus_mlops.families.base import ModelFamily

FAMILY_NAME = re.compile(r"[A-Za-z0-9_]+")
"""The form of a family name: a partition key, and what sql/006 allows in the tables."""

_FACTORIES: dict[str, Callable[[], ModelFamily]] = {}
_BUILT: dict[str, ModelFamily] = {}
_CLOSED_BY: list[str] = []


class FamilyRegistryError(ValueError):
    """A family cannot be registered, or is not registered."""


def _add(name: str, factory: Callable[[], ModelFamily]) -> None:
    if not FAMILY_NAME.fullmatch(name):
        raise FamilyRegistryError(
            f"a family name must be ASCII letters, digits and '_', got {name!r}"
        )
    if _CLOSED_BY:
        raise FamilyRegistryError(
            f"family {name!r} registered after {_CLOSED_BY[0]} made the partitions: "
            "register families in alphaplus_mlops/families/__init__.py, before the "
            "Dagster definitions are imported"
        )
    if name in _FACTORIES:
        raise FamilyRegistryError(f"family {name!r} is already registered")
    _FACTORIES[name] = factory


def register_family_class(name: str, target: str) -> None:
    """Register a family by ``"module:Class"``; the module is imported on first use."""
    module_name, _, class_name = target.partition(":")

    def build() -> ModelFamily:
        return getattr(importlib.import_module(module_name), class_name)()

    _add(name, build)


def register_family(family: ModelFamily) -> ModelFamily:
    """Register a family instance (its module is already imported)."""
    _add(family.name, lambda: family)
    return family


def get_family(name: str) -> ModelFamily:
    if name not in _FACTORIES:
        raise FamilyRegistryError(f"unknown model family {name!r}; choose from {family_names()}")
    if name not in _BUILT:
        _BUILT[name] = _FACTORIES[name]()
    return _BUILT[name]


def family_names() -> list[str]:
    """Registered family names, in registration order."""
    return list(_FACTORIES)


def close_registry(by: str) -> list[str]:
    """The family names, after which no family may be added (``by`` says who closed it)."""
    if not _CLOSED_BY:
        _CLOSED_BY.append(by)
    return family_names()
