"""Fetch stage: one bounded HTTP GET per feed poll.

Why not just ``client.get(url)``: httpx inflates a whole network chunk at
once (a 1 MB gzip bomb becomes a 1 GiB chunk before any cap can look at it),
its read timeout is per read (a slow drip never times out), it never honours
Retry-After, and ``raise_for_status`` treats 304 as an error. So this module:

* reads ``aiter_raw()`` and inflates gzip/deflate itself with
  ``decompress(buf, max_length)``, counting *decoded* bytes against
  ``max_bytes`` (and raw bytes too, so a lying Content-Length cannot help);
* refuses stacked or unknown Content-Encodings (``gzip, gzip``, ``br``);
* puts ``asyncio.timeout`` around the whole fetch, redirects included;
* follows redirects itself (http/https only, at most ``max_redirects``) and
  reports the target of an all-permanent (301/308) chain so the caller can
  poll it next time;
* returns 304 before any status check; every other non-2xx becomes a
  ``FetchError`` with the parsed, clamped Retry-After;
* limits concurrent requests per host so 1,000 feeds on one server do not
  hammer it, on one shared ``httpx.AsyncClient`` whose keep-alive pool is
  split per host (``_PoolPerHost``: httpcore's one big pool costs O(n²) per request);
* with ``allow_private_addresses: false`` (the default), checks the address it
  actually connects to: a network backend (``PublicAddressBackend``) resolves
  the host once, refuses if any answer is loopback/private/link-local, and
  connects to that checked IP (Host header and TLS SNI stay the host name), so
  DNS rebinding between a check and the connect is impossible. Every hop of a
  redirect is checked, and article pages go through the same client.

The transport under the client is our own (``_CoreTransport``): httpx
requests mapped onto one ``httpcore.AsyncConnectionPool`` per origin, built
with httpcore's public ``network_backend`` argument, so the guard needs no
private attribute of httpx. The mapping relies on httpx 0.28 and httpcore 1.x
(pinned in pyproject.toml).

Performance note: httpcore runs ``import sniffio`` each time it creates a lock
or an event (several per request). anyio 4.x no longer installs sniffio, and
Python does not cache a failed import, so each of those walked ``sys.path``:
about 1 ms of CPU per request, which capped one cycle of 1,000 ``304``s at
~8 s (bench/bench_poll.py). sniffio is therefore a dependency of this project.

Expected failures are ``FetchError`` (kinds: timeout, connect, status,
too_large, encoding, redirect, protocol, forbidden_target); nothing else
escapes for network trouble.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import zlib
from collections import Counter, OrderedDict, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Protocol
from urllib.parse import urljoin

import httpcore
import httpx
from httpcore import SOCKET_OPTION as SocketOption

from monitor.errors import FetchError
from monitor.feeds.schedule import parse_retry_after
from monitor.feeds.settings import FetchSettings
from monitor.types import FetchResult

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

#: Seconds an idle keep-alive connection is kept (httpx's default).
KEEPALIVE_EXPIRY = 5.0

_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_PERMANENT_STATUSES = {301, 308}
# Retry-After is meaningful on these (RFC 9110 10.2.3); others may send it too.
_RETRY_AFTER_STATUSES = {429, 503}


class _Decompressor(Protocol):
    """What ``zlib.decompressobj()`` returns (its type has no public name)."""

    @property
    def unused_data(self) -> bytes: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...

    def flush(self, length: int = ..., /) -> bytes: ...


class _BoundedInflater:
    """Inflate gzip/deflate incrementally without ever holding more than the cap.

    ``decompress(data, max_length)`` stops producing output at the cap and keeps
    the rest of the input in ``unconsumed_tail``, so a 1,000:1 bomb costs at most
    ``limit`` bytes, unlike httpx's decoder which inflates a chunk in one call.
    """

    def __init__(self, coding: str, limit: int, url: str) -> None:
        self.coding = coding
        self.limit = limit
        self.url = url
        self.produced = 0
        self._deflate_raw_retry = coding == "deflate"
        self._members = 0
        self._finished_tail_ignored = False
        self._d = self._new()

    def _new(self) -> _Decompressor:
        if self.coding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(zlib.MAX_WBITS)  # deflate: zlib wrapper first

    def _take(self, piece: bytes, out: list[bytes]) -> None:
        self.produced += len(piece)
        if self.produced > self.limit:
            raise FetchError(self.url, "too_large", f"decoded body exceeds {self.limit} bytes")
        if piece:
            out.append(piece)

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self._finished_tail_ignored:
                return b""
            try:
                piece = self._d.decompress(data, self.limit - self.produced + 1)
            except zlib.error as exc:
                if self._deflate_raw_retry and self.produced == 0:
                    # Some servers send raw deflate (no zlib header) as "deflate".
                    self._deflate_raw_retry = False
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                if self._members and self.produced:
                    # Garbage after a complete gzip member: ignore it, like browsers do.
                    self._finished_tail_ignored = True
                    return b"".join(out)
                raise FetchError(self.url, "encoding", f"invalid {self.coding} data: {exc}") from None
            self._deflate_raw_retry = False
            self._take(piece, out)
            if self._d.eof:
                self._members += 1
                data = self._d.unused_data
                if data and self.coding == "gzip" and data.strip(b"\0"):
                    self._d = self._new()  # concatenated gzip members are one stream
                else:
                    data = b""
                    if self.coding != "gzip":
                        self._finished_tail_ignored = True
            else:
                data = self._d.unconsumed_tail
        return b"".join(out)

    def finish(self) -> bytes:
        out: list[bytes] = []
        if not self._d.eof and not self._finished_tail_ignored:
            if self._members == 0:
                self._take(self._d.flush(), out)
                raise FetchError(self.url, "encoding", f"truncated {self.coding} body")
        return b"".join(out)


def _content_coding(headers: httpx.Headers, url: str) -> str:
    """Return 'identity', 'gzip' or 'deflate'; refuse anything else or any stack."""
    values = headers.get_list("content-encoding", split_commas=True)
    codings = [v.strip().lower() for v in values if v.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return "identity"
    if len(codings) > 1:
        raise FetchError(url, "encoding", f"stacked Content-Encoding refused: {', '.join(codings)}")
    coding = {"x-gzip": "gzip"}.get(codings[0], codings[0])
    if coding not in ("gzip", "deflate"):
        raise FetchError(url, "encoding", f"unsupported Content-Encoding: {coding}")
    return coding


def _check_scheme(url: str, original: str, kind: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise FetchError(original, kind, f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchError(original, kind, f"only http(s) URLs are fetched, not {url!r}")
    return parsed


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (an IPv4-mapped IPv6 address is judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _ForbiddenTarget(Exception):
    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to non-public address {address}")


#: ``(host, port) -> addresses``: how ``PublicAddressBackend`` resolves names.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PublicAddressBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to checked, public addresses.

    httpcore hands ``connect_tcp`` the host name; TLS (with SNI = the host name)
    and the Host header are done above this layer, so connecting to the IP we
    checked changes nothing else. Resolving once, here, closes the DNS-rebinding
    window of a separate pre-check. ``allowed`` and ``resolve`` default to
    ``is_public`` and the system resolver (tests pass a fake DNS).
    """

    def __init__(self, allowed: Callable[[str], bool] = is_public, resolve: Resolver = system_resolve) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allowed = allowed
        self._resolve = resolve

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = [host] if _looks_like_ip(host) else await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        bad = [a for a in addresses if not self._allowed(a)]
        if bad:
            raise _ForbiddenTarget(host, bad[0])
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None
                                  ) -> httpcore.AsyncNetworkStream:  # pragma: no cover
        raise httpcore.ConnectError("unix sockets are not used for feeds")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


