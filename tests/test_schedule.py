"""Polling policy: backoff, Retry-After, ttl/max-age, entry frequency, feed window, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.feeds.schedule import (
    MAX_RETRY_AFTER,
    WEEK,
    PollPolicy,
    next_poll_delay,
    parse_max_age,
    parse_retry_after,
    publishing_stats,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
P = PollPolicy(interval=600, min_interval=60, max_interval=3600, max_backoff=6 * 3600, jitter=0.0)


def mid() -> float:
    return 0.5


@pytest.mark.parametrize("value,expected", [
    ("120", 120.0),
    ("0", 0.0),
    ("99999999", MAX_RETRY_AFTER),
    ("Wed, 01 May 2024 13:00:00 GMT", 3600.0),
    ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
    ("garbage", None),
    ("-5", None),
    ("", None),
    (None, None),
    ("1.5", None),
])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_custom_clamp():
    assert parse_retry_after("7200", max_seconds=600) == 600


@pytest.mark.parametrize("value,expected", [
    ("max-age=300", 300), ("public, max-age=60, s-maxage=900", 900), ('max-age="120"', 120),
    ("no-cache", None), (None, None), ("max-age=abc", None),
])
def test_parse_max_age(value, expected):
    assert parse_max_age(value) == expected


def test_backoff_doubles_and_caps():
    delays = [next_poll_delay(P, consecutive_errors=n) for n in range(0, 12)]
    assert delays[:4] == [600, 1200, 2400, 4800]
    assert delays[-1] == 6 * 3600
    assert delays == sorted(delays)


def test_retry_after_is_a_hard_floor():
    assert next_poll_delay(P, consecutive_errors=1, retry_after=5000) == 5000
    assert next_poll_delay(P, retry_after=10) == 600
    assert next_poll_delay(P, retry_after=10 ** 9) == MAX_RETRY_AFTER


def test_ttl_and_max_age_stretch_within_bounds():
    assert next_poll_delay(P, ttl_seconds=1800) == 1800
    assert next_poll_delay(P, max_age=86400) == 3600  # capped by max_interval
    assert next_poll_delay(P, max_age=30) == 600


def test_entry_frequency_like_miniflux():
    assert next_poll_delay(P, entries_per_week=WEEK / 120) == 120  # one item every 2 min
    assert next_poll_delay(P, entries_per_week=100_000) == 60  # min_interval
    assert next_poll_delay(P, entries_per_week=1) == 3600  # max_interval
    assert next_poll_delay(P, entries_per_week=0) == 3600


def test_feed_window_prevents_items_scrolling_out():
    # 20 items covering 10 minutes: poll at least every 5 minutes even if ttl asks for an hour.
    assert next_poll_delay(P, ttl_seconds=3600, feed_window_seconds=600) == 300


def test_not_adaptive_uses_interval():
    fixed = PollPolicy(interval=900, jitter=0.0, adaptive=False)
    assert next_poll_delay(fixed, entries_per_week=10_000, ttl_seconds=5000) == 900


def test_jitter_uses_injected_random():
    p = PollPolicy(interval=600, jitter=0.1)
    assert next_poll_delay(p, rng=lambda: 0.0) == pytest.approx(540)
    assert next_poll_delay(p, rng=lambda: 1.0) == pytest.approx(660)
    assert next_poll_delay(p, rng=mid) == pytest.approx(600)


def test_policy_validates():
    with pytest.raises(ValueError):
        PollPolicy(min_interval=100, max_interval=10)
    with pytest.raises(ValueError):
        PollPolicy(jitter=1.5)


def test_publishing_stats():
    dates = [NOW - timedelta(hours=h) for h in (1, 2, 3, 200)] + [None, NOW + timedelta(days=3)]
    weekly, window = publishing_stats(dates, now=NOW)
    assert weekly == 4  # 200 h ago is outside the week; the future date is clamped to now
    assert window == 200 * 3600
    assert publishing_stats([], now=NOW) == (None, None)


@given(errors=st.integers(0, 1000), retry=st.one_of(st.none(), st.floats(0, 1e9)),
       ttl=st.one_of(st.none(), st.integers(-10, 10 ** 7)), age=st.one_of(st.none(), st.integers(0, 10 ** 7)),
       rate=st.one_of(st.none(), st.floats(0, 1e6)), window=st.one_of(st.none(), st.floats(0, 1e7)),
       r=st.floats(0, 1))
def test_delay_always_within_bounds(errors, retry, ttl, age, rate, window, r):
    p = PollPolicy(jitter=0.2)
    d = next_poll_delay(p, consecutive_errors=errors, retry_after=retry, ttl_seconds=ttl, max_age=age,
                        entries_per_week=rate, feed_window_seconds=window, rng=lambda: r)
    assert 1.0 <= d <= MAX_RETRY_AFTER
    if retry:
        assert d >= min(retry, MAX_RETRY_AFTER)


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(value):
    out = parse_retry_after(value, now=NOW)
    assert out is None or 0 <= out <= MAX_RETRY_AFTER


@pytest.mark.parametrize("value", ["²", "٣٠", "①", "1²"])
def test_retry_after_with_non_ascii_digits_is_garbage_not_a_crash(value):
    # str.isdigit() is True for these, int() refuses most of them (found by hypothesis).
    assert parse_retry_after(value, now=NOW) is None
