import dagster as dg

from alphaplus_mlops.families.base import FAMILIES

family_partitions = dg.StaticPartitionsDefinition(list(FAMILIES))
