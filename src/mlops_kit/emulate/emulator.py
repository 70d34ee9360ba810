"""`mlops-kit emulate`: the AWS code path on one machine.

moto runs in server mode on localhost; the topology is rendered into it through boto3 (buckets
with S3->SQS notifications, queues with dead-letter queues and redrive, the table, the topic);
SQS messages are delivered to the real handlers in functions/ the way the Lambda SQS event
source does (batches, batchItemFailures, visibility timeout, receive count, DLQ); the monitor
runs on its schedule; a stdlib HTTP gateway turns requests into HTTP API (payload 2.0) events
for the serve handler. Unmodified clients (AWS CLI, boto3, curl) drive it.

The pieces (provision, SqsPump, Gateway) are also what the end-to-end tests use under moto.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops_kit.topology import ENV_FOR, Topology, default_topology

log = logging.getLogger("mlops_kit.emulate.emulator")
ACCOUNT = "123456789012"
MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}


# -- resources ---------------------------------------------------------------------------


@dataclass
class Resources:
    region: str
    endpoint_url: str | None
    data_bucket: str
    artifact_bucket: str
    queue_urls: dict[str, str]  # topology queue name (and "<name>-dlq") -> url
    queue_arns: dict[str, str]
    table: str
    topic_arn: str
    inference_url: str | None = None

    def env(self) -> dict[str, str]:
        """The MLOPSKIT_* variables a deployed function gets (topology.ENV_FOR)."""
        out = {ENV_FOR["backend"]: "aws", "MLOPSKIT_REGION": self.region,
               ENV_FOR["data_store"]: self.data_bucket,
               ENV_FOR["artifact_store"]: self.artifact_bucket, ENV_FOR["table"]: self.table,
               ENV_FOR["train_queue"]: self.queue_urls["train"],
               ENV_FOR["validate_queue"]: self.queue_urls["validate"],
               ENV_FOR["topic"]: self.topic_arn}
        if self.endpoint_url:
            out["MLOPSKIT_ENDPOINT_URL"] = self.endpoint_url
        return out

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("queue_arns")
        for name, url in self.queue_urls.items():
            d[f"{name.replace('-', '_')}_url" if name.endswith("-dlq") else f"{name}_queue_url"] = url
        return d


def provision(client: Callable[[str], Any], topology: Topology | None = None, *,
              prefix: str = "mlops-kit", region: str = "us-east-1",
              endpoint_url: str | None = None) -> Resources:
    """Render the topology with boto3: what infra/ does with Pulumi, for moto."""
    topology = topology or default_topology()
    s3, sqs, ddb, sns = (client(s) for s in ("s3", "sqs", "dynamodb", "sns"))
    buckets = {st.name: f"{prefix}-{st.name}" for st in topology.stores}
    for st in topology.stores:
        kwargs = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=buckets[st.name], **kwargs)
        if st.expire_days:
            s3.put_bucket_lifecycle_configuration(Bucket=buckets[st.name], LifecycleConfiguration={
                "Rules": [{"ID": f"expire-{p.strip('/')}", "Status": "Enabled",
                           "Filter": {"Prefix": p}, "Expiration": {"Days": d}}
                          for p, d in st.expire_days.items()]})
    urls, arns = {}, {}
    for q in topology.queues:
        for name, attrs in ((q.dlq, {"MessageRetentionPeriod": str(14 * 86400)}), (q.name, None)):
            if attrs is None:
                attrs = {"VisibilityTimeout": str(topology.visibility_timeout(q.name)),
                         "RedrivePolicy": json.dumps({"deadLetterTargetArn": arns[q.dlq],
                                                      "maxReceiveCount": str(q.max_receives)})}
            urls[name] = sqs.create_queue(QueueName=f"{prefix}-{name}", Attributes=attrs)["QueueUrl"]
            arns[name] = sqs.get_queue_attributes(QueueUrl=urls[name], AttributeNames=[
                "QueueArn"])["Attributes"]["QueueArn"]
    for store in {t.store for t in topology.object_triggers}:
        triggers = [t for t in topology.object_triggers if t.store == store]
        for queue in {t.queue for t in triggers}:  # S3 may send to this queue, nobody else
            sqs.set_queue_attributes(QueueUrl=urls[queue], Attributes={"Policy": json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage", "Resource": arns[queue],
                    "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{buckets[store]}"}},
                }]})})
        s3.put_bucket_notification_configuration(
            Bucket=buckets[store], NotificationConfiguration={"QueueConfigurations": [
                {"Id": f"{t.prefix.strip('/')}-to-{t.queue}", "QueueArn": arns[t.queue],
                 "Events": ["s3:ObjectCreated:*"],
                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": t.prefix}]}}}
                for t in triggers]})
    t = topology.table
    table = f"{prefix}-{t.name}"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": t.partition_key, "KeyType": "HASH"},
                                {"AttributeName": t.sort_key, "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": t.partition_key, "AttributeType": "S"},
                                           {"AttributeName": t.sort_key, "AttributeType": "S"}])
    topic_arn = sns.create_topic(Name=f"{prefix}-{topology.topic}")["TopicArn"]
    from mlops_kit.topology import ARTIFACTS, DATA

    return Resources(region, endpoint_url, buckets[DATA], buckets[ARTIFACTS], urls, arns, table,
                     topic_arn)


# -- functions ---------------------------------------------------------------------------


def functions_dir(explicit: str | Path | None = None) -> Path:
    """functions/ next to the working directory, else next to this source checkout."""
    candidates = [Path(explicit)] if explicit else [
        Path.cwd() / "functions", Path(__file__).resolve().parents[2] / "functions"]
    for c in candidates:
        if (c / "serve.py").is_file():
            return c.resolve()
    raise FileNotFoundError(f"no functions/ directory with the handlers in {candidates}")


_loaded: dict[Path, ModuleType] = {}


def load_function(name: str, directory: str | Path | None = None) -> ModuleType:
    """Import functions/<name>.py the way Lambda does (its folder on sys.path), once."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"function name {name!r} is invalid")
    folder = functions_dir(directory)
    path = folder / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("[a-z]*.py"))
        raise FileNotFoundError(f"no function {name!r}; known: {', '.join(known)}")
    if path not in _loaded:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        spec = importlib.util.spec_from_file_location(f"mlops_kit_fn_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _loaded[path] = module
    return _loaded[path]


def reset_functions() -> None:
    """Forget the handlers' cached backend (after the environment changed)."""
    if "_wiring" in sys.modules:
        sys.modules["_wiring"].reset()
    for module in _loaded.values():
        if hasattr(module, "_api"):
            module._api = None


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_s: int = 60
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = self.invoked_function_arn or \
            f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def context_for(topology: Topology, function: str) -> LambdaContext:
    f = topology.function(function)
    return LambdaContext(function, memory_limit_in_mb=f.memory_mb, timeout_s=f.timeout_s)


# -- SQS -> function ---------------------------------------------------------------------


def sqs_record(m: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A received message as the Lambda SQS event source hands it over."""
    attrs = m.get("Attributes", {})
    return {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": {k: attrs[k] for k in ("ApproximateReceiveCount", "SentTimestamp",
                                                 "SenderId", "ApproximateFirstReceiveTimestamp")
                           if k in attrs},
            "messageAttributes": m.get("MessageAttributes", {}), "md5OfBody": m.get("MD5OfBody"),
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region}


class SqsPump:
    """The SQS event source mapping: receive a batch, invoke, delete what succeeded. Failed
    messages stay in the queue and come back after `retry_after` seconds (the visibility
    timeout; None keeps the queue's own); SQS redrives them to the DLQ after maxReceiveCount."""

    def __init__(self, sqs: Any, url: str, arn: str, handler: Callable, *, batch_size: int,
                 region: str, context: Callable[[], Any], retry_after: int | None = None) -> None:
        self.sqs, self.url, self.arn, self.handler = sqs, url, arn, handler
        self.batch_size, self.region, self.context = batch_size, region, context
        self.retry_after = retry_after
        self.delivered = self.failed = 0

    def poll_once(self, wait_seconds: int = 0) -> int:
        msgs = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=min(self.batch_size, 10),
            WaitTimeSeconds=wait_seconds, AttributeNames=["All"],
            MessageAttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return 0
        event = {"Records": [sqs_record(m, self.arn, self.region) for m in msgs]}
        try:
            out = self.handler(event, self.context())
            failed = {f["itemIdentifier"] for f in (out or {}).get("batchItemFailures", [])}
        except Exception:  # noqa: BLE001 - a crashed invocation fails the whole batch
            log.exception("invocation on %s failed", self.url.rsplit("/", 1)[-1])
            failed = {m["MessageId"] for m in msgs}
        for m in msgs:
            if m["MessageId"] in failed:
                self.failed += 1
                if self.retry_after is not None:
                    self.sqs.change_message_visibility(QueueUrl=self.url,
                                                       ReceiptHandle=m["ReceiptHandle"],
                                                       VisibilityTimeout=self.retry_after)
            else:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                self.delivered += 1
        return len(msgs)

    def drain(self, *, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.poll_once()
            if not n:
                break
            total += n
        return total


# -- HTTP gateway ------------------------------------------------------------------------


def http_api_event(method: str, raw_path: str, headers: dict[str, str], body: bytes,
                   *, source_ip: str = "127.0.0.1", host: str = "localhost") -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event ($default route and stage)."""
    path, _, query = raw_path.partition("?")
    now = datetime.now(UTC)
    text = None
    if body:
        try:
            text, b64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, b64 = base64.b64encode(body).decode(), True
    lower = {k.lower(): v for k, v in headers.items()}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": lower,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "emulated", "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lower.get("user-agent", "")},
            "requestId": uuid.uuid4().hex, "routeKey": "$default", "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        **({"body": text, "isBase64Encoded": b64} if text is not None
           else {"isBase64Encoded": False}),
    }


def make_gateway(handler: Callable, context: Callable[[], Any], host: str = "127.0.0.1",
                 port: int = 0) -> ThreadingHTTPServer:
    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug("%s %s", self.command, self.path[:100])

        def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self) -> None:
            try:
                n = int(self.headers.get("content-length") or 0)
            except ValueError:
                n = -1
            if n < 0 or n > MAX_BODY:
                self.close_connection = True
                self._send(413 if n > 0 else 400, {"content-type": "application/json"},
                           b'{"message":"Request Entity Too Large"}' if n > 0
                           else b'{"message":"Bad Request"}')
                return
            body = self.rfile.read(n) if n else b""
            event = http_api_event(self.command, self.path, dict(self.headers.items()), body,
                                   source_ip=self.client_address[0],
                                   host=self.headers.get("host", "localhost"))
            try:
                out = handler(event, context())
                payload = out.get("body") or ""
                data = base64.b64decode(payload) if out.get("isBase64Encoded") else payload.encode()
                self._send(int(out.get("statusCode", 200)), out.get("headers") or {}, data)
            except Exception:  # noqa: BLE001 - what API Gateway answers when the function fails
                log.exception("serve invocation failed")
                self._send(500, {"content-type": "application/json"},
                           b'{"message":"Internal Server Error"}')

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    server = ThreadingHTTPServer((host, port), Gateway)
    server.daemon_threads = True
    return server


# -- schedule ----------------------------------------------------------------------------

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")


def rate_seconds(expression: str) -> float:
    m = _RATE.match(expression.strip())
    if not m:
        raise ValueError(f"schedule {expression!r}: only rate(N minutes|hours|days) is emulated")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
    return int(m.group(1)) * unit


def schedule_event(rule_arn: str) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": [rule_arn], "detail": {}}


# -- the emulator ------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, *, host: str = "127.0.0.1", gateway_port: int = 0,
                 monitor_every: float | None = None, retry_after: int = 5,
                 prefix: str = "mlops-kit", region: str = "us-east-1",
                 functions: str | Path | None = None, topology: Topology | None = None) -> None:
        self.host, self.gateway_port, self.prefix, self.region = host, gateway_port, prefix, region
        self.topology = topology or default_topology()
        sched = self.topology.schedules[0]
        self.monitor_every = monitor_every or rate_seconds(sched.expression)
        self.retry_after = retry_after
        self.functions = functions_dir(functions)
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Resources:
        from moto.server import ThreadedMotoServer

        from mlops_kit.adapters.aws import clear_clients, client

        for k, v in TEST_CREDENTIALS.items():
            os.environ.setdefault(k, v)
        port = free_port(self.host)
        self.moto = ThreadedMotoServer(ip_address=self.host, port=port, verbose=False)
        self.moto.start()
        endpoint = f"http://{self.host}:{port}"
        clear_clients()
        self.client = lambda s: client(s, region=self.region, endpoint_url=endpoint)
        res = provision(self.client, self.topology, prefix=self.prefix, region=self.region,
                        endpoint_url=endpoint)
        os.environ.update(res.env())
        reset_functions()
        handlers = {f.name: load_function(f.name, self.functions) for f in self.topology.functions}
        for q in self.topology.queues:
            pump = SqsPump(self.client("sqs"), res.queue_urls[q.name], res.queue_arns[q.name],
                           handlers[q.consumer].handler, batch_size=q.batch_size,
                           region=self.region, retry_after=self.retry_after,
                           context=lambda c=q.consumer: context_for(self.topology, c))
            self._spawn(f"sqs-{q.name}", self._pump_loop, pump)
        http_fn = self.topology.http.function
        self.gateway = make_gateway(handlers[http_fn].handler,
                                    lambda: context_for(self.topology, http_fn),
                                    self.host, self.gateway_port)
        self._spawn("gateway", self.gateway.serve_forever)
        sched = self.topology.schedules[0]
        self._spawn("schedule", self._schedule_loop, handlers[sched.function].handler,
                    sched.function)
        res.inference_url = f"http://{self.host}:{self.gateway.server_address[1]}"
        self.resources = res
        return res

    def _spawn(self, name: str, target: Callable, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _pump_loop(self, pump: SqsPump) -> None:
        while not self.stop_event.is_set():
            try:
                if not pump.poll_once(wait_seconds=1):
                    self.stop_event.wait(0.2)
            except Exception:  # noqa: BLE001 - keep polling, like the event source mapping
                log.exception("polling %s failed", pump.url)
                self.stop_event.wait(1)

    def _schedule_loop(self, handler: Callable, function: str) -> None:
        rule = f"arn:aws:events:{self.region}:{ACCOUNT}:rule/{self.prefix}-{function}"
        while not self.stop_event.wait(self.monitor_every):
            try:
                out = handler(schedule_event(rule), context_for(self.topology, function))
                log.info("%s: %s", function, out)
            except Exception:  # noqa: BLE001 - a failed run is retried on the next tick
                log.exception("scheduled %s failed", function)

    def stop(self) -> None:
        self.stop_event.set()
        if hasattr(self, "gateway"):
            self.gateway.shutdown()
            self.gateway.server_close()
        for t in self._threads:
            if t.name != "gateway":
                t.join(timeout=5)
        if hasattr(self, "moto"):
            self.moto.stop()


@contextmanager
def in_process(topology: Topology | None = None, *, prefix: str = "mlops-kit",
               region: str = "us-east-1", extra_env: dict[str, str] | None = None
               ) -> Iterator[Resources]:
    """The same resources under moto's in-process mock (tests, notebooks): the mock starts
    before any client, the handlers see MLOPSKIT_* for it, everything is restored after."""
    from moto import mock_aws

    from mlops_kit.adapters.aws import clear_clients, client

    saved = dict(os.environ)
    os.environ.update({**TEST_CREDENTIALS, "AWS_DEFAULT_REGION": region})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    clear_clients()
    try:
        with mock_aws():
            res = provision(lambda s: client(s, region=region), topology, prefix=prefix,
                            region=region)
            os.environ.update({**res.env(), **(extra_env or {})})
            reset_functions()
            yield res
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clear_clients()
        reset_functions()
