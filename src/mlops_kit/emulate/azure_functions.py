"""The Azure Functions host's part, for the emulator and the tests: index the function app
(functions/azure/function_app.py, Python v2 model) the way the worker does, read its
host.json, and invoke its functions with the objects the worker builds (func.QueueMessage,
func.HttpRequest, func.TimerRequest). The host itself cannot be installed here.

The queue listener does what the host's queue trigger does: receive up to batchSize messages,
base64-decode them (messageEncoding), invoke; on success delete; on failure make the message
visible again after visibilityTimeout, and after maxDequeueCount attempts move it to
`<queue>-poison` (a message received with a dequeue count past the limit goes there without
an invocation)."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("mlops_kit.emulate.azure")

LEASE_S = 600  # the host holds a message invisible while the function runs (and renews it);
# here: this long, or functionTimeout if longer, so a slow job is never handed out twice


def app_dir(explicit: str | Path | None = None) -> Path:
    """functions/azure next to the working directory, else the copy shipped in the wheel
    (mlops_kit/_functions/azure), else next to this source checkout."""
    here = Path(__file__).resolve()
    candidates = [Path(explicit)] if explicit else [
        Path.cwd() / "functions" / "azure", here.parents[1] / "_functions" / "azure",
        here.parents[3] / "functions" / "azure"]
    for c in candidates:
        if (c / "function_app.py").is_file() and (c / "host.json").is_file():
            return c.resolve()
    raise FileNotFoundError(f"no Azure Functions app (function_app.py + host.json) in {candidates}")


def _seconds(timespan: str) -> float:
    h, m, s = timespan.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass(frozen=True)
class HostConfig:
    """What host.json says about queues and HTTP (the host's defaults where it is silent)."""

    max_dequeue_count: int = 5
    visibility_timeout_s: float = 0.0
    batch_size: int = 16
    route_prefix: str = "api"
    message_encoding: str = "base64"
    function_timeout_s: float | None = None

    @classmethod
    def load(cls, folder: Path) -> HostConfig:
        doc = json.loads((folder / "host.json").read_text())
        ext = doc.get("extensions", {})
        q, http = ext.get("queues", {}), ext.get("http", {})
        return cls(max_dequeue_count=int(q.get("maxDequeueCount", 5)),
                   visibility_timeout_s=_seconds(q.get("visibilityTimeout", "00:00:00")),
                   batch_size=int(q.get("batchSize", 16)),
                   route_prefix=str(http.get("routePrefix", "api")).strip("/"),
                   message_encoding=str(q.get("messageEncoding", "base64")).lower(),
                   function_timeout_s=_seconds(doc["functionTimeout"])
                   if doc.get("functionTimeout") else None)


_PARAM = re.compile(r"\{(\*?)([A-Za-z_]\w*)(?::[^{}]*)?\??\}")


def compile_route(template: str) -> re.Pattern[str]:
    """An ASP.NET Core route template as a regex: `{name}` is one segment or, next to literal
    text in the same segment (`{model}:predict`, a complex segment), the part before the
    literal; `{*rest}` is a catch-all that may be empty; `{id:int}` constraints are not
    checked; literals match case-insensitively and a trailing slash is ignored, as in the host."""
    parts = []
    segments = template.strip("/").split("/")
    catch_all = None
    if (m := _PARAM.fullmatch(segments[-1])) and m.group(1):
        catch_all = m.group(2)  # `.../{*rest}`: the rest of the path, or nothing at all
        segments = segments[:-1]
    for seg in segments:
        out, pos = "", 0
        for m in _PARAM.finditer(seg):
            out += re.escape(seg[pos:m.start()])
            out += f"(?P<{m.group(2)}>.+)" if m.group(1) else f"(?P<{m.group(2)}>[^/]+?)"
            pos = m.end()
        parts.append(out + re.escape(seg[pos:]))
    body = "/".join(parts)
    if catch_all:
        body += f"(?:/(?P<{catch_all}>.*))?" if body else f"(?P<{catch_all}>.*)"
    return re.compile("^" + body + "/?$", re.IGNORECASE)


@dataclass
class HttpFunction:
    name: str
    route: str
    methods: frozenset[str]
    fn: Callable[..., Any]
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = compile_route(self.route)

    @property
    def literal_chars(self) -> int:  # more literal text wins, like route precedence
        return len(_PARAM.sub("", self.route))


@dataclass
class FunctionsApp:
    folder: Path
    module: ModuleType
    host: HostConfig
    queues: dict[str, tuple[str, Callable[..., Any]]]  # function -> (queue, callable)
    http: list[HttpFunction]
    timers: dict[str, tuple[str, Callable[..., Any]]]  # function -> (NCRONTAB, callable)
    functions: dict[str, Any] = field(default_factory=dict)  # name -> the indexed Function

    @classmethod
    def load(cls, folder: str | Path | None = None) -> FunctionsApp:
        """Import function_app.py as a fresh module (its bindings read the environment when
        indexed, as in the host) and index its functions."""
        path = app_dir(folder)
        spec = importlib.util.spec_from_file_location(f"mlops_kit_azure_app_{uuid.uuid4().hex}",
                                                      path / "function_app.py")
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"cannot load {path / 'function_app.py'}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        queues, http, timers = {}, [], {}
        indexed = {f.get_function_name(): f for f in module.app.get_functions()}  # once: a
        for f in indexed.values():  # second get_functions() call fails its uniqueness check
            t, name, fn = f.get_trigger(), f.get_function_name(), f.get_user_function()
            kind = t.get_binding_name()
            if kind == "queueTrigger":
                queues[name] = (t.queue_name, fn)
            elif kind == "httpTrigger":
                methods = frozenset(str(getattr(m, "value", m)).upper() for m in t.methods or ())
                http.append(HttpFunction(name, t.route or name, methods, fn))
            elif kind == "timerTrigger":
                timers[name] = (t.schedule, fn)
            else:
                raise ValueError(f"function {name}: the emulator runs no {kind} trigger")
        return cls(path, module, HostConfig.load(path), queues, http, timers, indexed)

    def match(self, method: str, path: str) -> tuple[HttpFunction, dict[str, str]] | None:
        """The HTTP function for a request path (with the host's route prefix), or None (the
        host answers 404). A route whose method differs does not match, as in the host."""
        path = path.split("?", 1)[0].lstrip("/")
        prefix = self.host.route_prefix
        if prefix:
            if not path.lower().startswith(prefix.lower() + "/"):
                return None
            path = path[len(prefix) + 1:]
        found = [(f, m) for f in self.http if method.upper() in f.methods
                 and (m := f.pattern.fullmatch(path)) is not None]
        if not found:
            return None
        f, m = max(found, key=lambda fm: fm[0].literal_chars)
        return f, {k: v for k, v in m.groupdict().items() if v is not None}


def queue_message(raw: Any, encoding: str = "base64") -> Any:
    """An SDK QueueMessage as the worker hands it over (func.QueueMessage). Raises ValueError
    for content that is not base64 when the host expects it (a binding failure)."""
    from azure.functions.queue import QueueMessage  # the worker's (func.QueueMessage lacks
    # the dequeue count and times)

    content = raw.content or ""
    if encoding == "base64":
        try:
            body = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"message {raw.id}: not base64 (messageEncoding is base64)") from None
    else:
        body = content.encode()
    return QueueMessage(id=raw.id, body=body, dequeue_count=raw.dequeue_count,
                        expiration_time=raw.expires_on, insertion_time=raw.inserted_on,
                        time_next_visible=raw.next_visible_on, pop_receipt=raw.pop_receipt)


