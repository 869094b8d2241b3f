"""Alerts: which alerts exist, when each channel gets them, and delivering them.

    settings.py   the ``channels:`` and ``routing:`` sections
    route.py      one alert per (story, rule); grouping, cooldown, quiet hours, digests
    render.py     Telegram HTML, email and console text from the project's templates
    deliver.py    the delivery loop per channel over the crash-safe outbox

May import: ``monitor.types``, ``monitor.rules`` (matches), ``monitor.stories`` (assignments), ``monitor.state``.
"""
