"""Which model families exist: the one list the assets, CLI, schedules and reports read."""

from __future__ import annotations

from alphaplus_mlops.families.base import ModelFamily

_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Make ``family`` trainable everywhere (partitions, CLI, schedule, status)."""
    if not family.name or not family.name.replace("_", "").isalnum():
        raise ValueError(f"a family name must be letters, digits and '_', got {family.name!r}")
    existing = _FAMILIES.get(family.name)
    if existing is not None and type(existing) is not type(family):
        raise ValueError(f"family {family.name!r} is already registered by {type(existing)}")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    if name not in _FAMILIES:
        raise ValueError(f"unknown model family {name!r}; choose from {family_names()}")
    return _FAMILIES[name]


def family_names() -> list[str]:
    """Registered family names, in registration order."""
    return list(_FAMILIES)
