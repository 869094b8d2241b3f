"""One poll of one feed: fetch -> parse -> analyze -> decide -> record.

``Pipeline.poll`` is what the scheduler runs for each feed. Each step is a
method with typed input and output, so the chain reads top to bottom:

    fetch    FeedSettings            -> FetchResult      (monitor.feeds.fetch)
    parse    FetchResult             -> ParsedFeed       (monitor.feeds.parse, in a worker)
    analyze  ParsedFeed              -> list[Analyzed]   (rules and dedup fingerprint, in a worker)
    decide   Analyzed + seen mark    -> ItemIntent       (monitor.ingest.decide, pure)
    record   ItemIntent              -> story, alerts, outbox rows, seen mark (monitor.state)

Expected failures (``FetchError``, ``ParseError``, a state database error)
become a ``PollOutcome`` and a line on the feed's row, never an exception:
one broken feed never stops the others.

Everything an item changes (its seen mark, its story, its alerts and their
outbox rows, and the feed's validators) is committed in ONE transaction, so a
crash at any point either replays the whole poll or none of it. Validators
are stored in that same transaction, so a failed poll is retried in full.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor import metrics
from monitor.alerts.route import plan_alerts
from monitor.config import Config
from monitor.errors import FetchError, MonitorError, ParseError
from monitor.feeds.article import extract_article
from monitor.feeds.fetch import Fetcher
from monitor.feeds.schedule import parse_max_age, publishing_stats
from monitor.feeds.settings import FeedSettings
from monitor.ingest.analysis import AnalysisContext, ItemAnalysis, analyze_item
from monitor.ingest.decide import ItemIntent, ItemStatus, decide_item
from monitor.ingest.workers import WorkerPool
from monitor.state import feeds as state_feeds
from monitor.state import items as state_items
from monitor.state.db import Database, StateError
from monitor.stories.index import StoryIndex
from monitor.text.normalize import normalize
from monitor.types import FetchResult, Item, ParsedFeed

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "PollOutcome", "PollStatus", "content_hash", "body_hash", "FULL_FETCH_EVERY"]

#: Seconds after which a feed is fetched without validators, whatever it answered.
FULL_FETCH_EVERY = 6 * 3600.0


class PollStatus(enum.StrEnum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    ERROR = "error"
    #: Not polled: not due yet, or another instance holds its lease (see ``retry_at``).
    SKIPPED = "skipped"


@dataclass
class PollOutcome:
    """What one poll did; summed into the ``run --once`` summary and used for the next poll's delay."""

    feed: str
    status: PollStatus
    items: int = 0
    new_items: int = 0
    changed_items: int = 0
    alerts_new: int = 0
    alerts_already_sent: int = 0
    error: str | None = None
    error_kind: str | None = None
    retry_after: float | None = None
    #: For a skipped poll: when to ask for the feed's lease again (unix time).
    retry_at: float | None = None
    ttl_seconds: int | None = None
    max_age: int | None = None
    entries_per_week: float | None = None
    feed_window_seconds: float | None = None
    new_alert_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Analyzed:
    """One parsed item with the hash of its normalized text and, when it is new or
    changed in the snapshot the workers saw, its analysis."""

    item: Item
    digest: str
    analysis: ItemAnalysis | None


def content_hash(item: Item) -> str:
    """Hash of the item's normalized text: an edit that changes no letter is no change."""
    return hashlib.sha1(normalize(item.text).encode("utf-8")).hexdigest()


