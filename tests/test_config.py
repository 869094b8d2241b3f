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
