"""The application layer: the CLI, the demo, readable reports and the Dagster environment."""
