"""normalize == camel-tools chain + documented extras; each listed variant is folded."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.text.normalize import normalize, normalize_reference

DATA = Path(__file__).parent / "data" / "corpus"

# Arabic block, presentation forms, the marks that compose (U+0653-U+0655),
# zero-width/bidi, NBSP, digits, some Latin and punctuation.
ALPHABET = st.one_of(
    st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
    st.characters(min_codepoint=0x0750, max_codepoint=0x077F),
    st.characters(min_codepoint=0xFB50, max_codepoint=0xFDFF),
    st.characters(min_codepoint=0xFE70, max_codepoint=0xFEFF),
    st.sampled_from(list("\u0653\u0654\u0655\u0640\u200b\u200c\u200d\u200e\u200f\u2066\u2069\ufeff\u00a0 \n\t")),
    st.sampled_from(list("ابتثجحخدذرزسشصضطظعغفقكلمنهويءآأإئؤةىٱیکۀەھہۃ")),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from(list("«»“”–—…½ﬁ①")),
    st.characters(min_codepoint=0x0300, max_codepoint=0x036F),
    st.sampled_from(list("eEaAİ\u00e9")),
)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_fast_path_equals_camel_chain_plus_documented_extras(text):
    assert normalize(text) == normalize_reference(text)


def test_corpus_articles_equal_reference():
    for path in sorted(DATA.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        assert normalize(text) == normalize_reference(text), path.name


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("عَاجِل", "عاجل"),                  # harakat
        ("الشّام", "الشام"),                  # shadda
        ("عـاجـل", "عاجل"),                   # tatweel
        ("لـ\"قسد\"", "ل\"قسد\""),             # tatweel after a clitic
        ("أإآٱ", "اااا"),                     # alef/hamza forms
        ("مصطفى", "مصطفي"),                   # alef maksura
        ("الرقة", "الرقه"),                    # teh marbuta
        ("ایران کرکوک", "ايران كركوك"),        # Persian yeh / keheh
        ("\ufefb", "لا"),                     # lam-alef ligature (NFKC)
        ("\ufe8d\ufe92", "اب"),               # presentation forms
        ("عا\u200cجل\u200f", "عاجل"),         # zero-width and bidi marks
        ("\u2067قسد\u2069", "قسد"),           # isolates
        ("\ufeffقسد", "قسد"),                 # BOM
        ("دير\u00a0الزور", "دير الزور"),      # NBSP
        ("ا\u0654حمد", "احمد"),               # decomposed hamza above alef
        ("ا\u0653", "ا"),                     # decomposed madda
        ("ي\u0654", "ئ"),                     # decomposed yeh with hamza
        ("٢٠١٧ ۲۰۱۷", "2017 2017"),           # Arabic-Indic and Persian digits
        ("الرقە", "الرقه"),                    # Kurdish ae for teh marbuta
        ("ھہۃ", "ههه"),                        # heh doachashmee, heh goal, teh marbuta goal
        ("\ufdfd", "بسم الله الرحمن الرحيم"),  # camel's own expansion (not NFKC)
        ("\ufdfc", "ريال"),
    ],
)
def test_each_variant_is_folded(raw, expected):
    assert normalize(raw) == expected
    assert normalize_reference(raw) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=30))
def test_idempotent(text):
    # Not for stray combining madda/hamza: the camel chain composes them before
    # it unifies alef, so a second pass can compose again (ﻵ + U+0653).
    assume(not any(c in text for c in "\u0653\u0654\u0655"))
    # Nor when deleting Arabic marks brings two non-Arabic combining marks of
    # different classes together (U+0357, ligature, U+0353): NFKC on the second
    # pass puts them in canonical order. The reference chain does the same.
    assume(not any(unicodedata.combining(c) and not "\u0610" <= c <= "\u06ff" for c in text))
    once = normalize(text)
    assert normalize(once) == once


def test_every_single_character_of_the_arabic_blocks():
    ranges = [(0x00A0, 0x0180), (0x0600, 0x0780), (0x08A0, 0x0900), (0x2000, 0x2070),
              (0xFB50, 0xFE00), (0xFE70, 0xFF00)]
    for lo, hi in ranges:
        for cp in range(lo, hi):
            c = chr(cp)
            for text in (c, f"ا{c}ب"):
                assert normalize(text) == normalize_reference(text), hex(cp)


def test_fast_path_special_characters_are_those_of_the_table():
    """Offsets of a text normalized by the fast path are mapped through FAST_SPECIAL_CHARS only; for
    an NFKC text every other character the table changes maps to exactly one character."""
    from monitor.text.normalize import FAST_SPECIAL_CHARS, special_chars, table_output

    for c in special_chars() - FAST_SPECIAL_CHARS:
        assert not unicodedata.is_normalized("NFKC", c) or len(table_output(c)) == 1, hex(ord(c))
    assert all(table_output(c) == "" for c in FAST_SPECIAL_CHARS - {"\ufdfd"})
