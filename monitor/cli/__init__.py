"""Command line: ``monitor run|check|demo|status|feeds|alerts|notify-test|silence|rules``.

Every command that reads the config goes through the same ``load_config``
the daemon uses, so ``monitor check`` says exactly what ``monitor run`` would.
Config and rules errors print as ``file:line:col: field: message`` and exit 1;
never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor import __version__
from monitor.errors import ConfigError, MonitorError

if TYPE_CHECKING:
    from monitor.state.alerts import AlertRecord, DeliveryRecord

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
        click.echo(read_status(config.state))
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
    """Recent alerts and their delivery state per channel (sent, pending, dead with its reason, silenced).

    Errors are shown redacted: no token or password, whatever the channel answered.
    """
    ctx.obj = config_path
    if ctx.invoked_subcommand is not None:
        return
    import dataclasses

    from monitor.config import load_config
    from monitor.secrets import redact
    from monitor.state import alerts as state_alerts
    from monitor.state import open_readonly

    try:
        config = load_config(_config_path(config_path))
        db = open_readonly(config.state)
    except MonitorError as exc:
        raise _fail(exc) from None
    try:
        rows = state_alerts.recent(db, limit=limit)
    except MonitorError as exc:
        raise _fail(exc) from None
    finally:
        db.close()
    rows = [dataclasses.replace(row, deliveries=tuple(
        dataclasses.replace(d, last_error=redact(d.last_error, config.secrets) if d.last_error else None)
        for d in row.deliveries)) for row in rows]
    if as_json:
        for row in rows:
            click.echo(json.dumps(dataclasses.asdict(row), ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("no alerts yet")
    for row in rows:
        click.echo(_alert_line(row))


def _alert_line(row: AlertRecord) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.created))
    return f"#{row.id} {created} [{row.rule_id}] {row.title} — " + ", ".join(map(_delivery_text, row.deliveries))


def _delivery_text(d: DeliveryRecord) -> str:
    """``tg=sent``, ``mail=dead (#12 bad_request: SMTP 550 ...)``, ``tg=silenced (silence #3)``."""
    text = f"{d.channel}={d.state}"
    if d.kind != "alert":
        text = f"{d.channel}[{d.kind}]={d.state}"
    if d.state == "sent" and d.sent_as in ("reply", "edit"):
        text += f" ({d.sent_as})"
    elif d.state == "silenced" and d.silence_id is not None:
        text += f" (silence #{d.silence_id})"
    elif d.state != "sent" and (d.last_error or d.reason):
        why = ": ".join(p for p in (d.reason, d.last_error) if p)
        when = (f", next try {time.strftime('%H:%M:%S', time.gmtime(d.retry_at))} UTC"
                if d.state == "pending" and d.retry_at else "")
        text += f" (#{d.outbox_id} {why}{when})"
    return text


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
        db = open_state(config.state)
    except MonitorError as exc:
        raise _fail(exc) from None
    try:
        ok = retry_dead(db, outbox_id)
    except MonitorError as exc:
        raise _fail(exc) from None
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
    from monitor.secrets import redact

    try:
        config = load_config(_config_path(config_path))
    except MonitorError as exc:
        raise _fail(exc) from None
    if channel not in config.channels:
        raise click.UsageError(f"no channel named {channel!r}; known: {', '.join(sorted(config.channels)) or 'none'}")
    try:
        result = asyncio.run(send_test_message(channel, config.channels[channel]))
    except MonitorError as exc:
        click.echo(redact(str(exc), config.secrets), err=True)
        raise click.exceptions.Exit(1) from None
    shown = f" (message {result.message_id})" if result.message_id else ""
    click.echo(redact(f"test message sent to {channel}{shown}", config.secrets))


# -- silences ----------------------------------------------------------------------------

@main.group("silence")
@CONFIG_OPTION
@click.pass_context
def silence(ctx: click.Context, config_path: Path | None) -> None:
    """Hold back alerts for a while: by rule, entity or channel (kept across restarts and reloads).

    Alerts a silence holds back are recorded as silenced (`monitor alerts` lists them) and never sent.
    The running daemon sees a silence at once: it reads them from the state.
    """
    ctx.obj = config_path


@silence.command("add")
@CONFIG_OPTION
@click.option("--rule", "rule_id", default=None, help="Rule id (as in the rules files).")
@click.option("--entity", default=None, help="Entity or keyword set id: alerts whose rule fired on a mention of it.")
@click.option("--channel", default=None, help="Channel name: nothing goes to it.")
@click.option("--for", "duration", required=True, help="How long: 30m, 6h, 2d, or seconds.")
@click.option("--comment", required=True, help="Why (shown by `silence list`).")
@click.option("--author", default=None, help="Who (default: $USER).")
@click.pass_obj
def silence_add(group_config: Path | None, config_path: Path | None, rule_id: str | None, entity: str | None,
                channel: str | None, duration: str, comment: str, author: str | None) -> None:
    """Add a silence; every matcher given must match (--rule R --channel C: rule R on channel C only)."""
    import os

    from monitor.service.daemon import load_everything
    from monitor.state import open_state
    from monitor.state import silences as state_silences
    from monitor.types import parse_duration

    if rule_id is None and entity is None and channel is None:
        raise click.UsageError("say what to silence: --rule, --entity and/or --channel")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.UsageError(f"--for: {exc}") from None
    if seconds <= 0:
        raise click.UsageError("--for must be longer than 0")
    try:
        config, ruleset = load_everything(_config_path(config_path or group_config))
    except MonitorError as exc:
        raise _fail(exc) from None
    _known("--rule", rule_id, ruleset.rule_ids)
    _known("--entity", entity, [*ruleset.entity_ids, *ruleset.keyword_ids])
    _known("--channel", channel, list(config.channels))
    now = time.time()
    try:
        db = open_state(config.state)
        try:
            silence_id = state_silences.add(db, rule_id=rule_id, entity=entity, channel=channel, starts=now,
                                            ends=now + seconds, comment=comment,
                                            author=author or os.environ.get("USER", ""), now=now)
        finally:
            db.close()
    except MonitorError as exc:
        raise _fail(exc) from None
    until = time.strftime("%Y-%m-%d %H:%M", time.gmtime(now + seconds))
    click.echo(f"silence #{silence_id}: {_matchers(rule_id, entity, channel)} until {until} UTC: {comment}")


def _known(option: str, value: str | None, known: list[str]) -> None:
    if value is None or value in known:
        return
    import difflib

    close = difflib.get_close_matches(value, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise click.UsageError(f"{option}: no {option[2:]} named {value!r}{hint}")


def _matchers(rule_id: str | None, entity: str | None, channel: str | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (("rule", rule_id), ("entity", entity), ("channel", channel)) if v)


@silence.command("list")
@CONFIG_OPTION
@click.option("--all", "include_expired", is_flag=True, help="Expired silences too.")
@click.pass_obj
def silence_list(group_config: Path | None, config_path: Path | None, include_expired: bool) -> None:
    """Silences in force (with --all, expired ones too) and how many deliveries each held back."""
    from monitor.config import load_config
    from monitor.state import open_readonly
    from monitor.state import silences as state_silences

    now = time.time()
    try:
        config = load_config(_config_path(config_path or group_config))
        db = open_readonly(config.state)
        try:
            listed = state_silences.listing(db, now, include_expired=include_expired)
            held = state_silences.held_back(db, [s.id for s in listed])
        finally:
            db.close()
    except MonitorError as exc:
        raise _fail(exc) from None
    if not listed:
        click.echo("no silences" if include_expired else "no silence in force")
    for s in listed:
        state = "active" if s.is_active(now) else "expired"
        ends = time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.ends))
        click.echo(f"#{s.id} {state} until {ends} UTC: {_matchers(s.rule_id, s.entity, s.channel)} — "
                   f"{s.comment}" + (f" ({s.author})" if s.author else "") + f"; held back {held.get(s.id, 0)}")


@silence.command("expire")
@CONFIG_OPTION
@click.argument("silence_id", type=int)
@click.pass_obj
def silence_expire(group_config: Path | None, config_path: Path | None, silence_id: int) -> None:
    """End a silence now: alerts after this are sent again (those it held back stay silenced)."""
    from monitor.config import load_config
    from monitor.state import open_state
    from monitor.state import silences as state_silences

    try:
        config = load_config(_config_path(config_path or group_config))
        db = open_state(config.state)
        try:
            ok = state_silences.expire(db, silence_id, time.time())
        finally:
            db.close()
    except MonitorError as exc:
        raise _fail(exc) from None
    if not ok:
        click.echo(f"no silence #{silence_id} in force", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"silence #{silence_id} expired")


def _register_rules() -> None:
    from monitor.cli.rules import rules

    main.add_command(rules)


_register_rules()
