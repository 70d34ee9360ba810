"""`HttpApi` as an RSGI application (granian's native interface) with the limits a server
facing the open network needs. The protocol (parsing, keep-alive, header limits, timeouts,
TLS) is granian's (Rust, hyper); what is decided here happens after the request head is parsed
and before its body is read:

- framing: a Content-Length must be ASCII digits only; Transfer-Encoding is refused (hyper
  answers a Content-Length that disagrees with itself, and a malformed head, with 400 itself);
- size: a body over MAX_BODY_BYTES is a 413 from the header alone, never read;
- auth: the bearer token is checked from the headers before a body is read (401 unread);
- admission: small requests are answered on the event loop (~0.2 ms: a thread hop would cost
  more than it saves); a larger body is scored on a bounded thread pool, so a 10,000-row batch
  never holds up the loop; past `max_queued` waiting requests or `max_queued_bytes` of queued
  bodies the answer is 503 with Retry-After, again before the body is read;
- headers are ours: a response carries only headers the API set and `x-request-id`, which is
  the client's id when it passes REQUEST_ID (letters, digits, `._:-`, at most 128) or a new one.
  A header value with anything outside printable ASCII is never sent.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mlops_kit.core.serving.http_api import MAX_BODY_BYTES, HttpApi, Response
from mlops_kit.errors import MlopsKitError

log = logging.getLogger("mlops_kit.local.server")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 header field name
_VALUE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: no CR, LF or any other control
_PUBLIC = frozenset(("/v2/health/live", "/v2/health/ready", "/healthz", "/v2", "/openapi.json"))
UI_MAX_BODY = 64 * 1024  # the console's forms (sign-in) are small


@dataclass(frozen=True)
class Limits:
    """What one worker process accepts (the server's own: header size/count and timeouts,
    are set in local.server)."""

    max_body: int = MAX_BODY_BYTES
    inline_max_body: int = 16 * 1024  # answered on the loop up to this size
    # One scoring thread per worker process: threads share the GIL, so more of them only
    # take it from the loop more often. A 1-record client beside three 10,000-row batch
    # clients (bench/http_load.py fairness): p50 0.49 ms alone; loaded 0.49 ms with 1 thread,
    # 31 ms with 4 (p99 29 vs 101 ms); batches answered 52 vs 66. More cores: --workers.
    pool_threads: int = 1
    max_queued: int = 64  # requests admitted to the pool (running + waiting)
    max_queued_bytes: int = 4 * MAX_BODY_BYTES  # their declared bodies, together
    retry_after_s: int = 1


# The CPUs the process could use before local.server.pin_worker narrowed it (None: unpinned).
UNPINNED_CPUS: set[int] | None = None


def unpin_thread() -> None:
    """Give the calling thread back every CPU the process had before it was pinned."""
    if UNPINNED_CPUS is not None:
        try:
            os.sched_setaffinity(0, UNPINNED_CPUS)  # 0: the calling thread (Linux)
        except OSError:
            log.debug("could not widen the scoring thread's CPUs")


def _json(status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> Response:
    return Response(status, body, {"content-type": "application/json", **(extra or {})})


# New request ids: a random per-process prefix and a counter, 32 hex digits like a uuid4's
# hex (unique across workers and restarts; uuid4() cost ~1.5 µs per request, this ~0.2 µs).
# An id is not a secret: it names a request in logs and captures.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def request_id(value: str | None) -> str:
    """The client's id when it is one we would have made; otherwise a new one."""
    if value and REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


# (name, value) pairs already checked: the API sends a handful of distinct ones (content-type,
# allow, retry-after...); bounded, so nothing a client influences can grow it
_CHECKED: dict[tuple[str, str], tuple[str, str] | None] = {}
_SKIP = frozenset(("x-request-id", "content-length", "connection", "transfer-encoding"))


def _checked(k: str, v: str) -> tuple[str, str] | None:
    name, value = str(k).lower(), str(v)
    if name in _SKIP:
        return None
    if _TOKEN.fullmatch(name) and _VALUE.fullmatch(value):
        return name, value
    log.error("response header %r dropped: not a token / printable ASCII", name[:40])
    return None


