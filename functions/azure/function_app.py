"""The Azure Functions app (Python v2 programming model): the lifecycle's functions as thin
shells over mlops_kit.handlers, the same core the AWS Lambda handlers in functions/ run.

- validate: queue trigger on the topology's validate queue. Event Grid's Blob Storage system
  topic delivers BlobCreated events for datasets/ and labels/ to it (Event Grid schema,
  base64 JSON); our own {"key": ...} bodies are read too.
- train: queue trigger on the train queue (jobs the validate function sends).
- serve_*: one HTTP trigger per topology route (`v1/models/{model}:predict`, ...), every one
  into the same HttpShell (core/serving/http_api), so the contract and the JSON errors are the
  local server's and the AWS function's. All HTTP triggers scale as one group on Flex
  Consumption.
- monitor: timer trigger on the topology's schedule (NCRONTAB) -> core monitor_all.

Retries: a final failure (data, spec, model, a malformed message) is reported and the function
returns, so the host deletes the message; a retryable one raises, so the host makes the
message visible again after host.json's visibilityTimeout and, after maxDequeueCount
attempts, moves it to `<queue>-poison`.

Deployment: one package. Unset, MLOPSKIT_FUNCTION registers every function (one app, the
emulator); set to a topology function, it registers only that one's triggers, so the same
package runs as one app per function, each with its own managed identity (least privilege).

Identity: storage is reached with the app's managed identity (adapters/azure; no key in app
settings). The queue triggers use the identity-based connection MLOPSKIT_QUEUES
(`MLOPSKIT_QUEUES__queueServiceUri`, `__credential=managedidentity`, `__clientId`).
Inference: the HTTP triggers are anonymous at the function level (function keys would be
shared secrets in a URL or an app setting); App Service authentication (Microsoft Entra ID)
validates the caller's bearer token before the function runs, as API Gateway's JWT authorizer
does on AWS, and the function refuses any request it did not authenticate (no
X-MS-CLIENT-PRINCIPAL-ID, a header clients cannot set) unless MLOPSKIT_AUTH=none.
"""

# No `from __future__ import annotations`: the Python worker checks each binding against its
# parameter's annotation, which must be the class itself (func.QueueMessage, ...), not a string.
import json
import logging
import re
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import azure.functions as func

from mlops_kit.adapters.azure.factory import Names
from mlops_kit.core.capture.parquet import compact_all
from mlops_kit.core.monitoring.usecase import monitor_all
from mlops_kit.core.outcomes import dead_letter_alert
from mlops_kit.errors import Unauthorized, describe
from mlops_kit.handlers import HttpShell, Runtime, ncrontab, train_message, validate_message
from mlops_kit.settings import get_settings
from mlops_kit.topology import DATA, default_topology

log = logging.getLogger("mlops_kit.azure")

TOPOLOGY = default_topology()
CONNECTION = "MLOPSKIT_QUEUES"  # an identity-based connection (app settings MLOPSKIT_QUEUES__*)
ROUTE_PREFIX = ""  # host.json extensions.http.routePrefix: the KServe paths sit at the root
PRINCIPAL = "x-ms-client-principal-id"  # set by App Service authentication only

_settings = get_settings()  # read when the host indexes the app: names and schedule are bound
NAMES = Names.of(_settings, TOPOLOGY)
SCHEDULE = ncrontab(_settings.monitor_schedule or TOPOLOGY.schedules[0].expression)
FUNCTIONS = tuple(f.name for f in TOPOLOGY.functions)
if _settings.function is not None and _settings.function not in FUNCTIONS:
    raise ValueError(f"MLOPSKIT_FUNCTION={_settings.function!r}: not one of {', '.join(FUNCTIONS)}")

runtime = Runtime(backend="azure")
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def registers(function: str) -> bool:
    """Whether this app registers `function`'s triggers: every function when MLOPSKIT_FUNCTION
    is unset (one app; the emulator), else only that one (one app per function, each with its
    own identity: the infra's least-privilege layout)."""
    return _settings.function in (None, function)


