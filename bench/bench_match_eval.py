"""Matching quality: per-entity precision, recall and F1 of a rule pack on three labelled sets.

    PYTHONPATH=. .venv/bin/python bench/bench_match_eval.py [--rules DIR] [--real-news PATH]
                                                            [--set dev|heldout|real-news ...] [--texts] [--json]

Sets: the constructed ``tests/data/match_eval`` dev and heldout splits (issue 14), and the real
labelled paragraphs read in place from ``../shared/corpora/real-news/dev.jsonl`` (never copied into
the repo; ``--real-news`` or ``MONITOR_REAL_NEWS`` point elsewhere). Only the eleven front entities
the sets label are scored. An entity with no gold mention has no recall, one with no prediction no
precision; macro averages are over the entities where the figure is defined.

Misses and false alarms are listed by case id. ``--texts`` adds the text for the dev split only:
heldout must not be read while tuning, and the real-news texts are others' sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENTITIES = ("bukamal", "qasad", "omar_field", "deir_ez_zor", "mayadin", "isis", "qaim", "raqqa", "busayrah",
            "shaddadi", "suheil_hassan")
MATCH_EVAL = ROOT / "tests" / "data" / "match_eval"
DEFAULT_REAL_NEWS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "real-news" / "dev.jsonl"
TEXT_SETS = frozenset({"dev"})  # the only set whose texts may be printed

Detector = Callable[[str], frozenset[str]]


class BadInput(ValueError):
    """A rules path or a line of a set that cannot be used; the message names file, line and field."""


def load_detector(rules: Path) -> Detector:
    """The only place that touches the project's API: a module move is a one-line change here."""
    from monitor.errors import MonitorError
    from monitor.rules import load_rules

    try:
        ruleset = load_rules([rules])
    except MonitorError as exc:
        raise BadInput(str(exc)) from exc
    return lambda text: frozenset(ruleset.evaluate(title="", body=text).entities)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    entities: frozenset[str]
    ambiguous: bool = False


def load_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise BadInput(f"{where}: expected a JSON object")
        for key in ("id", "text"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise BadInput(f"{where}: field {key!r} must be a non-empty string")
        labels = row.get("entities")
        if not isinstance(labels, list) or not all(isinstance(e, str) for e in labels):
            raise BadInput(f"{where}: field 'entities' must be a list of entity ids")
        unknown = sorted(set(labels) - set(ENTITIES))
        if unknown:
            raise BadInput(f"{where}: field 'entities' has unknown ids {unknown}")
        cases.append(Case(row["id"], row["text"], frozenset(labels), bool(row.get("ambiguous", False))))
    return cases


@dataclass
class EntityScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0


def score(cases: Iterable[Case], detect: Detector) -> dict[str, EntityScore]:
    scores = {e: EntityScore() for e in ENTITIES}
    for case in cases:
        found = detect(case.text) & set(ENTITIES)
        for e in ENTITIES:
            s = scores[e]
            if e in found and e in case.entities:
                s.tp += 1
            elif e in found:
                s.fp += 1
                s.false_alarms.append(case.id)
            elif e in case.entities:
                s.fn += 1
                s.misses.append(case.id)
    return scores


def macro(scores: dict[str, EntityScore]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in ("precision", "recall", "f1"):
        values = [v for s in scores.values() if (v := getattr(s, name)) is not None]
        out[name] = sum(values) / len(values) if values else None
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(scores: dict[str, EntityScore]) -> str:
    rows = ["| entity | gold | tp | fp | fn | precision | recall | F1 |", "|---|---|---|---|---|---|---|---|"]
    for e, s in scores.items():
        rows.append(f"| {e} | {s.tp + s.fn} | {s.tp} | {s.fp} | {s.fn} | {_fmt(s.precision)} | {_fmt(s.recall)} "
                    f"| {_fmt(s.f1)} |")
    m = macro(scores)
    rows.append(f"| **macro** | | | | | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} |")
    return "\n".join(rows)


def mistakes(scores: dict[str, EntityScore], cases: Sequence[Case], show_text: bool) -> str:
    by_id = {c.id: c for c in cases}
    lines: list[str] = []
    for e, s in scores.items():
        for label, ids in (("missed", s.misses), ("false alarm", s.false_alarms)):
            if not ids:
                continue
            marked = [f"{i}(ambiguous)" if by_id[i].ambiguous else i for i in ids]
            lines.append(f"- {e} {label} ({len(ids)}): {' '.join(marked)}")
            if show_text:
                lines += [f"    {i}: {by_id[i].text}" for i in ids]
    return "\n".join(lines) if lines else "- none"


def real_news_path(cli_value: str | None) -> Path:
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("MONITOR_REAL_NEWS")
    return Path(env) if env else DEFAULT_REAL_NEWS


def _score_json(scores: dict[str, EntityScore]) -> dict[str, object]:
    return {
        "entities": {e: {"gold": s.tp + s.fn, "tp": s.tp, "fp": s.fp, "fn": s.fn, "precision": s.precision,
                         "recall": s.recall, "f1": s.f1, "misses": s.misses, "false_alarms": s.false_alarms}
                     for e, s in scores.items()},
        "macro": macro(scores),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default=str(ROOT / "rules"), help="rule file or directory (default: rules/)")
    parser.add_argument("--real-news", help="real-news dev.jsonl (default: $MONITOR_REAL_NEWS, else "
                                            "../shared/corpora/real-news/dev.jsonl beside the repo)")
    parser.add_argument("--set", action="append", choices=("dev", "heldout", "real-news"), dest="sets",
                        help="score only these sets (repeatable; default: all three)")
    parser.add_argument("--texts", action="store_true", help="print the text of each dev mistake")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    paths = {"dev": MATCH_EVAL / "dev.jsonl", "heldout": MATCH_EVAL / "heldout.jsonl",
             "real-news": real_news_path(args.real_news)}
    wanted = args.sets or ["dev", "heldout", "real-news"]
    try:
        detect = load_detector(Path(args.rules))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    report: dict[str, object] = {"rules": args.rules, "sets": {}}
    sets_json: dict[str, object] = {}
    report["sets"] = sets_json
    text_out: list[str] = [f"# Matching quality per entity (rules: {args.rules})"]
    for name in wanted:
        path = paths[name]
        if not path.is_file():
            sets_json[name] = {"path": str(path), "absent": True}
            text_out.append(f"\n## {name}: ABSENT - no file at {path}\n(set --real-news PATH or MONITOR_REAL_NEWS)")
            continue
        try:
            cases = load_cases(path)
        except BadInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        scores = score(cases, detect)
        sets_json[name] = {"path": str(path), "absent": False, "cases": len(cases),
                           "ambiguous_ids": [c.id for c in cases if c.ambiguous], **_score_json(scores)}
        text_out += [f"\n## {name}: {len(cases)} cases ({path})\n", table(scores),
                     "\nMisses and false alarms (case ids):", mistakes(scores, cases, args.texts and name in TEXT_SETS)]
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else "\n".join(text_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
