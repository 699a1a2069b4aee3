"""Watching live models: drift statistics, live performance, change detection and
sequential champion/challenger tests. Pure functions like core/: no Dagster, no database.

The sensors, alerts and reports that act on them live in defs/; the tables they read and
write are reached through store/.
"""