# -- queue triggers ----------------------------------------------------------------------------
@contextmanager
def _alert_before_poison(function: str, msg: func.QueueMessage):
    """A retryable failure propagates and the host retries; after maxDequeueCount failed
    attempts (host.json: the topology's max_receives) it moves the message to
    `<queue>-poison`, which notifies no one. The last attempt says so itself, as the
    DLQ-depth alarm does on AWS and the dead-letter hook locally."""
    try:
        yield
    except Exception as exc:
        if (msg.dequeue_count or 0) >= TOPOLOGY.queue(function).max_receives:
            try:
                body = json.loads(msg.get_body())
            except ValueError:
                body = None
            try:
                dead_letter_alert(runtime.backend().ctx.notifier, NAMES.queues[function],
                                  message_id=msg.id, attempts=msg.dequeue_count, body=body,
                                  error=describe(exc))
            except Exception:  # noqa: BLE001 - the retry semantics must not change
                log.exception("could not announce %s message %s to the poison queue",
                              function, msg.id)
        raise


def validate(msg: func.QueueMessage) -> None:
    with _alert_before_poison("validate", msg):
        outcomes = validate_message(runtime.backend().ctx, msg.get_body(),
                                    containers={NAMES.containers[DATA]})
    for o in outcomes:
        log.info("validate %s: %s", msg.id, {k: o.get(k) for k in (
            "status", "model", "dataset_key", "key", "rows", "quarantine_key", "duplicate",
            "error")})


def train(msg: func.QueueMessage) -> None:
    with _alert_before_poison("train", msg):
        o = train_message(runtime.backend().ctx, msg.get_body())
    log.info("train %s: %s", msg.id, {k: o.get(k) for k in (
        "status", "model", "version", "promoted", "reasons", "error")})


for _fn in (validate, train):
    if registers(_fn.__name__):
        app.function_name(_fn.__name__)(app.queue_trigger(
            arg_name="msg", queue_name=NAMES.queues[_fn.__name__], connection=CONNECTION)(_fn))


# -- timer trigger -----------------------------------------------------------------------------
def monitor(timer: func.TimerRequest) -> None:
    # every model, each isolated: a failing one is listed in `errors` and alerted, the run
    # succeeds (as on AWS). A retrain dataset written here is announced by Event Grid.
    ctx = runtime.backend().ctx
    # closed hours of captures -> Parquet (docs/captures.md); a failure is retried next run
    compacted = compact_all(ctx.store, ctx.registry.list_models(), ctx.clock.now())
    out = monitor_all(ctx)
    log.info("monitor (past due: %s): %s; captures compacted: %s", timer.past_due, out,
             compacted)


if registers("monitor"):
    app.function_name("monitor")(app.timer_trigger(
        arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=True)(monitor))


# -- HTTP triggers -----------------------------------------------------------------------------
def _authorize(headers) -> None:
    if runtime.settings().auth != "none" and not headers.get(PRINCIPAL):
        raise Unauthorized("authorization: a bearer token accepted by the app's authentication "
                           "(Microsoft Entra ID) is required", field="authorization")


# the console (/ui/) too: behind the same platform authentication and principal check
shell = HttpShell(runtime.backend, authorize=_authorize, console=True)


def serve(req: func.HttpRequest) -> func.HttpResponse:
    path = unquote(urlsplit(req.url).path)  # the raw path: HttpApi matches it, like on AWS
    if ROUTE_PREFIX and path.startswith(f"/{ROUTE_PREFIX}/"):
        path = path[len(ROUTE_PREFIX) + 1:]
    resp = shell.handle(req.method, path, dict(req.headers.items()), req.get_body() or None)
    # the Response's own content-type (JSON, or the console's HTML/CSS/SVG) is kept as is
    ctype = resp.headers.get("content-type", "application/json")
    charset = re.search(r"charset=([\w-]+)", ctype)
    return func.HttpResponse(resp.payload(), status_code=resp.status, headers=resp.headers,
                             mimetype=ctype.split(";")[0].strip(),
                             charset=charset.group(1) if charset else "utf-8")


def azure_route(path: str) -> str:
    """A topology route as an Azure Functions route template: no leading slash, and API
    Gateway's greedy `{name+}` as the ASP.NET Core catch-all `{*name}`."""
    return re.sub(r"\{(\w+)\+\}", r"{*\1}", path.lstrip("/"))


def route_name(method: str, path: str) -> str:
    """serve_post_v1_models_model_predict, ...: one function per route (names are unique)."""
    return "serve_" + re.sub(r"[^a-z0-9]+", "_", f"{method} {path}".lower()).strip("_")


def _register(method: str, path: str) -> None:
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return serve(req)

    handler.__name__ = route_name(method, path)
    app.function_name(handler.__name__)(
        app.route(route=azure_route(path), methods=[method], auth_level=func.AuthLevel.ANONYMOUS)(
            handler))


if registers(TOPOLOGY.http.function):
    for _method, _path in TOPOLOGY.http.routes:
        _register(_method, _path)
