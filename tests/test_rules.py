"""Rule language: loading, located validation errors, evaluation semantics, default pack."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from monitor.errors import ConfigErrors
from monitor.rules import Evaluation, Hit, RuleMatch, load_rules

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "data" / "corpus"
CORE = {"bukamal", "qasad", "omar_field", "deir_ez_zor", "mayadin", "isis", "qaim", "raqqa",
        "busayrah", "shaddadi", "suheil_hassan"}


@pytest.fixture(scope="module")
def pack():
    return load_rules([ROOT / "rules"])


def write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def errors_of(*paths):
    with pytest.raises(ConfigErrors) as info:
        load_rules(list(paths))
    return info.value.errors


def test_default_pack_has_core_entities_and_empty_channels(pack):
    assert CORE <= set(pack.entity_ids)
    assert pack.channels_referenced() == set()
    assert "deir_ez_zor_front" in pack.rule_ids
    assert len(pack.fingerprint) == 16 and all(s.endswith(".yaml") for s in pack.sources)


def test_every_corpus_article_alerts(pack):
    for path in sorted(CORPUS.glob("*.txt")):
        ev = pack.evaluate(title="", body=path.read_text(encoding="utf-8"))
        assert ev.matches, path.name


def test_analyst_rules_fire_on_corpus(pack):
    fired = set()
    for path in sorted(CORPUS.glob("*.txt")):
        fired |= {m.rule_id for m in pack.evaluate(body=path.read_text(encoding="utf-8")).matches}
    assert {"sdf_near_bukamal", "omar_field_fighting", "isis_in_deir_ez_zor",
            "russia_us_east_euphrates", "bukamal_qaim_border"} <= fired


def test_hit_offsets_index_the_original(pack):
    for path in sorted(CORPUS.glob("*.txt")):
        body = path.read_text(encoding="utf-8")
        for hit in pack.evaluate(title=body[:80], body=body).hits:
            original = body[:80] if hit.field == "title" else body
            assert original[hit.start:hit.end] == hit.text


def test_result_types(pack):
    ev = pack.evaluate(title="قسد تقترب من البوكمال", body="")
    assert isinstance(ev, Evaluation)
    assert all(isinstance(m, RuleMatch) and m.channels == () for m in ev.matches)
    assert Hit("qasad", "قسد", "title", 0, 3, "قسد") in ev.hits
    assert ev.entities == sorted(ev.entities)
    assert "sdf_near_bukamal" in [m.rule_id for m in ev.matches]


def test_evaluate_is_thread_safe(pack):
    body = (CORPUS / "000_107b00d376ed9ca7.txt").read_text(encoding="utf-8")
    expected = pack.evaluate(body=body)
    results = []
    threads = [threading.Thread(target=lambda: results.append(pack.evaluate(body=body))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)


BASE = """
entities:
  - id: a
    aliases: [البوكمال]
  - id: b
    aliases: [قسد]
keywords:
  - id: k
    words: [هجوم]
    suffixes: true
rules:
"""


def rules_of(tmp_path, rules_yaml):
    return load_rules([write(tmp_path, BASE + rules_yaml)])


def fired(rs, title="", body=""):
    return [m.rule_id for m in rs.evaluate(title=title, body=body).matches]


def test_any_all_none(tmp_path):
    rs = rules_of(tmp_path, """
  - {id: r_any, title: t, any: [a, b]}
  - {id: r_all, title: t, all: [a, b]}
  - {id: r_none, title: t, any: [a], none: [k]}
""")
    assert fired(rs, body="البوكمال") == ["r_any", "r_none"]
    assert fired(rs, body="البوكمال وقسد") == ["r_any", "r_all", "r_none"]
    assert fired(rs, body="هجوم على البوكمال") == ["r_any"]


def test_near_same_sentence_fields_min_mentions(tmp_path):
    rs = rules_of(tmp_path, """
  - {id: near3, title: t, near: [{terms: [a, b], within: 3}]}
  - {id: sent, title: t, same_sentence: [[a, b]]}
  - {id: title_only, title: t, any: [a], fields: [title]}
  - {id: twice, title: t, any: [a], min_mentions: 2}
""")
    assert fired(rs, body="قسد قرب البوكمال") == ["near3", "sent"]
    assert fired(rs, body="قسد كلمة كلمة كلمة كلمة البوكمال") == ["sent"]
    assert fired(rs, body="قسد هنا. البوكمال هناك") == ["near3"]
    assert fired(rs, title="البوكمال", body="البوكمال") == ["title_only", "twice"]
    assert fired(rs, title="قسد", body="البوكمال") == []


def test_cooldown_and_channels(tmp_path):
    rs = rules_of(tmp_path, "  - {id: r, title: t, any: [a], cooldown: 2h, channels: [ops], severity: critical}\n")
    (m,) = rs.evaluate(body="البوكمال").matches
    assert (m.cooldown, m.channels, m.severity) == (7200.0, ("ops",), "critical")
    assert rs.channels_referenced() == {"ops"}


def test_unknown_key_has_location_and_suggestion(tmp_path):
    p = write(tmp_path, "entities:\n  - id: a\n    alaises: [x]\n")
    (err,) = errors_of(p)
    assert (err.line, err.column) == (3, 5)
    assert err.suggestion == "aliases"
    assert str(err).startswith(f"{p}:3:5: entities[0].alaises: unknown key")


def test_wrong_type_and_empty_alias(tmp_path):
    p = write(tmp_path, """entities:
  - id: bukamal
    aliases: [البوكمال, "ـــ"]
rules:
  - id: r
    title: t
    any: [bukamal]
    min_mentions: many
    severity: urgent
""")
    errs = errors_of(p)
    text = "\n".join(map(str, errs))
    assert f"{p}:3:25: entities[0].aliases[1]: empty alias" in text
    assert "rules[0].min_mentions" in text and "rules[0].severity" in text


def test_unknown_reference_and_duplicate(tmp_path):
    p = write(tmp_path, """entities:
  - id: bukamal
    aliases: [البوكمال]
  - id: bukamal
    aliases: [x]
rules:
  - id: r
    title: t
    any: [bukamall]
""")
    errs = errors_of(p)
    assert "duplicate id 'bukamal'" in "\n".join(map(str, errs))
    ref = [e for e in errs if "unknown entity" in e.message]
    assert ref and ref[0].suggestion == "bukamal" and ref[0].line == 9
    assert all(e.line for e in errs)


def test_invalid_yaml_and_non_mapping(tmp_path):
    (err,) = errors_of(write(tmp_path, "rules: [\n"))
    assert err.line is not None and "invalid YAML" in err.message
    (err,) = errors_of(write(tmp_path, "- a\n- b\n", "list.yaml"))
    assert "mapping" in err.message


def test_duplicate_ids_across_files(tmp_path):
    a = write(tmp_path, "entities:\n  - id: x\n    aliases: [قسد]\n", "a.yaml")
    b = write(tmp_path, "entities:\n  - id: x\n    aliases: [داعش]\n", "b.yaml")
    (err,) = errors_of(tmp_path)
    assert err.file == str(b) and "first defined in" in err.message


def test_directory_loads_sorted_yaml_files(tmp_path):
    write(tmp_path, "entities:\n  - id: x\n    aliases: [قسد]\n", "b.yml")
    write(tmp_path, "rules:\n  - {id: r, title: t, any: [x]}\n", "a.yaml")
    write(tmp_path, "not: rules", "c.txt")
    rs = load_rules([tmp_path])
    assert [Path(s).name for s in rs.sources] == ["a.yaml", "b.yml"]
    assert rs.rule_ids == ["r"] and rs.entity_ids == ["x"]
