"""Ingest: one poll of one feed, fetch -> parse -> analyze -> decide -> record.

    pipeline.py   the poll as visible steps over the daemon's shared parts
    decide.py     what to do with each item (pure: new / changed / unchanged, fresh rules)
    analysis.py   rule matching and dedup fingerprints of new items (pure, runs in workers)
    workers.py    worker processes (or a thread) for parsing and analysis

May import: every stage package below it (feeds, rules, stories, alerts, state).
"""
