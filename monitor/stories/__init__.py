"""Stories: folding every item into one story per event, whatever outlet carried it.

    settings.py   the ``dedup:`` section
    index.py      fingerprints, MinHash, and ``StoryIndex.assign`` (records through ``monitor.state``)

May import: ``monitor.types``, ``monitor.text``, ``monitor.feeds.links``, ``monitor.state``.
"""
