"""YAML files that remember where each value came from.

People edit the config and the rules by hand, so every error must name the
file, line and column of the bad value. ``load_yaml`` parses with PyYAML's
safe composer, keeps a map from each value's path (``("feeds", 2, "url")``)
to its position, and ``errors_from_validation`` turns a pydantic
``ValidationError`` into ``ConfigError``s that point at those positions, with
a close-spelling suggestion for unknown keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from monitor.errors import ConfigError

Path_ = tuple[str | int, ...]

# A hand-edited file this large is a mistake or an attack (alias bombs expand
# on conversion); refuse it before it costs memory.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_VALUES = 500_000


@dataclass
class YamlDocument:
    """Parsed data plus the position of every value and mapping key in it."""

    data: Any
    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Iterable[str | int], *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the value at ``path`` or of its nearest parent."""
        path = tuple(path)
        if key and path in self.key_positions:
            return self.key_positions[path]
        while path:
            if path in self.positions:
                return self.positions[path]
            if path in self.key_positions:
                return self.key_positions[path]
            path = path[:-1]
        return self.positions.get((), (None, None))

    def error(self, path: Iterable[str | int], message: str, *, suggestion: str | None = None,
              key: bool = False) -> ConfigError:
        """A ``ConfigError`` located at ``path`` (a dotted field name is built from it)."""
        path = tuple(path)
        line, column = self.locate(path, key=key)
        return ConfigError(message, file=self.file, line=line, column=column,
                           field=dotted(path) or None, suggestion=suggestion)


def dotted(path: Iterable[str | int]) -> str:
    """``("feeds", 2, "url")`` -> ``feeds[2].url``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(source: str | Path, *, text: str | None = None) -> YamlDocument:
    """Parse a YAML file (or ``text`` reported as ``source``) safely, with positions.

    Raises ``ConfigError`` for unreadable files, syntax errors, oversized
    documents and non-string mapping keys; never a PyYAML traceback.
    """
    name = str(source)
    if text is None:
        try:
            raw = Path(source).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=name) from exc
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=name)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"file is not UTF-8 (byte {exc.start})", file=name) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError(
            f"invalid YAML: {message}",
            file=name,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:  # pragma: no cover - composer errors are all marked
        raise ConfigError(f"invalid YAML: {exc}", file=name) from exc
    doc = YamlDocument(data=None, file=name)
    if node is None:
        return doc
    builder = _Builder(doc)
    doc.data = builder.build(node, ())
    return doc


class _Builder:
    """Converts composed nodes to plain Python values, recording positions."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.count = 0
        self.constructor = yaml.SafeLoader.__new__(yaml.SafeLoader)
        yaml.constructor.SafeConstructor.__init__(self.constructor)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.doc.error(path, f"more than {MAX_VALUES} values (a YAML alias bomb?)")
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    raise self.doc.error(path, f"mapping key at line {key_node.start_mark.line + 1} must be a plain word")
                key = str(key)
                child = path + (key,)
                if key in out:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(f"duplicate key {key!r}", file=self.doc.file, line=line,
                                      column=key_node.start_mark.column + 1, field=dotted(child))
                self.doc.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self.doc.error(path, f"invalid value: {exc.problem}") from exc


def model_field_names(model: type[BaseModel]) -> set[str]:
    """Every field name (and alias) of ``model`` and the models nested in it."""
    seen: set[type] = set()
    names: set[str] = set()

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for name, info in tp.model_fields.items():
                names.add(info.alias or name)
                walk(info.annotation)
        for arg in getattr(tp, "__args__", ()) or ():
            walk(arg)

    walk(model)
    return names


def errors_from_validation(
    exc: ValidationError,
    doc: YamlDocument,
    *,
    prefix: Path_ = (),
    known_names: Iterable[str] = (),
) -> list[ConfigError]:
    """Map pydantic errors to located ``ConfigError``s.

    ``prefix`` is where the validated value sits in the document (when a
    sub-tree was validated); ``known_names`` feeds the "did you mean" hint for
    unknown keys.
    """
    names = sorted(set(known_names))
    out: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(p for p in err["loc"] if not _is_union_tag(p))
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            out.append(doc.error(loc, "unknown key", suggestion=close[0] if close else None, key=True))
            continue
        if kind == "missing":
            out.append(doc.error(loc, "required key is missing"))
            continue
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        out.append(doc.error(loc, message))
    return out


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the union member's type name into ``loc`` ("str", "list[str]",
    # "function-after[...]"); those are not keys of the document.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list", "dict"})