def body_hash(body: bytes, feed: FeedSettings) -> str:
    """Identity of a fetched body as this feed parses it: the bytes, and the settings
    that change what parsing them gives (a new ``encoding:`` override must reparse)."""
    digest = hashlib.sha1(f"{feed.encoding or ''}\n{int(bool(feed.full_text))}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _content_hashes(items: list[Item]) -> list[str]:
    return [content_hash(item) for item in items]


class Pipeline:
    """Polls feeds with one config and one rule set (``context``); a reload builds a new one.

    The state database, the fetcher, the story index and the worker pool are
    shared by the pipelines of successive reloads; a poll that started before a
    reload finishes with the pipeline (and the rules) it started with.
    """

    def __init__(self, config: Config, db: Database, context: AnalysisContext, fetcher: Fetcher,
                 stories: StoryIndex, workers: WorkerPool, *, instance: str = "local",
                 clock: Callable[[], float] = time.time,
                 on_alerts: Callable[[list[int]], None] | None = None) -> None:
        self.config = config
        #: Who this pipeline polls for, in the feeds' leases (one daemon instance).
        self.instance = instance
        self.db = db
        self.context = context
        self.fetcher = fetcher
        self.stories = stories
        self.workers = workers
        self.clock = clock
        self.on_alerts = on_alerts

    async def poll(self, feed: FeedSettings, *, when_due: bool = True) -> PollOutcome:
        """Poll ``feed`` once. Never raises for a feed's own problems.

        The feed is leased to this instance first: with ``when_due`` only if its
        recorded next poll has come (``run --once`` polls now), and never while
        another live instance holds it.
        """
        started = self.clock()
        try:
            lease = state_feeds.take_lease(self.db, feed.name, feed.url, owner=self.instance, now=started,
                                           seconds=self.config.model.cluster.lease,
                                           when_due=when_due)
            if not lease.taken:
                return PollOutcome(feed.name, PollStatus.SKIPPED, retry_at=lease.retry_at)
            record = state_feeds.sync_url(self.db, feed.name, feed.url)
            # Some servers answer 304 (or repeat an ETag) for content that changed. Now and
            # then fetch unconditionally, so a lying validator can delay an item but never hide it.
            conditional = (record is not None and record.last_full_fetch_at is not None
                           and started - record.last_full_fetch_at < FULL_FETCH_EVERY)
            result = await self.fetch(feed, record, conditional=conditional)
            if result.not_modified:
                return self._not_modified(feed, result, started, "not modified")
            if conditional and record is not None and record.body_hash == body_hash(result.body, feed):
                # The server ignores validators but sent the very bytes processed last time.
                return self._same_body_again(feed, record, result, started)
            parsed = await self.parse(feed, result)
            analyzed = await self.analyze(parsed)
            return self.record(feed, result, parsed, analyzed, started)
        except (FetchError, ParseError) as exc:
            return self._failed(feed, exc, started)
        except StateError as exc:
            # Disk full, read-only state dir...: nothing of this poll is recorded, so the
            # next poll sees the same items as new again. Nothing is lost.
            return self._state_error(feed, exc)

    # -- the steps ---------------------------------------------------------------------

    async def fetch(self, feed: FeedSettings, record: state_feeds.FeedRecord | None, *,
                    conditional: bool) -> FetchResult:
        """GET the feed (at its permanent redirect's target, if it has one), with its validators if ``conditional``."""
        url = (record.redirected_url or feed.url) if record is not None else feed.url
        validators = record if conditional else None
        return await self.fetcher.fetch(url, etag=validators.etag if validators else None,
                                        last_modified=validators.last_modified if validators else None)

    async def parse(self, feed: FeedSettings, result: FetchResult) -> ParsedFeed:
        parsed = await self.workers.parse(result.body, result.headers, url=result.final_url, feed_name=feed.name,
                                          encoding=feed.encoding)
        if feed.full_text:
            parsed = await self._with_full_text(feed, parsed)
        return parsed

    async def analyze(self, parsed: ParsedFeed) -> list[Analyzed]:
        """Hash every item (a thread), then match and fingerprint the new and changed ones
        in a worker: a feed of 5,000 long items is seconds of CPU that must not stall the
        event loop (watchdog, deliveries, HTTP). The record step then only decides and writes."""
        digests = await asyncio.to_thread(_content_hashes, parsed.items)
        known = state_items.known_hashes(self.db, [item.key for item in parsed.items])
        hashed = list(zip(parsed.items, digests, strict=True))
        fresh = [i for i, (item, digest) in enumerate(hashed) if known.get(item.key) != digest]
        analyses = await self.workers.analyze([parsed.items[i] for i in fresh], self.context, url=parsed.url)
        analysis_of = dict(zip(fresh, analyses, strict=True))
        return [Analyzed(item, digest, analysis_of.get(i)) for i, (item, digest) in enumerate(hashed)]

    def record(self, feed: FeedSettings, result: FetchResult, parsed: ParsedFeed, analyzed: list[Analyzed],
               started: float) -> PollOutcome:
        """Decide and record every item, and the feed's success, in one transaction."""
        per_week, window = publishing_stats([i.published for i in parsed.items])
        outcome = PollOutcome(feed.name, PollStatus.OK, items=len(parsed.items), ttl_seconds=parsed.ttl_seconds,
                              max_age=parse_max_age(result.headers.get("cache-control")),
                              entries_per_week=per_week, feed_window_seconds=window)
        now = self.clock()
        with self.db.transaction():
            # Deciding which story an item joins must see every story other instances
            # committed: one recording transaction at a time across instances.
            self.db.serialize("stories")
            for entry in analyzed:
                self._record_item(entry, now, outcome)
            state_feeds.record_success(
                self.db, feed.name, feed.url, polled_at=started, succeeded_at=self.clock(), etag=result.etag,
                last_modified=result.last_modified, permanent_redirect=result.permanent_redirect,
                body_hash=body_hash(result.body, feed), new_items=outcome.new_items,
                alerts=len(outcome.new_alert_ids))
        if parsed.warnings:
            log.info("feed %s: %s", feed.name, "; ".join(parsed.warnings)[:500])
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

    def _record_item(self, entry: Analyzed, now: float, outcome: PollOutcome) -> None:
        item = entry.item
        # Read again inside the transaction: another feed may have recorded the
        # same item since the snapshot the workers used.
        seen = state_items.get(self.db, item.key)
        analysis = entry.analysis
        if analysis is None and (seen is None or seen.content_hash != entry.digest):
            analysis = analyze_item(item, self.context)  # unchanged in the snapshot, changed since: rare
        intent = decide_item(item, entry.digest, seen, analysis, now=now,
                             max_item_age=self.config.model.defaults.max_item_age)
        outcome.alerts_already_sent += intent.already_sent
        if intent.status is ItemStatus.UNCHANGED:
            state_items.mark_seen_again(self.db, item.key, now)
            return
        outcome.new_items += intent.status is ItemStatus.NEW
        outcome.changed_items += intent.status is ItemStatus.CHANGED
        story_id = self._alert(item, intent, analysis, now, outcome) if intent.fresh else None
        state_items.record(self.db, key=item.key, feed=item.feed, content_hash=entry.digest, title=item.title,
                           link=item.link, story_id=story_id, rules=intent.rules, now=now)

    def _alert(self, item: Item, intent: ItemIntent, analysis: ItemAnalysis | None, now: float,
               outcome: PollOutcome) -> int:
        """Fold the item into its story and plan the alerts its fresh matches call for."""
        story = self.stories.assign(self.db, item, now, analysis.dedup if analysis else None)
        new_ids = plan_alerts(self.db, item, story, intent.fresh, self.config.channels,
                              self.config.model.routing, now)
        outcome.new_alert_ids.extend(new_ids)
        outcome.alerts_already_sent += len(intent.fresh) - len(new_ids)
        for match in intent.fresh:
            metrics.MATCHES.labels(match.rule_id).inc()
        return story.story_id

    # -- other endings of a poll ----------------------------------------------------------

    def _not_modified(self, feed: FeedSettings, result: FetchResult, started: float, why: str) -> PollOutcome:
        with self.db.transaction():
            state_feeds.record_success(self.db, feed.name, feed.url, polled_at=started, succeeded_at=self.clock(),
                                       etag=result.etag, last_modified=result.last_modified,
                                       permanent_redirect=result.permanent_redirect)
        metrics.POLLS.labels("not_modified").inc()
        log.info("feed %s: %s", feed.name, why)
        return PollOutcome(feed.name, PollStatus.NOT_MODIFIED)

    def _same_body_again(self, feed: FeedSettings, record: state_feeds.FeedRecord, result: FetchResult,
                         started: float) -> PollOutcome:
        """Mark the feed's items seen again without parsing them.

        The items of the last processed body all got ``last_seen >= last_full_fetch_at``
        then; moving their ``last_seen`` on keeps housekeeping from pruning items the
        feed still carries (a pruned item would look new, and alert again, later).
        Items another feed recorded first are refreshed by the full processing every
        ``FULL_FETCH_EVERY`` (the fetch is then unconditional and this path not taken).
        """
        assert record.last_full_fetch_at is not None
        with self.db.transaction():
            state_items.mark_feed_seen_again(self.db, feed.name, record.last_full_fetch_at, self.clock())
            return self._not_modified(feed, result, started, "same content as last time (the server sends no 304)")

    def _state_error(self, feed: FeedSettings, exc: StateError) -> PollOutcome:
        log.error("feed %s: state database error, poll not recorded: %s", feed.name, exc)
        metrics.POLLS.labels("error").inc()
        metrics.FETCH_ERRORS.labels("state").inc()
        return PollOutcome(feed.name, PollStatus.ERROR, error=f"state database: {exc}", error_kind="state")

    def _failed(self, feed: FeedSettings, exc: FetchError | ParseError, started: float) -> PollOutcome:
        try:
            state_feeds.record_error(self.db, feed.name, feed.url, polled_at=started, error=exc.message,
                                     kind=exc.kind, at=self.clock())
        except StateError as state_exc:
            return self._state_error(feed, state_exc)
        metrics.POLLS.labels("error").inc()
        metrics.FETCH_ERRORS.labels(exc.kind).inc()
        log.warning("feed %s: %s: %s", feed.name, exc.kind, exc.message)
        return PollOutcome(feed.name, PollStatus.ERROR, error=exc.message, error_kind=exc.kind,
                           retry_after=exc.retry_after if isinstance(exc, FetchError) else None)

    async def _with_full_text(self, feed: FeedSettings, parsed: ParsedFeed) -> ParsedFeed:
        """Each new item's summary replaced by its article text (headline-only feeds)."""
        items = list(parsed.items)
        for index, item in enumerate(items):
            if not item.link or state_items.exists(self.db, item.key):
                continue
            try:
                page = await self.fetcher.fetch_page(item.link)
                text = await asyncio.to_thread(extract_article, page.body, page.final_url)
            except MonitorError as exc:
                log.info("feed %s: full text of %s unavailable: %s", feed.name, item.link, exc)
                continue
            if text:
                items[index] = dataclasses.replace(item, summary=text)
        return dataclasses.replace(parsed, items=items)

    def record_schedule(self, feed: FeedSettings, interval: float, next_poll_at: float) -> None:
        """Remember when the feed is polled next (shown by ``monitor feeds``)."""
        state_feeds.record_schedule(self.db, feed.name, feed.url, interval, next_poll_at, owner=self.instance)

    def release_leases(self) -> None:
        """Give up this instance's feed leases (end of ``run --once``, a clean stop)."""
        state_feeds.release_leases(self.db, self.instance)
