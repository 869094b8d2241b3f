"""Prometheus metrics, one registry for the whole daemon.

Stages increment these; ``monitor.service.http_api`` serves them at ``/metrics``.
A private ``CollectorRegistry`` (not the global default) so tests and the CLI
can import the module without side effects.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("monitor_polls_total", "Feed polls by outcome (ok, not_modified, error).",
                ["outcome"], registry=REGISTRY)
FETCH_ERRORS = Counter("monitor_fetch_errors_total", "Feed fetch/parse errors by kind.",
                       ["kind"], registry=REGISTRY)
ITEMS = Counter("monitor_items_total", "Feed items by outcome (new, changed, unchanged).",
                ["outcome"], registry=REGISTRY)
MATCHES = Counter("monitor_rule_matches_total", "Items matched, by rule.", ["rule"], registry=REGISTRY)
ALERTS = Counter("monitor_alerts_total", "Outbox rows reaching a state (queued, sent, retry, dead).",
                 ["state"], registry=REGISTRY)
DELIVERY_LATENCY = Histogram("monitor_delivery_latency_seconds",
                             "Seconds from an alert's creation to its delivery.",
                             buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600, 14400), registry=REGISTRY)
OUTBOX_DEPTH = Gauge("monitor_outbox_depth", "Outbox rows not yet sent or dead.", registry=REGISTRY)
LAST_POLL = Gauge("monitor_last_poll_timestamp_seconds", "Unix time of the last finished poll.",
                  registry=REGISTRY)

# Added with deploy/housekeeping/http_api (issue 6).
PRUNED = Counter("monitor_pruned_rows_total", "State rows deleted by housekeeping, by table.",
                 ["table"], registry=REGISTRY)
WAL_BYTES = Gauge("monitor_state_wal_bytes", "Size of the state database's WAL after the last checkpoint.",
                  registry=REGISTRY)
FEEDS_FAILING = Gauge("monitor_feeds_failing", "Feeds whose last poll failed.", registry=REGISTRY)
RELOADS = Counter("monitor_reloads_total", "Config/rules reloads by outcome (ok, error).",
                  ["outcome"], registry=REGISTRY)
UP_SINCE = Gauge("monitor_start_time_seconds", "Unix time the daemon started.", registry=REGISTRY)

# Added with typed senders and give-up rules (issue 16).
DELIVERY_FAILURES = Counter("monitor_delivery_failures_total", "Failed delivery attempts by channel and reason.",
                            ["channel", "reason"], registry=REGISTRY)
DEAD_LETTERS = Counter("monitor_dead_letters_total", "Messages given up (gone dead) by channel and reason.",
                       ["channel", "reason"], registry=REGISTRY)
OUTBOX_DEAD = Gauge("monitor_outbox_dead", "Dead outbox rows not re-queued, by channel and reason.",
                    ["channel", "reason"], registry=REGISTRY)
DELIVERY_STATE_ERRORS = Counter("monitor_delivery_state_errors_total",
                                "State database errors met by a channel's delivery loop (it backs off and retries).",
                                ["channel"], registry=REGISTRY)
