"""Whatever a person writes in a rules file, loading raises ConfigErrors or succeeds - never a traceback."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ConfigErrors
from monitor.rules import load_rules

KEYS = ["entities", "keywords", "rules", "id", "aliases", "labels", "ar", "en", "ambiguous", "near", "window",
        "quoted", "exclude", "words", "suffixes", "title", "any", "all", "none", "terms", "within",
        "same_sentence", "fields", "min_mentions", "severity", "channels", "cooldown", "x",
        "vocabularies", "vocabulary", "for", "against", "prior", "threshold", "weight", "where", "shape", "clitic",
        "spelling_variants", "missing_spaces"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=16),
                    st.sampled_from(["", "a", "قسد", "ـــ", "title", "body", "critical", "2h", "-1", "id", "before",
                                     "sentence", "quoted", "ل", "مدينة، بلدة", "x*"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["entities", "keywords", "rules", "other"]), VALUES, max_size=3))
def test_random_documents_never_crash(tmp_path, data):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        ruleset = load_rules([path])
    except ConfigErrors as exc:
        assert all(e.file == str(path) for e in exc.errors)
        assert str(exc)
    else:
        ruleset.evaluate(title="قسد", body="البوكمال في مدينة الميادين", explain=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_random_text_never_crashes(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_rules([path])
    except ConfigErrors:
        pass
