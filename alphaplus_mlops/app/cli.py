"""The ``alphaplus-mlops`` command line.

Heavy modules (Dagster, pandas, the model libraries) are imported inside the verbs that use
them, so `--help` and the database verbs answer at once. The family names come from the
registry without importing any model library.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import click

from alphaplus_mlops import run_tags
from alphaplus_mlops.app.processes import restore_default_signals, supervise
from alphaplus_mlops.distributed.celery_config import QUEUES
from alphaplus_mlops.families import family_names
from alphaplus_mlops.settings import (
    ENV_DAGSTER_PG_URL,
    ENV_DATABASE_URL,
    ENV_EXECUTOR,
    Settings,
    SettingsError,
)
from alphaplus_mlops.store import queries
from alphaplus_mlops.store.artifacts import open_artifact_store
from alphaplus_mlops.store.db import Database, connect, redact, resolve_database_url
from alphaplus_mlops.store.embedded import EmbeddedDatabaseError, stop_embedded
from alphaplus_mlops.store.migrations import (
    MigrationError,
    migrate,
    migrate_as_owner,
    prepare_schema,
)
from alphaplus_mlops.store.migrations import status as migration_status
from alphaplus_mlops.store.promotion import PromotionRefused, serving_at
from alphaplus_mlops.store.promotion import promote as promote_version
from alphaplus_mlops.store.promotion import rollback as rollback_family
from alphaplus_mlops.store.versions import current_champion, version_by_number


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def _database_url(settings: Settings) -> str:
    try:
        return resolve_database_url(settings)
    except EmbeddedDatabaseError as exc:
        raise click.ClickException(str(exc)) from exc


def _migrated_url(settings: Settings) -> str:
    url = _database_url(settings)
    try:
        prepare_schema(url, settings.migration_database_url)
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    return url


def _database(settings: Settings) -> Database:
    """The migrated database, to use in a ``with`` block (its pool closes at the end)."""
    return Database(_migrated_url(settings))


@click.group()
def main() -> None:
    """Continuous training for trading-signal models, on Dagster and PostgreSQL."""


# db ---------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database: embedded by default, or ALPHAPLUS_DATABASE_URL."""


