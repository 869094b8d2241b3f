"""The daemon's YAML config: feeds, channels, rules, state, and each stage's settings.

One file, validated strictly (unknown keys are errors with a spelling hint),
every error located at file:line:column. Each stage owns its settings model
(``FetchSettings`` in ``fetch``, ``ChannelSettings`` in ``deliver``, ...);
this module composes them, resolves relative paths against the config file's
folder, and expands ``${VAR}`` secrets from the environment or from systemd
credentials (``$CREDENTIALS_DIRECTORY/VAR``) so no secret has to sit in the
file. Expanded secret values are collected so the log filter can redact them.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.errors import ConfigError, ConfigErrors
from monitor.feeds.settings import FeedSettings, FetchSettings, PollDefaults
from monitor.secrets import BOT_TOKEN, SECRET_PARAMS
from monitor.service.settings import ClusterSettings, HousekeepingSettings, HttpSettings
from monitor.stories.settings import DedupSettings
from monitor.yamlfile import (
    YamlDocument,
    errors_from_validation,
    load_yaml,
    model_field_names,
)

DEFAULT_CONFIG_PATHS = (Path("/etc/monitor/config.yaml"),)

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigModel(_Strict):
    """The whole file, as written (paths not yet resolved)."""

    state: str | None = Field(None, description="Where the state lives: a SQLite file (default: "
                              "$STATE_DIRECTORY/state.sqlite3 under systemd, else ./state/state.sqlite3) or "
                              "postgresql://USER@HOST/DB, shared by several daemon instances (the password only "
                              "as ${NAME}).")
    state_path: str | None = Field(None, description="Older name of `state` (a SQLite file path).")
    rules: list[str] = Field(default_factory=lambda: ["rules"], description="Rule files or folders.")
    templates_dir: str | None = Field(None, description="Folder with message templates overriding the built-ins.")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    feeds: list[FeedSettings] = Field(default_factory=list)
    feed_files: list[str] = Field(default_factory=list, description="Globs of YAML files holding more feeds "
                                                                    "(a list of {name, url, ...}), e.g. from "
                                                                    "`monitor feeds import`.")
    defaults: PollDefaults = Field(default_factory=PollDefaults)
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    ops_channel: str | None = Field(None, description="Channel that receives operational alerts (a rules file "
                                                      "that fails to reload).")
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    housekeeping: HousekeepingSettings = Field(default_factory=HousekeepingSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)


@dataclass
class Config:
    """A validated config with absolute paths and secrets expanded."""

    path: Path
    model: ConfigModel
    feeds: list[FeedSettings]
    rules: list[Path]
    #: A SQLite file (Path) or a ``postgresql://`` URL (str, secrets expanded).
    state: Path | str
    templates_dir: Path | None
    secrets: set[str] = field(default_factory=set)
    # Files whose change should trigger a reload (config, feed files).
    sources: list[Path] = field(default_factory=list)

    @property
    def channels(self) -> dict[str, ChannelSettings]:
        return self.model.channels

    def feed_interval(self, feed: FeedSettings) -> float:
        return feed.interval if feed.interval is not None else self.model.defaults.interval


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_secrets(doc: YamlDocument, environ: dict[str, str] | None = None) -> set[str]:
    """Replace ``${VAR}`` in every string of ``doc.data`` in place; return the values used.

    A value comes from the environment, else from ``$CREDENTIALS_DIRECTORY/VAR``
    (systemd ``LoadCredential=``). A missing one is a located ``ConfigError``.
    """
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    used: set[str] = set()
    errors: list[ConfigError] = []

    def lookup(name: str, path: tuple) -> str:
        if name in env:
            return env[name]
        if cred_dir:
            candidate = Path(cred_dir) / name
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8").strip()
        errors.append(doc.error(path, f"${{{name}}} is not set in the environment"
                                      + (" nor in $CREDENTIALS_DIRECTORY" if cred_dir else "")))
        return ""

    def walk(value: Any, path: tuple) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            def sub(m: re.Match[str]) -> str:
                secret = lookup(m.group(1), path)
                if secret:
                    used.add(secret)
                return secret
            return _VAR.sub(sub, value)
        return value

    doc.data = walk(doc.data, ())
    if errors:
        raise ConfigErrors(errors)
    return used



def _holds_literal_secret(url: str) -> bool:
    """True if ``url`` spells out a password or token instead of taking it from ``${VAR}``."""
    probe = _VAR.sub("PLACEHOLDER", url)
    try:
        parts = urlsplit(probe)
        password = parts.password
    except ValueError:
        return False  # not a URL at all: the field's own validation says so
    return ((password not in (None, "", "PLACEHOLDER"))
            or bool(BOT_TOKEN.search(probe))
            or any(k.lower() in SECRET_PARAMS and v != "PLACEHOLDER" for k, v in parse_qsl(parts.query)))


def inline_secret_errors(doc: YamlDocument) -> list[ConfigError]:
    """Channel URLs and the state URL must take passwords and tokens from ``${VAR}``, never spell them out.

    A secret written in the file ends up in backups, diffs and bug reports.
    Checked before expansion: a placeholder is fine, a literal password in
    ``user:pass@``, a Telegram bot token or a ``?pass=`` parameter is not.
    """
    errors: list[ConfigError] = []
    if not isinstance(doc.data, dict):
        return errors
    located: list[tuple[tuple[str | int, ...], object]] = [(("state",), doc.data.get("state"))]
    channels = doc.data.get("channels")
    if isinstance(channels, dict):
        located += [(("channels", name, "url"), channel.get("url")) for name, channel in channels.items()
                    if isinstance(channel, dict)]
    for where, url in located:
        if isinstance(url, str) and _holds_literal_secret(url):
            errors.append(doc.error(where, "this URL holds a password or token in clear: write it as ${NAME} and "
                                           "set NAME in the environment or as a systemd credential"))
    return errors


def load_config(path: str | Path, *, environ: dict[str, str] | None = None) -> Config:
    """Read, validate and resolve a config file; raises ``ConfigErrors`` listing every problem."""
    path = Path(path).absolute()
    doc = load_yaml(path)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise ConfigErrors([doc.error((), "the config file must be a mapping of settings")])
    errors = inline_secret_errors(doc)
    if errors:
        raise ConfigErrors(errors)
    secrets = expand_secrets(doc, environ)
    names = model_field_names(ConfigModel)
    try:
        model = ConfigModel.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigErrors(errors_from_validation(exc, doc, known_names=names)) from None

    base = path.parent
    errors: list[ConfigError] = []
    # Each feed with where it was written, so a duplicate name points at the second one.
    located = [(feed, doc, ("feeds", i, "name")) for i, feed in enumerate(model.feeds)]
    sources = [path]
    for index, pattern in enumerate(model.feed_files):
        matched = sorted(glob.glob(str(base / pattern)))
        if not matched and not glob.has_magic(pattern):
            errors.append(doc.error(("feed_files", index), f"no such file: {pattern}"))
        for file in matched:
            sources.append(Path(file))
            try:
                located.extend(_load_feed_file(Path(file), names))
            except ConfigErrors as exc:
                errors.extend(exc.errors)

    seen: set[str] = set()
    for feed, where_doc, where in located:
        if feed.name in seen:
            errors.append(where_doc.error(where, f"duplicate feed name {feed.name!r}"))
        seen.add(feed.name)
    feeds = [feed for feed, _, _ in located]

    if model.cluster.lease <= model.fetch.timeout:
        errors.append(doc.error(("cluster", "lease"), f"must exceed fetch.timeout ({model.fetch.timeout:g} s): a "
                                "poll still running when its lease ends could be polled twice"))
    if model.state and model.state_path:
        errors.append(doc.error(("state_path",), "give the state once: `state` (state_path is its older name)"))
    state = _state(model.state or model.state_path, base)
    if model.ops_channel and model.ops_channel not in model.channels:
        errors.append(doc.error(("ops_channel",), f"no channel named {model.ops_channel!r}",
                                suggestion=_closest(model.ops_channel, model.channels)))
    if errors:
        raise ConfigErrors(errors)

    return Config(
        path=path,
        model=model,
        feeds=[f for f in feeds if f.enabled],
        rules=[(base / r).resolve() for r in model.rules],
        state=state,
        templates_dir=(base / model.templates_dir).resolve() if model.templates_dir else None,
        secrets=secrets,
        sources=sources,
    )


def _load_feed_file(path: Path, names: set[str]) -> list[tuple[FeedSettings, YamlDocument, tuple]]:
    doc = load_yaml(path)
    data = doc.data or []
    if isinstance(data, dict) and "feeds" in data:
        data = data["feeds"]
        prefix: tuple = ("feeds",)
    else:
        prefix = ()
    if not isinstance(data, list):
        raise ConfigErrors([doc.error(prefix, "a feed file must be a list of feeds")])
    feeds, errors = [], []
    for index, entry in enumerate(data):
        try:
            feeds.append((FeedSettings.model_validate(entry), doc, prefix + (index, "name")))
        except ValidationError as exc:
            errors.extend(errors_from_validation(exc, doc, prefix=prefix + (index,), known_names=names))
    if errors:
        raise ConfigErrors(errors)
    return feeds


def _state(configured: str | None, base: Path) -> Path | str:
    if configured and configured.startswith(("postgresql://", "postgres://")):
        return configured
    if configured:
        return (base / os.path.expandvars(configured)).resolve()
    state_dir = os.environ.get("STATE_DIRECTORY")
    if state_dir:
        return Path(state_dir.split(":")[0]) / "state.sqlite3"
    return (base / "state" / "state.sqlite3").resolve()


def _closest(name: str, options: Any) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    return close[0] if close else None


def check_rules_against_config(config: Config, ruleset: Any) -> list[ConfigError]:
    """Rules may name channels; every name must exist in the config."""
    errors = []
    for name in sorted(ruleset.channels_referenced()):
        if name not in config.channels:
            errors.append(ConfigError(f"a rule sends to channel {name!r}, which the config does not define",
                                      file=str(config.path), field="channels",
                                      suggestion=_closest(name, config.channels)))
    return errors


def find_config(explicit: str | Path | None) -> Path:
    """The config to use: the explicit path, ``$MONITOR_CONFIG``, or /etc/monitor/config.yaml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MONITOR_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.exists():
            return candidate
    raise ConfigError("no config file: pass --config PATH or set MONITOR_CONFIG", file="<none>")
