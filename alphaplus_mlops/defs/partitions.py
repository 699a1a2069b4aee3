import dagster as dg

from alphaplus_mlops.families import family_names

# One partition per registered family, fixed when the definitions are imported.
family_partitions = dg.StaticPartitionsDefinition(family_names())
