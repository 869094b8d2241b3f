"""Service: the long-running daemon around the pipeline.

    daemon.py       scheduling, delivery task, reload, stop; ``run`` and ``run --once``
    settings.py     the ``http:`` and ``housekeeping:`` sections
    sdnotify.py     READY / WATCHDOG / STATUS to systemd, never blocking
    watch.py        reload when a config or rules file changes
    http_api.py     ``/healthz`` and ``/metrics``
    housekeeping.py pruning and WAL checkpoints on a timer
    logs.py         one redacted line per event, journald-aware
    status.py       what ``monitor status`` and ``monitor feeds`` print

May import: everything but ``monitor.cli``.
"""
