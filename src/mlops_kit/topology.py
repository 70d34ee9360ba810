"""The cloud-neutral description of a deployment: one source of truth.

infra/ renders it with pulumi-aws; `mlops-kit emulate` renders it against moto; the tests
assert both against it. Nothing here names a cloud service: a "store" is a bucket on AWS, a
"queue" is SQS, the "table" is DynamoDB, a "topic" is SNS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Access = Literal["read", "write", "readwrite"]


@dataclass(frozen=True)
class Store:
    name: str
    prefixes: tuple[str, ...]
    expire_days: dict[str, int] = field(default_factory=dict)  # prefix -> days (lifecycle)


@dataclass(frozen=True)
class Queue:
    name: str
    consumer: str  # function name
    max_receives: int = 3
    batch_size: int = 10

    @property
    def dlq(self) -> str:
        return f"{self.name}-dlq"


@dataclass(frozen=True)
class Table:
    name: str = "registry"
    partition_key: str = "pk"
    sort_key: str = "sk"


@dataclass(frozen=True)
class StoreGrant:
    store: str
    prefix: str
    access: Access


@dataclass(frozen=True)
class Function:
    name: str
    handler: str  # module.function under functions/
    package: Literal["zip", "image"]
    memory_mb: int
    timeout_s: int
    reserved_concurrency: int | None = None
    stores: tuple[StoreGrant, ...] = ()
    table: Access | None = None
    sends_to: tuple[str, ...] = ()  # queues it may send to
    publishes: bool = False  # may publish to the alerts topic
    light: bool = True  # imports no sklearn (serving / monitoring / validation)


@dataclass(frozen=True)
class ObjectCreatedTrigger:
    store: str
    prefix: str
    queue: str


@dataclass(frozen=True)
class ScheduleTrigger:
    function: str
    expression: str  # rate(...) or cron(...)


@dataclass(frozen=True)
class HttpTrigger:
    function: str
    routes: tuple[tuple[str, str], ...]  # (method, path)


@dataclass(frozen=True)
class Topology:
    stores: tuple[Store, ...]
    queues: tuple[Queue, ...]
    table: Table
    functions: tuple[Function, ...]
    object_triggers: tuple[ObjectCreatedTrigger, ...]
    schedules: tuple[ScheduleTrigger, ...]
    http: HttpTrigger
    topic: str = "alerts"

    def function(self, name: str) -> Function:
        return next(f for f in self.functions if f.name == name)

    def queue(self, name: str) -> Queue:
        return next(q for q in self.queues if q.name == name)

    def store(self, name: str) -> Store:
        return next(s for s in self.stores if s.name == name)

    def store_for_prefix(self, prefix: str) -> str:
        return next(s.name for s in self.stores if prefix in s.prefixes)

    def visibility_timeout(self, queue: str) -> int:
        """SQS guidance: at least 6x the consumer's timeout, so a slow batch is not redelivered."""
        return 6 * self.function(self.queue(queue).consumer).timeout_s


DATA, ARTIFACTS = "data", "artifacts"


def default_topology(schedule: str = "rate(1 hour)") -> Topology:
    r, w, rw = "read", "write", "readwrite"
    return Topology(
        stores=(
            Store(DATA, ("specs/", "datasets/", "quarantine/", "labels/"),
                  expire_days={"quarantine/": 90}),
            Store(ARTIFACTS, ("models/", "captures/", "reports/"),
                  expire_days={"captures/": 30}),
        ),
        queues=(Queue("validate", consumer="validate"), Queue("train", consumer="train",
                                                               batch_size=1)),
        table=Table(),
        functions=(
            Function(
                "validate", "validate.handler", "zip", memory_mb=1024, timeout_s=120,
                stores=(StoreGrant(DATA, "specs/", r), StoreGrant(DATA, "datasets/", r),
                        StoreGrant(DATA, "labels/", r), StoreGrant(DATA, "quarantine/", w),
                        StoreGrant(ARTIFACTS, "reports/", w)),
                table=rw, sends_to=("train",), publishes=True,
            ),
            Function(
                "train", "train.handler", "image", memory_mb=3008, timeout_s=900,
                reserved_concurrency=2, light=False,
                stores=(StoreGrant(DATA, "specs/", r), StoreGrant(DATA, "datasets/", r),
                        StoreGrant(ARTIFACTS, "reports/", r), StoreGrant(ARTIFACTS, "models/", rw)),
                table=rw, publishes=True,
            ),
            Function(
                "serve", "serve.handler", "zip", memory_mb=1024, timeout_s=30,
                stores=(StoreGrant(ARTIFACTS, "models/", r), StoreGrant(ARTIFACTS, "captures/", w)),
                table=r, publishes=True,
            ),
            Function(
                "monitor", "monitor.handler", "zip", memory_mb=2048, timeout_s=600,
                # captures/ rw: it compacts closed hours to captures/<model>/parquet/ (Put only)
                stores=(StoreGrant(ARTIFACTS, "captures/", rw), StoreGrant(ARTIFACTS, "models/", r),
                        StoreGrant(DATA, "labels/", r), StoreGrant(DATA, "datasets/", r),
                        StoreGrant(DATA, "specs/", r), StoreGrant(ARTIFACTS, "reports/", rw)),
                table=rw, sends_to=("train",), publishes=True,
            ),
        ),
        object_triggers=(
            ObjectCreatedTrigger(DATA, "datasets/", "validate"),
            ObjectCreatedTrigger(DATA, "labels/", "validate"),
        ),
        schedules=(ScheduleTrigger("monitor", schedule),),
        http=HttpTrigger("serve", (
            ("POST", "/v1/models/{model}:predict"), ("GET", "/v1/models/{model}"),
            ("POST", "/v2/models/{model}/infer"), ("GET", "/v2/models/{model}"),
            ("GET", "/v2/models/{model}/ready"), ("GET", "/v2/health/ready"),
            ("GET", "/v2/health/live"),
        )),
    )


# Environment variable each function gets, per resource (names from settings.Settings).
ENV_FOR = {
    "data_store": "MLOPSKIT_DATA_BUCKET",
    "artifact_store": "MLOPSKIT_ARTIFACT_BUCKET",
    "table": "MLOPSKIT_TABLE_NAME",
    "train_queue": "MLOPSKIT_TRAIN_QUEUE_URL",
    "validate_queue": "MLOPSKIT_VALIDATE_QUEUE_URL",
    "topic": "MLOPSKIT_TOPIC_ARN",
    "backend": "MLOPSKIT_BACKEND",
}

# Which ENV_FOR entry carries each store's bucket name and each queue's URL (used by infra/ to
# set function environments by looping over the topology instead of naming resources again).
STORE_ENV = {DATA: ENV_FOR["data_store"], ARTIFACTS: ENV_FOR["artifact_store"]}
QUEUE_ENV = {"validate": ENV_FOR["validate_queue"], "train": ENV_FOR["train_queue"]}
