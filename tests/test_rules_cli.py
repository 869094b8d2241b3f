"""`monitor rules check|test` through click's CliRunner (`suggest`: tests/test_suggest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from monitor.cli.rules import rules

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "data" / "corpus"
RULES = str(ROOT / "rules")


def run(*args):
    return CliRunner().invoke(rules, list(args))


def test_check_ok():
    result = run("check", RULES)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_check_reports_located_errors_with_exit_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("entities:\n  - id: x\n    alias: [قسد]\n", encoding="utf-8")
    result = run("check", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:3:5: entities[0].alias: unknown key (did you mean 'aliases'?)" in result.output
    assert "Traceback" not in result.output


def test_usage_error_exit_2(tmp_path):
    assert run("test", "--rules", RULES).exit_code == 2
    assert run("test", "--rules", RULES, str(tmp_path / "missing.txt")).exit_code == 2
    assert run("test", "--format", "xml", str(CORPUS)).exit_code == 2


def test_json_output_shape_and_offsets(tmp_path):
    docs = tmp_path / "docs.jsonl"
    texts = {"a": "اشتباكات بين قسد وداعش قرب البوكمال", "b": "مباراة كرة القدم"}
    docs.write_text("\n".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) for k, v in texts.items()),
                    encoding="utf-8")
    result = run("test", "--rules", RULES, "--format", "json", str(docs))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [o["id"] for o in lines] == ["a", "b"]
    a, b = lines
    assert set(a) == {"id", "rules", "entities", "hits"}
    assert {"qasad", "isis", "bukamal"} <= set(a["entities"])
    assert "sdf_near_bukamal" in a["rules"]
    for hit in a["hits"]:
        assert set(hit) == {"entity", "alias", "start", "end", "text"}
        assert texts["a"][hit["start"]:hit["end"]] == hit["text"]
    assert b == {"id": "b", "rules": [], "entities": [], "hits": []}


def test_text_output_over_a_directory():
    result = run("test", "--rules", RULES, str(CORPUS))
    assert result.exit_code == 0, result.output
    assert result.output.count("== ") == 5
    assert "deir_ez_zor_front" in result.output and "[" in result.output


def test_single_txt_file(tmp_path):
    doc = tmp_path / "one.txt"
    doc.write_text("سيطرت قسد على حقل العمر", encoding="utf-8")
    result = run("test", "--rules", RULES, "--format", "json", str(doc))
    assert json.loads(result.output)["entities"] == ["omar_field", "qasad"]


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>أخبار</title><link>https://example.org/</link>
<item><title>قسد تقترب من البوكمال</title><link>https://example.org/a</link><guid>a-1</guid>
<description>اشتباكات عنيفة في ريف دير الزور الشرقي</description></item>
<item><title>مباراة كرة القدم</title><link>https://example.org/b</link><guid>b-2</guid>
<description>انتهت بالتعادل</description></item>
</channel></rss>""".encode()


def test_feed_url_input(monkeypatch):
    import httpx

    def fake_get(url, **kwargs):
        return httpx.Response(200, content=RSS, headers={"content-type": "application/rss+xml"},
                              request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    result = run("test", "--rules", RULES, "--format", "json", "https://example.org/feed.xml")
    assert result.exit_code == 0, result.output
    first, second = [json.loads(line) for line in result.output.splitlines()]
    assert {"qasad", "bukamal", "deir_ez_zor"} <= set(first["entities"])
    assert "sdf_near_bukamal" in first["rules"]
    text = "قسد تقترب من البوكمال\nاشتباكات عنيفة في ريف دير الزور الشرقي"
    for hit in first["hits"]:
        assert text[hit["start"]:hit["end"]] == hit["text"]
    assert second["rules"] == [] and second["hits"] == []
