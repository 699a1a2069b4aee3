from alphaplus_mlops.defs import build_definitions

defs = build_definitions()
