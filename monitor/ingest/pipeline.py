"""One poll of one feed, end to end: fetch -> parse -> match -> dedup -> route.

``Pipeline.poll`` is what the scheduler runs for each feed. Expected failures
(``FetchError``, ``ParseError``) become a ``PollOutcome`` and a line on the
feed's row, never an exception: one broken feed never stops the others.

Everything an item changes (its "seen" mark, its story, its alerts and their
outbox rows, and the feed's validators) is committed in ONE transaction, so a
crash at any point either replays the whole poll or none of it: nothing is
lost and nothing is half-recorded. Validators (ETag/Last-Modified) are stored
only after that commit, so a failed poll is retried in full next time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from monitor import metrics
from monitor.ingest.analysis import AnalysisContext, ItemAnalysis, analyze_item, analyze_items
from monitor.config import Config, FeedSettings
from monitor.stories.index import StoryIndex
from monitor.errors import FetchError, MonitorError, ParseError
from monitor.feeds.fetch import Fetcher
from monitor.types import FetchResult, Item, ParsedFeed
from monitor.text.normalize import normalize
from monitor.feeds.parse import extract_article, parse_feed
from monitor.alerts.route import plan_alerts
from monitor.rules.evaluate import RuleSet
from monitor.service.schedule import parse_max_age, publishing_stats
from monitor.state.db import transaction
from monitor.ingest.workers import WorkerPool

log = logging.getLogger("monitor.ingest.pipeline")

#: Seconds after which a feed is fetched without validators, whatever it answered.
FULL_FETCH_EVERY = 6 * 3600.0


@dataclass
class PollOutcome:
    """What one poll did; summed into the ``run --once`` summary and logged."""

    feed: str
    status: str  # ok | not_modified | error
    items: int = 0
    new_items: int = 0
    changed_items: int = 0
    alerts_new: int = 0
    alerts_already_sent: int = 0
    error: str | None = None
    error_kind: str | None = None
    retry_after: float | None = None
    ttl_seconds: int | None = None
    max_age: int | None = None
    entries_per_week: float | None = None
    feed_window_seconds: float | None = None
    new_alert_ids: list[int] = field(default_factory=list)


@dataclass
class _ItemDecision:
    new: bool = False
    changed: bool = False
    alerts: list[int] = field(default_factory=list)
    already_sent: int = 0


def content_hash(item: Item) -> str:
    """Hash of the item's normalized text: an edit that changes no letter is no change."""
    return hashlib.sha1(normalize(item.text).encode("utf-8")).hexdigest()


