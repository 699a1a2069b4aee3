"""Model families behind one interface (base.py), known by name (registry.py).

Adding a family: a module in this folder with a class that has the ModelFamily interface,
and one line below. Nothing outside this folder names a family.
"""

from alphaplus_mlops.families.base import ModelFamily, TrainingKnobs
from alphaplus_mlops.families.registry import (
    FamilyRegistryError,
    family_names,
    get_family,
    register_family,
    register_family_class,
)

register_family_class("catboost", "alphaplus_mlops.families.catboost_family:CatBoostFamily")
register_family_class("xgboost", "alphaplus_mlops.families.xgboost_family:XGBoostFamily")
register_family_class("lightgbm", "alphaplus_mlops.families.lightgbm_family:LightGBMFamily")

__all__ = [
    "FamilyRegistryError",
    "ModelFamily",
    "TrainingKnobs",
    "family_names",
    "get_family",
    "register_family",
    "register_family_class",
]
