"""The matcher finds every variant form of an alias and nothing inside longer words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from monitor.match import DEFAULT_SUFFIXES, Matcher, Pattern

MATCHER = Matcher([
    Pattern("bukamal", "البوكمال"),
    Pattern("bukamal", "Abu Kamal"),
    Pattern("deir", "دير الزور"),
    Pattern("deir", "Deir ez-Zor"),
    Pattern("deir", "Deir al-Zour"),
    Pattern("qasad", "قسد"),
    Pattern("qasad", "SDF"),
    Pattern("fight", "هجوم", kind="keyword", suffixes=DEFAULT_SUFFIXES),
    Pattern("battle", "معركة", kind="keyword"),
])


def found(text):
    prepared = MATCHER.prepare(text)
    out = []
    for pattern, start, end in MATCHER.find(prepared):
        a, b = prepared.original_span(start, end)
        out.append((pattern.group, text[a:b]))
    return out


@pytest.mark.parametrize("text, surface", [
    ("البوكمال", "البوكمال"),
    ("وصلوا وبالبوكمال", "وبالبوكمال"),
    ("فالبوكمال", "فالبوكمال"),
    ("للبوكمال", "للبوكمال"),
    ("وللبوكمال", "وللبوكمال"),
    ("فللبوكمال", "فللبوكمال"),
    ("البو كمال", "البو كمال"),
    ("البوكمال.", "البوكمال"),
    ("البُوكمَال", "البُوكمَال"),
    ("البـوكـمال", "البـوكـمال"),
    ("ABU KAMAL", "ABU KAMAL"),
])
def test_bukamal_variants(text, surface):
    assert ("bukamal", surface) in found(text)


@pytest.mark.parametrize("text, surface", [
    ('لـ"قسد"', "قسد"),
    ("«قسد»", "قسد"),
    ("ولقسد", "ولقسد"),
    ("the SDF said", "SDF"),
    ("sdf", "sdf"),
])
def test_qasad_variants(text, surface):
    assert ("qasad", surface) in found(text)


@pytest.mark.parametrize("text, surface", [
    ("#دير_الزور", "دير_الزور"),
    ("ديرالزور", "ديرالزور"),
    ("دير\nالزور", "دير\nالزور"),
    ("دير  الزور", "دير  الزور"),
    ("دير\u00a0الزور", "دير\u00a0الزور"),
    ("بدير الزور", "بدير الزور"),
    ("لدير الزور", "لدير الزور"),
    ("Deir ez-Zor", "Deir ez-Zor"),
    ("deir al-zour", "deir al-zour"),
    ("دير\u200f الزور", "دير\u200f الزور"),
])
def test_deir_variants(text, surface):
    assert ("deir", surface) in found(text)


@pytest.mark.parametrize("text", [
    "البوكمالية", "البوكماليون", "قسدي", "مقسد", "SDFX", "ادير الزور", "Abu Kamals",
    "دير. الزور", "دير، الزور", "امعركة",
])
def test_never_inside_a_longer_word(text):
    assert [g for g, _ in found(text) if g in ("bukamal", "qasad", "deir", "battle")] == []


def test_suffixes_only_where_asked():
    assert ("fight", "هجومهم") in found("هجومهم")
    assert ("fight", "والهجمات") not in found("والهجمات")
    assert ("fight", "الهجومات") in found("الهجومات")
    assert found("معركتهم") == []


def test_offsets_survive_ligatures_and_deletions():
    text = "\ufefbقسد ــــ دَيْرُ الزّوْرِ \ufdfa قسد"
    prepared = MATCHER.prepare(text)
    spans = []
    for _pattern, start, end in MATCHER.find(prepared):
        a, b = prepared.original_span(start, end)
        spans.append(text[a:b])
    assert "دَيْرُ الزّوْرِ" in spans
    assert spans.count("قسد") == 1  # لاقسد is one word: no hit


def test_decomposed_hamza_offsets():
    text = "ا\u0654ن قسد"
    prepared = MATCHER.prepare(text)
    ((_pattern, start, end),) = MATCHER.find(prepared)
    a, b = prepared.original_span(start, end)
    assert text[a:b] == "قسد"


NOISE = st.text(alphabet=st.sampled_from(list("ابتسدزكمل و\n«»\"ـًّ.،#_")), max_size=12)


@settings(max_examples=150, deadline=None)
@given(NOISE, NOISE)
def test_hit_text_is_the_original_slice_and_contains_the_name(left, right):
    text = f"{left} البوكمال {right}"
    prepared = MATCHER.prepare(text)
    bukamal = []
    for pattern, start, end in MATCHER.find(prepared):
        a, b = prepared.original_span(start, end)
        assert 0 <= a < b <= len(text)
        if pattern.group == "bukamal":
            bukamal.append(text[a:b])
    assert "البوكمال" in bukamal