def safe_headers(headers: Mapping[str, str], rid: str) -> list[tuple[str, str]]:
    """The response headers: the API's, each name a token and each value printable ASCII
    (anything else is dropped and logged: it would be a bug, never a client's doing)."""
    out = []
    for k, v in headers.items():
        key = (k, v)
        try:
            pair = _CHECKED[key]
        except (KeyError, TypeError):
            pair = _checked(k, v)
            if len(_CHECKED) < 256 and type(k) is str and type(v) is str:
                _CHECKED[key] = pair
        if pair is not None:
            out.append(pair)
    out.append(("x-request-id", rid))
    return out


class ServeApp:
    """One per worker process. `__rsgi__` serves a request; `__rsgi_init__`/`__rsgi_del__`
    start and stop the capture flusher (granian calls them at worker start and after its
    graceful stop, when every in-flight request has been answered)."""

    def __init__(self, api: HttpApi, limits: Limits | None = None, *,
                 flush_interval_s: float = 1.0) -> None:
        self.api = api
        self.limits = limits or Limits()
        # a pinned worker (local.server.pin_worker) keeps its loop and I/O thread on one CPU;
        # large bodies are scored on any allowed CPU, not queued behind the loop on that one
        self.pool = ThreadPoolExecutor(self.limits.pool_threads, thread_name_prefix="score",
                                       initializer=unpin_thread)
        self.flush_interval_s = flush_interval_s
        self._queued = 0
        self._queued_bytes = 0
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self.rejected_busy = 0  # 503s for a full queue (a metric)

    # -- lifecycle ------------------------------------------------------------------------
    def __rsgi_init__(self, loop: Any = None) -> None:
        self.start_flusher()

    def __rsgi_del__(self, loop: Any = None) -> None:
        self.close()

    def start_flusher(self) -> None:
        if self._flusher is None and self.api.service.capture is not None:
            self._flusher = threading.Thread(target=self._flush_loop, name="capture-flush",
                                             daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        """Flush small and often, off the request path: woken as soon as max_rows rows are
        buffered (the buffer's `full` event), else every flush_interval_s for the age-based
        flush. At 5,000 req/s a 1 s tick alone flushed 5,000 rows at once, and the request
        path's own flush (at 4x max_rows) ran on a request. The serving health counters are
        written at most once per interval (a size-woken flush at 5,000 req/s comes every
        0.4 s; a health object each time would cost as much as the capture's own)."""
        capture = self.api.service.capture
        if capture is None:
            return
        full = getattr(capture, "full", None) or threading.Event()  # a buffer without one: ticks
        counters_at = time.monotonic()
        while not self._stop.is_set():
            full.wait(self.flush_interval_s)
            if self._stop.is_set():
                return
            full.clear()  # before due(): a row that sets it from here on is seen next time
            if capture.due():
                now = time.monotonic()
                counters = now - counters_at >= self.flush_interval_s
                try:
                    capture.flush(counters=counters)
                except Exception:  # noqa: BLE001 - the buffer keeps the rows and retries
                    log.exception("capture flush failed (rows kept, retried)")
                if counters:
                    counters_at = now

    def close(self) -> None:
        """After the last request: stop the flusher, finish the pool, flush what is left."""
        self._stop.set()
        full = getattr(self.api.service.capture, "full", None)
        if full is not None:
            full.set()  # wake the flusher now; the final flush below clears it
        if self._flusher is not None:
            self._flusher.join(10)
        self.pool.shutdown(wait=True)
        capture = self.api.service.capture
        if capture is not None:
            try:
                capture.flush()
            except Exception:  # noqa: BLE001 - nothing more can be done at exit; say so
                log.exception("final capture flush failed: %d rows not written",
                              getattr(capture, "pending_rows", -1))
            if getattr(capture, "pending_rows", 0):
                log.error("capture: %d rows could not be written before exit",
                          capture.pending_rows)
            close = getattr(capture, "close", None)  # a durable spool: removed when empty
            if close is not None:
                close()

    # -- requests -------------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        headers = dict(scope.headers.items())  # names in lower case: hyper's HeaderName
        target = scope.path + ("?" + scope.query_string if scope.query_string else "")
        resp, rid = await self.serve(scope.method, target, headers, proto)
        payload = resp.payload()
        out = safe_headers(resp.headers, rid)
        if resp.status == 204 or scope.method == "HEAD":
            # HEAD: the GET answer's headers (its length too), never a body
            if resp.status != 204:
                out.append(("content-length", str(len(payload))))
            proto.response_empty(resp.status, out)
        else:
            proto.response_bytes(resp.status, out, payload)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """The same application over ASGI (bench/http_load.py runs it on uvicorn to compare)."""
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    self.start_flusher()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    self.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        qs = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + ("?" + qs if qs else "")

        async def body() -> bytes:
            chunks = []
            while True:
                msg = await receive()
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body"):
                    return b"".join(chunks)

        resp, rid = await self.serve(scope["method"], target, headers, body)
        payload = b"" if scope["method"] == "HEAD" or resp.status == 204 else resp.payload()
        out = [(k.encode(), v.encode()) for k, v in safe_headers(resp.headers, rid)]
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": payload})

    async def serve(self, method: str, target: str, headers: dict[str, str],
                    read_body: Callable[[], Awaitable[bytes]]) -> tuple[Response, str]:
        rid = request_id(headers.get("x-request-id"))
        headers["x-request-id"] = rid  # HttpApi takes the id from here: only a valid one
        try:
            return await self._serve(method, target, headers, read_body, rid), rid
        except Exception:  # noqa: BLE001 - the API answers its own errors; this is a bug
            log.exception("error answering %s %s", method[:10], target[:100])
            return _json(500, {"error": "internal error", "code": "internal_error"}), rid

    async def _serve(self, method: str, target: str, headers: dict[str, str],
                     read_body: Callable[[], Awaitable[bytes]], rid: str) -> Response:
        early, n, authorized = self._head_check(method, target.split("?", 1)[0], headers)
        if early is not None:
            return early
        api, lim = self.api, self.limits
        if n <= lim.inline_max_body:
            body = await read_body() if n else b""
            return api.handle(method, target, headers, body, request_id=rid,
                              authorized=authorized)
        if self._queued >= lim.max_queued or self._queued_bytes + n > lim.max_queued_bytes:
            self.rejected_busy += 1
            return _json(503, {"error": "server busy: too many large requests queued; retry",
                               "code": "busy"}, {"retry-after": str(lim.retry_after_s)})
        self._queued += 1
        self._queued_bytes += n
        try:
            body = await read_body()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.pool, functools.partial(
                api.handle, method, target, headers, body, rid, authorized=authorized))
        finally:
            self._queued -= 1
            self._queued_bytes -= n

    def _head_check(self, method: str, path: str,
                    headers: Mapping[str, str]) -> tuple[Response | None, int, bool]:
        """Everything decided from the request head: (an answer, or None; the body's length;
        whether the token was checked here, so the API does not check it twice)."""
        if not _VALUE.fullmatch(path):  # a decoded %0A, %00...: no route has one
            return _json(404, {"error": "path: not found (control or non-ASCII character)",
                               "code": "not_found", "field": "path"}), 0, False
        if "transfer-encoding" in headers:
            return _json(400, {"error": "transfer-encoding: not supported, send a content-length",
                               "code": "invalid_input", "field": "transfer-encoding"}), 0, False
        length = headers.get("content-length")
        if length is None:
            n = 0
        elif length.isascii() and length.isdigit() and len(length) <= 18:
            n = int(length)
        else:
            return _json(400, {"error": "content-length: must be ASCII digits",
                               "code": "invalid_input", "field": "content-length"}), 0, False
        is_ui = path == "/ui" or path.startswith("/ui/")
        limit = UI_MAX_BODY if is_ui else self.limits.max_body
        if n > limit:
            return _json(413, {"error": f"body: larger than {limit} bytes",
                               "code": "payload_too_large", "field": "body"}), n, False
        authorize = self.api.authorize
        if n and authorize is not None and not is_ui and path not in _PUBLIC \
                and method != "OPTIONS":
            try:
                authorize(headers)
            except MlopsKitError as exc:
                return _json(exc.status, exc.to_dict()), n, False
            return None, n, True
        return None, n, False