class Pipeline:
    """Runs polls against one config, rule set, state connection and fetcher.

    The rule set is swapped atomically on reload (``pipeline.ruleset = new``);
    a poll already running keeps the rules it started with.
    """

    def __init__(
        self,
        config: Config,
        conn: sqlite3.Connection,
        ruleset: RuleSet,
        fetcher: Fetcher,
        stories: StoryIndex,
        *,
        clock: Callable[[], float] = time.time,
        on_alerts: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.config = config
        self.conn = conn
        self.fetcher = fetcher
        self.stories = stories
        self.clock = clock
        self.on_alerts = on_alerts
        self._workers: WorkerPool | None = None
        self.ruleset = ruleset

    @property
    def ruleset(self) -> RuleSet:
        return self._context.ruleset

    @ruleset.setter
    def ruleset(self, ruleset: RuleSet) -> None:
        self._context = AnalysisContext(ruleset, self.stories.settings, self.stories.permutations)
        if self._workers is not None:
            self._workers.use(self._context)

    @property
    def workers(self) -> WorkerPool | None:
        """Where parsing and matching run (``monitor.ingest.workers``); None: a thread of this process."""
        return self._workers

    @workers.setter
    def workers(self, pool: WorkerPool | None) -> None:
        self._workers = pool
        if pool is not None:
            pool.use(self._context)

    async def poll(self, feed: FeedSettings) -> PollOutcome:
        """Poll ``feed`` once. Never raises for a feed's own problems."""
        state = self._feed_row(feed)
        url = (state["redirected_url"] or feed.url) if state else feed.url
        started = self.clock()
        # Some servers answer 304 (or repeat an ETag) for content that changed.
        # Now and then fetch unconditionally, so a lying validator can delay an
        # item but never hide it.
        conditional = state is not None and state["last_full_fetch_at"] is not None and \
            started - state["last_full_fetch_at"] < FULL_FETCH_EVERY
        try:
            result = await self.fetcher.fetch(
                url,
                etag=state["etag"] if conditional else None,
                last_modified=state["last_modified"] if conditional else None,
            )
            if result.not_modified:
                self._record_success(feed, result, None, started)
                metrics.POLLS.labels("not_modified").inc()
                log.info("feed %s: not modified", feed.name)
                return PollOutcome(feed.name, "not_modified")
            if conditional and state["body_hash"] == body_hash(result.body, feed):
                # The server ignores validators but sent the very bytes we processed
                # last time (parsed the same way): same items, nothing to match.
                return self._same_body_again(feed, state, result, started)
            if self._workers is not None:  # worker processes (monitor/workers.py)
                parsed = await self._workers.parse(result.body, result.headers, url=result.final_url,
                                                   feed_name=feed.name, encoding=feed.encoding)
            else:
                parsed = await asyncio.to_thread(
                    parse_feed, result.body, result.headers, url=result.final_url, feed_name=feed.name,
                    encoding=feed.encoding,
                )
            if feed.full_text:
                await self._add_full_text(feed, parsed)
        except (FetchError, ParseError) as exc:
            return self._failed(feed, exc, started)

        per_week, window = publishing_stats([i.published for i in parsed.items])
        outcome = PollOutcome(feed.name, "ok", items=len(parsed.items), ttl_seconds=parsed.ttl_seconds,
                              max_age=parse_max_age(result.headers.get("cache-control")),
                              entries_per_week=per_week, feed_window_seconds=window)
        context = self._context
        # Hash every item (a thread), then match and fingerprint the new and changed
        # ones in a worker process (a thread without workers): a feed of 5,000 long
        # items is seconds of CPU that must not stall the event loop (watchdog,
        # deliveries, HTTP). The write transaction below then only decides and records.
        digests = await asyncio.to_thread(_content_hashes, parsed.items)
        known = self._known_hashes([item.key for item in parsed.items])
        fresh = [index for index, (item, digest) in enumerate(zip(parsed.items, digests))
                 if known.get(item.key) != digest]
        fresh_items = [parsed.items[index] for index in fresh]
        try:
            if self._workers is not None:
                analyses = await self._workers.analyze(fresh_items, context, url=result.final_url)
            else:
                analyses = await asyncio.to_thread(analyze_items, fresh_items, context) if fresh else []
        except ParseError as exc:  # the worker died: nothing recorded, the next poll retries
            return self._failed(feed, exc, started)
        analysis_of = dict(zip(fresh, analyses))
        now = self.clock()
        try:
            with transaction(self.conn):
                for index, (item, digest) in enumerate(zip(parsed.items, digests)):
                    decision = self._process_item(item, digest, analysis_of.get(index), context, now)
                    outcome.new_items += decision.new
                    outcome.changed_items += decision.changed
                    outcome.new_alert_ids.extend(decision.alerts)
                    outcome.alerts_already_sent += decision.already_sent
                self._record_success(feed, result, parsed, started, in_transaction=True,
                                     new_items=outcome.new_items, alerts=len(outcome.new_alert_ids))
        except sqlite3.Error as exc:
            # Disk full, read-only state dir...: nothing of this poll is recorded,
            # so the next poll sees the same items as new again. Nothing is lost.
            # (The story index checks LSH candidates against the database, so a
            # rolled-back story leaves no phantom behind.)
            return self._state_error(feed, exc)
        outcome.alerts_new = len(outcome.new_alert_ids)
        metrics.POLLS.labels("ok").inc()
        metrics.ITEMS.labels("new").inc(outcome.new_items)
        metrics.ITEMS.labels("changed").inc(outcome.changed_items)
        metrics.ITEMS.labels("unchanged").inc(outcome.items - outcome.new_items - outcome.changed_items)
        metrics.LAST_POLL.set(self.clock())
        log.info("feed %s: %d items, %d new, %d changed, %d alerts", feed.name, outcome.items,
                 outcome.new_items, outcome.changed_items, outcome.alerts_new)
        if outcome.new_alert_ids and self.on_alerts:
            self.on_alerts(outcome.new_alert_ids)
        return outcome

    def _same_body_again(self, feed: FeedSettings, state: sqlite3.Row, result: FetchResult,
                         started: float) -> PollOutcome:
        """Mark the feed's items seen again without parsing them.

        The items of the last processed body all got ``last_seen >= last_full_fetch_at``
        then; moving their ``last_seen`` on keeps housekeeping from pruning items the
        feed still carries (a pruned item would look new, and alert again, later).
        Items another feed recorded first are refreshed by the full processing every
        ``FULL_FETCH_EVERY`` (the fetch is then unconditional and this path not taken).
        """
        try:
            with transaction(self.conn):
                self.conn.execute("UPDATE items SET last_seen = ? WHERE feed = ? AND last_seen >= ?",
                                  (self.clock(), feed.name, state["last_full_fetch_at"]))
                self._record_success(feed, result, None, started, in_transaction=True)
        except sqlite3.Error as exc:
            return self._state_error(feed, exc)
        metrics.POLLS.labels("not_modified").inc()
        log.info("feed %s: same content as last time (the server sends no 304)", feed.name)
        return PollOutcome(feed.name, "not_modified")

    def _state_error(self, feed: FeedSettings, exc: sqlite3.Error) -> PollOutcome:
        log.error("feed %s: state database error, poll not recorded: %s", feed.name, exc)
        metrics.POLLS.labels("error").inc()
        metrics.FETCH_ERRORS.labels("state").inc()
        return PollOutcome(feed.name, "error", error=f"state database: {exc}", error_kind="state")

    def _failed(self, feed: FeedSettings, exc: FetchError | ParseError, started: float) -> PollOutcome:
        self._record_error(feed, exc, started)
        metrics.POLLS.labels("error").inc()
        metrics.FETCH_ERRORS.labels(exc.kind).inc()
        log.warning("feed %s: %s: %s", feed.name, exc.kind, exc.message)
        return PollOutcome(feed.name, "error", error=exc.message, error_kind=exc.kind,
                           retry_after=getattr(exc, "retry_after", None))

    def _known_hashes(self, keys: list[str]) -> dict[str, str]:
        """Content hashes already recorded for these item keys (one query per 500 keys)."""
        known: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT key, content_hash FROM items WHERE key IN ({marks})", chunk):
                known[row["key"]] = row["content_hash"]
        return known

    def _process_item(self, item: Item, digest: str, analysis: ItemAnalysis | None, context: AnalysisContext,
                      now: float) -> _ItemDecision:
        decision = _ItemDecision()
        # Read again inside the transaction: another feed may have recorded the
        # same item since the snapshot the worker thread used.
        row = self.conn.execute("SELECT content_hash, rules FROM items WHERE key = ?", (item.key,)).fetchone()
        previous_rules: list[str] = json.loads(row["rules"]) if row else []
        if row is not None and row["content_hash"] == digest:
            self.conn.execute("UPDATE items SET last_seen = ? WHERE key = ?", (now, item.key))
            decision.already_sent = len(previous_rules)
            return decision
        decision.new = row is None
        decision.changed = row is not None

        if analysis is None:  # unchanged in the snapshot, changed since: rare, match here
            analysis = analyze_item(item, context)
        matches = [m for m in analysis.matches if self._recent_enough(item, now)]
        # An edited item alerts only for rules it did not match before.
        fresh = [m for m in matches if m.rule_id not in previous_rules]
        decision.already_sent = len(matches) - len(fresh)
        story_id = None
        if fresh:
            story = self.stories.assign(self.conn, item, now, analysis.dedup)
            story_id = story.story_id
            decision.alerts = plan_alerts(self.conn, item, story, fresh, self.config.channels,
                                          self.config.model.routing, now)
            decision.already_sent += len(fresh) - len(decision.alerts)
            for match in fresh:
                metrics.MATCHES.labels(match.rule_id).inc()
        rules = sorted(set(previous_rules) | {m.rule_id for m in matches})
        self.conn.execute(
            """INSERT INTO items (key, feed, content_hash, title, link, story_id, rules, first_seen, last_seen)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(key) DO UPDATE SET content_hash = excluded.content_hash, title = excluded.title,
                   link = excluded.link, story_id = COALESCE(excluded.story_id, items.story_id),
                   rules = excluded.rules, last_seen = excluded.last_seen""",
            (item.key, item.feed, digest, item.title, item.link, story_id, json.dumps(rules), now, now),
        )
        return decision

    def _recent_enough(self, item: Item, now: float) -> bool:
        max_age = self.config.model.defaults.max_item_age
        if max_age is None or item.published is None:
            return True
        return item.published.timestamp() >= now - max_age

    async def _add_full_text(self, feed: FeedSettings, parsed: ParsedFeed) -> None:
        """Replace each new item's summary by its article text (headline-only feeds)."""
        for index, item in enumerate(parsed.items):
            if not item.link:
                continue
            known = self.conn.execute("SELECT 1 FROM items WHERE key = ?", (item.key,)).fetchone()
            if known:
                continue
            try:
                page = await self.fetcher.fetch_page(item.link)
                text = await asyncio.to_thread(extract_article, page.body, page.final_url)
            except MonitorError as exc:
                log.info("feed %s: full text of %s unavailable: %s", feed.name, item.link, exc)
                continue
            if text:
                parsed.items[index] = dataclasses.replace(item, summary=text)

    # -- feed rows ---------------------------------------------------------

    def _feed_row(self, feed: FeedSettings) -> sqlite3.Row | None:
        row = self.conn.execute("SELECT * FROM feeds WHERE name = ?", (feed.name,)).fetchone()
        if row is not None and row["url"] != feed.url:
            # The user changed the feed's URL: forget validators and redirects of the old one.
            with transaction(self.conn):
                self.conn.execute(
                    "UPDATE feeds SET url = ?, etag = NULL, last_modified = NULL, redirected_url = NULL "
                    "WHERE name = ?", (feed.url, feed.name))
            row = self.conn.execute("SELECT * FROM feeds WHERE name = ?", (feed.name,)).fetchone()
        return row

    def _ensure_feed_row(self, feed: FeedSettings) -> None:
        self.conn.execute("INSERT OR IGNORE INTO feeds (name, url) VALUES (?, ?)", (feed.name, feed.url))

    def _record_success(self, feed: FeedSettings, result: FetchResult, parsed: ParsedFeed | None,
                        started: float, *, in_transaction: bool = False, new_items: int = 0,
                        alerts: int = 0) -> None:
        def write() -> None:
            self._ensure_feed_row(feed)
            self.conn.execute(
                """UPDATE feeds SET etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified),
                       redirected_url = COALESCE(?, redirected_url), last_poll_at = ?, last_success_at = ?,
                       consecutive_errors = 0, items_seen = items_seen + ?, alerts_created = alerts_created + ?
                   WHERE name = ?""",
                (result.etag, result.last_modified, result.permanent_redirect, started, self.clock(),
                 new_items, alerts, feed.name),
            )
            if parsed is not None:  # the body was processed in full
                self.conn.execute("UPDATE feeds SET last_full_fetch_at = ?, body_hash = ? WHERE name = ?",
                                  (started, body_hash(result.body, feed), feed.name))
            if parsed is not None and parsed.warnings:
                log.info("feed %s: %s", feed.name, "; ".join(parsed.warnings)[:500])

        if in_transaction:
            write()
        else:
            with transaction(self.conn):
                write()

    def _record_error(self, feed: FeedSettings, exc: MonitorError, started: float) -> None:
        kind = getattr(exc, "kind", "error")
        message = getattr(exc, "message", str(exc))
        with transaction(self.conn):
            self._ensure_feed_row(feed)
            self.conn.execute(
                """UPDATE feeds SET last_poll_at = ?, last_error = ?, last_error_kind = ?, last_error_at = ?,
                       consecutive_errors = consecutive_errors + 1 WHERE name = ?""",
                (started, message, kind, self.clock(), feed.name),
            )

    def record_schedule(self, feed: FeedSettings, interval: float, next_poll_at: float) -> None:
        """Remember when the feed is polled next (shown by ``monitor feeds``)."""
        with transaction(self.conn):
            self._ensure_feed_row(feed)
            self.conn.execute("UPDATE feeds SET interval = ?, next_poll_at = ? WHERE name = ?",
                              (interval, next_poll_at, feed.name))


def body_hash(body: bytes, feed: FeedSettings) -> str:
    """Identity of a fetched body as this feed parses it: the bytes, and the settings
    that change what parsing them gives (a new ``encoding:`` override must reparse)."""
    digest = hashlib.sha1(f"{feed.encoding or ''}\n{int(bool(feed.full_text))}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _content_hashes(items: list[Item]) -> list[str]:
    return [content_hash(item) for item in items]


def utc(ts: float | None) -> str:
    """A Unix time as a short UTC string for the CLI."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
