"""Email with the standard library: ``EmailMessage`` built here, sent by ``smtplib`` in a worker thread.

Why native: the message is ours from the first header to the last part, so
follow-ups carry ``In-Reply-To``/``References`` to the story's first email (mail
clients thread them), each message has a stable ``Message-ID`` (a resend after
a crash has the same one, and clients fold it), the text part is the project's
own ``email.txt.j2`` rather than an HTML-to-text conversion, and a refusal is
read from the SMTP reply code of the step that failed.

The channel URL keeps Apprise's form::

    mailto://USER:PASSWORD@SMTP_HOST[:PORT][/TO...]?to=...&from=...&name=...
    mailtos://...                         (STARTTLS on 587 by default)
    ?mode=insecure|starttls|ssl           (ssl: implicit TLS, 465 by default)
    ?smtp=HOST  ?user=  ?pass=  ?cc=  ?bcc=  ?reply=  ?verify=no  ?format=text|html  ?timeout=SECONDS

The host is the SMTP server (``smtp=`` overrides it). Apprise's provider
shortcuts (``mailto://me:pw@gmail.com``) are not guessed: name the SMTP host.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from monitor.alerts.senders import FailureReason, MessageStyle, OutgoingMessage, SendResult, SentAs
from monitor.secrets import redact

__all__ = ["EmailTarget", "EmailSender", "parse_mailto", "build_message", "classify_reply"]

Mode = Literal["insecure", "starttls", "ssl"]
_PORTS: dict[str, int] = {"insecure": 25, "starttls": 587, "ssl": 465}
_OPTIONS = {"to", "from", "name", "smtp", "mode", "user", "pass", "cc", "bcc", "reply", "verify", "format",
            "timeout"}
_FALSE = {"no", "false", "0", "off", "n"}
_LOCAL = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+")


@dataclass(frozen=True)
class EmailTarget:
    """What a ``mailto://`` URL names. ``password`` is a secret: never log or show it."""

    host: str
    port: int
    mode: Mode
    sender: str                      # the From header (display name and address)
    to: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    verify: bool = True
    html: bool = True
    timeout: float = 30.0

    @property
    def envelope_from(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def domain(self) -> str:
        """The right side of Message-IDs: the From address's domain."""
        return self.envelope_from.rpartition("@")[2] or "monitor.invalid"


def _addresses(*values: str) -> tuple[str, ...]:
    found = [addr for _, addr in getaddresses([v.replace(" ", ",") for v in values if v]) if addr]
    for addr in found:
        if "@" not in addr:
            raise ValueError(f"{addr!r} is not an email address")
    return tuple(dict.fromkeys(found))


def parse_mailto(url: str) -> EmailTarget:
    """Parse a ``mailto://``/``mailtos://`` URL; ValueError says what is wrong (never echoing the password)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("mailto", "mailtos"):
        raise ValueError("an email URL starts with mailto:// (plain or ?mode=) or mailtos:// (STARTTLS)")
    query = [(k.lower(), v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    unknown = sorted({k for k, _ in query} - _OPTIONS)
    if unknown:
        raise ValueError(f"unsupported email URL option(s) {', '.join(unknown)}; known: {', '.join(sorted(_OPTIONS))}")
    options = dict(query)
    try:
        port_in_url = parts.port
    except ValueError:
        raise ValueError("the port must be a number") from None
    host = options.get("smtp") or parts.hostname or ""
    if not host:
        raise ValueError("name the SMTP server: mailto://USER:PASSWORD@smtp.example.org?to=...")
    mode_text = (options.get("mode") or ("starttls" if scheme == "mailtos" else "insecure")).lower()
    if mode_text not in _PORTS:
        raise ValueError(f"mode must be insecure, starttls or ssl, got {mode_text!r}")
    mode: Mode = "insecure" if mode_text == "insecure" else ("starttls" if mode_text == "starttls" else "ssl")
    user = options.get("user") or (unquote(parts.username) if parts.username else None)
    password = options.get("pass") or (unquote(parts.password) if parts.password else None)
    from_addr = options.get("from") or (user if user and "@" in user else (f"{user}@{host}" if user else ""))
    if not from_addr or "@" not in parseaddr(from_addr)[1]:
        raise ValueError("say who the mail is from: ?from=monitor@example.org")
    name = options.get("name")
    sender = formataddr((name, parseaddr(from_addr)[1])) if name else from_addr
    path_targets = [unquote(p) for p in parts.path.split("/") if p]
    to = _addresses(*path_targets, options.get("to", "")) or (parseaddr(from_addr)[1],)
    timeout_text = options.get("timeout", "30")
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, got {timeout_text!r}") from None
    fmt = options.get("format", "html").lower()
    if fmt not in ("html", "text"):
        raise ValueError("format must be html (text and HTML parts) or text")
    return EmailTarget(host=host, port=port_in_url or _PORTS[mode], mode=mode, sender=sender, to=to, user=user,
                       password=password, cc=_addresses(options.get("cc", "")), bcc=_addresses(options.get("bcc", "")),
                       reply_to=options.get("reply") or None, verify=options.get("verify", "yes").lower() not in _FALSE,
                       html=fmt == "html", timeout=max(1.0, timeout))


def message_id(key: str, domain: str) -> str:
    """``<key@domain>`` with the key reduced to characters a Message-ID may hold."""
    return f"<{_LOCAL.sub('-', key).strip('.-') or 'message'}@{domain}>"


def build_message(target: EmailTarget, message: OutgoingMessage) -> EmailMessage:
    """The email for ``message``: text part (and HTML part), threading headers, a stable Message-ID.

    ``email.policy.default`` encodes an Arabic subject as RFC 2047 words and folds
    long headers, and refuses CR/LF in a header value, so feed text cannot add a header.
    """
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = target.sender
    mail["To"] = ", ".join(target.to)
    if target.cc:
        mail["Cc"] = ", ".join(target.cc)
    if target.reply_to:
        mail["Reply-To"] = target.reply_to
    mail["Date"] = formatdate(usegmt=True)
    if message.key:
        mail["Message-ID"] = message_id(message.key, target.domain)
    if message.reply_to:
        mail["In-Reply-To"] = message.reply_to
        mail["References"] = " ".join(dict.fromkeys((*message.references, message.reply_to)))
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the monitor
    mail.set_content(message.text, subtype="plain", charset="utf-8")
    if target.html and message.html:
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
    mail["Content-Language"] = "ar"  # after the content: set_content drops Content-* headers
    return mail


def classify_reply(code: int, text: str, *, step: str) -> FailureReason:
    """One failure reason for an SMTP reply code at ``step`` (rcpt, mail, data, auth, other)."""
    if step == "auth" or code in (530, 534, 535, 538):
        return FailureReason.AUTH
    if 400 <= code < 500:
        return FailureReason.SERVER_ERROR
    if code == 552 or (code == 554 and re.search(r"size|too (big|large)", text, re.I)):
        return FailureReason.TOO_LARGE
    if step in ("rcpt", "mail"):
        return FailureReason.AUTH  # the server will not take mail from or to these addresses: every message
    if 500 <= code < 600:
        return FailureReason.BAD_REQUEST
    return FailureReason.UNKNOWN


def _reply_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]


class EmailSender:
    """One SMTP session per message (a monitor sends a few an hour; no connection to keep alive)."""

    style: ClassVar[MessageStyle] = MessageStyle.EMAIL
    threads: ClassVar[bool] = True
    edits: ClassVar[bool] = False

    def __init__(self, target: EmailTarget) -> None:
        self.target = target

    async def aclose(self) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> SendResult:
        try:
            mail = build_message(self.target, message)
        except (ValueError, TypeError) as exc:
            return SendResult.failed(FailureReason.BAD_REQUEST, f"cannot build the email: {exc}")
        result = await asyncio.to_thread(self._deliver, mail)
        if result.delivered:
            sent_as = SentAs.REPLY if message.reply_to else SentAs.MESSAGE
            return SendResult.ok(str(mail["Message-ID"]) if mail["Message-ID"] else None, sent_as)
        return result

    def _deliver(self, mail: EmailMessage) -> SendResult:
        """Connect, secure, log in, send; every failure becomes a reason (runs in a worker thread)."""
        t = self.target
        step = "connect"
        try:
            context = ssl.create_default_context()
            if not t.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            smtp: smtplib.SMTP
            if t.mode == "ssl":
                smtp = smtplib.SMTP_SSL(t.host, t.port, timeout=t.timeout, context=context)
            else:
                smtp = smtplib.SMTP(t.host, t.port, timeout=t.timeout)
            with smtp:
                step = "hello"
                smtp.ehlo()
                if t.mode == "starttls":
                    step = "starttls"
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if t.user and t.password:
                    step = "auth"
                    smtp.login(t.user, t.password)
                step = "send"
                # Recipients refused while others took it do not fail the message: someone has it.
                smtp.send_message(mail, from_addr=t.envelope_from, to_addrs=[*t.to, *t.cc, *t.bcc])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b"refused"))
            return self._refused(code, text, "rcpt")
        except smtplib.SMTPSenderRefused as exc:
            return self._refused(exc.smtp_code, exc.smtp_error, "mail")
        except smtplib.SMTPDataError as exc:
            return self._refused(exc.smtp_code, exc.smtp_error, "data")
        except smtplib.SMTPAuthenticationError as exc:
            return self._refused(exc.smtp_code, exc.smtp_error, "auth")
        except smtplib.SMTPNotSupportedError:
            return SendResult.failed(FailureReason.AUTH, f"SMTP: the server does not offer {step.upper()}")
        except smtplib.SMTPResponseException as exc:
            return self._refused(exc.smtp_code, exc.smtp_error, step)
        except ssl.SSLCertVerificationError as exc:
            return SendResult.failed(FailureReason.AUTH, f"SMTP TLS: certificate not trusted ({exc.verify_message})")
        except TimeoutError:
            return SendResult.failed(FailureReason.TIMEOUT, f"SMTP: no answer in time ({step})")
        except ConnectionRefusedError:
            return SendResult.failed(FailureReason.SERVER_ERROR, f"SMTP: connection refused by {t.host}:{t.port}")
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult.failed(FailureReason.SERVER_ERROR, f"SMTP: {type(exc).__name__} while {step}")
        return SendResult.ok()

    def _refused(self, code: int, text: bytes | str, step: str) -> SendResult:
        reply = self._scrub(_reply_text(text))
        return SendResult.failed(classify_reply(code, reply, step=step), f"SMTP {code} at {step.upper()}: {reply}")

    def _scrub(self, text: str) -> str:
        """A server's reply with our password masked (some echo the login, password and all)."""
        password = self.target.password
        return redact(text, [password] if password else [])