class QueueListener:
    """The host's queue trigger for one function (see the module docstring)."""

    def __init__(self, queues: Any, queue: str, fn: Callable[..., Any], host: HostConfig,
                 *, retry_after: float | None = None) -> None:
        self.client = queues.get_queue_client(queue)
        self.poison = queues.get_queue_client(f"{queue}-poison")
        self.queue, self.fn, self.host = queue, fn, host
        self.retry_after = host.visibility_timeout_s if retry_after is None else retry_after
        self.lease = int(max(LEASE_S, host.function_timeout_s or 0))
        self.succeeded = self.failed = self.poisoned = 0

    def poll_once(self) -> int:
        """Receive one batch and process it; the number of messages received."""
        batch = list(self.client.receive_messages(
            messages_per_page=self.host.batch_size, max_messages=self.host.batch_size,
            visibility_timeout=self.lease))
        for raw in batch:
            self._process(raw)
        return len(batch)

    def drain(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.poll_once()
            if not n:
                break
            total += n
        return total

    def _process(self, raw: Any) -> None:
        if int(raw.dequeue_count or 0) > self.host.max_dequeue_count:
            self._to_poison(raw)
            return
        try:
            self.fn(queue_message(raw, self.host.message_encoding))
        except Exception:  # noqa: BLE001 - what the host does with a failed invocation
            self.failed += 1
            log.exception("%s: message %s failed (attempt %s of %s)", self.queue, raw.id,
                          raw.dequeue_count, self.host.max_dequeue_count)
            if int(raw.dequeue_count or 0) >= self.host.max_dequeue_count:
                self._to_poison(raw)
            else:
                self.client.update_message(raw.id, raw.pop_receipt,
                                           visibility_timeout=int(self.retry_after))
            return
        self.succeeded += 1
        self.client.delete_message(raw.id, raw.pop_receipt)

    def _to_poison(self, raw: Any) -> None:
        self.poison.send_message(raw.content, time_to_live=-1)
        self.client.delete_message(raw.id, raw.pop_receipt)
        self.poisoned += 1
        log.warning("%s: message %s moved to %s-poison", self.queue, raw.id, self.queue)


def timer_request(past_due: bool = False) -> Any:
    from azure.functions.timer import TimerRequest

    return TimerRequest(past_due=past_due)
