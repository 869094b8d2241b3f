"""OPML import: people keep their feed lists in OPML, the daemon reads a YAML list of feeds.

``read_opml(path) -> list[(name, url)]`` walks every ``<outline xmlUrl=...>``
(nested categories included), keeping only http(s) URLs. It parses with
defusedxml, because an OPML file from the internet is as hostile as a feed
(entity bombs, XXE).

``import_opml(opml_path, feeds_yaml_path) -> ImportReport`` merges those feeds
into a YAML file holding a *list of feeds* (``- {name: ..., url: ...}``) that
the config includes via ``feed_files:``. A feed whose URL (compared in
canonical form) is already there is skipped; a name already taken gets a
numeric suffix. New entries are appended as text so the user's comments in
that file survive; the file is replaced atomically.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as safe_parse

from monitor.errors import ConfigError
from monitor.feeds.links import canonical_url, http_link

MAX_OPML_BYTES = 5 * 1024 * 1024


@dataclass
class ImportReport:
    added: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (name, url, reason)

    def __str__(self) -> str:
        lines = [f"added {len(self.added)} feed(s), skipped {len(self.skipped)}"]
        lines += [f"  + {name}  {url}" for name, url in self.added]
        lines += [f"  - {name}  {url}  ({reason})" for name, url, reason in self.skipped]
        return "\n".join(lines)


def read_opml(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(name, url) of every feed outline; raises ConfigError for unreadable or hostile files."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_OPML_BYTES:
            raise ConfigError(f"OPML file larger than {MAX_OPML_BYTES} bytes", file=str(path))
        tree = safe_parse(str(path), forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except OSError as exc:
        raise ConfigError(f"cannot read OPML file: {exc.strerror or exc}", file=str(path)) from None
    except DefusedXmlException as exc:
        raise ConfigError(f"OPML file refused: {exc}", file=str(path)) from None
    except (ElementTree.ParseError, ValueError, UnicodeError) as exc:
        raise ConfigError(f"not a valid OPML/XML file: {exc}", file=str(path)) from None
    root = tree.getroot()
    if root is None:
        raise ConfigError("not a valid OPML/XML file: no root element", file=str(path))
    feeds: list[tuple[str, str]] = []
    for outline in root.iter():
        if not isinstance(outline.tag, str) or outline.tag.rsplit("}", 1)[-1].lower() != "outline":
            continue
        attrs = {k.lower(): v for k, v in outline.attrib.items()}
        url = http_link((attrs.get("xmlurl") or "").strip())
        if not url:
            continue
        name = " ".join((attrs.get("title") or attrs.get("text") or "").split()) or url
        feeds.append((name, url))
    return feeds


def _load_list(path: Path) -> tuple[str, list[Any]]:
    if not path.exists():
        return "", []
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot merge into an invalid YAML file: {exc}", file=str(path)) from None
    if data is None:
        return text, []
    if not isinstance(data, list):
        raise ConfigError("a feed file must hold a YAML list of feeds", file=str(path))
    return text, data


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def import_opml(opml_path: str | os.PathLike[str], feeds_yaml_path: str | os.PathLike[str]) -> ImportReport:
    """Merge the OPML's feeds into the YAML feed list; returns what was added and skipped."""
    feeds = read_opml(opml_path)
    target = Path(feeds_yaml_path)
    text, existing = _load_list(target)
    seen_urls = {canonical_url(str(f["url"])) for f in existing if isinstance(f, dict) and f.get("url")}
    names = {str(f["name"]) for f in existing if isinstance(f, dict) and f.get("name")}
    report = ImportReport()
    new_entries: list[dict[str, str]] = []
    for name, url in feeds:
        canon = canonical_url(url)
        if canon in seen_urls:
            report.skipped.append((name, url, "already present"))
            continue
        unique, n = name, 2
        while unique in names:
            unique, n = f"{name} ({n})", n + 1
        seen_urls.add(canon)
        names.add(unique)
        new_entries.append({"name": unique, "url": url})
        report.added.append((unique, url))
    if not new_entries:
        return report
    addition = yaml.safe_dump(new_entries, allow_unicode=True, sort_keys=False, default_flow_style=False)
    merged = (text if not text or text.endswith("\n") else text + "\n") + addition
    try:
        ok = yaml.safe_load(merged) == existing + new_entries
    except yaml.YAMLError:
        ok = False
    if not ok:  # e.g. a flow-style list: rewrite it whole rather than corrupt it
        merged = yaml.safe_dump(existing + new_entries, allow_unicode=True, sort_keys=False,
                                default_flow_style=False)
    _atomic_write(target, merged)
    return report
