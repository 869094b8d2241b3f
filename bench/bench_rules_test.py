"""Speed of ``monitor rules test --format json`` against camel-tools' normalization, and of rule evaluation.

    PYTHONPATH=. .venv/bin/python bench/bench_rules_test.py [--articles 3000] [--rounds 5] [--base b84ce61]

What the user waits for is the whole command, so the first table times processes: the command
(this tree, and the base commit's tree extracted with ``git archive`` into a temporary folder)
and, as the peer, a process that reads the same JSONL and runs camel-tools' normalization chain
(``normalize_unicode``, alef, alef maksura, teh marbuta, ``dediac_ar``) on every text - the
comparison issue 14 asks for. The rounds are interleaved (the VM's speed drifts by tens of percent
within minutes); each cell is the median [min-max] of the child's CPU time (user + sys, from
``os.wait4``: neighbours on the shared machine do not inflate it), wall time beside it.

The second table times ``RuleSet.evaluate`` per article inside one process per tree, and its
parts: preparing the text and running the matcher (``PreparedText`` + ``Matcher.find``, the same
calls in both trees) and the rest (sense decisions, hits, rules). Input: ``--articles`` articles
remixed from tests/data/corpus the way bench_text.py does it (deterministic, ~5.7 KB each).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_text import articles

CAMEL = """
import json, sys
from camel_tools.utils.dediac import dediac_ar
from camel_tools.utils.normalize import (normalize_alef_ar, normalize_alef_maksura_ar, normalize_teh_marbuta_ar,
                                         normalize_unicode)
chars = 0
with open(sys.argv[1], encoding="utf-8") as fh:
    for line in fh:
        text = json.loads(line)["text"]
        chars += len(dediac_ar(normalize_teh_marbuta_ar(normalize_alef_maksura_ar(normalize_alef_ar(
            normalize_unicode(text))))))
print(chars)
"""

# Runs in a process whose PYTHONPATH is one tree; prints JSON medians in microseconds per article.
IN_PROCESS = """
import gc, json, statistics, sys, time
from monitor.rules import load_rules
from monitor.text.matcher import PreparedText
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
ruleset = load_rules([sys.argv[2]])
matcher = ruleset._matcher
rounds = int(sys.argv[3])

def timed(call):
    # each result is dropped at once, as the daemon and the CLI do (keeping 3,000 of them alive
    # would time the garbage collector walking them)
    out = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.process_time()
        for text in texts:
            call(text)
        out.append((time.process_time() - t0) / len(texts) * 1e6)
    return out

import monitor
assert monitor.__file__.startswith(sys.argv[4]), (monitor.__file__, sys.argv[4])  # the tree measured
prepare_match = timed(lambda t: matcher.find(PreparedText(t)))
evaluate = timed(lambda t: ruleset.evaluate(title="", body=t))
hits = sum(len(ruleset.evaluate(title="", body=t).hits) for t in texts) / len(texts)
print(json.dumps({"evaluate": evaluate, "prepare_match": prepare_match, "hits": hits}))
"""


def extract(rev: str, into: Path) -> Path:
    """The base commit's ``monitor`` package and ``rules`` pack, as files in ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "monitor", "rules"],
                             check=True, capture_output=True).stdout
    into.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_process(argv: list[str], pythonpath: Path | None, stdout_path: Path) -> tuple[float, float]:
    """(CPU seconds of the child, wall seconds) of one run; the child's output goes to a file.

    The child runs in the tree it measures: ``python -m``/``-c`` put the working directory
    before PYTHONPATH, so a child started in this tree would import this tree's ``monitor``."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    else:
        env.pop("PYTHONPATH", None)
    with stdout_path.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env,
                                cwd=pythonpath if pythonpath is not None else stdout_path.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr}")
    return usage.ru_utime + usage.ru_stime, wall


def cell(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base", default="b84ce61", help="the baseline commit (default: b84ce61, before issue 14)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_rules_test.") as tmp_name:
        tmp = Path(tmp_name)
        texts = articles(args.articles)
        docs = tmp / "articles.jsonl"
        with docs.open("w", encoding="utf-8") as fh:
            for i, text in enumerate(texts):
                fh.write(json.dumps({"id": f"a{i}", "text": text}, ensure_ascii=False) + "\n")
        base = extract(args.base, tmp / "base")
        camel = tmp / "camel.py"
        camel.write_text(CAMEL, encoding="utf-8")
        print(f"input: {len(texts)} articles, {docs.stat().st_size / 1e6:.1f} MB of JSONL; python "
              f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
              f"base {args.base}")

        py = sys.executable
        commands = {
            "rules test (this tree)": ([py, "-m", "monitor", "rules", "test", "--rules", str(ROOT / "rules"),
                                        "--format", "json", str(docs)], ROOT),
            f"rules test ({args.base})": ([py, "-m", "monitor", "rules", "test", "--rules", str(base / "rules"),
                                           "--format", "json", str(docs)], base),
            "camel normalization": ([py, str(camel), str(docs)], None),
        }
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        wall: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, (cmd, path) in commands.items():
                c, w = run_process(cmd, path, tmp / "out")
                cpu[name].append(c)
                wall[name].append(w)

        camel_cpu = statistics.median(cpu["camel normalization"])
        print("\n| process | CPU s, median [min-max] | wall s | camel CPU / this CPU |")
        print("|---|---|---|---|")
        for name in commands:
            ratio = camel_cpu / statistics.median(cpu[name])
            print(f"| {name} | {cell(cpu[name])} | {cell(wall[name])} | {ratio:.2f}x |")

        measured: dict[str, dict[str, object]] = {}
        for label, path, rules in (("this tree", ROOT, ROOT / "rules"), (args.base, base, base / "rules")):
            env = dict(os.environ, PYTHONPATH=str(path))
            out = subprocess.run([py, "-c", IN_PROCESS, str(docs), str(rules), str(args.rounds), str(path)], env=env,
                                 check=True, capture_output=True, text=True, cwd=path).stdout
            measured[label] = json.loads(out)
        print("\n| RuleSet.evaluate, µs per article (CPU, median [min-max]) | "
              f"{args.base} | this tree | speed-up |")
        print("|---|---|---|---|")
        new, old = measured["this tree"], measured[args.base]
        rows = {"evaluate (whole call)": ("evaluate",), "prepare + match": ("prepare_match",),
                "the rest (senses, hits, rules)": ("evaluate", "prepare_match")}
        for name, keys in rows.items():
            def series(m: dict[str, object], keys: tuple[str, ...] = keys) -> list[float]:
                first = [float(v) for v in m[keys[0]]]  # type: ignore[attr-defined]
                if len(keys) == 1:
                    return first
                second = [float(v) for v in m[keys[1]]]  # type: ignore[attr-defined]
                return [a - b for a, b in zip(first, second, strict=True)]
            o, n = series(old), series(new)
            print(f"| {name} | {cell(o, '{:.0f}')} | {cell(n, '{:.0f}')} | "
                  f"{statistics.median(o) / statistics.median(n):.1f}x |")
        print(f"\nhits per article: {old['hits']:.1f} ({args.base}), {new['hits']:.1f} (this tree)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
