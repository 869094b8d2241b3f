"""Text-engine benchmark: normalize, tokenize, 10k-alias matcher, rule evaluation.

Every figure is measured in this run against its baseline from the same run
(camel-tools for normalize/tokenize, a naive per-alias loop for the matcher),
median of several repeats. Times are CPU time of this process
(``time.process_time``): the project machine is shared with parallel test
runs, and wall time there measures the neighbours. Run: ``.venv/bin/python bench/bench_text.py``.
Input: the 5 corpus articles remixed into ~3,000-character articles
(deterministic), like ``shared/design/perf-baselines.md``. Two 10k alias lists:
"synthetic" (built from the corpus's own words: ~145 hits per article, far
above real news, the worst case for per-hit work) and "realistic" (the
default pack's aliases plus names of mutated corpus words: a handful of hits).
"""

from __future__ import annotations

import gc
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.rules import load_rules
from monitor.text.matcher import Matcher, Pattern, PreparedText
from monitor.text.normalize import normalize, normalize_reference
from monitor.text.tokenize import token_strings

CORPUS = ROOT / "tests" / "data" / "corpus"


def articles(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    seeds = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))]
    sentences = [s.strip() for t in seeds for s in re.split(r"(?<=[.!؟?])\s+", t) if len(s.strip()) > 20]
    out = []
    for i in range(n):
        if i % 10 == 0:
            out.append(seeds[i // 10 % len(seeds)][:3000])
            continue
        parts: list[str] = []
        while sum(map(len, parts)) < 3000:
            parts.append(rng.choice(sentences))
        out.append(" ".join(parts)[:3200])
    return out


def aliases(n: int, texts: list[str], seed: int = 11) -> list[str]:
    """Real corpus uni/bi/trigrams plus synthetic names that share prefixes with the text."""
    rng = random.Random(seed)
    words = sorted({w for t in texts[:50] for w in re.findall(r"[^\W\d_]{3,}", normalize(t))})
    real: set[str] = set()
    for t in texts[:20]:
        ws = re.findall(r"[^\W\d_]{3,}", normalize(t))
        for k in (1, 2, 3):
            for i in range(0, len(ws) - k, 7):
                real.add(" ".join(ws[i:i + k]))
    out = sorted(real)[: n // 25]
    seen = set(out)
    while len(out) < n:
        kind = rng.random()
        if kind < 0.3:
            w = rng.choice(words)
            cand = w[:-1] + rng.choice("ابتثجحخدذرزسشصضطظعغفقكلمنهوي")
        elif kind < 0.6:
            cand = f"{rng.choice(words)} {rng.choice(words)}"
        elif kind < 0.8:
            cand = f"{rng.choice(('عبد', 'ابو', 'بن'))} {rng.choice(words)}"
        else:
            cand = f"{rng.choice(words)} {rng.choice(words)} {rng.choice(words)}"
        if cand not in seen:
            seen.add(cand)
            out.append(cand)
    return out


def realistic_aliases(n: int, texts: list[str], seed: int = 13) -> list[str]:
    """Aliases with a news-like hit rate: names whose every word is a corpus word with two letters
    changed (prefixes shared with the text, so partial matches still happen, but whole-word hits
    are rare: a handful per article). The default pack's aliases are left out: the corpus is
    *about* those entities (~67 hits per article with them)."""
    rng = random.Random(seed)
    words = sorted({w for t in texts[:50] for w in re.findall(r"[^\W\d_]{4,}", normalize(t))})
    letters = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"

    def mutate(w: str) -> str:
        i = rng.randrange(2, len(w))
        w = w[:i] + rng.choice(letters) + w[i + 1:]
        j = rng.randrange(1, len(w))
        return w[:j] + rng.choice(letters) + w[j + 1:]

    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        cand = " ".join(mutate(rng.choice(words)) for _ in range(rng.choice((1, 2, 2, 3))))
        if cand not in seen:
            seen.add(cand)
            out.append(cand)
    return out


def timed(fn, repeat: int = 5) -> float:
    """Median CPU time of ``fn()``; its result is freed after the clock stops (freeing a 10k
    matcher costs ~15-20 ms, which is not part of building it)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        result = fn()
        times.append(time.process_time() - t0)
        del result
    return statistics.median(times)


def camel_chain(text: str) -> str:
    from camel_tools.utils.dediac import dediac_ar
    from camel_tools.utils.normalize import (
        normalize_alef_ar,
        normalize_alef_maksura_ar,
        normalize_teh_marbuta_ar,
        normalize_unicode,
    )
    return dediac_ar(normalize_teh_marbuta_ar(normalize_alef_maksura_ar(normalize_alef_ar(normalize_unicode(text)))))


def naive_find(alias_forms: list[str], text: str) -> set[int]:
    """Baseline: one ``str.find`` loop per alias with a whole-word check (token semantics)."""
    found = set()
    for i, a in enumerate(alias_forms):
        start = text.find(a)
        while start != -1:
            end = start + len(a)
            if (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
                found.add(i)
                break
            start = text.find(a, start + 1)
    return found


def main() -> None:
    arts = articles(600)
    mb = sum(len(a.encode()) for a in arts) / 1e6
    chars = statistics.mean(len(a) for a in arts)
    rows: list[tuple[str, str, str, str]] = []
    print(f"input: {len(arts)} articles, {chars:.0f} chars avg, {mb:.2f} MB UTF-8; python {sys.version.split()[0]}; "
          f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    camel_chain(arts[0])  # import outside the timing
    t_camel = timed(lambda: [camel_chain(a) for a in arts], 3)
    t_fast = timed(lambda: [normalize(a) for a in arts])
    assert all(normalize(a) == normalize_reference(a) for a in arts[:50])
    rows.append(("normalize", f"camel chain {mb / t_camel:.1f} MB/s", f"fast {mb / t_fast:.1f} MB/s",
                 f"{t_camel / t_fast:.1f}x (bar 5x)"))

    from camel_tools.tokenizers.word import simple_word_tokenize
    normed = [normalize(a) for a in arts]
    t_ctok = timed(lambda: [simple_word_tokenize(a) for a in normed[:150]], 3) * len(normed) / 150
    t_tok = timed(lambda: [token_strings(a) for a in normed])
    rows.append(("tokenize", f"camel {mb / t_ctok:.1f} MB/s", f"fast {mb / t_tok:.1f} MB/s",
                 f"{t_ctok / t_tok:.1f}x (bar 10x)"))

    for label, names in (("synthetic", aliases(10_000, arts)), ("realistic", realistic_aliases(10_000, arts))):
        patterns = [Pattern(f"e{i}", a) for i, a in enumerate(names)]
        build = timed(lambda patterns=patterns: Matcher(patterns), 7)
        matcher = Matcher(patterns)
        prepared = [PreparedText(a) for a in arts]
        for p in prepared:
            p.scan()  # the scan string is part of preparing a text (timed in "incl. normalize")
        t_match = timed(lambda matcher=matcher, prepared=prepared: [matcher.find(p) for p in prepared], 7)
        t_prep_match = timed(lambda matcher=matcher: [matcher.find(PreparedText(a)) for a in arts])
        forms = [p.match for p in (PreparedText(n) for n in names)]
        sample = prepared[:8]
        t_naive = timed(lambda forms=forms, sample=sample: [naive_find(forms, p.match) for p in sample], 3) \
            * len(arts) / len(sample)
        hits = statistics.mean(len(matcher.find(p)) for p in prepared)
        t_iter = timed(lambda matcher=matcher, prepared=prepared: [
            sum(1 for _ in matcher._automaton.iter(p.scan())) for p in prepared], 7)
        rows.append((f"[{label}: {hits:.1f} hits/art]", "", "", ""))
        rows.append(("  AC iteration alone", "(library floor)", f"{len(arts) / t_iter:.0f} art/s",
                     f"{t_iter / t_match:.0%} of scan time"))
        rows.append(("  matcher 10k build", f"{matcher.size} keys", f"{build * 1000:.1f} ms", "(bar <100 ms)"))
        rows.append(("  matcher 10k scan", f"naive loop {len(arts) / t_naive:.0f} art/s",
                     f"AC {len(arts) / t_match:.0f} art/s", f"{t_naive / t_match:.0f}x (bar 100x, 5000 art/s)"))
        rows.append(("  matcher 10k incl. normalize", "", f"{len(arts) / t_prep_match:.0f} art/s",
                     f"{t_naive / t_prep_match:.0f}x vs naive"))

    pack = load_rules([ROOT / "rules"])
    t_eval = timed(lambda: [pack.evaluate(title="", body=a) for a in arts])
    rows.append(("RuleSet.evaluate (default pack)", f"{len(pack.entity_ids)} entities",
                 f"{len(arts) / t_eval:.0f} art/s", f"{t_eval / len(arts) * 1e6:.0f} µs/art"))

    widths = [max(len(r[i]) for r in rows + [("stage", "baseline", "ours", "ratio")]) for i in range(4)]
    header = ("stage", "baseline", "ours", "ratio")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
