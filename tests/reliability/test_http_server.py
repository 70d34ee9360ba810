"""The self-hosted server as an attacker sees it (issue 24), over raw sockets: the token is
checked before a body is read, a client never chooses a response header, malformed framing is
a 400 (never a dropped connection or a traceback), header blocks and idle connections are
bounded, and a full scoring queue is a 503 with Retry-After. Every test ends by checking the
server still answers a good request."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from pathlib import Path

import pytest

from mlops_kit.local.http_app import REQUEST_ID, Limits
from mlops_kit.local.server import ServerThread
from tests.support import feature_records

PREDICT = "/v1/models/churn:predict"


@pytest.fixture(scope="module")
def srv(served):
    backend, api, token = served
    s = ServerThread(api, header_timeout_ms=1000).start()
    yield s, token
    s.stop()


def _raw(s: ServerThread, data: bytes, *, wait: float = 5.0, then_close: bool = True) -> bytes:
    """Send bytes, read until the server closes or `wait` passes."""
    conn = socket.create_connection(s.server.server_address[:2], timeout=wait)
    out = b""
    try:
        conn.sendall(data)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if then_close:
            conn.close()
    return out


def _body(n: int = 1) -> bytes:
    return json.dumps({"instances": feature_records(n)}).encode()


def _request(token: str | None, body: bytes, extra: bytes = b"", *, close: bool = True) -> bytes:
    head = f"POST {PREDICT} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n".encode()
    if token:
        head += f"Authorization: Bearer {token}\r\n".encode()
    if close:
        head += b"Connection: close\r\n"
    return head + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _status(resp: bytes) -> int:
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    assert m, resp[:200]
    return int(m.group(1))


def _head(resp: bytes) -> list[bytes]:
    return resp.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def _still_serves(s: ServerThread, token: str) -> None:
    resp = _raw(s, _request(token, _body()))
    assert _status(resp) == 200 and b'"predictions"' in resp


# -- auth before body -------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "mk_wrong"])
def test_401_before_the_body_is_read(srv, token):
    """Only the head of a 6 MB request is sent: the 401 comes back without the body."""
    s, good = srv
    head = _request(token, b"x" * (6 * 1024 * 1024 - 100))
    head = head[:head.index(b"\r\n\r\n") + 4]
    t0 = time.monotonic()
    resp = _raw(s, head, wait=5)
    assert _status(resp) == 401 and b"authorization" in resp
    assert time.monotonic() - t0 < 4  # answered, not timed out waiting for the body
    _still_serves(s, good)


def test_many_unauthenticated_6mb_uploads_hold_no_memory(srv):
    """150 sockets each declare 6 MB and start sending without a token: each is answered
    401 unread, so the server's memory does not grow with them (issue 24: +897 MB before)."""
    s, good = srv

    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    before = rss_mb()
    socks, statuses = [], []
    chunk = b"a" * (256 * 1024)
    for _ in range(150):
        c = socket.create_connection(s.server.server_address[:2], timeout=5)
        head = _request(None, b"", close=False).replace(b"Content-Length: 0",
                                                        b"Content-Length: 6291456")
        c.sendall(head)
        try:
            for _ in range(8):  # 2 MB of the body, as fast as the server takes it
                c.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: it is not reading this body
        socks.append(c)
    for c in socks:
        try:
            statuses.append(_status(c.recv(4096)))
        except OSError:
            statuses.append(401)  # reset after the answer, which this client never read
    grown = rss_mb() - before
    for c in socks:
        c.close()
    assert statuses.count(401) == 150
    assert grown < 50, f"server memory grew {grown:.0f} MB"
    _still_serves(s, good)


# -- headers are ours -------------------------------------------------------------------
CONTROLS = [bytes([c]) for c in (*range(0, 32), 127)]


@pytest.mark.parametrize("ch", CONTROLS, ids=[f"0x{c[0]:02x}" for c in CONTROLS])
def test_no_control_character_reaches_a_response_header(srv, ch):
    s, token = srv
    rid = b"abc" + ch + b"Set-Cookie: pwned=1"
    resp = _raw(s, _request(token, _body(), b"X-Request-Id: " + rid + b"\r\n"))
    status = _status(resp)
    assert status in (200, 400), resp[:300]  # hyper refuses NUL/CR/LF in a value itself
    head = _head(resp)
    assert not any(h.lower().startswith(b"set-cookie") for h in head), head
    assert resp.count(b"HTTP/1.1 ") == 1
    for line in head[1:]:
        assert all(32 <= b < 127 for b in line), line
    ids = [h.split(b":", 1)[1].strip() for h in head if h.lower().startswith(b"x-request-id:")]
    if status == 200:
        assert len(ids) == 1 and REQUEST_ID.fullmatch(ids[0].decode()) and ids[0] != rid


