"""Secrets: the one set of patterns that says what a secret looks like, and redaction.

Used by the log filter (every line written), by the CLI and the state (errors
stored and shown), and by the config check that refuses a password or token
written in clear in a channel URL. A secret is a configured value (from
``${VAR}`` or a systemd credential) or anything shaped like one: a Telegram
bot token, ``scheme://user:password@``, ``?pass=...``, an Authorization header.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable

__all__ = ["MASK", "BOT_TOKEN", "SECRET_PARAMS", "redact", "use_source", "no_secrets"]

MASK = "[REDACTED]"

# Secrets shorter than this are not masked: redacting "a" or "1" would
# garble every line and reveal more (by elimination) than it hides.
MIN_SECRET_LEN = 4

#: Telegram bot token "123456789:AA..." (also inside ".../bot<token>/sendMessage").
BOT_TOKEN = re.compile(r"(?<![0-9])[0-9]+:[A-Za-z0-9_-]{30,}")
#: Query parameters that carry a secret (Apprise accepts ?pass=, ?token=, ...).
SECRET_PARAMS = frozenset({"pass", "password", "passwd", "pwd", "token", "secret", "apikey", "api_key", "key",
                           "access_token", "bot_token"})

_GENERIC_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (BOT_TOKEN, MASK),
    # Password in a URL's userinfo: scheme://user:password@host ('@' in the
    # password is tolerated: the match runs to the last '@' before '/' or space).
    (re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):[^\s/]+@"), r"\g<pre>:" + MASK + "@"),
    # Password-like query parameters (apprise accepts ?pass=, ?token=, ...).
    (re.compile(r"(?P<pre>[?&;](?:" + "|".join(sorted(SECRET_PARAMS)) + r")=)[^&\s#]+", re.IGNORECASE),
     r"\g<pre>" + MASK),
    # HTTP authorization headers echoed in debug output.
    (re.compile(r"(?P<pre>\b(?:Bearer|Basic|Bot)\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<pre>" + MASK),
]



def no_secrets() -> Iterable[str]:
    return ()


_secrets_source: Callable[[], Iterable[str]] = no_secrets


def use_source(source: Callable[[], Iterable[str]]) -> None:
    """Where ``redact`` finds the configured secret values (the current config's, after a reload too)."""
    global _secrets_source
    _secrets_source = source


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Return ``text`` with secrets and secret-shaped substrings masked.

    ``secrets`` defaults to the source given to :func:`setup_logging`.
    Never raises: on any internal error the whole text is masked rather than
    risk writing a secret.
    """
    try:
        text = str(text)
        values = _current_secrets() if secrets is None else secrets
        for secret in sorted(_variants(values), key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _GENERIC_PATTERNS:
            text = pattern.sub(replacement, text)
        return text
    except Exception:  # noqa: BLE001
        return MASK


def _current_secrets() -> Iterable[str]:
    try:
        return list(_secrets_source() or ())
    except Exception:  # noqa: BLE001 - a broken source must not stop logging
        return ()


def _variants(values: Iterable[str]) -> set[str]:
    """A secret and the forms it takes inside URLs (apprise URL-encodes them)."""
    out: set[str] = set()
    for value in values:
        if not isinstance(value, str) or len(value) < MIN_SECRET_LEN:
            continue
        out.add(value)
        out.add(urllib.parse.quote(value, safe=""))
        out.add(urllib.parse.quote_plus(value, safe=""))
    return out
