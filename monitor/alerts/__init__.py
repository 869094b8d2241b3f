"""Alerts: which alerts exist, when each channel gets them, and delivering them.

    settings.py   the ``channels:`` and ``routing:`` sections, give-up rules per failure reason
    route.py      one alert per (story, rule); grouping, cooldown, quiet hours, digests, silences
    silences.py   which silence holds back an alert (pure)
    render.py     Telegram HTML, email and console text from the project's templates
    senders/      one channel's protocol each: Telegram, email, Apprise, console (``SendResult``)
    deliver.py    the delivery loop per channel over the crash-safe outbox: retries, give-up, threads

May import: ``monitor.types``, ``monitor.rules`` (matches), ``monitor.stories`` (assignments), ``monitor.state``.
"""
