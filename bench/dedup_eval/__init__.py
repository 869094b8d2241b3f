"""The story-dedup evaluation of issue 13: a generated set of republished and distinct articles
(``generate``), its scoring (``score``) and the dedup methods the micro-benchmark compares (``methods``).

The generated set is built at run time from texts read in place, never committed.
"""
