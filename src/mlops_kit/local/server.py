"""Self-hosted serving: `HttpApi` (local.http_app) behind granian, a maintained HTTP server
(Rust, hyper), with its limits and timeouts set here. Chosen over uvicorn[standard] by
measurement (bench/http_load.py) and because hyper bounds what uvicorn's httptools parser
does not: the size and count of request headers and the time to send them.

- `run_server` is `mlops-kit serve`: granian's process manager, `workers` processes (each
  with its own model cache and capture buffer, its objects named uniquely), SIGTERM/SIGINT
  stop accepting, finish in-flight requests (up to `grace_s`), then each worker flushes its
  captures and the server exits 0.
- `ServerThread` runs the same application in this process (granian's embedded server on a
  thread of its own): the demo, the tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_kit.core.serving.http_api import HttpApi
from mlops_kit.core.serving.openapi import openapi_document
from mlops_kit.local.http_app import Limits, ServeApp

log = logging.getLogger("mlops_kit.local.server")

# The server's own limits (granian/hyper): the request head (request line + headers) may take
# at most HEAD_BUFFER bytes (431 past it; hyper also refuses more than 100 headers), and must
# arrive within HEADER_TIMEOUT_MS, which is also how long an idle keep-alive connection is
# kept; at most BACKPRESSURE requests per worker run at once, the others wait in the listen
# backlog (BACKLOG) instead of costing memory.
HEAD_BUFFER = 16 * 1024
HEADER_TIMEOUT_MS = 10_000
BACKLOG = 1024
BACKPRESSURE = 256
GRACE_S = 30
_CONFIG_ENV = "MLOPSKIT_SERVE_CONFIG"  # set by run_server for its own worker processes

# The old asyncio server lowered the GIL switch interval to 0.5 ms; under granian that cost
# 10-20% of the 1-connection throughput (the Rust I/O thread and the loop thread hand the GIL
# over more often, measured with bench/http_load.py's servers), so the default (5 ms) stays.


@dataclass
class ServeConfig:
    """What a worker process needs to build its application (passed as JSON in the env)."""

    workspace: str | None = None
    auth: bool = True
    limits: dict[str, int] = field(default_factory=dict)
    pin_cpus: bool = False


def build_api(backend, *, auth: bool = True, workspace=None) -> HttpApi:
    from mlops_kit.local.auth import BearerAuth

    authorize = BearerAuth(workspace) if auth else None
    service = backend.service()
    s = backend.settings
    if s.capture_durable and service.capture is not None:
        from mlops_kit.local.capture_spool import SPOOL_DIR, SpooledCaptureBuffer

        service.capture = SpooledCaptureBuffer(
            backend.ctx.store, backend.ctx.clock, Path(s.workspace) / SPOOL_DIR,
            max_rows=s.capture_max_rows, max_age_s=s.capture_max_age_s)
    return HttpApi(service, authorize=authorize, openapi=openapi_document,
                   ui=backend.console(authorize))


def worker_app() -> ServeApp:
    """granian's factory in each worker process: a backend, model cache and capture buffer
    of its own (a capture object's key carries a random suffix: workers never collide)."""
    from mlops_kit.bootstrap import build_backend
    from mlops_kit.settings import Settings

    _stop_with_parent()
    cfg = ServeConfig(**json.loads(os.environ.get(_CONFIG_ENV, "{}")))
    if cfg.pin_cpus:
        pin_worker()
    settings = Settings(workspace=Path(cfg.workspace)) if cfg.workspace else Settings()
    backend = build_backend(settings)  # the backend `serve` was started with
    return ServeApp(build_api(backend, auth=cfg.auth, workspace=Path(settings.workspace)),
                    Limits(**cfg.limits))


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask; every CPU where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin_workers_by_default(workers: int) -> bool:
    """`--pin-cpus` left unset: pin when there is one worker per allowed CPU (the server owns
    the machine or its cpuset). A server that shares the CPUs with others is not pinned: every
    process pinned to the same first CPU would queue there while the others idle."""
    return workers > 1 and workers == len(allowed_cpus())


def pin_worker() -> None:
    """Run this worker process on one CPU: granian's Rust I/O thread and the Python loop hand
    every request over to each other, and across CPUs each hand-over waits for the other CPU
    to wake (tens of µs on a VM): pinned, 1 worker answers 1.35-1.5x the requests at c=1
    (bench/http_load.py, `kit-pinned`; bare granian, taskset to one CPU: ~2-4x). Worker k
    takes the k-th allowed CPU (round robin).
    Called in granian's worker before its runtime threads start: they inherit the mask; the
    threads that already exist are pinned too. Linux only (elsewhere, a no-op)."""
    if sys.platform != "linux":
        return
    import multiprocessing

    from mlops_kit.local import http_app

    cpus = allowed_cpus()
    ident = multiprocessing.current_process()._identity  # (k,) in granian's k-th worker
    cpu = {cpus[((ident[0] - 1) if ident else 0) % len(cpus)]}
    try:
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), cpu)
    except OSError as exc:  # a seccomp profile or a cpuset that changed: serve unpinned
        log.warning("could not pin the worker to CPU %s: %s", next(iter(cpu)), exc)
        return
    http_app.UNPINNED_CPUS = set(cpus)  # the scoring pool's threads run on any of them
    log.info("worker %d pinned to CPU %d", os.getpid(), next(iter(cpu)))


