"""OPML import into the YAML feed list."""

from __future__ import annotations

import pytest
import yaml

from monitor.errors import ConfigError
from monitor.feeds.opml import import_opml, read_opml

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>قائمتي</title></head><body>
  <outline text="عربي">
    <outline type="rss" text="الجزيرة" title="الجزيرة نت" xmlUrl="https://www.aljazeera.net/aljazeerarss/a7c186be/rss"/>
    <outline type="rss" text="BBC Arabic" xmlUrl="https://feeds.bbci.co.uk/arabic/rss.xml?utm_source=opml"/>
    <outline type="rss" text="bad" xmlUrl="javascript:alert(1)"/>
    <outline type="rss" text="local" xmlUrl="file:///etc/passwd"/>
  </outline>
  <outline text="no url"/>
  <outline type="rss" xmlUrl="https://example.com/untitled.xml"/>
</body></opml>"""


def write(tmp_path, text, name="feeds.opml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_opml_nested_and_http_only(tmp_path):
    feeds = read_opml(write(tmp_path, OPML))
    assert feeds == [
        ("الجزيرة نت", "https://www.aljazeera.net/aljazeerarss/a7c186be/rss"),
        ("BBC Arabic", "https://feeds.bbci.co.uk/arabic/rss.xml?utm_source=opml"),
        ("https://example.com/untitled.xml", "https://example.com/untitled.xml"),
    ]


def test_import_creates_then_merges_keeping_comments(tmp_path):
    target = tmp_path / "feeds.yaml"
    target.write_text("# my feeds\n- name: BBC Arabic\n  url: https://feeds.bbci.co.uk/arabic/rss.xml\n",
                      encoding="utf-8")
    report = import_opml(write(tmp_path, OPML), target)
    assert [n for n, _ in report.added] == ["الجزيرة نت", "https://example.com/untitled.xml"]
    assert report.skipped == [("BBC Arabic", "https://feeds.bbci.co.uk/arabic/rss.xml?utm_source=opml",
                               "already present")]
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# my feeds\n") and "الجزيرة نت" in text  # comments kept, Arabic unescaped
    data = yaml.safe_load(text)
    assert [f["name"] for f in data] == ["BBC Arabic", "الجزيرة نت", "https://example.com/untitled.xml"]
    again = import_opml(tmp_path / "feeds.opml", target)
    assert again.added == [] and len(again.skipped) == 3
    assert yaml.safe_load(target.read_text(encoding="utf-8")) == data
    assert "added 0 feed(s), skipped 3" in str(again)


def test_name_clash_gets_suffix_and_flow_style_file_is_rewritten(tmp_path):
    target = tmp_path / "feeds.yaml"
    target.write_text('[{name: "الجزيرة نت", url: "https://other.example/rss"}]\n', encoding="utf-8")
    import_opml(write(tmp_path, OPML), target)
    data = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert data[0] == {"name": "الجزيرة نت", "url": "https://other.example/rss"}
    assert data[1]["name"] == "الجزيرة نت (2)"


@pytest.mark.parametrize("text", [
    "not xml at all <",
    '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body><outline xmlUrl="https://x/&a;"/></body></opml>',
    '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]><opml><body>&x;</body></opml>',
])
def test_bad_or_hostile_opml_is_a_config_error(tmp_path, text):
    with pytest.raises(ConfigError):
        read_opml(write(tmp_path, text))


def test_missing_file_and_non_list_target(tmp_path):
    with pytest.raises(ConfigError):
        read_opml(tmp_path / "nope.opml")
    target = write(tmp_path, "feeds: {}\n", "feeds.yaml")
    with pytest.raises(ConfigError):
        import_opml(write(tmp_path, OPML), target)
    assert target.read_text() == "feeds: {}\n"