#: httpcore's exceptions and the httpx ones the fetch code (and httpx's users) expect;
#: subclasses before their bases.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


class _CoreResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._response.aiter_stream():
                yield part

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._response.aclose()


class _CoreTransport(httpx.AsyncBaseTransport):
    """httpx requests over one ``httpcore.AsyncConnectionPool``, through httpcore's public API.

    The same mapping httpx's own transport does (URL parts, raw headers, the
    timeout extensions, exceptions), without reaching into it to swap its pool.
    """

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_CoreResponseStream(response), extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that tells its pool when it is closed (the request is over)."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class _PoolPerHost(httpx.AsyncBaseTransport):
    """The shared client's connection pool, split into one small pool per origin.

    Why: httpcore's pool re-scans all its connections for every request and
    polls every idle socket (upstream encode/httpcore#1035), so its cost grows
    with the square of the pool size. One 64-connection pool cost about 7 ms of
    CPU per feed in a cycle of 1,000 changed feeds (bench/bench_poll.py). Pools
    of ``per_host`` connections, as urllib3's PoolManager keeps them, cost
    almost nothing. Idle pools beyond ``max_idle_pools`` are closed, least
    recently used first; a pool with a request in flight is never closed.
    """

    def __init__(self, make_pool: Callable[[], httpx.AsyncBaseTransport], max_idle_pools: int) -> None:
        self._make_pool = make_pool
        self._max_idle_pools = max(1, max_idle_pools)
        self._pools: OrderedDict[tuple[bytes, str, int | None], httpx.AsyncBaseTransport] = OrderedDict()
        self._in_flight: Counter[tuple[bytes, str, int | None]] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.raw_scheme, request.url.host, request.url.port)
        pool = self._pools.get(origin)
        if pool is None:
            await self._close_idle_pools(room_for=1)
            pool = self._pools[origin] = self._make_pool()
        self._pools.move_to_end(origin)
        self._in_flight[origin] += 1
        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            self._release(origin)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                              stream=_ReleasingStream(response.stream, lambda: self._release(origin)))

    def _release(self, origin: tuple[bytes, str, int | None]) -> None:
        self._in_flight[origin] -= 1
        if self._in_flight[origin] <= 0:
            del self._in_flight[origin]

    async def _close_idle_pools(self, room_for: int) -> None:
        idle = [origin for origin in self._pools if origin not in self._in_flight]  # oldest first
        for origin in idle[:max(0, len(idle) + room_for - self._max_idle_pools)]:
            await self._pools.pop(origin).aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()


