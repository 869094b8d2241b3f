"""`monitor rules suggest`: names ranked against general Arabic, on the seed corpus and real news.

The real-news paragraphs are read in place from ../shared/corpora/real-news/dev.jsonl
(never copied here); those tests skip when the file is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor.rules.suggest import (
    Document,
    Settings,
    SuggestInputError,
    read_documents,
    suggest,
    to_yaml,
    wordfreq_background,
)

from monitor.cli.rules import rules
from monitor.rules import load_rules
from monitor.text.matcher import PROCLITICS, match_form

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "data" / "corpus"
_SHARED_REAL_NEWS = Path("shared") / "corpora" / "real-news" / "dev.jsonl"
# ../shared beside the repo (CI, the main checkout); a worktree sits one level deeper
REAL_NEWS = next((p / _SHARED_REAL_NEWS for p in (ROOT.parent, ROOT.parent.parent) if (p / _SHARED_REAL_NEWS).exists()),
                 ROOT.parent / _SHARED_REAL_NEWS)
RULES = ROOT / "rules"
COMMON_WORDS = ["السورية", "المدينة", "المحافظة", "الشرقي", "النظام"]

needs_real_news = pytest.mark.skipif(not REAL_NEWS.exists(),
                                     reason=f"real-news texts not found at {REAL_NEWS} (read in place, never copied)")


def run(*args: str):
    return CliRunner().invoke(rules, ["suggest", *args])


@pytest.fixture(scope="module")
def corpus_json() -> dict:
    result = run(str(CORPUS), "--format", "json", "--rules", str(RULES))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def news_json() -> dict:
    if not REAL_NEWS.exists():
        pytest.skip(f"real-news texts not found at {REAL_NEWS}")
    result = run(str(REAL_NEWS), "--format", "json", "--rules", str(RULES))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def forms(candidate: dict) -> list[str]:
    return [a["text"] for a in candidate["aliases"]] + [a["text"] for a in candidate["ambiguous"]]


def found_entities(candidates: list[dict]) -> set[str]:
    return {e for c in candidates for e in c["in_pack"]}


def group_of(candidates: list[dict], form: str) -> dict:
    matches = [c for c in candidates if form in forms(c)]
    assert len(matches) == 1, f"{form!r} should be in exactly one candidate, found {len(matches)}"
    return matches[0]


# ------------------------------------------------------------------------------ the seed corpus

def test_corpus_names_lead_and_common_words_sink(corpus_json):
    top = corpus_json["candidates"]
    assert {"qasad", "bukamal", "deir_ez_zor", "isis", "mayadin", "raqqa"} <= found_entities(top[:20])
    first_ten = {f for c in top[:10] for f in forms(c)}
    assert not first_ten & set(COMMON_WORDS), first_ten & set(COMMON_WORDS)


def test_corpus_output_names_its_background(corpus_json):
    assert corpus_json["background"].startswith("wordfreq ")
    assert "'ar'" in corpus_json["background"]


def test_spacing_variants_grouped_and_acronym_linked(corpus_json):
    top = corpus_json["candidates"]
    deir = group_of(top, "دير الزور")
    assert "ديرالزور" in forms(deir)
    qasad = group_of(top, "قسد")
    assert "قوات سوريا الديمقراطية" in forms(qasad)


def _clitic_forms(candidate: dict) -> list[str]:
    """Forms that are another form of the same candidate behind a proclitic chain."""
    own = {match_form(f) for f in forms(candidate)}
    out = []
    for f in forms(candidate):
        m = match_form(f)
        for chain in PROCLITICS:
            rest = m[len(chain):]
            if m.startswith(chain) and (rest in own or (chain.endswith("ل") and "ا" + rest in own)):
                out.append(f)
    return out


def test_no_clitic_forms_as_variants(corpus_json):
    for candidate in corpus_json["candidates"]:
        assert not _clitic_forms(candidate), candidate


def test_common_word_names_are_ambiguous_with_near_words(corpus_json):
    mayadin = group_of(corpus_json["candidates"], "الميادين")
    (amb,) = [a for a in mayadin["ambiguous"] if a["text"] == "الميادين"]
    assert amb["common_as"] == "ميادين" and amb["near"]
    assert all(n["count"] >= 1 for n in amb["near"])
    assert group_of(corpus_json["candidates"], "البوكمال")["ambiguous"] == []


def test_yaml_draft_loads_as_is(tmp_path):
    out = tmp_path / "draft.yaml"
    result = run(str(CORPUS), "-o", str(out), "--top", "40", "--rules", str(RULES))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    ruleset = load_rules([out])
    assert len(ruleset.entity_ids) == 40
    data = yaml.safe_load(text)
    assert any(e.get("ambiguous") for e in data["entities"])
    for entity in data["entities"]:
        for amb in entity.get("ambiguous", []):
            assert amb["aliases"] and "window" in amb
    assert "# e.g. " in text and "mentions in" in text and "# background (general Arabic): wordfreq" in text
    # what the draft finds is what the pack finds for the same names
    assert ruleset.evaluate(body="اشتباكات قرب البوكمال").entities


def test_suggest_then_check_as_processes(tmp_path):
    out = tmp_path / "draft.yaml"
    cmd = [sys.executable, "-m", "monitor", "rules", "suggest", str(CORPUS), "-o", str(out), "--top", "25"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    check = subprocess.run([sys.executable, "-m", "monitor", "rules", "check", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ok: 25 entities")


def test_new_only_leaves_out_what_the_pack_finds(corpus_json):
    result = run(str(CORPUS), "--format", "json", "--rules", str(RULES), "--new-only", "--top", "15")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["candidates"]) == 15
    assert all(not c["in_pack"] for c in data["candidates"])
    labels = {c["label"] for c in data["candidates"]}
    assert "البوكمال" not in labels and "قسد" not in labels
    # the same candidates, in the same order, as the full ranking minus the known ones
    full = [c["label"] for c in corpus_json["candidates"] if not c["in_pack"]]
    assert [c["label"] for c in data["candidates"]] == full[:15]


def test_top_and_without_a_pack(tmp_path):
    empty_pack = tmp_path / "pack.yaml"
    empty_pack.write_text("entities: []\n", encoding="utf-8")
    result = run(str(CORPUS), "--format", "json", "--top", "5", "--rules", str(empty_pack))
    data = json.loads(result.output)
    assert len(data["candidates"]) == 5 and all(not c["in_pack"] for c in data["candidates"])


# ------------------------------------------------------------------------------ real news

@needs_real_news
def test_real_news_names_lead_and_common_words_sink(news_json):
    top = news_json["candidates"]
    assert {"qasad", "bukamal", "deir_ez_zor", "mayadin", "raqqa", "omar_field", "isis"} <= found_entities(top[:30])
    first_ten = {f for c in top[:10] for f in forms(c)}
    assert not first_ten & set(COMMON_WORDS), first_ten & set(COMMON_WORDS)


@needs_real_news
def test_real_news_spelling_variants_and_short_forms(news_json):
    qasad = group_of(news_json["candidates"], "قسد")
    assert {"قوات سوريا الديمقراطية", "قوات سورية الديموقراطية"} <= set(forms(qasad))
    assert "سورية الديموقراطية" in forms(qasad)  # the short form, seen on its own
    omar = group_of(news_json["candidates"], "حقل العمر")
    (bare,) = omar["ambiguous"]
    assert bare["text"] == "العمر"  # the bare word is "age" too
    assert "حقل" in [n["word"] for n in bare["near"]]  # the long form's own word is its sense evidence
    for candidate in news_json["candidates"]:
        assert not _clitic_forms(candidate), candidate


@needs_real_news
def test_real_news_yaml_loads(tmp_path):
    out = tmp_path / "draft.yaml"
    assert run(str(REAL_NEWS), "-o", str(out)).exit_code == 0
    assert len(load_rules([out]).entity_ids) == 60


# ------------------------------------------------------------------------------ mechanisms

def _docs(*texts: str) -> list[Document]:
    return [Document(f"d{i}", t) for i, t in enumerate(texts)]


def test_initials_and_brackets_link_acronyms():
    docs = _docs(
        "أعلنت جبهة تحرير الوادي سيطرتها على التل. وقالت جتو إن الهجوم انتهى.",
        "نفت جتو الخبر، وقالت جبهة تحرير الوادي إنها باقية. وصل وفد جتو اليوم.",
        "أكد مجلس الرمال الأعلى (مرع) أن المعبر مغلق. وقال مرع إن الطريق آمن.",
        "اجتمع مجلس الرمال الأعلى أمس، وأعلن مرع موعدا جديدا. ورحب مجلس الرمال الأعلى بالوفد.",
    )
    result = suggest(docs, wordfreq_background(), None, Settings())
    by_form = {a.text: c for c in result.candidates for a in c.aliases}
    assert by_form["جتو"] is by_form["جبهة تحرير الوادي"]  # initials: ج ت و
    assert by_form["مرع"] is by_form["مجلس الرمال الأعلى"]  # in brackets; letters in order


def test_clitics_are_folded_into_one_form():
    docs = _docs("وصلت القوات إلى البوكمال صباحا.", "اشتباكات في البوكمال وبالبوكمال مساء.",
                 "عاد الوفد للبوكمال. والبوكمال هادئة.")
    result = suggest(docs, wordfreq_background(), None, Settings())
    (bukamal,) = [c for c in result.candidates if c.label == "البوكمال"]
    assert [(a.text, a.count) for a in bukamal.aliases] == [("البوكمال", 5)]


def test_copied_passage_is_not_a_name():
    passage = "وأكدت مصادر ميدانية أن الاشتباكات تواصلت طوال الليل دون توقف"
    docs = _docs(passage + " في المنطقة.", "قال مراسلون إن " + passage + " في المنطقة.")
    labels = {c.label for c in suggest(docs, wordfreq_background(), None, Settings()).candidates}
    assert not any(" " in label and "مصادر" in label for label in labels), labels


def test_empty_text_gives_a_valid_empty_draft(tmp_path):
    result = suggest(_docs("", "12 34", "hello world"), wordfreq_background(), None, Settings())
    assert result.candidates == ()
    out = tmp_path / "empty.yaml"
    out.write_text(to_yaml(result), encoding="utf-8")
    assert load_rules([out]).entity_ids == []


_ARABIC = st.sampled_from(list("ابتثجحخدذرزسشصضطظعغفقكلمنهويءآأإئؤةى") + ["ال", "و", "ب", "ل"])
_WORD = st.lists(_ARABIC, min_size=1, max_size=6).map("".join)
_TEXT = st.lists(st.one_of(_WORD, st.sampled_from([" ", "، ", ". ", "\n", "«", "»", "(", ")", "ـ", "\u064e"])),
                 max_size=80).map(" ".join)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TEXT, min_size=1, max_size=4))
def test_any_text_gives_a_draft_that_loads(tmp_path_factory, texts):
    result = suggest(_docs(*texts), wordfreq_background(), None, Settings())
    out = tmp_path_factory.mktemp("prop") / "d.yaml"
    out.write_text(to_yaml(result), encoding="utf-8")
    assert len(load_rules([out]).entity_ids) == len(result.candidates)


# ------------------------------------------------------------------------------ bad input

def test_empty_folder_is_a_clear_error(tmp_path):
    result = run(str(tmp_path))
    assert result.exit_code == 1
    assert str(tmp_path) in result.output and "no .txt files" in result.output
    assert "Traceback" not in result.output


def test_non_utf8_file_is_named_with_its_line(tmp_path):
    (tmp_path / "a.txt").write_text("قسد في البوكمال\n", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes("سطر أول\n".encode() + "دير الزور".encode("cp1256"))
    result = run(str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path / 'b.txt'}:2: not UTF-8 text" in result.output
    with pytest.raises(SuggestInputError, match="b.txt:2"):
        read_documents(tmp_path)


def test_bad_jsonl_names_line_and_field(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "قسد"}\n\n{"id": "b", "body": "x"}\n', encoding="utf-8")
    result = run(str(docs))
    assert result.exit_code == 1
    assert f"{docs}:3: field 'text': missing or not a string" in result.output
    docs.write_text('{"id": "a", "text": "قسد"}\nnot json\n', encoding="utf-8")
    assert f"{docs}:2: not a JSON object" in run(str(docs)).output


def test_jsonl_and_single_file_inputs(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) for i, t in
                              enumerate(["قسد تقترب من البوكمال", "البوكمال تحت القصف"])), encoding="utf-8")
    assert [d.id for d in read_documents(docs)] == ["0", "1"]
    one = tmp_path / "one.txt"
    one.write_text("\ufeffقسد", encoding="utf-8")
    assert read_documents(one) == [Document("one.txt", "قسد")]
