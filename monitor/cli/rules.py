"""``monitor rules check | test | suggest``: the same load path the daemon uses.

``check`` validates; ``test`` shows what the rules find in documents (text
with highlighted hits, or one JSON object per document - a stable public
interface); ``suggest`` drafts entities from a corpus for a person to edit.
Exit codes: 0 ok, 1 validation errors, 2 usage.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from monitor.errors import ConfigError, ConfigErrors, MonitorError
from monitor.feeds.settings import FetchSettings
from monitor.rules import Decision, RuleSet, load_rules

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
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if len(line) < 8 and not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                    yield str(obj.get("id", f"{path}:{n}")), "", str(obj["text"])
                except (ValueError, KeyError, AttributeError) as exc:
                    raise click.BadParameter(f"{path}:{n}: not a {{\"id\", \"text\"}} object ({exc})") from None
    elif path.is_file():
        yield str(path), "", path.read_text(encoding="utf-8", errors="replace")
    else:
        raise click.BadParameter(f"{source}: no such file, directory or URL")


def _feed_documents(url: str) -> Iterator[tuple[str, str, str]]:
    """The items of the feed at ``url``, fetched the way the daemon fetches.

    Through the ``Fetcher``: size cap on the inflated body, total time limit,
    checked redirects and the private-address guard, with the ``fetch:``
    settings of the config when there is one ($MONITOR_CONFIG, else
    /etc/monitor/config.yaml), else the defaults. A bare ``httpx.get`` here
    let a gzip bomb cost 1 GB and a slow drip hang the command.
    """
    import asyncio

    from monitor.feeds.fetch import Fetcher
    from monitor.feeds.parse import parse_feed
    from monitor.types import FetchResult

    settings = _fetch_settings()

    async def fetch() -> FetchResult:
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch(url)

    try:
        result = asyncio.run(fetch())
        feed = parse_feed(result.body, result.headers, url=result.final_url, feed_name=url)
    except MonitorError as exc:
        raise click.BadParameter(str(exc)) from None
    for item in feed.items:
        yield item.key, item.title, item.summary


def _fetch_settings() -> FetchSettings:
    """The config's ``fetch:`` section, or the defaults when no config is found or it is invalid."""
    from monitor.config import find_config, load_config

    try:
        path = find_config(None)
    except ConfigError:
        return FetchSettings()
    try:
        return load_config(path).model.fetch
    except MonitorError as exc:
        click.echo(f"note: fetching with the default fetch settings: {path} does not load ({exc})", err=True)
        return FetchSettings()


def _result(ruleset: RuleSet, doc_id: str, title: str, body: str, *,
            explain: bool = False) -> tuple[dict[str, Any], str]:
    """JSON object for one document, and the document text its offsets index."""
    ev = ruleset.evaluate(title=title, body=body, explain=explain)
    text = f"{title}\n{body}" if title else body
    shift = {"body": len(title) + 1} if title else {}
    obj: dict[str, Any] = {"id": doc_id, "rules": [m.rule_id for m in ev.matches], "entities": ev.entities,
                           "hits": ev.hit_dicts(shift)}
    if explain:
        moved = shift.get("body", 0)
        obj["decisions"] = [
            _decision({"entity": d.hit.entity, "alias": d.hit.alias,
                       "start": d.hit.start + (moved if d.hit.field == "body" else 0),
                       "end": d.hit.end + (moved if d.hit.field == "body" else 0), "text": d.hit.text}, d)
            for d in ev.decisions]
    return obj, text


def _decision(where: dict[str, Any], d: Decision) -> dict[str, Any]:
    out = {**where, "counted": d.counted, "reason": d.reason}
    if d.score is not None:
        out.update(score=d.score, threshold=d.threshold,
                   evidence=[{"cue": e.label, "weight": e.weight, "found": e.found} for e in d.evidence])
    if d.detail:
        out["detail"] = d.detail
    return out


def _context(text: str, start: int, end: int, width: int = 40) -> str:
    left = text[max(0, start - width):start].replace("\n", " ")
    right = text[end:end + width].replace("\n", " ")
    return f"…{left}[{click.style(text[start:end], bold=True, fg='red')}]{right}…"


def _why(d: dict[str, Any]) -> str:
    """One line of text output for a decision: the verdict, then what decided it."""
    if d["reason"] == "sense":
        cues = "; ".join(f"{e['weight']:+g} {e['cue']} ({e['found']})" for e in d["evidence"]) or "no evidence"
        sign = ">=" if d["counted"] else "<"
        return f"score {d['score']:g} {sign} {d['threshold']:g}: {cues}"
    detail: str = d.get("detail") or {"alias": "an unambiguous alias"}.get(d["reason"], d["reason"])
    return detail


@rules.command("test")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=DEFAULT_RULES,
              show_default=True, help="Rule file or directory.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--explain", is_flag=True,
              help="Also every occurrence of an alias: counted or not, its score and the evidence that decided it.")
@click.argument("inputs", nargs=-1, required=True)
def test(rules_dir: Path, fmt: str, explain: bool, inputs: tuple[str, ...]) -> None:
    """Run the rules over INPUT: a .txt file, a directory of .txt, a .jsonl of {"id","text"}, or a feed URL.

    JSON output is one object per line: {"id", "rules", "entities", "hits": [{"entity",
    "alias", "start", "end", "text"}]}, offsets into the document text (for a feed
    item: title + newline + summary). With --explain each object also has "decisions":
    one per occurrence of an alias, with the keys of a hit plus "counted", "reason"
    (alias, sense, excluded, covered) and, for a sense decision, "score", "threshold"
    and "evidence" [{"cue", "weight", "found"}].
    """
    ruleset = _load_or_exit([rules_dir])
    out = sys.stdout.buffer
    for source in inputs:
        for doc_id, title, body in _documents(source):
            obj, text = _result(ruleset, doc_id, title, body, explain=explain)
            if fmt == "json":
                out.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
                continue
            click.echo(f"== {doc_id}")
            click.echo(f"   rules:    {', '.join(obj['rules']) or '-'}")
            click.echo(f"   entities: {', '.join(obj['entities']) or '-'}")
            for h in obj["hits"]:
                click.echo(f"   {h['entity']:<22} {h['start']:>6}-{h['end']:<6} {_context(text, h['start'], h['end'])}")
            for d in obj.get("decisions", ()):
                mark = "counted    " if d["counted"] else "not counted"
                click.echo(f"   {mark} {d['entity']:<16} {d['start']:>6}-{d['end']:<6} {d['text']!r}: {_why(d)}")


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
