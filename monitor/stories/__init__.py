"""Stories: folding every item into one story per event, whatever outlet carried it.

    settings.py     the ``dedup:`` section
    fingerprint.py  text -> sentences, their hashes, word shingles inside them, MinHash rows, LSH band keys
    key.py          ``DedupKey`` of a poll's items in a worker (furniture the poll's items repeat)
    furniture.py    each site's furniture, learned and kept in the state database
    cluster.py      containment against every member of the candidate stories; stock text; merges
    index.py        ``StoryIndex.assign``: exact keys, candidates from the database, record (``monitor.state``)

May import: ``monitor.types``, ``monitor.text``, ``monitor.feeds.links``, ``monitor.state``.
"""
