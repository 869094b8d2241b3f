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
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from monitor.errors import ConfigErrors, MonitorError
from monitor.rules import Decision, RuleSet, load_rules
from monitor.text.matcher import PROCLITICS
from monitor.text.normalize import normalize
from monitor.text.tokenize import tokenize

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
    import httpx

    try:
        response = httpx.get(url, follow_redirects=True, timeout=20.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise click.BadParameter(f"{url}: {exc}") from None
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
        raise click.BadParameter(str(exc)) from None
    for item in feed.items:
        yield item.key, item.title, item.summary


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

_STOP = set(normalize(w) for w in """
في من على الى إلى عن مع أن ان إن التي الذي الذين هذا هذه ذلك تلك كان كانت قد لا ما لم لن بعد قبل
بين حتى او أو ثم كما وقد وفي ومن هو هي هم وهو وهي عند خلال حول ضد منذ اي أي كل بل إلا الا غير
لها له لهم فيه فيها منها منه عليه عليها اليوم أمس أيضا ايضا وان وأن يكون تكون الذى التى
""".split())


def _key(token: str) -> str:
    """Grouping key: spelling variants of one name collapse to it."""
    t = token
    for pre in sorted(PROCLITICS | {"ال", "وال", "بال", "فال", "لل", "كال"}, key=len, reverse=True):
        if t.startswith(pre) and len(t) - len(pre) >= 3:
            t = t[len(pre):]
            break
    return t


@rules.command("suggest")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the draft YAML here instead of stdout.")
@click.option("--min-count", default=3, show_default=True, help="Minimum mentions of a candidate.")
@click.option("--top", default=60, show_default=True, help="Number of candidates.")
def suggest(corpus_dir: Path, output: Path | None, min_count: int, top: int) -> None:
    """Draft entities from recurring names and phrases in CORPUS_DIR/*.txt, with counts as comments."""
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for path in sorted(corpus_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for sentence in re.split(r"[.!?؟\n،,؛:]", text):
            words = [t.text for t in tokenize(sentence) if any(c.isalpha() for c in t.text)]
            norm = [normalize(w) for w in words]
            for n in (1, 2, 3):
                for i in range(len(words) - n + 1):
                    span = norm[i:i + n]
                    if span[0] in _STOP or span[-1] in _STOP or any(len(w) < 3 for w in span):
                        continue
                    # دير الزور / ديرالزور / لدير الزور -> one key
                    key = _key(span[0]).replace("ال", "") + "".join(w.replace("ال", "") for w in span[1:])
                    if n == 1 and "ال" not in span[0]:
                        continue  # single words: only definite or fused names (البوكمال, ديرالزور)
                    groups[key][" ".join(words[i:i + n])] += 1
    totals = {k: sum(c.values()) for k, c in groups.items() if sum(c.values()) >= min_count}
    # a fragment that (almost) only occurs inside a longer candidate is not a candidate
    kept = {k: t for k, t in totals.items()
            if not any(len(o) > len(k) and k in o and to >= 0.8 * t for o, to in totals.items())}
    ranked = sorted(((t, k, groups[k]) for k, t in kept.items()), key=lambda x: (-x[0], x[1]))[:top]
    lines = ["# Draft generated by `monitor rules suggest` - edit before use:",
             "# keep real names, merge duplicates, give each a readable id, add English labels.",
             f"# corpus: {corpus_dir}", "entities:"]
    for n, (total, _, variants) in enumerate(ranked, 1):
        label = variants.most_common(1)[0][0]
        lines.append(f"  - id: candidate_{n:03d}  # {total} mentions")
        lines.append(f"    labels: {{ar: {json.dumps(label, ensure_ascii=False)}}}")
        lines.append("    aliases:")
        for surface, count in variants.most_common():
            lines.append(f"      - {json.dumps(surface, ensure_ascii=False)}  # {count}")
    draft = "\n".join(lines) + "\n"
    if output:
        output.write_text(draft, encoding="utf-8")
        click.echo(f"wrote {len(ranked)} candidates to {output}")
    else:
        click.echo(draft, nl=False)


if __name__ == "__main__":  # pragma: no cover
    rules()
