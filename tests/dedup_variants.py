"""Republished-article variants of the corpus, for the dedup suite and bench.

Each generator imitates what another outlet (or a later edit) does to an
article: a new headline, web boilerplate, reordered paragraphs, small word
edits, diacritics/tatweel, a truncated excerpt. Deterministic (seeded).
"""

from __future__ import annotations

import random
from pathlib import Path

DATA = Path(__file__).parent / "data" / "dedup"

HEADLINES = [
    "عاجل: تطورات ميدانية جديدة في شرق سوريا",
    "مصادر: معارك عنيفة قرب الحدود العراقية",
    "تقرير خاص من دير الزور",
]
BOILERPLATE = ["اقرأ أيضا: ", "اظهر المزيد", "زر الذهاب إلى الأعلى", "إقرأ أيضاً"]
FILLER = ["الجديد", "الكبير", "الأخير", "المذكور", "الحالي", "السابق"]


def corpus() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(DATA.glob("0*.txt"))]


def paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n") if p.strip()]


def new_headline(text: str, rng: random.Random) -> str:
    paras = paragraphs(text)
    return "\n".join([rng.choice(HEADLINES)] + paras[1:])


def boilerplate(text: str, rng: random.Random) -> str:
    paras = paragraphs(text)
    for _ in range(3):
        pos = rng.randrange(len(paras) + 1)
        paras.insert(pos, rng.choice(BOILERPLATE) + " " + rng.choice(HEADLINES))
    paras.append("اظهر المزيد")
    return "\n".join(paras)


def reorder(text: str, rng: random.Random) -> str:
    paras = paragraphs(text)
    rng.shuffle(paras)
    return "\n".join(paras)


def small_edits(text: str, rng: random.Random, rate: float = 0.03) -> str:
    words = text.split(" ")
    for i in range(len(words)):
        if rng.random() < rate:
            words[i] = rng.choice(FILLER)
    return " ".join(words)


def decorate(text: str, rng: random.Random) -> str:
    """Diacritics, tatweel and punctuation noise (normalization must absorb it)."""
    out = []
    for ch in text:
        out.append(ch)
        if "\u0628" <= ch <= "\u064a" and rng.random() < 0.05:
            out.append(rng.choice(["\u064e", "\u0651", "\u0640"]))
    return "".join(out).replace("،", " ، ")


def excerpt(text: str, rng: random.Random) -> str:
    paras = paragraphs(text)
    return "\n".join(paras[: max(1, int(len(paras) * 0.6))])


def combined(text: str, rng: random.Random) -> str:
    return small_edits(reorder(boilerplate(new_headline(text, rng), rng), rng), rng, 0.02)


VARIANTS = {
    "new_headline": new_headline,
    "boilerplate": boilerplate,
    "reorder": reorder,
    "small_edits": small_edits,
    "decorate": decorate,
    "excerpt_60pct": excerpt,
    "combined": combined,
}


def labelled_stream(seed: int = 7) -> list[tuple[int, str, str]]:
    """(true story = corpus index, variant name, text) for every article and variant."""
    rng = random.Random(seed)
    out = []
    for i, text in enumerate(corpus()):
        out.append((i, "original", text))
        for name, fn in VARIANTS.items():
            out.append((i, name, fn(text, rng)))
    return out