def _stop_with_parent() -> None:
    """A worker whose server process dies (SIGKILL, OOM) gets SIGTERM: it stops gracefully
    and flushes its captures instead of serving on, orphaned, with the port bound (Linux)."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.debug("PR_SET_PDEATHSIG unavailable")


def _http1(header_timeout_ms: int = HEADER_TIMEOUT_MS) -> Any:
    from granian.http import HTTP1Settings

    return HTTP1Settings(header_read_timeout=header_timeout_ms, keep_alive=True,
                         max_buffer_size=HEAD_BUFFER)


def run_server(config: ServeConfig, host: str, port: int, *, workers: int = 1,
               grace_s: int = GRACE_S, certfile: Path | None = None,
               keyfile: Path | None = None, on_ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (blocks). The port must be a real one (free_port for 0).
    `on_ready` is called (on another thread) once the port accepts connections."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    os.environ[_CONFIG_ENV] = json.dumps(asdict(config))
    server = Server(
        "mlops_kit.local.server:worker_app", address=host, port=port,
        interface=Interfaces.RSGI, factory=True, workers=workers, http=HTTPModes.http1,
        websockets=False, backlog=BACKLOG, backpressure=BACKPRESSURE, http1_settings=_http1(),
        workers_kill_timeout=grace_s, log_level=LogLevels.warning,
        ssl_cert=certfile, ssl_key=keyfile,
    )
    if on_ready is not None:
        threading.Thread(target=_when_listening, args=(host, port, on_ready),
                         daemon=True).start()
    server.serve()


def _when_listening(host: str, port: int, then: Callable[[], None], timeout_s: float = 60) -> None:
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((probe, port), timeout=1).close()
            then()
            return
        except OSError:
            time.sleep(0.02)
    log.error("the server did not accept connections within %.0f s", timeout_s)


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(host: str, port: int) -> None:
    """OSError (EADDRINUSE, EADDRNOTAVAIL...) now rather than in a worker process."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, port))


def _thread_count() -> int:
    """This process's threads, Python's and native ones alike (Linux; 0 elsewhere)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


class _Bound:
    def __init__(self, host: str, port: int) -> None:
        self.server_address = (host, port)


class ServerThread:
    """The application on granian's embedded server, on a thread with its own event loop
    (used by the demo, the tests and the benchmarks). Starting it sets this interpreter's GIL
    switch interval when switch_interval_s is given. `stop` is the graceful stop."""

    def __init__(self, api: HttpApi, host: str = "127.0.0.1", port: int = 0, *,
                 switch_interval_s: float | None = None,
                 limits: Limits | None = None, flush_interval_s: float = 1.0,
                 header_timeout_ms: int = HEADER_TIMEOUT_MS) -> None:
        self.header_timeout_ms = header_timeout_ms
        self.switch_interval_s = switch_interval_s
        self.api = api
        port = port or free_port(host)
        check_port(host, port)
        self.server = _Bound(host, port)
        self.app = ServeApp(api, limits, flush_interval_s=flush_interval_s)
        self.loop = asyncio.new_event_loop()
        self._granian: Any = None
        self._thread = threading.Thread(target=self._run, name="granian", daemon=True)
        self._error: BaseException | None = None
        self._tasks_before = 0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def _run(self) -> None:
        from granian.constants import HTTPModes, Interfaces
        from granian.log import LogLevels
        from granian.server.embed import Server

        asyncio.set_event_loop(self.loop)
        host, port = self.server.server_address[:2]
        try:
            self._granian = Server(self.app, address=host, port=port, interface=Interfaces.RSGI,
                                   http=HTTPModes.http1, websockets=False, backlog=BACKLOG,
                                   backpressure=BACKPRESSURE,
                                   http1_settings=_http1(self.header_timeout_ms),
                                   log_level=LogLevels.error)
            self.loop.run_until_complete(self._granian.serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            log.exception("server stopped with an error")

    def start(self) -> ServerThread:
        if self.switch_interval_s is not None:
            sys.setswitchinterval(self.switch_interval_s)
        self._tasks_before = _thread_count()
        self._thread.start()
        deadline = time.monotonic() + 20
        while True:  # ready once it accepts a connection
            try:
                socket.create_connection(self.server.server_address[:2], timeout=1).close()
                return self
            except OSError:
                if self._error is not None or not self._thread.is_alive() \
                        or time.monotonic() > deadline:
                    raise OSError("the server did not start") from self._error
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop accepting, answer what is in flight, then flush captures (the app's
        __rsgi_del__ runs after granian's graceful stop)."""
        if self._granian is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._granian.stop)
            self._thread.join(GRACE_S + 10)
            # granian's Rust runtime threads wind down after its worker returns; one still
            # touching Python while the interpreter exits aborts it (a Rust panic, exit 134)
            deadline = time.monotonic() + 5
            while _thread_count() > self._tasks_before and time.monotonic() < deadline:
                time.sleep(0.02)
        if not self.loop.is_closed() and not self._thread.is_alive():
            self.loop.close()
