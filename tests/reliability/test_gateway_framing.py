"""The emulators' front doors (issue 24): the Azure gateway checks the bearer token from the
headers before it reads a body (401 unread), and both gateways refuse ambiguous or malformed
framing with 400 before anything runs (they took the first of two Content-Lengths, where the
local server took the last: a request-smuggling opening behind a proxy; and int() read
Content-Length: ٣ as 3)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from mlops_kit.emulate.azure_gateway import EasyAuth, make_functions_gateway
from mlops_kit.emulate.gateway import make_gateway
from tests.reliability.test_http_server import _raw, _status

FRAMING = {
    "arabic-indic digit": "Content-Length: \u0663\r\n".encode(),
    "superscript two": "Content-Length: \u00b2\r\n".encode(),
    "sign": b"Content-Length: +3\r\n",
    "two lengths": b"Content-Length: 3\r\nContent-Length: 3\r\n",
    "length and chunked": b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
    "chunked": b"Transfer-Encoding: chunked\r\n",
}


class _Addr:
    def __init__(self, server) -> None:
        self.server = SimpleNamespace(server_address=server.server_address)


@pytest.fixture
def gateways():
    import azure.functions as func

    calls: list[str] = []

    def lambda_handler(event, context):
        calls.append("aws")
        return {"statusCode": 200, "body": "ok"}

    fn = SimpleNamespace(name="f", fn=lambda req: (calls.append("azure"),
                                                   func.HttpResponse("ok"))[1])
    app = SimpleNamespace(match=lambda method, path: (fn, {}))
    auth = EasyAuth()
    servers = {"aws": make_gateway(lambda_handler, lambda: None),
               "azure": make_functions_gateway(app, auth)}  # type: ignore[arg-type]
    for s in servers.values():
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield servers, calls, auth.token
    for s in servers.values():
        s.shutdown()
        s.server_close()


def _head(token: str | None, framing: bytes) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    return b"POST /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + auth + framing + b"\r\n"


@pytest.mark.parametrize("framing", FRAMING.values(), ids=FRAMING.keys())
@pytest.mark.parametrize("which", ["aws", "azure"])
def test_malformed_framing_is_a_400_before_anything_runs(gateways, which, framing):
    servers, calls, token = gateways
    resp = _raw(_Addr(servers[which]), _head(token, framing) + b"3\r\nabc\r\n0\r\n\r\n", wait=5)
    assert _status(resp) == 400 and calls == []
    ok = _raw(_Addr(servers[which]), _head(token, b"Content-Length: 3\r\n") + b"abc")
    assert _status(ok) == 200 and calls == [which]


@pytest.mark.parametrize("token", [None, "mk_wrong"])
def test_azure_gateway_answers_401_before_reading_the_body(gateways, token):
    servers, calls, _ = gateways
    t0 = time.monotonic()
    resp = _raw(_Addr(servers["azure"]), _head(token, b"Content-Length: 6000000\r\n"), wait=5)
    assert _status(resp) == 401 and time.monotonic() - t0 < 4 and calls == []
