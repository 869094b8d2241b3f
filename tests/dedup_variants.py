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


# -- site furniture and briefs (the project's own furniture text; the sentences come from the corpus)

#: Two sites' footers (~100 words each, written for these tests), one sentence per line part.
FOOTERS = {
    "site-a": ("موقع الخبر اليقين منصة إخبارية مستقلة تغطي الشأن السوري والإقليمي منذ سنوات طويلة بفريق من المراسلين. "
               "تخضع جميع المواد المنشورة لحقوق النشر ولا يجوز نقلها أو إعادة نشرها دون إذن مكتوب من إدارة التحرير. "
               "للتواصل مع فريق التحرير وإرسال الأخبار والصور والتسجيلات يرجى استخدام صفحة الاتصال في أسفل الموقع. "
               "نرحب بملاحظات القراء وتصويباتهم ونعمل على مراجعتها والرد عليها خلال يوم عمل واحد على الأكثر. "
               "الآراء الواردة في المقالات تعبر عن أصحابها ولا تعكس بالضرورة رأي الموقع أو سياسته التحريرية. "
               "يمكنكم متابعة آخر الأخبار العاجلة عبر تطبيقنا المجاني على الهواتف الذكية وعبر النشرة اليومية."),
    "site-b": ("شبكة الأفق الإعلامية مؤسسة صحفية غير ربحية تعنى بنقل الخبر من مصادره الميدانية بدقة وحياد تام. "
               "يحق للمواقع الأخرى الاقتباس من موادنا بشرط الإشارة الواضحة إلى المصدر ووضع رابط مباشر للمادة الأصلية. "
               "تلتزم الشبكة بميثاق الشرف الصحفي وتفصل بين الخبر والرأي وتمنح حق الرد لكل من يرد اسمه في تقاريرها. "
               "ندعو القراء إلى دعم الصحافة المستقلة عبر الاشتراك في عضوية الأصدقاء التي تتيح قراءة الملفات الخاصة. "
               "عنوان المراسلة وأرقام الهواتف متوفرة في صفحة من نحن ويسعدنا الرد على رسائلكم في أقرب وقت ممكن. "
               "تصدر الشبكة تقريرا أسبوعيا عن الأوضاع الإنسانية في المحافظات الشرقية يمكن تنزيله مجانا من الموقع."),
}


def corpus_sentences(min_words: int = 8) -> list[str]:
    """Sentences of the corpus articles, in order (for briefs and other composed texts)."""
    out: list[str] = []
    for text in corpus():
        for part in text.replace("\n", " ").replace("؟", ".").split("."):
            if len(part.split()) >= min_words:
                out.append(part.strip() + ".")
    return out


def brief(index: int, words: int = 50) -> str:
    """A ~``words``-word brief made of consecutive corpus sentences (distinct for distinct indexes)."""
    sentences = corpus_sentences()
    start = (index * 7) % (len(sentences) - 10)
    out: list[str] = []
    for sentence in sentences[start:]:
        if sum(len(s.split()) for s in out) >= words:
            break
        out.append(sentence)
    return " ".join(out)