@db.command("start")
def db_start() -> None:
    """Start the embedded server (no-op for an external ALPHAPLUS_DATABASE_URL)."""

    settings = _settings()
    url = _database_url(settings)
    with connect(url) as conn:
        version = conn.execute(queries.SERVER_VERSION).fetchone()["server_version"]
    where = "external" if settings.database_url else f"embedded in {settings.embedded_data_dir}"
    click.echo(f"PostgreSQL {version} running ({where})\n{redact(url)}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""

    settings = _settings()
    if settings.database_url:
        raise click.ClickException(
            "ALPHAPLUS_DATABASE_URL names an external server; it is not ours to stop"
        )
    stopped = stop_embedded(settings.embedded_data_dir)
    click.echo("stopped" if stopped else "the embedded server was not running")


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations from sql/, in order, each once.

    With ALPHAPLUS_MIGRATION_DATABASE_URL they are applied as that role, which then grants
    the runtime role (ALPHAPLUS_DATABASE_URL's user) data access only."""
    settings = _settings()
    url = _database_url(settings)
    try:
        if settings.migration_database_url:
            applied = migrate_as_owner(settings.migration_database_url, url)
        else:
            applied = migrate(url)
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    if applied:
        for migration in applied:
            click.echo(f"applied {migration.filename}")
    else:
        click.echo("nothing to apply: the schema is up to date")


@db.command("status")
def db_status() -> None:
    """List applied and pending migrations."""

    url = _database_url(_settings())
    try:
        states = migration_status(url)
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    for state in states:
        when = state.applied_at.isoformat(timespec="seconds") if state.applied else "pending"
        click.echo(f"{state.migration.filename:<40} {when}")


@db.command("url")
@click.option(
    "--show-password",
    is_flag=True,
    help="Print the URL as it is, password included (for a script's own use).",
)
def db_url(show_password: bool) -> None:
    """Print the database URL in use (starting the embedded server if needed), with any
    password masked unless --show-password."""
    url = _database_url(_settings())
    click.echo(url if show_password else redact(url))


# data -------------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Market data: import files, list what is stored."""


@data.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--symbol", help="Instrument name, when the file has no symbol column.")
@click.option(
    "--date-format",
    help="strptime format of the timestamps (e.g. %d/%m/%Y), when day-first and month-first "
    "both read every row. Default: one format inferred from the whole column.",
)
@click.option(
    "--timestamp-unit",
    type=click.Choice(["s", "ms", "us", "ns"]),
    help="What numeric timestamps count since 1970; required when they are numbers.",
)
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of a CSV.")
@click.option(
    "--delimiter", help="CSV field delimiter ('tab' for a tab). Default: from the header."
)
@click.option(
    "--decimal",
    type=click.Choice([".", ","]),
    help="Decimal mark of a CSV. Default: ',' when the delimiter is not a comma and a number "
    "holds a comma, else '.'.",
)
@click.option("--sort", is_flag=True, help="Accept rows out of time order (they are sorted).")
@click.option(
    "--allow-mixed-offsets",
    is_flag=True,
    help="Accept several UTC offsets in one file (local exchange time across DST changes).",
)
@click.option(
    "--allow-off-cadence", is_flag=True, help="Accept bars off the symbol's inferred cadence."
)
@click.option(
    "--max-jump",
    type=float,
    default=10.0,
    show_default=True,
    help="Largest accepted ratio between consecutive closes (either way) and of high to low.",
)
@click.option(
    "--future-tolerance",
    default="15min",
    show_default=True,
    help="How far past now a timestamp may be (e.g. 15min, 2h, 1d).",
)
@click.option(
    "--restate",
    is_flag=True,
    help="Replace stored bars that have other values; their old values are kept as revisions.",
)
def data_import(
    file: Path,
    symbol: str | None,
    date_format: str | None,
    timestamp_unit: str | None,
    encoding: str,
    delimiter: str | None,
    decimal: str | None,
    sort: bool,
    allow_mixed_offsets: bool,
    allow_off_cadence: bool,
    max_jump: float,
    future_tolerance: str,
    restate: bool,
) -> None:
    """Validate a CSV or Parquet OHLCV FILE and upsert it on (symbol, timestamp).

    Exit codes: 0 imported; 3 the input was refused (every problem named with its lines,
    nothing written); 2 a usage error; 1 a crash (e.g. the database is unreachable).
    """
    import pandas as pd
    import psycopg

    from alphaplus_mlops.data.sources import import_bar_file
    from alphaplus_mlops.data.validation import BarValidationError, ImportRules
    from alphaplus_mlops.store.bars import upsert_bars

    def refused(exc: Exception) -> click.ClickException:
        error = click.ClickException(str(exc))
        error.exit_code = 3
        return error

    if delimiter is not None:
        delimiter = "\t" if delimiter.lower() in ("tab", "\\t") else delimiter
        if len(delimiter) != 1:
            raise click.BadParameter("one character (or 'tab')", param_hint="--delimiter")
    try:
        tolerance = pd.Timedelta(future_tolerance)
        rules = ImportRules(
            date_format=date_format,
            timestamp_unit=timestamp_unit,
            allow_mixed_offsets=allow_mixed_offsets,
            allow_unsorted=sort,
            allow_off_cadence=allow_off_cadence,
            max_jump=max_jump,
            future_tolerance=tolerance,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        imported = import_bar_file(
            file, symbol, rules=rules, encoding=encoding, delimiter=delimiter, decimal=decimal
        )
        with _database(_settings()) as db:
            result = upsert_bars(
                db,
                imported.bars,
                source=imported.source,
                source_sha256=imported.sha256,
                restate=restate,
                rules=rules,
            )
    except BarValidationError as exc:
        raise refused(exc) from exc
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        raise click.ClickException(
            f"the import did not finish in time and wrote nothing ({type(exc).__name__}: "
            f"{exc}); another import may hold the import lock: try again"
        ) from exc
    click.echo(
        f"{file}: {result.received} bars, {result.inserted} new, {result.updated} restated, "
        f"{result.unchanged} unchanged"
    )


@data.command("summary")
def data_summary() -> None:
    """Bars per symbol with their time range."""
    from alphaplus_mlops.store.bars import summarize_bars

    with _database(_settings()) as db:
        _print_bar_summary(summarize_bars(db))


def _print_bar_summary(summary) -> None:
    if not summary:
        click.echo("no market bars stored yet")
        return
    click.echo(f"{'symbol':<10} {'bars':>7}  {'first':<10}  {'last':<10}  sources")
    for s in summary:
        click.echo(
            f"{s.symbol:<10} {s.bars:>7}  {s.first_ts.date()!s:<10}  {s.last_ts.date()!s:<10}"
            f"  {s.sources}"
        )


# market -----------------------------------------------------------------------------------


@main.group()
def market() -> None:
    """The market clock: move the replayed market forward."""


@market.command("advance")
@click.option("--to", "to", default=None, help="Reveal every bar up to this date (ISO).")
@click.option("--bars", "n_bars", default=None, type=click.IntRange(min=1), help="Bars to add.")
@click.option(
    "--from-file",
    "from_file",
    default=None,
    type=click.Path(path_type=Path),
    help="A CSV or Parquet file of bars held back to replay (default: ALPHAPLUS_REPLAY_FILE; "
    "neither: the simulator).",
)
@click.option("--symbol", help="Instrument name, when the file has no symbol column.")
def market_advance(
    to: str | None, n_bars: int | None, from_file: Path | None, symbol: str | None
) -> None:
    """Reveal the next bars of the replay source after each symbol's last stored bar into
    market_bars. The source is a file of bars held back (--from-file or
    ALPHAPLUS_REPLAY_FILE, validated as `data import` validates files), else the simulator
    (ALPHAPLUS_SIM_SYMBOLS, _SEED, _BARS). Re-running with the same target adds nothing.
    Exit codes: 0 advanced; 1 nothing left, --to behind the stored end, or stored bars that
    disagree with the source (another seed, an edited file); 2 a usage error; 3 the file
    was refused."""
    import pandas as pd

    from alphaplus_mlops.app.market_clock import advance_from_file, advance_simulated_market
    from alphaplus_mlops.data.replay import ReplayRefused
    from alphaplus_mlops.data.sources import inclusive_end
    from alphaplus_mlops.data.validation import BarValidationError
    from alphaplus_mlops.store.bars import BarRestatementRefused

    if (to is None) == (n_bars is None):
        raise click.UsageError("give exactly one of --to DATE and --bars N")
    try:
        until = inclusive_end(to) if to is not None else None
    except ValueError as exc:
        raise click.BadParameter(f"not a date: {to!r}", param_hint="--to") from exc
    settings = _settings()
    held_back = from_file or settings.replay_file
    if symbol is not None and held_back is None:
        raise click.UsageError("--symbol names the instrument of a file: give --from-file")
    with _database(settings) as db:
        try:
            if held_back is not None:
                done = advance_from_file(db, held_back, symbol=symbol, n_bars=n_bars, to=until)
            else:
                done = advance_simulated_market(
                    db,
                    symbols=settings.sim_symbols,
                    seed=settings.sim_seed,
                    total_bars=settings.sim_bars,
                    n_bars=n_bars,
                    to=until,
                )
        except (ReplayRefused, BarRestatementRefused) as exc:
            raise click.ClickException(str(exc)) from exc
        except BarValidationError as exc:
            if held_back is None:
                raise click.ClickException(str(exc)) from exc
            click.echo(f"Error: {exc}", err=True)
            sys.exit(3)

    def day(ts: pd.Timestamp | None) -> str:
        return str(ts.date()) if ts is not None else "-"

    click.echo(f"{'symbol':<10} {'added':>6}  {'from':<10}  {'new last':<10}  source ends")
    for s in done.step.symbols:
        click.echo(
            f"{s.symbol:<10} {s.added:>6}  {day(s.stored_last):<10}  {day(s.new_last):<10}"
            f"  {day(s.source_last)}"
        )
    r = done.result
    click.echo(f"{done.source}: {r.received} bars, {r.inserted} new, {r.unchanged} already stored")


# Dagster ----------------------------------------------------------------------------------


@main.command("env")
def env() -> None:
    """Print shell exports for Dagster: eval "$(alphaplus-mlops env)"."""
    from alphaplus_mlops.app.dagster_env import prepare_dagster

    settings = _settings()
    for key, value in prepare_dagster(settings, _migrated_url(settings)).items():
        if key == ENV_DAGSTER_PG_URL and redact(value) != value:
            # The URL holds a secret: print a shell expression that rebuilds it from
            # ALPHAPLUS_DATABASE_URL when eval'd, never the secret itself.
            click.echo(f'export {key}="postgresql+psycopg2://${{{ENV_DATABASE_URL}#*://}}"')
        else:
            click.echo(f"export {key}={shlex.quote(value)}")


@main.command("dev", context_settings={"ignore_unknown_options": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def dev(dagster_args: tuple[str, ...]) -> None:
    """Run the Dagster UI and daemon (`dagster dev`) on the project's PostgreSQL."""
    from alphaplus_mlops.app.dagster_env import prepare_dagster

    settings = _settings()
    os.environ.update(prepare_dagster(settings, _migrated_url(settings)))
    dagster = Path(sys.executable).with_name("dagster")
    args = [str(dagster), "dev", "-w", str(Path(os.environ["DAGSTER_HOME"]) / "workspace.yaml")]
    # Not exec'd: `dagster dev` keeps an inherited ignore of SIGINT/SIGTERM (a background
    # start) and leaves its code servers behind when killed. Supervised, SIGTERM is its
    # Ctrl-C, and what is left of its process group after 10 s is killed.
    sys.exit(supervise([*args, *dagster_args], stop_signal=signal.SIGINT, grace_seconds=10))


@main.command("worker")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    default=QUEUES,
    show_default=True,
    type=click.Choice(QUEUES),
    help="A queue to take steps from (repeat for several): 'training' has the fits.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Steps this worker runs at once (one process each).",
)
def worker(queues: tuple[str, ...], concurrency: int) -> None:
    """Run the steps of Dagster runs on this host (ALPHAPLUS_EXECUTOR=celery): a Celery
    worker on ALPHAPLUS_CELERY_BROKER_URL. SIGTERM stops it within 15 s; a step it was
    running fails with the worker named, and its run ends."""
    from alphaplus_mlops.app.dagster_env import prepare_dagster

    settings = _settings()
    try:
        settings.require_celery_broker()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    os.environ.update(prepare_dagster(settings, _migrated_url(settings)))
    os.environ[ENV_EXECUTOR] = "celery"  # the jobs it rebuilds take the executor's config
    # Celery's SIGTERM waits for running steps without limit; as SIGQUIT it waits
    # worker_soft_shutdown_timeout (5 s), then stops them (celery_config.CONFIG_SOURCE).
    os.environ["REMAP_SIGTERM"] = "SIGQUIT"
    restore_default_signals()
    celery = Path(sys.executable).with_name("celery")
    args = [
        str(celery),
        "--app",
        "alphaplus_mlops.distributed.celery_app",
        "worker",
        "--queues",
        ",".join(dict.fromkeys(queues)),
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "--hostname",
        f"alphaplus-{os.getpid()}@%h",
        "--loglevel",
        "INFO",
    ]
    os.execv(args[0], args)


# Models ------------------------------------------------------------------------------------


FAMILY_OPTION = click.option("--family", required=True, type=click.Choice(family_names()))


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@main.command("retrain")
@FAMILY_OPTION
@click.option("--reason", required=True, help="Why, recorded on the run and the training job.")
@click.option("--priority", default=5, show_default=True, help="dagster/priority of the run.")
@click.option("--requested-by", default=None, help="Who asked; default: your user name.")
@click.option("--config-json", default=None, help="Run config for train_model, as JSON.")
def retrain(
    family: str, reason: str, priority: int, requested_by: str | None, config_json: str | None
) -> None:
    """Queue a train_model run for FAMILY; the daemon starts it within the 3-training cap."""
    from alphaplus_mlops.app.dagster_env import prepare_dagster

    if not reason.strip():
        raise click.UsageError("--reason must say why")
    settings = _settings()
    env = {**os.environ, **prepare_dagster(settings, _migrated_url(settings))}
    run_id = str(uuid.uuid4())
    tags = {
        run_tags.PARTITION: family,
        run_tags.PRIORITY: str(priority),
        run_tags.TRIGGER_TYPE: "manual",
        run_tags.REASON: reason,
        run_tags.REQUESTED_BY: requested_by or _actor().removeprefix("cli:"),
    }
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "job",
        "launch",
        "-w",
        str(Path(env["DAGSTER_HOME"]) / "workspace.yaml"),
        "-j",
        "train_model",
        "--run-id",
        run_id,
        "--tags",
        json.dumps(tags),
    ]
    if config_json:
        command += ["--config-json", config_json]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"dagster job launch failed:\n{done.stderr[-3000:]}")
    click.echo(f"queued train_model run {run_id} for {family} (priority {priority})")
    click.echo("the Dagster daemon starts it (`make dev` runs one); follow it in the UI")


@main.command("promote")
@FAMILY_OPTION
@click.option("--version", "version", required=True, type=int)
@click.option("--reason", required=True, help="Why, for the ledger (required, not empty).")
@click.option(
    "--max-evidence-age-days",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Refuse gate results older than this many days.",
)
@click.option("--yes", is_flag=True, help="Confirm replacing the current champion.")
def promote(family: str, version: int, reason: str, max_evidence_age_days: int, yes: bool) -> None:
    """Promote VERSION to champion by hand; refused unless every quality gate passed for it
    recently. Replacing a serving champion needs --yes."""

    if not reason.strip():
        raise click.UsageError("--reason must say why")
    settings = _settings()
    with _database(settings) as db:
        target = version_by_number(db, family, version)
        if target is None:
            raise click.ClickException(f"{family} has no version {version}")
        champion = current_champion(db, family)
        if champion is not None and champion["id"] != target["id"] and not yes:
            raise click.UsageError(
                f"{family} v{champion['version']} is serving: add --yes to replace it by hand "
                f"with v{version}"
            )
        try:
            entry = promote_version(
                db,
                open_artifact_store(settings.artifact_location),
                str(target["id"]),
                actor=_actor(),
                reason=reason,
                max_evidence_age=timedelta(days=max_evidence_age_days),
                # Checked again under the family lock: a champion promoted since the
                # question above was answered is not replaced unconfirmed.
                replacing=str(champion["id"]) if champion else None,
            )
        except PromotionRefused as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{family}: v{entry.previous_version or '-'} -> v{entry.version} (ledger #{entry.seq})"
    )


@main.command("rollback")
@FAMILY_OPTION
@click.option(
    "--to",
    "to_version",
    type=int,
    default=None,
    help="Version to restore; default: the previous champion.",
)
@click.option("--reason", required=True)
def rollback(family: str, to_version: int | None, reason: str) -> None:
    """Restore the previous known-good champion of FAMILY in one step."""

    settings = _settings()
    with _database(settings) as db:
        try:
            entry = rollback_family(
                db,
                open_artifact_store(settings.artifact_location),
                family,
                actor=_actor(),
                reason=reason,
                to_version=to_version,
            )
        except PromotionRefused as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{family}: rolled back v{entry.previous_version or '-'} -> v{entry.version} "
        f"(ledger #{entry.seq})"
    )


@main.command("status")
def status() -> None:
    """Per family: champion, challenger, last training, last decision, gate results."""
    from alphaplus_mlops.app.reporting import status_report

    with _database(_settings()) as db:
        click.echo(status_report(db))


@main.group("alerts", invoke_without_command=True)
@click.option(
    "--state",
    type=click.Choice(["open", "acknowledged", "resolved", "all"]),
    default="open",
    show_default=True,
    help="Which alerts to list.",
)
@click.option("--rule", default=None, help="Only alerts of this rule.")
@click.pass_context
def alerts(ctx: click.Context, state: str, rule: str | None) -> None:
    """List alerts (oldest first): rule, severity, subject, times seen, first and last seen,
    state and message. `alerts ack ID --by NAME` acknowledges one."""
    if ctx.invoked_subcommand is not None:
        return
    from alphaplus_mlops.store.alerts import list_alerts

    with _database(_settings()) as db:
        found = list_alerts(db, None if state == "all" else state, rule)
    if not found:
        click.echo(f"no {'' if state == 'all' else state + ' '}alerts")
        return
    for a in found:
        click.echo(
            f"{a['id']}  {a['state']:<12} {a['severity']:<8} {a['rule']:<22} {a['subject']}\n"
            f"    seen {a['occurrences']}x, first {a['first_seen_at']:%Y-%m-%d %H:%M:%S%z}, "
            f"last {a['last_seen_at']:%Y-%m-%d %H:%M:%S%z}: {a['message']}"
        )
        if a["acknowledged_by"]:
            click.echo(f"    acknowledged by {a['acknowledged_by']}")
        if a["resolution"]:
            click.echo(f"    resolved: {a['resolution']}")


@alerts.command("ack")
@click.argument("alert_id")
@click.option("--by", "by", default=None, help="Who acknowledges (default: $USER).")
def alerts_ack(alert_id: str, by: str | None) -> None:
    """Acknowledge open alert ALERT_ID: someone is on it. Repeats keep updating it until
    its condition clears."""
    from alphaplus_mlops.store.alerts import acknowledge_alert, alert_state

    try:
        uuid.UUID(alert_id)
    except ValueError as exc:
        raise click.UsageError(f"{alert_id!r} is not an alert id (a UUID)") from exc
    by = by or getpass.getuser()
    with _database(_settings()) as db:
        if acknowledge_alert(db, alert_id, by):
            click.echo(f"alert {alert_id} acknowledged by {by}")
            return
        state = alert_state(db, alert_id)
    if state is None:
        raise click.ClickException(f"no alert {alert_id}")
    raise click.ClickException(f"alert {alert_id} is {state}, not open: nothing to acknowledge")


@main.command("report")
@click.option(
    "--since",
    default=None,
    help="Start of the period, an ISO date (default: 30 days ago).",
)
@click.option("--open", "open_it", is_flag=True, help="Open the HTML report in a browser.")
def report(since: str | None, open_it: bool) -> None:
    """Write the ML ops report (HTML and Markdown, into the artifact store and
    ml_ops_reports) and print where: per family the live equity by version and role, live
    beside offline metrics, drift per feature over time, the timeline of retrains, gates,
    decisions, promotions and rollbacks, and the open alerts."""
    from datetime import UTC, datetime

    from alphaplus_mlops.reports.publish import write_ops_report

    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since).replace(tzinfo=UTC)
        except ValueError:
            raise click.BadParameter(f"not an ISO date: {since!r}", param_hint="--since") from None
    settings = _settings()
    with _database(settings) as db:
        written = write_ops_report(db, open_artifact_store(settings.artifact_location), start)
    click.echo(f"html      {written.html_path}")
    click.echo(f"markdown  {written.markdown_path}")
    click.echo(f"{written.families} families, {written.open_alerts} open alerts")
    if open_it:
        import webbrowser

        if "://" in written.html_path:
            click.echo("the page is in object storage: open it from there")
        elif not webbrowser.open(Path(written.html_path).as_uri()):
            click.echo("no browser to open it with: open the html file above")


