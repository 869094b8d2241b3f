"""Benchmark: one polling cycle over 1,000 local feeds, concurrent vs sequential.

    .venv/bin/python bench/bench_poll.py [--feeds 1000] [--seq-feeds 200] [--latency 0.05]

Cases: (a) every feed answers 304 to a conditional GET, (b) every feed answers
200 with 20 new Arabic items. "concurrent" is what the daemon does: one shared
``Fetcher`` (pool, per-host limit), all feeds at once, ``parse_feed`` in a
worker thread. "sequential" is the rss2email/feed2exec baseline: one feed
after another with the same code. The baseline runs on ``--seq-feeds`` feeds
and its wall time is scaled to the full count (rates are per item/feed, so the
ratio is fair); that keeps the run to a couple of minutes.

The feeds are served by a separate process on 16 loopback addresses
(127.0.0.1-16, so the per-host limit applies as it would across real hosts),
with ``--latency`` seconds of simulated server time per response (real feed
servers take 50-500 ms; at 0 the benchmark measures only CPU). Each
measurement runs in a fresh child process so its peak RSS is its own.
Targets (issue 4): (a) < 5 s, (b) >= 5x sequential, peak RSS < 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HOSTS = 16
ITEMS = 20


def _sentences() -> list[str]:
    corpus = ROOT / "tests" / "data" / "corpus"
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))) if corpus.is_dir() else ""
    parts = [s.strip() for s in text.replace("\n", " ").split(".") if len(s.strip()) > 40]
    return parts or ["قالت مصادر محلية إن قوات سوريا الديمقراطية سيطرت على حقل العمر النفطي في ريف دير الزور"]


def build_feed(index: int, sentences: list[str]) -> bytes:
    items = []
    for j in range(ITEMS):
        s = sentences[(index * ITEMS + j) % len(sentences)]
        title = escape(s[:90])
        summary = escape((s + " ") * 3)[:300]
        items.append(f"<item><title>{title} {index}-{j}</title><link>https://news.example/{index}/{j}?utm_source=rss"
                     f"</link><guid>https://news.example/{index}/{j}</guid><description>&lt;p&gt;{summary}&lt;/p&gt;"
                     f"</description><pubDate>Mon, 06 Nov 2017 10:{j:02d}:00 GMT</pubDate></item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>خبر</title>'
            "<link>https://news.example/</link><description>d</description>" + "".join(items)
            + "</channel></rss>").encode()


def serve(ready, stop, n_feeds: int, latency: float, ports) -> None:
    sentences = _sentences()
    bodies = [build_feed(i, sentences) for i in range(n_feeds)]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            index = int(self.path.rsplit("/", 1)[-1].split(".")[0])
            etag = f'"v{index}"'
            if latency:
                time.sleep(latency)
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = bodies[index]
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512

    servers = [Server((f"127.0.0.{h + 1}", 0), Handler) for h in range(HOSTS)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ports.extend([s.server_address[1] for s in servers])
    ready.set()
    stop.wait()


def feed_urls(ports: list[int], n: int) -> list[str]:
    return [f"http://127.0.0.{i % HOSTS + 1}:{ports[i % HOSTS]}/feed/{i}.xml" for i in range(n)]


async def _poll_all(urls: list[str], conditional: bool, sequential: bool) -> tuple[int, int]:
    from monitor.errors import MonitorError
    from monitor.fetch import Fetcher, FetchSettings
    from monitor.parse import parse_feed

    items = errors = 0

    async def one(f, i, url):
        nonlocal items, errors
        try:
            res = await f.fetch(url, etag=f'"v{i}"' if conditional else None)
            if res.status == 200:
                if sequential:
                    parsed = parse_feed(res.body, res.headers, url=url, feed_name=str(i))
                else:
                    parsed = await asyncio.to_thread(parse_feed, res.body, res.headers, url=url, feed_name=str(i))
                items += len(parsed.items)
        except MonitorError:
            errors += 1

    async with Fetcher(FetchSettings(timeout=60)) as f:
        if sequential:
            for i, url in enumerate(urls):
                await one(f, i, url)
        else:
            await asyncio.gather(*(one(f, i, u) for i, u in enumerate(urls)))
    return items, errors


def child(args) -> None:
    ports = json.loads(args.ports)
    urls = feed_urls(ports, args.n)
    started = time.perf_counter()
    items, errors = asyncio.run(_poll_all(urls, args.case == "304", args.mode == "sequential"))
    wall = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "items": items, "errors": errors, "rss_mb": rss_mb, "n": args.n}))


def run_child(case: str, mode: str, n: int, ports: list[int]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "--case", case, "--mode", mode, "--n", str(n),
                          "--ports", json.dumps(ports)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--seq-feeds", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ports", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    manager = multiprocessing.Manager()
    ports = manager.list()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(ready, stop, args.feeds, args.latency, ports), daemon=True)
    server.start()
    try:
        ready.wait(60)
        port_list = list(ports)
        rows = []
        for case in ("304", "200"):
            conc = run_child(case, "concurrent", args.feeds, port_list)
            seq = run_child(case, "sequential", args.seq_feeds, port_list)
            scale = args.feeds / args.seq_feeds
            rows.append((case, conc, seq, seq["wall"] * scale))
    finally:
        stop.set()
        server.join(10)
        manager.shutdown()

    print(f"\nOne polling cycle over {args.feeds} loopback feeds ({HOSTS} hosts, {args.latency * 1000:.0f} ms "
          f"simulated server latency); sequential baseline on {args.seq_feeds} feeds, wall time scaled x"
          f"{args.feeds / args.seq_feeds:g}.\n")
    head = (f"| case | mode | feeds | wall s | items | items/s | feeds/s | errors | peak RSS MB | speed-up |")
    print(head)
    print("|" + "---|" * 10)
    for case, conc, seq, seq_wall_full in rows:
        label = "(a) all 304" if case == "304" else f"(b) all 200, {ITEMS} new items"
        for mode, r, wall in (("concurrent", conc, conc["wall"]), ("sequential", seq, seq_wall_full)):
            ips = r["items"] / r["wall"] if r["wall"] else 0
            fps = r["n"] / r["wall"] if r["wall"] else 0
            speed = seq_wall_full / conc["wall"] if mode == "concurrent" else 1.0
            est = " (est.)" if mode == "sequential" and r["n"] != args.feeds else ""
            print(f"| {label} | {mode} | {r['n']} | {wall:.2f}{est} | {r['items']} | {ips:,.0f} | {fps:,.0f} | "
                  f"{r['errors']} | {r['rss_mb']:.0f} | {speed:.1f}x |")
    a, b = rows[0][1], rows[1][1]
    print(f"\ntargets: (a) wall {a['wall']:.2f} s < 5 s: {'PASS' if a['wall'] < 5 else 'FAIL'}; "
          f"(b) speed-up {rows[1][3] / b['wall']:.1f}x >= 5x: {'PASS' if rows[1][3] / b['wall'] >= 5 else 'FAIL'}; "
          f"peak RSS {max(a['rss_mb'], b['rss_mb']):.0f} MB < 250 MB: "
          f"{'PASS' if max(a['rss_mb'], b['rss_mb']) < 250 else 'FAIL'}")


if __name__ == "__main__":
    main()
