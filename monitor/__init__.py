"""Arabic news-monitoring alert daemon.

One poll of a feed runs down the packages in this order, each importing only
those below it:

    feeds    fetch a feed (bounded), parse it into items, decode Arabic right
    text     normalize Arabic, tokenize, find aliases (pure)
    rules    the YAML rule language: load, check, evaluate
    stories  fold the same story from many outlets into one
    alerts   route alerts to channels, render and deliver them
    state    every SQL statement (SQLite by default)
    ingest   the poll itself: fetch -> parse -> analyze -> decide -> record
    service  the daemon: scheduling, reload, health, systemd, logs
    cli      the ``monitor`` command

At the top: ``config`` (the config file, composed of each stage's settings
model), ``types`` (values shared by stages, ``Severity``, ``Duration``),
``errors`` (the ``MonitorError`` tree), ``secrets`` (what a secret looks like,
redaction), ``metrics`` and ``yamlfile`` (YAML with line numbers).
"""

__version__ = "0.1.0"
