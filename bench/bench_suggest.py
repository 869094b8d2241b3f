"""`monitor rules suggest` as the user runs it: what its first 30 candidates find, and how long it takes.

For each input (the seed corpus; the real-news paragraphs, read in place from
../shared/corpora/real-news/dev.jsonl when present) the command runs as a
process with ``--format json``. Reported per input:

* which of the pack's 11 required entities the first 30 candidates name: a
  candidate names an entity when the pack's matcher finds it in one of the
  candidate's forms, or a form is one of the entity's ambiguous aliases;
* the ranks of five common words (السورية المدينة المحافظة الشرقي النظام);
* wall time, median of 3 runs, against ``monitor rules test`` over the same
  input in the same run (the peer: same start-up and rule loading).

``--score FILE.yaml`` scores an existing draft instead (e.g. one written by an
older version of the command). Run: ``.venv/bin/python bench/bench_suggest.py``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.text.matcher import match_form

from monitor.rules import RuleSet, load_rules

REQUIRED = ["bukamal", "qasad", "omar_field", "deir_ez_zor", "mayadin", "isis", "qaim", "raqqa", "busayrah",
            "shaddadi", "suheil_hassan"]
COMMON = ["السورية", "المدينة", "المحافظة", "الشرقي", "النظام"]
_NEWS = Path("shared") / "corpora" / "real-news" / "dev.jsonl"
INPUTS = {"corpus": ROOT / "tests" / "data" / "corpus",
          "real-news": next((p / _NEWS for p in (ROOT.parent, ROOT.parent.parent) if (p / _NEWS).exists()),
                            ROOT.parent / _NEWS)}
TOP = 30


def named(pack: RuleSet, forms: list[str]) -> set[str]:
    ambiguous = {e: {match_form(a) for g in pack.entity(e).ambiguous for a in g.aliases} for e in REQUIRED}
    out: set[str] = set()
    for form in forms:
        out |= {h.entity for h in pack.evaluate(body=form).hits}
        out |= {e for e in REQUIRED if match_form(form) in ambiguous[e]}
    return out & set(REQUIRED)


def report(pack: RuleSet, ranking: list[tuple[str, list[str]]]) -> None:
    found: dict[str, int] = {}
    for rank, (_label, forms) in enumerate(ranking[:TOP], 1):
        for entity in named(pack, forms):
            found.setdefault(entity, rank)
    labels = [label for label, _ in ranking]
    common = {w: (labels.index(w) + 1 if w in labels else "-") for w in COMMON}
    print(f"  required entities in the first {TOP}: {len(found)}/{len(REQUIRED)} "
          f"({', '.join(f'{e}@{r}' for e, r in sorted(found.items(), key=lambda x: x[1]))}); "
          f"missing: {', '.join(e for e in REQUIRED if e not in found) or '-'}")
    print("  common words' ranks (-: not listed): " + ", ".join(f"{w} {r}" for w, r in common.items()))
    print("  first 30: " + " | ".join(label for label, _ in ranking[:TOP]))


def timed(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main(argv: list[str]) -> int:
    pack = load_rules([ROOT / "rules"])
    if argv[:1] == ["--score"]:
        for path in argv[1:]:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            ranking = [(e["labels"]["ar"], list(e.get("aliases") or [])
                        + [a for g in e.get("ambiguous") or [] for a in g["aliases"]]) for e in data["entities"]]
            print(f"{path}:")
            report(pack, ranking)
        return 0
    print(f"{'input':<10} {'suggest s':>10} {'rules test s':>13} {'ratio':>6}")
    outputs: dict[str, str] = {}
    for name, source in INPUTS.items():
        if not source.exists():
            print(f"{name:<10} skipped: {source} not found")
            continue
        base = [sys.executable, "-m", "monitor", "rules"]
        runs = [timed(base + ["suggest", str(source), "--format", "json", "--top", str(TOP)]) for _ in range(3)]
        peers = [timed(base + ["test", "--format", "json", str(source)])[0] for _ in range(3)]
        ours, peer = statistics.median(t for t, _ in runs), statistics.median(peers)
        outputs[name] = runs[0][1]
        print(f"{name:<10} {ours:>10.2f} {peer:>13.2f} {ours / peer:>6.1f}")
    for name, out in outputs.items():
        data = json.loads(out)
        print(f"\n{name}: {data['documents']} documents, {data['words']} words; background {data['background']}")
        report(pack, [(c["label"], [a["text"] for a in c["aliases"]] + [a["text"] for a in c["ambiguous"]])
                      for c in data["candidates"]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
