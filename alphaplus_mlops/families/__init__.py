"""Model families behind one interface. Adding a family: a module here, one line below."""

from alphaplus_mlops.families.base import ModelFamily, TrainingKnobs
from alphaplus_mlops.families.catboost_family import CatBoostFamily
from alphaplus_mlops.families.lightgbm_family import LightGBMFamily
from alphaplus_mlops.families.registry import family_names, get_family, register_family
from alphaplus_mlops.families.xgboost_family import XGBoostFamily

for _family in (CatBoostFamily(), XGBoostFamily(), LightGBMFamily()):
    register_family(_family)

__all__ = ["ModelFamily", "TrainingKnobs", "family_names", "get_family", "register_family"]