def test_a_forged_second_response_is_never_echoed(srv):
    s, token = srv
    evil = b"a\nContent-Length: 0\n\nHTTP/1.1 200 OK\nSet-Cookie: s=1\n"
    resp = _raw(s, _request(token, _body(), b"X-Request-Id: " + evil + b"\r\n"))
    assert resp.count(b"HTTP/1.1") == 1 and b"set-cookie" not in resp.lower()
    _still_serves(s, token)


def test_a_valid_request_id_is_kept_and_an_invalid_one_replaced(srv):
    s, token = srv
    resp = _raw(s, _request(token, _body(), b"X-Request-Id: order-42.a:b_c\r\n"))
    assert b"\r\nx-request-id: order-42.a:b_c\r\n" in resp
    assert b'"request_id":"order-42.a:b_c"' in resp
    resp = _raw(s, _request(token, _body(), "X-Request-Id: caf\u00e9 1\r\n".encode()))
    rid = re.search(rb"\r\nx-request-id: ([^\r]*)\r\n", resp).group(1)
    assert re.fullmatch(rb"[0-9a-f]{32}", rid) and b'"request_id":"%s"' % rid in resp


# -- strict parsing ---------------------------------------------------------------------
FRAMING = {
    "superscript two": "Content-Length: \u00b2\r\n".encode(),
    "arabic-indic digit": "Content-Length: \u0663\r\n".encode(),
    "sign": b"Content-Length: +12\r\n",
    "two lengths that differ": b"Content-Length: 12\r\nContent-Length: 13\r\n",
    "a list": b"Content-Length: 12, 13\r\n",
    "length and chunked": b"Content-Length: 12\r\nTransfer-Encoding: chunked\r\n",
    "chunked": b"Transfer-Encoding: chunked\r\n",
}


@pytest.mark.parametrize("framing", FRAMING.values(), ids=FRAMING.keys())
def test_ambiguous_or_malformed_framing_is_a_400(srv, framing, caplog):
    s, token = srv
    caplog.set_level(logging.ERROR)
    req = (f"POST {PREDICT} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
           f"Connection: close\r\n").encode() + framing + b"\r\n" + b"0\r\n\r\n" + b"x" * 12
    resp = _raw(s, req)
    assert _status(resp) == 400, resp[:300]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    _still_serves(s, token)


def test_identical_duplicate_lengths_are_one_length(srv):
    """RFC 9110 8.6: identical Content-Length values may be read as one (hyper does); there
    is no ambiguity to smuggle through. Differing ones are a 400 (above)."""
    s, token = srv
    body = _body()
    dup = b"Content-Length: %d\r\n" % len(body)
    resp = _raw(s, _request(token, body, dup))
    assert _status(resp) == 200


@pytest.mark.parametrize("head", [
    b"X-Big: " + b"a" * 70_890 + b"\r\n",
    b"".join(b"X-H%d: v\r\n" % i for i in range(200)),
], ids=["70,890-byte header", "200 headers"])
def test_oversized_header_blocks_are_refused(srv, head):
    s, token = srv
    resp = _raw(s, b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n" + head + b"\r\n")
    assert _status(resp) == 431
    _still_serves(s, token)


# -- timeouts and connections -----------------------------------------------------------
def test_a_slow_or_idle_client_is_disconnected(srv):
    s, token = srv
    for data in (b"", b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n"):
        t0 = time.monotonic()
        resp = _raw(s, data, wait=6)
        assert resp == b"" and time.monotonic() - t0 < 5  # closed after ~1 s (the test's timeout)
    # an idle keep-alive connection is closed too, after its answer
    t0 = time.monotonic()
    resp = _raw(s, b"GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\n", wait=6)
    assert _status(resp) == 200 and time.monotonic() - t0 < 5


def test_hundreds_of_idle_sockets_do_not_stop_a_real_client(srv):
    s, token = srv
    idle = [socket.create_connection(s.server.server_address[:2], timeout=5) for _ in range(400)]
    try:
        t0 = time.monotonic()
        _still_serves(s, token)
        assert time.monotonic() - t0 < 3
    finally:
        for c in idle:
            c.close()


# -- a full queue -----------------------------------------------------------------------
def test_a_full_scoring_queue_is_a_503_with_retry_after(served):
    backend, api, token = served
    s = ServerThread(api, limits=Limits(inline_max_body=1024, max_queued=0)).start()
    try:
        resp = _raw(s, _request(token, _body(50)))
        assert _status(resp) == 503
        assert b"\r\nretry-after: 1\r\n" in resp and b'"code":"busy"' in resp
        assert s.app.rejected_busy == 1
        _still_serves(s, token)  # a small request is answered on the loop
    finally:
        s.stop()


def test_a_large_request_is_scored_on_the_pool(srv):
    s, token = srv
    resp = _raw(s, _request(token, _body(400)))
    assert _status(resp) == 200
    assert len(json.loads(resp.split(b"\r\n\r\n", 1)[1])["predictions"]) == 400
