"""Alerts that reach a person: rule conditions evaluated (rules), deliveries drained to
their channels (delivery). Rows and their lifecycle live in store.alerts."""
