"""Config loading: located errors, secrets, paths, feed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError, ConfigErrors
from monitor.types import parse_duration

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("value, seconds", [(300, 300.0), ("300", 300.0), ("5m", 300.0), ("1.5h", 5400.0),
                                            ("2d", 172800.0), ("250ms", 0.25)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["five minutes", "-5m", True, None, "5 weeks"])
def test_bad_durations_are_refused(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_secrets_come_from_environment_or_credentials_directory(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "SMTP_PASSWORD").write_text("s3cr3t-pass\n", encoding="utf-8")
    path = write(tmp_path, "channels:\n  tg:\n    url: tgram://${TOKEN}/-100123\n"
                           "  mail:\n    url: mailto://bot:${SMTP_PASSWORD}@127.0.0.1:2525?mode=insecure&from=bot@example.org&to=a@b.org\n")
    token = "123456:" + "A" * 35
    config = load_config(path, environ={"TOKEN": token, "CREDENTIALS_DIRECTORY": str(creds)})
    assert config.channels["tg"].url == f"tgram://{token}/-100123"
    assert "s3cr3t-pass" in config.channels["mail"].url
    assert config.secrets == {token, "s3cr3t-pass"}


def test_missing_secret_is_located(tmp_path):
    path = write(tmp_path, "feeds: []\nchannels:\n  tg:\n    url: tgram://${NOPE}/1\n")
    with pytest.raises(ConfigErrors) as err:
        load_config(path, environ={})
    assert str(err.value) == f"{path}:4:10: channels.tg.url: ${{NOPE}} is not set in the environment"


@pytest.mark.parametrize("url", ["tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123",
                                 "mailto://bot:hunter2@smtp.example.org?to=a@b.org"])
def test_inline_secrets_are_refused(tmp_path, url):
    path = write(tmp_path, f"channels:\n  c:\n    url: {url}\n")
    with pytest.raises(ConfigErrors) as err:
        load_config(path, environ={})
    assert f"{path}:3:10: channels.c.url: this URL holds a password or token in clear" in str(err.value)
    assert "hunter2" not in str(err.value) and "AAHdq" not in str(err.value)


def test_several_errors_are_reported_together_with_suggestions(tmp_path):
    path = write(tmp_path, "feeds:\n  - name: a\n    url: https://a.org/f\n    encodng: cp1256\n"
                           "  - name: a\n    url: gopher://b.org\n    interval: soon\nchanels: {}\n")
    with pytest.raises(ConfigErrors) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert f"{path}:4:5: feeds[0].encodng: unknown key (did you mean 'encoding'?)" in text
    assert f"{path}:6:10: feeds[1].url: " in text
    assert f"{path}:7:15: feeds[1].interval: " in text
    assert f"{path}:8:1: chanels: unknown key (did you mean 'channels'?)" in text


def test_duplicate_feed_names_and_feed_files(tmp_path):
    (tmp_path / "feeds.d").mkdir()
    write(tmp_path, "- name: a\n  url: https://x.org/1\n- name: b\n  url: https://x.org/2\n", "feeds.d/more.yaml")
    path = write(tmp_path, "feeds:\n  - name: a\n    url: https://a.org/f\nfeed_files: [feeds.d/*.yaml]\n")
    with pytest.raises(ConfigErrors) as err:
        load_config(path, environ={})
    assert f"{tmp_path / 'feeds.d/more.yaml'}:1:9: [0].name: duplicate feed name 'a'" in str(err.value)


def test_paths_resolve_against_the_config_folder(tmp_path):
    path = write(tmp_path, "rules: [myrules]\nstate_path: st/state.db\nfeeds:\n"
                           "  - {name: x, url: 'https://x.org/f', encoding: CP1256}\n")
    config = load_config(path, environ={})
    assert config.rules == [tmp_path / "myrules"]
    assert config.state == tmp_path / "st" / "state.db"
    assert config.feeds[0].encoding == "cp1256"
    assert config.sources == [path]


def test_invalid_yaml_is_located(tmp_path):
    path = write(tmp_path, "feeds:\n  - name: a\n   url: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value).startswith(f"{path}:3:")
    assert "invalid YAML" in str(err.value)


def test_the_state_can_be_a_postgresql_url_whose_password_comes_from_a_variable(tmp_path):
    path = write(tmp_path, "rules: [myrules]\nstate: postgresql://monitor:${DB_PASSWORD}@db.example/monitor\n"
                           "feeds: []\n")
    config = load_config(path, environ={"DB_PASSWORD": "s3cret-pw"})
    assert config.state == "postgresql://monitor:s3cret-pw@db.example/monitor"
    assert "s3cret-pw" in config.secrets  # redacted wherever it would be shown


def test_a_password_written_in_the_state_url_is_refused(tmp_path):
    path = write(tmp_path, "rules: [myrules]\nstate: postgresql://monitor:hunter2@db.example/monitor\n")
    with pytest.raises(ConfigErrors) as caught:
        load_config(path, environ={})
    assert "state" in str(caught.value) and "in clear" in str(caught.value)
# -- bounded YAML (issue 17): limits hold while parsing, errors are located --------------

def _rules_config(tmp_path: Path, rules_file: Path) -> Path:
    return write(tmp_path, f"rules: [{rules_file}]\nfeeds: []\nchannels:\n  c:\n    url: console://\n")


def test_nesting_500_deep_is_a_located_error_everywhere_not_a_recursion_error(tmp_path):
    from conftest import run_cli

    nested = tmp_path / "nested.yaml"
    nested.write_text("[" * 500 + "]" * 500 + "\n", encoding="utf-8")  # 1 KB
    config = _rules_config(tmp_path, nested)
    for args in (["rules", "check", str(nested)], ["check", "--config", str(config)],
                 ["run", "--once", "--config", str(config)]):
        result = run_cli(*args, timeout=120)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert f"{nested}:1:51: refused: nested deeper than 50 levels" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    # The config file itself is bounded the same way.
    deep_config = write(tmp_path, "feeds: " + "[" * 200 + "]" * 200 + "\n", "deep.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(deep_config, environ={})
    assert str(err.value).startswith(f"{deep_config}:1:") and "nested deeper than" in str(err.value)


def test_a_huge_rules_file_is_refused_while_parsing_within_bounded_memory(tmp_path):
    """3.7 MB of 1.9 M tiny values (under the 4 MiB cap) cost 1.3 GB before the node limit."""
    from conftest import run_measured

    from monitor.yamlfile import MAX_NODES

    huge = tmp_path / "huge.yaml"
    huge.write_text("entities:\n  - id: x\n    aliases: [" + ",".join(["a"] * 1_900_000) + "]\n", encoding="utf-8")
    assert 3_500_000 < huge.stat().st_size < 4 * 1024 * 1024
    result, peak_mb = run_measured("rules", "check", str(huge), tmp=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"{huge}:3:" in result.stderr and f"refused: more than {MAX_NODES} values" in result.stderr, result.stderr
    print(f"\nrules check of a 3.7 MB file of 1.9 M values: refused, peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 300, peak_mb


def test_alias_bombs_count_what_they_repeat(tmp_path):
    levels = ["a: &a [" + ",".join(["x"] * 10) + "]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]" for i in range(6)]
    bomb = write(tmp_path, "\n".join(levels) + "\n", "bomb.yaml")  # 10^7 values, 300 bytes
    with pytest.raises(ConfigError) as err:
        load_config(bomb, environ={})
    assert "aliases repeating earlier values" in str(err.value) and str(err.value).startswith(f"{bomb}:")
    merged = write(tmp_path, "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  z: 3\n", "merge.yaml")
    from monitor.yamlfile import load_yaml

    assert load_yaml(merged).data == {"base": {"x": 1, "y": 2}, "m": {"x": 1, "y": 2, "z": 3}}


# -- intervals that `check` accepts must work (issue 17) ----------------------------------

@pytest.mark.parametrize("text, where, message", [
    ("defaults:\n  interval: 0\n", "2:13: defaults.interval", "greater than 0"),
    ("defaults:\n  min_interval: 0s\n", "2:17: defaults.min_interval", "greater than 0"),
    ("feeds:\n  - {name: a, url: 'https://a.org/f', interval: 0}\n", "2:49: feeds[0].interval", "greater than 0"),
    ("defaults:\n  interval: 10m\n  max_interval: 5m\n", "3:17: defaults.max_interval",
     "max_interval (300 s) is shorter than defaults.interval (600 s)"),
    ("defaults:\n  max_interval: 1h\nfeeds:\n  - name: a\n    url: https://a.org/f\n    interval: 2h\n",
     "6:15: feeds[0].interval", "interval (7200 s) is longer than defaults.max_interval (3600 s)"),
])
def test_intervals_that_could_never_work_are_refused(tmp_path, text, where, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigErrors) as err:
        load_config(path, environ={})
    assert f"{path}:{where}: " in str(err.value) and message in str(err.value), str(err.value)


def test_the_configured_interval_bounds_the_adaptive_interval_unless_max_interval_is_set(tmp_path):
    from monitor.feeds.schedule import next_poll_delay

    # A feed whose 20 items share one date looks like "20 items a week": one week / 20 = 8.4 h.
    quiet = {"entries_per_week": 20.0, "feed_window_seconds": 0.0, "rng": lambda: 0.5}
    plain = load_config(write(tmp_path, "feeds:\n  - {name: a, url: 'https://a.org/f', interval: 5m}\n"),
                        environ={})
    assert next_poll_delay(plain.poll_policy(plain.feeds[0]), **quiet) == 300.0
    # Errors still back off beyond the interval, up to max_interval (default 6 h).
    assert next_poll_delay(plain.poll_policy(plain.feeds[0]), consecutive_errors=8, rng=lambda: 0.5) == 6 * 3600
    relaxed = load_config(write(tmp_path, "defaults:\n  max_interval: 2h\n"
                                          "feeds:\n  - {name: a, url: 'https://a.org/f', interval: 5m}\n"),
                          environ={})
    assert next_poll_delay(relaxed.poll_policy(relaxed.feeds[0]), **quiet) == 7200.0


def test_an_alias_that_can_never_match_is_rejected_with_its_line(tmp_path):
    """An alias its own entity excludes would never alert: `check` says where it is."""
    from conftest import ROOT as REPO
    from conftest import run_cli

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "omar.yaml").write_text(
        "entities:\n  - id: omar_field\n    aliases: [العمر النفطي, حقل العمر]\n    exclude: [حقل العمر]\n"
        "keywords:\n  - id: fighting\n    words: [اشتباك]\n"
        "rules:\n  - id: r\n    title: R\n    any: [omar_field, fighting]\n", encoding="utf-8")
    config = write(tmp_path, f"rules: [{rules}]\nfeeds: []\nchannels:\n  c:\n    url: console://\n")
    result = run_cli("check", "--config", str(config), cwd=REPO)
    assert result.returncode == 1, result.stdout
    assert f"{rules / 'omar.yaml'}:3:29: entities[0].aliases[1]: 'حقل العمر' can never match omar_field" \
        in result.stderr, result.stderr
    assert "aliases[0]" not in result.stderr and "fighting" not in result.stderr
