"""Dedup cost per article and LSH query time with 100,000 stored stories vs a linear scan.

Run: .venv/bin/python bench/bench_dedup.py [N_STORIES]. Prints a table; the
baseline (exact Jaccard over stored MinHashes, linear) is measured in the same run.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dedup_variants import corpus

from monitor.stories.index import StoryIndex, fingerprint
from monitor.stories.settings import DedupSettings


def main(n: int = 100_000) -> None:
    s = DedupSettings()
    idx = StoryIndex(s)
    rng = random.Random(1)
    words = " ".join(corpus()).split()
    arts = [" ".join(words[(k := rng.randrange(len(words) - 400)):k + rng.randint(150, 400)]) for _ in range(300)]
    t0 = time.perf_counter()
    fps = [fingerprint(a, s) for a in arts]
    t_fp = (time.perf_counter() - t0) / len(arts)
    t0 = time.perf_counter()
    mhs = [idx.minhash(f.shingles) for f in fps]
    t_mh = (time.perf_counter() - t0) / len(arts)
    # Fill the LSH with n random stored sketches (distinct stories) plus the test articles.
    base = np.random.default_rng(2).integers(0, 2**32, size=(n, s.num_perm), dtype=np.uint64).astype(np.uint32)
    from datasketch import MinHash
    t0 = time.perf_counter()
    with idx._lsh.insertion_session() as sess:
        for i in range(n):
            sess.insert(i, MinHash(num_perm=s.num_perm, hashvalues=base[i], scheme="affine32"), check_duplication=False)
    t_ins = (time.perf_counter() - t0) / n
    q = []
    for mh in mhs[:200]:
        t0 = time.perf_counter(); idx._lsh.query(mh); q.append(time.perf_counter() - t0)
    t_q = statistics.median(q)
    lin = []
    for mh in mhs[:5]:
        hv = mh.hashvalues.astype(np.uint32)
        t0 = time.perf_counter(); (base == hv).mean(axis=1).max(); lin.append(time.perf_counter() - t0)
    t_lin = statistics.median(lin)
    print(f"| step (N={n:,} stored stories) | per article | ratio |")
    print("|---|---|---|")
    print(f"| normalize + shingle + hash | {t_fp*1e6:,.0f} µs | |")
    print(f"| MinHash(128) | {t_mh*1e6:,.0f} µs | |")
    print(f"| LSH insert | {t_ins*1e6:,.1f} µs | |")
    print(f"| LSH query (median) | {t_q*1e6:,.1f} µs | 1.0 |")
    print(f"| linear scan, numpy vectorised Jaccard estimate | {t_lin*1e6:,.0f} µs | {t_lin/t_q:,.0f}x slower |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
