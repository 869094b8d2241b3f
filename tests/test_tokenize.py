"""tokenize gives camel-tools' simple_word_tokenize tokens, with exact offsets."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.text.tokenize import Token, token_strings, tokenize

DATA = Path(__file__).parent / "data" / "corpus"

ALPHABET = st.one_of(
    st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from(list(" \n\t\u00a0\u2003«»“”„–—…،؛؟٪$€_#@")),
    st.sampled_from(list("0123456789٠١٢٣")),
)


def _camel(text):
    from camel_tools.tokenizers.word import simple_word_tokenize

    return simple_word_tokenize(text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_same_tokens_as_camel(text):
    assert token_strings(text) == _camel(text)
    assert [t.text for t in tokenize(text)] == _camel(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_offsets_point_into_the_original(text):
    previous_end = 0
    for tok in tokenize(text):
        assert text[tok.start:tok.end] == tok.text
        assert tok.start >= previous_end
        previous_end = tok.end


def test_corpus_same_as_camel():
    for path in sorted(DATA.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        assert token_strings(text) == _camel(text), path.name


def test_quotes_and_clitics_are_split_as_camel_does():
    assert tokenize('لـ"قسد"') == [Token("لـ", 0, 2), Token('"', 2, 3), Token("قسد", 3, 6), Token('"', 6, 7)]
    assert [t.text for t in tokenize("«النمر»، #دير_الزور")] == ["«", "النمر", "»", "،", "#", "دير", "_", "الزور"]


def test_astral_punctuation_and_symbols_match_camel():
    for text in ["قسد𐄀داعش", "نص 𝄞 موسيقى", "𝐀𝐁 كلمة", "a\U0001d7ceb"]:
        assert token_strings(text) == _camel(text)


def test_punctuation_and_symbols_exist_only_in_the_first_two_planes():
    """The token pattern is built from planes 0-1 (fast); a new Unicode version must not add
    punctuation or symbols beyond them unnoticed."""
    import sys
    import unicodedata

    from monitor.text import tokenize as tok

    beyond = [cp for cp in range(tok._LAST_PLANE_WITH_PUNCTUATION + 1, sys.maxunicode + 1)
              if unicodedata.category(chr(cp))[0] in "PS"]
    assert beyond == []