def _plain_headers(headers: httpx.Headers) -> dict[str, str]:
    """Lower-case names, repeated headers joined; what feedparser's response_headers wants."""
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    # The body we hand on is already inflated.
    out.pop("content-encoding", None)
    out.pop("content-length", None)
    return out


class Fetcher:
    """One shared ``httpx.AsyncClient`` plus per-host limits; use ``async with`` or ``aclose()``."""

    def __init__(self, settings: FetchSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None,
                 network_backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        """``transport`` replaces the network entirely; ``network_backend`` is what opens the
        sockets under every pool (default: ``PublicAddressBackend`` unless the settings allow
        private addresses, then httpcore's own)."""
        self.settings = settings or FetchSettings()
        s = self.settings
        if transport is None:
            transport = self._pools(network_backend)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout, pool=s.timeout),
            follow_redirects=False,
            headers={"User-Agent": s.user_agent, "Accept-Encoding": "gzip, deflate"},
            transport=transport,
            trust_env=False,
        )
        self._host_slots: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(s.per_host))
        self._connection_slots = asyncio.Semaphore(s.max_connections)

    def _pools(self, backend: httpcore.AsyncNetworkBackend | None) -> _PoolPerHost:
        """One pool of ``per_host`` connections per origin; every pool shares one TLS context
        (loading the CA bundle costs ~20 ms) and one network backend."""
        s = self.settings
        keepalive = min(s.max_keepalive, s.max_connections)
        per_pool_keepalive = min(s.per_host, keepalive)
        ssl_context = httpx.create_ssl_context(trust_env=False)
        if backend is None:
            backend = httpcore.AnyIOBackend() if s.allow_private_addresses else PublicAddressBackend()
        chosen = backend

        def make() -> httpx.AsyncBaseTransport:
            return _CoreTransport(httpcore.AsyncConnectionPool(
                ssl_context=ssl_context, max_connections=s.per_host, max_keepalive_connections=per_pool_keepalive,
                keepalive_expiry=KEEPALIVE_EXPIRY, network_backend=chosen))

        return _PoolPerHost(make, max_idle_pools=-(-keepalive // s.per_host))

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """Conditional GET of a feed; 200 (body inflated, within the cap) or 304."""
        headers = {"Accept": FEED_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return await self._get(url, headers)

    async def fetch_page(self, url: str) -> FetchResult:
        """Fetch an article page (full-text extraction) under the same limits."""
        return await self._get(url, {"Accept": PAGE_ACCEPT})

    @asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        async with self._host_slots[host.lower()], self._connection_slots:
            yield

    async def _get(self, url: str, headers: Mapping[str, str]) -> FetchResult:
        started = time.monotonic()
        current = _check_scheme(url, url, "protocol")
        permanent: str | None = None
        all_permanent = True
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        for hop in range(self.settings.max_redirects + 1):
            async with self._slot(current.host):
                # The clock starts when we hold a slot: queueing behind our own
                # per-host limit is not the server's fault.
                if deadline is None:
                    deadline = loop.time() + self.settings.timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        outcome = await self._one_request(url, current, headers)
                except _ForbiddenTarget as exc:
                    raise FetchError(url, "forbidden_target", str(exc)) from None
                except TimeoutError:
                    raise FetchError(url, "timeout",
                                     f"no complete response within {self.settings.timeout:g} s") from None
                except httpx.TimeoutException as exc:
                    raise FetchError(url, "timeout", f"{type(exc).__name__}: {exc or 'timed out'}") from None
                except httpx.ConnectError as exc:
                    raise FetchError(url, "connect", f"cannot connect to {current.host}: {exc}") from None
                except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                    raise FetchError(url, "protocol", str(exc)) from None
                except httpx.NetworkError as exc:
                    raise FetchError(url, "connect", f"{type(exc).__name__}: {exc}") from None
                except (httpx.ProtocolError, httpx.DecodingError) as exc:
                    raise FetchError(url, "protocol", f"{type(exc).__name__}: {exc}") from None
            status, resp_headers, body, location = outcome
            if location is None:
                if hop and all_permanent:
                    permanent = str(current)
                return FetchResult(
                    url=url,
                    final_url=str(current),
                    status=status,
                    body=body,
                    headers=_plain_headers(resp_headers),
                    etag=resp_headers.get("etag"),
                    last_modified=resp_headers.get("last-modified"),
                    permanent_redirect=permanent,
                    elapsed=time.monotonic() - started,
                )
            all_permanent = all_permanent and status in _PERMANENT_STATUSES
            current = _check_scheme(urljoin(str(current), location), url, "redirect")
        raise FetchError(url, "redirect", f"more than {self.settings.max_redirects} redirects")

    async def _one_request(self, original: str, url: httpx.URL,
                           headers: Mapping[str, str]) -> tuple[int, httpx.Headers, bytes, str | None]:
        """One hop: returns (status, headers, body, redirect location or None)."""
        request = self._client.build_request("GET", url, headers=headers)
        response = await self._client.send(request, stream=True)
        try:
            status = response.status_code
            if status == 304:
                return 304, response.headers, b"", None
            if status in _REDIRECT_STATUSES:
                location = response.headers.get("location")
                if not location:
                    raise FetchError(original, "redirect", f"HTTP {status} without Location")
                return status, response.headers, b"", location
            if not (200 <= status < 300) or status in (204, 205, 206):
                retry_after = None
                if status in _RETRY_AFTER_STATUSES or "retry-after" in response.headers:
                    retry_after = parse_retry_after(response.headers.get("retry-after"),
                                                    max_seconds=self.settings.max_retry_after)
                reason = response.reason_phrase or ""
                raise FetchError(original, "status", f"HTTP {status} {reason}".strip(),
                                 status=status, retry_after=retry_after)
            body = await self._read_body(original, response)
            return 200, response.headers, body, None
        finally:
            await response.aclose()

    async def _read_body(self, original: str, response: httpx.Response) -> bytes:
        coding = _content_coding(response.headers, original)
        limit = self.settings.max_bytes
        inflater = _BoundedInflater(coding, limit, original) if coding != "identity" else None
        # Compressed data larger than the decoded cap is never legitimate for
        # our content, so the raw count gets the same cap (plus header slack).
        raw_limit = limit + 64 * 1024
        raw_read = 0
        parts: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            raw_read += len(chunk)
            if raw_read > raw_limit:
                raise FetchError(original, "too_large", f"body exceeds {limit} bytes")
            piece = inflater.feed(chunk) if inflater else chunk
            size += len(piece)
            if size > limit:
                raise FetchError(original, "too_large", f"body exceeds {limit} bytes")
            if piece:
                parts.append(piece)
        if inflater:
            parts.append(inflater.finish())
        return b"".join(parts)


def _looks_like_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
