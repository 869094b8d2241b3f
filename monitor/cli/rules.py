"""``monitor rules check | test | suggest``: the same load path the daemon uses.

``check`` validates; ``test`` shows what the rules find in documents (text
with highlighted hits, or one JSON object per document - a stable public
interface); ``suggest`` drafts entities from a corpus for a person to edit.
Exit codes: 0 ok, 1 validation errors, 2 usage.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import click

from monitor.errors import ConfigErrors, MonitorError
from monitor.rules import RuleSet, load_rules

DEFAULT_RULES = Path("rules")


@click.group(name="rules")
def rules() -> None:
    """Validate, try out and draft the YAML alert rules."""


def _load_or_exit(paths: list[Path]) -> RuleSet:
    try:
        return load_rules(paths)
    except ConfigErrors as exc:
        for err in exc.errors:
            click.echo(str(err), err=True)
        raise SystemExit(1) from None


@rules.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate rule files or directories (default: ./rules)."""
    ruleset = _load_or_exit(list(paths) or [DEFAULT_RULES])
    click.echo(f"ok: {len(ruleset.entity_ids)} entities, {len(ruleset.keyword_ids)} keyword sets, "
               f"{len(ruleset.rule_ids)} rules from {len(ruleset.sources)} files "
               f"(fingerprint {ruleset.fingerprint})")


# ------------------------------------------------------------------------------ test

def _documents(source: str) -> Iterator[tuple[str, str, str]]:
    """(id, title, body) for each document of an INPUT."""
    if re.match(r"https?://", source):
        yield from _feed_documents(source)
        return
    path = Path(source)
    if path.is_dir():
        for p in sorted(path.glob("*.txt")):
            yield str(p), "", p.read_text(encoding="utf-8", errors="replace")
    elif path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    yield str(obj.get("id", f"{path}:{n}")), "", str(obj["text"])
                except (ValueError, KeyError, AttributeError) as exc:
                    raise click.BadParameter(f"{path}:{n}: not a {{\"id\", \"text\"}} object ({exc})")
    elif path.is_file():
        yield str(path), "", path.read_text(encoding="utf-8", errors="replace")
    else:
        raise click.BadParameter(f"{source}: no such file, directory or URL")


def _feed_documents(url: str) -> Iterator[tuple[str, str, str]]:
    import httpx

    try:
        response = httpx.get(url, follow_redirects=True, timeout=20.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise click.BadParameter(f"{url}: {exc}")
    try:
        from monitor.feeds.parse import parse_feed
    except ImportError:  # pragma: no cover - parse.py is another stage's module
        import feedparser

        parsed = feedparser.parse(io.BytesIO(response.content), response_headers=dict(response.headers))
        for i, entry in enumerate(parsed.entries):
            yield str(entry.get("id") or entry.get("link") or f"{url}#{i}"), entry.get("title", ""), \
                entry.get("summary", "")
        return
    try:
        feed = parse_feed(response.content, response.headers, url=url, feed_name=url)
    except MonitorError as exc:
        raise click.BadParameter(str(exc))
    for item in feed.items:
        yield item.key, item.title, item.summary


def _result(ruleset: RuleSet, doc_id: str, title: str, body: str) -> tuple[dict, str]:
    """JSON object for one document, and the document text its offsets index."""
    ev = ruleset.evaluate(title=title, body=body)
    text = f"{title}\n{body}" if title else body
    shift = len(title) + 1 if title else 0
    hits = [{"entity": h.entity, "alias": h.alias,
             "start": h.start + (shift if h.field == "body" else 0),
             "end": h.end + (shift if h.field == "body" else 0), "text": h.text} for h in ev.hits]
    return {"id": doc_id, "rules": [m.rule_id for m in ev.matches], "entities": ev.entities,
            "hits": hits}, text


def _context(text: str, start: int, end: int, width: int = 40) -> str:
    left = text[max(0, start - width):start].replace("\n", " ")
    right = text[end:end + width].replace("\n", " ")
    return f"…{left}[{click.style(text[start:end], bold=True, fg='red')}]{right}…"


@rules.command("test")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=DEFAULT_RULES,
              show_default=True, help="Rule file or directory.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.argument("inputs", nargs=-1, required=True)
def test(rules_dir: Path, fmt: str, inputs: tuple[str, ...]) -> None:
    """Run the rules over INPUT: a .txt file, a directory of .txt, a .jsonl of {"id","text"}, or a feed URL.

    JSON output is one object per line: {"id", "rules", "entities", "hits": [{"entity",
    "alias", "start", "end", "text"}]}, offsets into the document text (for a feed
    item: title + newline + summary).
    """
    ruleset = _load_or_exit([rules_dir])
    for source in inputs:
        for doc_id, title, body in _documents(source):
            obj, text = _result(ruleset, doc_id, title, body)
            if fmt == "json":
                click.echo(json.dumps(obj, ensure_ascii=False))
                continue
            click.echo(f"== {doc_id}")
            click.echo(f"   rules:    {', '.join(obj['rules']) or '-'}")
            click.echo(f"   entities: {', '.join(obj['entities']) or '-'}")
            for h in obj["hits"]:
                click.echo(f"   {h['entity']:<22} {h['start']:>6}-{h['end']:<6} {_context(text, h['start'], h['end'])}")


# ------------------------------------------------------------------------------ suggest

@rules.command("suggest")
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the draft here instead of stdout.")
@click.option("--min-count", default=2, show_default=True, type=click.IntRange(min=1),
              help="Minimum mentions of a candidate.")
@click.option("--top", default=60, show_default=True, type=click.IntRange(min=1), help="Number of candidates.")
@click.option("--new-only", is_flag=True, help="Leave out the candidates the pack already finds.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), default=None,
              help="Rule pack to compare against (default: ./rules when it exists).")
def suggest(corpus: Path, output: Path | None, min_count: int, top: int, new_only: bool, fmt: str,
            rules_path: Path | None) -> None:
    """Draft entities from CORPUS: a folder of .txt, a .txt file or a .jsonl of {"id","text"}.

    Candidates are ranked by how much more often they occur here than in general
    Arabic (wordfreq's Arabic list), grouped with their spelling variants, short
    forms and acronyms, flagged ambiguous when they are also common words, and
    marked when the rule pack already finds them. The YAML passes `rules check`.
    """
    from monitor.rules.suggest import (
        Settings,
        SuggestInputError,
        read_documents,
        to_json,
        to_yaml,
        wordfreq_background,
    )
    from monitor.rules.suggest import suggest as draft

    if rules_path is None:
        pack = _load_or_exit([DEFAULT_RULES]) if DEFAULT_RULES.exists() else None
    else:
        pack = _load_or_exit([rules_path])
    try:
        documents = read_documents(corpus)
    except SuggestInputError as exc:
        raise click.ClickException(str(exc)) from None
    result = draft(documents, wordfreq_background(), pack, Settings(min_count=min_count), source=str(corpus),
                   new_only=new_only, top=top)
    text = to_json(result) + "\n" if fmt == "json" else to_yaml(result)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(result.candidates)} candidates to {output}")
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    rules()
