"""Service: the long-running daemon around the pipeline.

    daemon.py       scheduling, delivery task, reload, stop; ``run`` and ``run --once``
    supervise.py    long-lived tasks restarted with backoff when they die
    progress.py     is work getting done (polls recorded, deliveries made)? stuck vs degraded
    reload_guard.py reloads that would remove rules wait until the files are stable
    checks.py       checks needing both the rules and their files (aliases that cannot match)
    settings.py     the ``http:``, ``housekeeping:`` and ``reload:`` sections
    sdnotify.py     READY / WATCHDOG / STATUS to systemd, never blocking
    watch.py        reload when a config or rules file changes
    http_api.py     ``/healthz`` and ``/metrics``
    housekeeping.py pruning and WAL checkpoints on a timer
    logs.py         one redacted line per event, journald-aware
    status.py       what ``monitor status`` and ``monitor feeds`` print

May import: everything but ``monitor.cli``.
"""