@main.command("which")
@FAMILY_OPTION
@click.option("--at", "at", default=None, help="ISO time (default: now).")
def which(family: str, at: str | None) -> None:
    """Which model served FAMILY at time AT, and why (from the promotion ledger)."""
    import pandas as pd

    try:
        when = pd.Timestamp(at or "now", tz=None if at and "+" in at else "UTC").to_pydatetime()
    except ValueError as exc:
        raise click.UsageError(f"--at must be an ISO time: {exc}") from exc
    with _database(_settings()) as db:
        entry = serving_at(db, family, when)
    if entry is None:
        click.echo(f"no {family} model was serving at {when.isoformat()}")
        return
    click.echo(
        f"{family} v{entry['version']} since {entry['recorded_at'].isoformat(timespec='seconds')}"
        f" ({entry['action']} by {entry['actor']}): {entry['reason']}"
    )


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Serve signals over HTTP: every family's champion, the challenger and (after a
    promotion) the previous champion in shadow, swapped in as the ledger moves; every
    signal logged to model_predictions."""
    import gc
    import socket

    import uvicorn

    from alphaplus_mlops.serving.features import FeatureCache
    from alphaplus_mlops.serving.http import create_app
    from alphaplus_mlops.serving.prediction_log import PredictionLog
    from alphaplus_mlops.serving.service import SignalService

    # Refuse a taken port before loading anything, with a message instead of a traceback.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from exc
    settings = _settings()
    with (
        _database(settings) as db,
        SignalService(
            db, open_artifact_store(settings.artifact_location), feature_cache=FeatureCache()
        ) as service,
        PredictionLog(db, settings.prediction_spool_dir) as prediction_log,
    ):
        served = {f: m.champion.version for f, m in service.models().items() if m.champion}
        click.echo(f"serving {served or 'no champion yet'} on http://{host}:{port}")
        # The libraries loaded so far are long-lived: keep the collector from walking them
        # again on every full collection, a pause a request would wait for.
        gc.collect()
        gc.freeze()
        uvicorn.run(create_app(service, db, prediction_log), host=host, port=port)


@main.command("doctor")
@click.option("--fix", is_flag=True, help="Repair what can be repaired, then check again.")
def doctor(fix: bool) -> None:
    """Run every consistency check now: stale training rows, decisions without their
    promotion, champion against the ledger, artifact checksums, pending migrations. Each
    finding is printed with what --fix does; exits 1 while any is unresolved."""
    import psycopg

    from alphaplus_mlops.app.doctor import run_doctor

    try:
        unresolved = run_doctor(_settings(), fix=fix, echo=click.echo)
    except (MigrationError, EmbeddedDatabaseError, psycopg.OperationalError) as exc:
        raise click.ClickException(str(exc)) from exc
    if unresolved:
        sys.exit(1)


@main.command("replay")
@click.argument("scenario")
@click.option("--seed", type=int, default=None, help="The simulator's seed (default: the file's).")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=click.Choice(["automated", "frozen", "calendar", "calendar_rolling"]),
    help="Replay only these policies (repeat the option); default: the scenario's.",
)
@click.option("--decisions", is_flag=True, help="Print every decision with its reason.")
@click.option(
    "--engine",
    type=click.Choice(["core", "dagster"]),
    default="core",
    show_default=True,
    help="core: every policy on the fast pure engine. dagster: the automated policy through "
    "the real jobs, sensors and schedule in a database of its own (resumable), the others "
    "on the core; the table goes into that database's ml_ops_reports.",
)
@click.option("--fresh", is_flag=True, help="dagster: drop the replay's database and start over.")
@click.option(
    "--step-bars",
    type=click.IntRange(1),
    default=None,
    help="Bars per tick instead of the scenario's (fewer ticks: a faster Dagster replay).",
)
def replay(
    scenario: str,
    seed: int | None,
    policies: tuple[str, ...],
    decisions: bool,
    engine: str,
    fresh: bool,
    step_bars: int | None,
) -> None:
    """Replay SCENARIO (a shipped name, e.g. simulated_break, short, sp500_nasdaq, or a TOML
    file): every policy through time, the gates and the triggers as configured in the
    database; prints the value table."""
    from dataclasses import replace

    from alphaplus_mlops.app.replay import (
        configured_automation,
        run_core_replay,
        run_dagster_replay_command,
    )
    from alphaplus_mlops.replay.scenario import ScenarioError, load_scenario
    from alphaplus_mlops.store.automation_settings import read_automation

    try:
        chosen = load_scenario(scenario)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    if seed is not None:
        chosen = chosen.with_seed(seed)
    if policies:
        chosen = replace(chosen, policies=replace(chosen.policies, names=policies))
    if step_bars is not None:
        chosen = replace(chosen, clock=replace(chosen.clock, step_bars=step_bars))
    settings = _settings()
    if engine == "core":
        with _database(settings) as db:
            gates, trigger = configured_automation(db)
        run_core_replay(chosen, gates, trigger, click.echo, decisions)
        return
    with _database(settings) as db:
        production = read_automation(db)
    from alphaplus_mlops.app.replay_dagster import ReplayMismatch
    from alphaplus_mlops.data.replay import ReplayRefused

    try:
        run_dagster_replay_command(
            settings,
            _database_url(settings),
            production,
            chosen,
            click.echo,
            fresh=fresh,
            decisions=decisions,
        )
    except (ReplayMismatch, ReplayRefused) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("demo")
def demo() -> None:
    """Load the real sample and a simulated symbol through Dagster, then summarize."""
    from alphaplus_mlops.app.demo import run_demo

    run_demo(_settings(), echo=click.echo)


if __name__ == "__main__":
    main()
