import dagster as dg

from alphaplus_mlops.families.registry import close_registry

# One partition per registered family. The registry closes here: a family added after this
# line could not be trained, so registering one then is refused with a message.
family_partitions = dg.StaticPartitionsDefinition(close_registry(by="defs/partitions.py"))
