"""`mlops-kit emulate --cloud azure`: the Azure code path on one machine.

Azurite (Blob, Queue, Table) is started (npm-installed on first use); the topology's
containers, queues (+ `-poison`), alerts queue and table are provisioned; the function app in
functions/azure is indexed and run the way the Functions host runs it: BlobCreated events for
uploads (event_grid.BlobCreatedPoller, the stand-in for the Event Grid subscription) reach the
validate queue, a queue listener per queue trigger invokes the functions (host.json's
batchSize, visibilityTimeout, maxDequeueCount and poison queue), the timer trigger fires on its
schedule, and an HTTP gateway with the App Service authentication stand-in (one bearer token)
serves the HTTP triggers. Unmodified clients (azure-storage-blob, Azure Storage Explorer, curl)
drive it.

The pieces are usable one by one (tests drive them synchronously with `drain`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_kit.emulate import azurite
from mlops_kit.emulate.azure_functions import FunctionsApp, QueueListener, timer_request
from mlops_kit.emulate.azure_gateway import EasyAuth, make_functions_gateway
from mlops_kit.emulate.event_grid import BlobCreatedPoller
from mlops_kit.topology import DATA, Topology, default_topology

log = logging.getLogger("mlops_kit.emulate.azure")

# settings.Settings fields for Azure resource names (MLOPSKIT_<FIELD>)
NAME_ENV = {"data": "MLOPSKIT_AZURE_DATA_CONTAINER", "artifacts": "MLOPSKIT_AZURE_ARTIFACT_CONTAINER",
            "table": "MLOPSKIT_AZURE_TABLE_NAME", "validate": "MLOPSKIT_AZURE_VALIDATE_QUEUE",
            "train": "MLOPSKIT_AZURE_TRAIN_QUEUE", "alerts": "MLOPSKIT_AZURE_ALERTS_QUEUE"}


def azure_env(connection_string: str, suffix: str = "") -> dict[str, str]:
    """The app settings the function app gets in the emulator: the Azurite account (a
    loopback connection string, refused anywhere else) for the adapters and for the triggers'
    connection (MLOPSKIT_QUEUES), and resource names (`suffix` makes them unique)."""
    env = {"MLOPSKIT_BACKEND": "azure", "MLOPSKIT_AZURE_CONNECTION_STRING": connection_string,
           "MLOPSKIT_QUEUES": connection_string}
    if suffix:
        # "1234abcd".islower() is True but "12345678".islower() is False (no cased letter)
        if not (suffix.isascii() and suffix.isalnum() and suffix == suffix.lower()):
            raise ValueError("suffix: lowercase letters and digits only (Azure names)")
        defaults = {"data": DATA, "artifacts": "artifacts", "table": "registry",
                    "validate": "validate", "train": "train", "alerts": "alerts"}
        env.update({var: defaults[k] + suffix for k, var in NAME_ENV.items()})
    return env


class AzureEmulator:
    def __init__(self, *, host: str = "127.0.0.1", gateway_port: int = 0,
                 monitor_every: float | None = None, retry_after: float | None = None,
                 functions: str | Path | None = None, poll_interval: float = 0.5,
                 connection_string: str | None = None, suffix: str = "",
                 topology: Topology | None = None, auth: bool = True) -> None:
        self.host, self.gateway_port = host, gateway_port
        self.monitor_every, self.retry_after = monitor_every, retry_after
        self.functions, self.poll_interval = functions, poll_interval
        self.connection_string, self.suffix = connection_string, suffix
        self.topology = topology or default_topology()
        self.auth = EasyAuth() if auth else None
        self.azurite: azurite.Azurite | None = None
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_env: dict[str, str | None] = {}
        self.gateway: Any = None

    # -- pieces ------------------------------------------------------------------------------
    def setup(self) -> None:
        """Azurite, the environment, the resources, the indexed app, the poller and listeners
        (no threads: `drain` runs them; `start` runs them in the background)."""
        from mlops_kit.adapters.azure import clear_clients
        from mlops_kit.adapters.azure._clients import blob_service, queue_service
        from mlops_kit.adapters.azure.factory import account_of, provision
        from mlops_kit.settings import Settings, get_settings

        if self.connection_string is None:
            self.azurite = azurite.start()
            self.connection_string = self.azurite.connection_string
        env = azure_env(self.connection_string, self.suffix)
        self._saved_env = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        get_settings.cache_clear()
        clear_clients()
        settings = Settings()
        self.names = provision(settings, self.topology)
        account = account_of(settings)
        self.blobs, self.queues = blob_service(account), queue_service(account)
        self.app = FunctionsApp.load(self.functions)
        self.app.module.runtime.reset()
        container = self.names.containers[DATA]
        triggers = [(t.prefix, self.names.queues[t.queue]) for t in self.topology.object_triggers
                    if t.store == DATA]
        self.events = BlobCreatedPoller(self.blobs, self.queues, azurite.ACCOUNT, container,
                                        triggers)
        self.events.prime()
        self.listeners = {name: QueueListener(self.queues, queue, fn, self.app.host,
                                              retry_after=self.retry_after)
                          for name, (queue, fn) in self.app.queues.items()}

    def drain(self, rounds: int = 50) -> int:
        """Deliver events and run queue triggers until nothing is left; messages handled."""
        total = 0
        for _ in range(rounds):
            n = self.events.poll_once() + sum(lst.poll_once() for lst in self.listeners.values())
            if not n:
                break
            total += n
        return total

    def run_timer(self, name: str = "monitor") -> None:
        self.app.timers[name][1](timer_request())

    # -- background --------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        from mlops_kit.handlers import ncrontab_seconds

        self.setup()
        self._spawn("event-grid", self._loop, self.events.poll_once)
        for name, lst in self.listeners.items():
            self._spawn(f"queue-{name}", self._loop, lst.poll_once)
        for name, (schedule, _fn) in self.app.timers.items():
            every = self.monitor_every or ncrontab_seconds(schedule)
            self._spawn(f"timer-{name}", self._timer_loop, name, every)
        self.start_gateway()
        return self.summary()

    def start_gateway(self) -> str:
        """Serve the HTTP triggers (in a thread); the inference URL."""
        self.gateway = make_functions_gateway(self.app, self.auth, self.host, self.gateway_port)
        self._spawn("gateway", self.gateway.serve_forever)
        return f"http://{self.host}:{self.gateway.server_address[1]}"

    def _spawn(self, name: str, target: Callable, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _loop(self, poll: Callable[[], int]) -> None:
        while not self.stop_event.is_set():
            try:
                if not poll():
                    self.stop_event.wait(self.poll_interval)
            except Exception:  # noqa: BLE001 - keep polling, like the host's listeners
                log.exception("polling failed")
                self.stop_event.wait(1)

    def _timer_loop(self, name: str, every: float) -> None:
        while not self.stop_event.wait(every):
            try:
                self.run_timer(name)
            except Exception:  # noqa: BLE001 - a failed run is retried on the next tick
                log.exception("timer %s failed", name)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cloud": "azure", "account": azurite.ACCOUNT,
            "connection_string": self.connection_string,
            "containers": dict(self.names.containers), "queues": dict(self.names.queues),
            "alerts_queue": self.names.alerts, "table": self.names.table,
            "functions": sorted([*self.app.queues, *(f.name for f in self.app.http),
                                 *self.app.timers]),
        }
        if self.gateway is not None:
            out["inference_url"] = f"http://{self.host}:{self.gateway.server_address[1]}"
        if self.auth is not None:
            out["token"] = self.auth.token
        return out

    def stop(self) -> None:
        self.stop_event.set()
        if self.gateway is not None:
            self.gateway.shutdown()
            self.gateway.server_close()
        for t in self._threads:
            if t.name != "gateway":
                t.join(timeout=10)
        if self.azurite is not None:
            self.azurite.stop()
        self._restore_env()

    def _restore_env(self) -> None:
        """Put back the environment `setup` changed (in-process use: tests, notebooks)."""
        from mlops_kit.adapters.azure import clear_clients
        from mlops_kit.settings import get_settings

        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = {}
        get_settings.cache_clear()
        clear_clients()
