"""YAML files that remember where each value came from, parsed within bounds.

People edit the config and the rules by hand, so every error must name the
file, line and column of the bad value. ``load_yaml`` parses with a
``SafeLoader`` of our own (``BoundedLoader``), keeps a map from each value's
path (``("feeds", 2, "url")``) to its position, and ``errors_from_validation``
turns a pydantic ``ValidationError`` into ``ConfigError``s that point at those
positions, with a close-spelling suggestion for unknown keys.

Bounds, enforced *while* the document is composed (not after the whole tree
exists): a 1 KB file of ``[`` nested 500 deep made PyYAML recurse until
``RecursionError``, and a 3.7 MB file of 1.9 M tiny values cost 1.3 GB and
75 s before any check could look at it. ``BoundedLoader`` counts nesting depth
and nodes in its ``compose_node`` hook (an alias counts as the size of what it
repeats, so alias bombs stop there too) and raises a located error at the
first node over a limit. Measured: a 100,000-node file costs about 65 MB to
compose (about 620 bytes per node); the limits keep one file's parse well
inside the service's ``MemoryMax`` (see deploy/README.md, "Memory").
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

#: A hand-edited file this large is a mistake or an attack; refused before it is read.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Nodes (keys and values) per file; an alias counts as what it repeats. The default rule
#: pack's largest file has about 700; 80,000 aliases (20 per entity) are about 100,000.
MAX_NODES = 100_000
#: Nesting levels per file. Rules files need 6, the config 5.
MAX_DEPTH = 50


class LimitExceeded(yaml.MarkedYAMLError):
    """A document over ``MAX_NODES`` or ``MAX_DEPTH``, raised at the node that crossed the limit."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting depth and nodes as it composes.

    Only public extension points are used: ``compose_node`` (called once per
    node, recursively, so the depth is the recursion's) and ``peek_event``.
    Construction is ``SafeConstructor``'s, unchanged.
    """

    def __init__(self, stream: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
        super().__init__(stream)
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.nodes = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(anchored node) -> nodes it stands for

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event.start_mark, "aliases repeating")
            return node
        self._depth += 1
        if self._depth > self.max_depth:
            raise LimitExceeded(None, None, f"nested deeper than {self.max_depth} levels", event.start_mark)
        before = self.nodes
        self._count(1, event.start_mark, "")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if getattr(event, "anchor", None) is not None:
            self._sizes[id(node)] = self.nodes - before
        return node

    def _count(self, nodes: int, mark: Any, how: str) -> None:
        self.nodes += nodes
        if self.nodes > self.max_nodes:
            what = f"more than {self.max_nodes} values" + (f" ({how} earlier values)" if how else "")
            raise LimitExceeded(None, None, what, mark)


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
        loader = BoundedLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character: checked before any parsing
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(f"invalid YAML: unacceptable character #x{exc.character:04x}", file=name,
                          line=line, column=column) from None
    try:
        try:
            node = loader.get_single_node()
        except LimitExceeded as exc:
            raise _located(name, f"refused: {exc.problem}", exc.problem_mark) from None
        except yaml.MarkedYAMLError as exc:
            message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
            raise _located(name, f"invalid YAML: {message}", exc.problem_mark or exc.context_mark) from exc
        except yaml.YAMLError as exc:  # pragma: no cover - composer errors are all marked
            raise ConfigError(f"invalid YAML: {exc}", file=name) from exc
        doc = YamlDocument(data=None, file=name)
        if node is not None:
            doc.data = _Builder(doc, loader).build(node, ())
        return doc
    finally:
        loader.dispose()


def _located(file: str, message: str, mark: yaml.Mark | None) -> ConfigError:
    return ConfigError(message, file=file, line=mark.line + 1 if mark else None,
                       column=mark.column + 1 if mark else None)


class _Builder:
    """Converts composed nodes to plain Python values with the loader's own constructor,
    recording positions. The loader already bounded the tree's size and depth."""

    def __init__(self, doc: YamlDocument, loader: BoundedLoader) -> None:
        self.doc = doc
        self.loader = loader

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    raise self.doc.error(path, f"mapping key at line {key_node.start_mark.line + 1} "
                                               "must be a plain word")
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
            return self.loader.construct_object(node, deep=True)
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
