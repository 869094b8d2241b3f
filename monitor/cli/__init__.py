"""Command line: ``monitor run|check|demo|status|feeds|alerts|notify-test|rules``.

Every command that reads the config goes through the same ``load_config``
the daemon uses, so ``monitor check`` says exactly what ``monitor run`` would.
Config and rules errors print as ``file:line:col: field: message`` and exit 1;
never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from monitor import __version__
from monitor.errors import ConfigError, MonitorError

CONFIG_OPTION = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Config file (default: $MONITOR_CONFIG, else /etc/monitor/config.yaml).")


def _config_path(explicit: Path | None) -> Path:
    from monitor.config import find_config

    try:
        return find_config(explicit)
    except ConfigError as exc:
        raise click.UsageError(exc.message) from None


def _fail(exc: MonitorError) -> click.exceptions.Exit:
    click.echo(str(exc), err=True)
    return click.exceptions.Exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="monitor")
def main() -> None:
    """Arabic news-monitoring alert daemon: polls feeds, matches rules, sends deduplicated alerts."""


@main.command()
@CONFIG_OPTION
@click.option("--once", is_flag=True, help="Poll every feed once, deliver what is due, print a summary, exit.")
def run(config_path: Path | None, once: bool) -> None:
    """Run the daemon (or one cycle with --once).

    Exits non-zero only when the config or rules are invalid: a feed that
    fails is reported and the others go on.
    """
    import asyncio

    from monitor.service.daemon import Daemon

    daemon = Daemon(_config_path(config_path))
    try:
        daemon.setup()
    except MonitorError as exc:
        raise _fail(exc) from None
    if once:
        summary = asyncio.run(daemon.run_once())
        click.echo(summary.line())
        return
    sys.exit(asyncio.run(daemon.run()))


@main.command()
@CONFIG_OPTION
def check(config_path: Path | None) -> None:
    """Validate the config and the rules it names; exit 1 with every error found."""
    from monitor.service.daemon import load_everything

    path = _config_path(config_path)
    try:
        config, ruleset = load_everything(path)
    except MonitorError as exc:
        raise _fail(exc) from None
    click.echo(f"{path}: ok: {len(config.feeds)} feeds, {len(config.channels)} channels, "
               f"{len(ruleset.rule_ids)} rules, {len(ruleset.entity_ids)} entities")


@main.command()
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".demo-state"),
              show_default=True, help="Where the demo keeps its state (run again: nothing new is sent).")
@click.option("--reset", is_flag=True, help="Forget the demo's state first (alerts are shown again).")
def demo(state_dir: Path, reset: bool) -> None:
    """Poll the bundled sample feeds once from a local server and print the alerts."""
    from monitor.cli.demo import run_demo

    try:
        summary = run_demo(state_dir, reset=reset)
    except MonitorError as exc:
        raise _fail(exc) from None
    click.echo(summary)


@main.command()
@CONFIG_OPTION
def status(config_path: Path | None) -> None:
    """Uptime, feeds ok/failing, outbox depth and last alert (safe while the daemon runs)."""
    from monitor.config import load_config
    from monitor.service.status import read_status

    try:
        config = load_config(_config_path(config_path))
        click.echo(read_status(config.state_path))
    except MonitorError as exc:
        raise _fail(exc) from None


@main.group(invoke_without_command=True)
@CONFIG_OPTION
@click.pass_context
def feeds(ctx: click.Context, config_path: Path | None) -> None:
    """Each feed's health: last success, last error, items, next poll, interval."""
    ctx.obj = config_path
    if ctx.invoked_subcommand is not None:
        return
    from monitor.config import load_config
    from monitor.service.status import feed_table

    try:
        config = load_config(_config_path(config_path))
        click.echo(feed_table(config))
    except MonitorError as exc:
        raise _fail(exc) from None


@feeds.command("import")
@click.argument("opml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Feeds file to write or merge into (default: feeds.d/imported.yaml beside the config). "
                   "Include it from the config with feed_files.")
@click.pass_obj
def feeds_import(config_path: Path | None, opml: Path, output: Path | None) -> None:
    """Import the feeds of an OPML file (as exported by feed readers)."""
    from monitor.feeds.opml import import_opml

    if output is None:
        output = _config_path(config_path).parent / "feeds.d" / "imported.yaml"
    try:
        report = import_opml(opml, output)
    except MonitorError as exc:
        raise _fail(exc) from None
    click.echo(f"{output}: {report}")


@main.group(invoke_without_command=True)
@CONFIG_OPTION
@click.option("--limit", default=30, show_default=True, help="How many recent alerts.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def alerts(ctx: click.Context, config_path: Path | None, limit: int, as_json: bool) -> None:
    """Recent alerts and their delivery state per channel."""
    ctx.obj = config_path
    if ctx.invoked_subcommand is not None:
        return
    from monitor.config import load_config
    from monitor.state import alerts as state_alerts
    from monitor.state import open_readonly

    try:
        config = load_config(_config_path(config_path))
        db = open_readonly(config.state_path)
    except MonitorError as exc:
        raise _fail(exc) from None
    try:
        rows = state_alerts.recent(db, limit=limit)
    finally:
        db.close()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("no alerts yet")
    for row in rows:
        click.echo(_alert_line(row))


def _alert_line(row: dict[str, Any]) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.get("created", 0)))
    deliveries = ", ".join(
        f"{d.get('channel')}={d.get('state')}" + (f" (#{d.get('outbox_id')}: {d.get('last_error')})"
                                                   if d.get("state") != "sent" and d.get("last_error") else "")
        for d in row.get("deliveries", []))
    return f"#{row.get('id')} {created} [{row.get('rule_id')}] {row.get('title', '')} — {deliveries}"


@alerts.command("retry")
@click.argument("outbox_id", type=int)
@click.pass_obj
def alerts_retry(config_path: Path | None, outbox_id: int) -> None:
    """Queue a dead delivery (its outbox id, shown by `monitor alerts`) again."""
    from monitor.config import load_config
    from monitor.state import open_state
    from monitor.state.outbox import retry_dead

    try:
        config = load_config(_config_path(config_path))
        db = open_state(config.state_path)
    except MonitorError as exc:
        raise _fail(exc) from None
    try:
        ok = retry_dead(db, outbox_id)
    finally:
        db.close()
    if not ok:
        click.echo(f"no dead delivery with id {outbox_id}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"delivery {outbox_id} queued again; the running daemon sends it on its next pass")


@main.command("notify-test")
@CONFIG_OPTION
@click.argument("channel")
def notify_test(config_path: Path | None, channel: str) -> None:
    """Send a test message to CHANNEL (a name from the config's channels)."""
    from monitor.alerts.deliver import send_test_message
    from monitor.config import load_config

    try:
        config = load_config(_config_path(config_path))
    except MonitorError as exc:
        raise _fail(exc) from None
    if channel not in config.channels:
        raise click.UsageError(f"no channel named {channel!r}; known: {', '.join(sorted(config.channels)) or 'none'}")
    import asyncio

    try:
        asyncio.run(send_test_message(channel, config.channels[channel]))
    except MonitorError as exc:
        raise _fail(exc) from None
    click.echo(f"test message sent to {channel}")


def _register_rules() -> None:
    from monitor.cli.rules import rules

    main.add_command(rules)


_register_rules()
