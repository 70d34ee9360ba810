"""The local server's connection protocol, driven byte by byte with a stand-in transport:
pipelining, and flow control when a client stops reading its answers."""

from __future__ import annotations

from mlops_kit.core.serving.http_api import Response
from mlops_kit.local.server import _Connection


class Api:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def handle(self, method, path, headers, body, request_id=None):
        self.calls.append(path)
        return Response(200, {"path": path})


class Transport:
    """Records writes; after `stall_after` writes it behaves like a full write buffer (asyncio
    calls the protocol's pause_writing)."""

    def __init__(self, stall_after: int | None = None) -> None:
        self.writes: list[bytes] = []
        self.reading = True
        self.stall_after = stall_after
        self.protocol: _Connection | None = None

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        if self.stall_after is not None and len(self.writes) == self.stall_after:
            self.protocol.pause_writing()

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def connect(transport: Transport) -> tuple[_Connection, Api]:
    api = Api()
    conn = _Connection(api, set())
    transport.protocol = conn
    conn.connection_made(transport)
    return conn, api


def requests(*paths: str) -> bytes:
    return b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths)


def test_pipelined_requests_are_answered_in_order():
    transport = Transport()
    conn, api = connect(transport)
    conn.data_received(requests("/a", "/b")[:-10])  # the second arrives in two pieces
    conn.data_received(requests("/a", "/b")[-10:])
    assert api.calls == ["/a", "/b"]
    assert [w.split(b"\r\n")[0] for w in transport.writes] == [b"HTTP/1.1 200 OK"] * 2


def test_a_client_that_stops_reading_stops_the_answers_until_it_drains():
    transport = Transport(stall_after=1)
    conn, api = connect(transport)
    conn.data_received(requests("/a", "/b", "/c"))
    assert api.calls == ["/a"] and not transport.reading  # paused: nothing more is answered
    conn.resume_writing()  # the client read: the rest is answered, in order
    assert api.calls == ["/a", "/b", "/c"] and transport.reading
    assert len(transport.writes) == 3
