"""Arabic news-monitoring alert daemon.

Pipeline, one module per stage: ``fetch`` -> ``parse`` -> ``normalize`` ->
``match`` / ``rules`` -> ``dedup`` -> ``route`` -> ``deliver``; ``store``
keeps the state in SQLite, ``daemon`` schedules it, ``cli`` is the entry point.
"""

__version__ = "0.1.0"
