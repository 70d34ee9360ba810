"""The cloud-neutral description of a deployment: one source of truth.

infra/ renders it with pulumi-aws; `mlops-kit emulate` renders it against moto; the tests
assert both against it. A "store" is a bucket on AWS, a "queue" is SQS, the "table" is
DynamoDB, a "topic" is SNS. What each function may do is declared here in the ports'
vocabulary (read/write a prefix, list it, probe it for a missing key; get/query/put/delete in
the table; send to a queue; publish) and `mlops_kit.iam.iam_policy` renders it into the one
IAM policy document per function that both the Pulumi program and the IAM-enforced emulation
use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mlops_kit.core.layout import (
    ARTIFACT_PREFIXES,
    CAPTURES,
    DATA_PREFIXES,
    DATASETS,
    HEALTH,
    LABELS,
    MODELS,
    PREDICTIONS,
    QUARANTINE,
    REPORTS,
    SCORING,
    SPECS,
)

Access = Literal["read", "write", "readwrite"]
TableOp = Literal["get", "query", "put", "delete"]  # transactions are puts and deletes


@dataclass(frozen=True)
class Store:
    name: str
    prefixes: tuple[str, ...]
    expire_days: dict[str, int] = field(default_factory=dict)  # prefix -> days (lifecycle)
    # Stores are versioned; overwritten/deleted versions expire after this many days (None:
    # kept, e.g. datasets, whose version ids the registry's lineage records).
    noncurrent_days: int | None = None


@dataclass(frozen=True)
class Queue:
    name: str
    consumer: str  # function name
    max_receives: int = 3
    batch_size: int = 10
    # At most this many consumer instances at once (the event source mapping's cap; >= 2).
    # It bounds a consumer without reserved concurrency, which new accounts cannot spare.
    max_concurrency: int | None = None

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
    """What a function's code does under one prefix of a store (nothing more is granted)."""

    store: str
    prefix: str
    access: Access
    match: str = "*"  # which keys under the prefix (a glob; "*" is every key)
    lists: bool = False  # lists keys under the prefix
    # asks whether a key exists (ObjectStore.exists), or reads a key that may be gone (a
    # missing upload is a final NotFound, not a retried denial): on S3 a one-key listing with
    # the key as prefix, so s3:ListBucket conditioned on this prefix is enough (S3 answers a
    # GET/HEAD of a missing key with 403 to a caller that may not list the whole bucket; the
    # adapter then lists the one key to tell missing from denied)
    probes: bool = False
    multipart: bool = False  # managed transfers (upload_file, copies over 5 GB) that may abort


@dataclass(frozen=True)
class Function:
    name: str
    handler: str  # module.function under functions/
    package: Literal["zip", "image"]
    memory_mb: int
    timeout_s: int
    stores: tuple[StoreGrant, ...] = ()
    table: tuple[TableOp, ...] = ()
    sends_to: tuple[str, ...] = ()  # queues it may send to
    publishes: bool = False  # may publish to the alerts topic
    light: bool = True  # imports no sklearn (serving / monitoring / validation)


@dataclass(frozen=True)
class BatchJob:
    """A container job on the batch engine (AWS Batch on Fargate): training that outgrew the
    train function. Same image and entry point family as `train`; its grants use the
    functions' vocabulary, so its role's policy is rendered the way theirs is.

    `retry_on` lists the infrastructure reasons an attempt is retried for (on AWS, Batch
    `evaluateOnExit` patterns); exit code `retry_exit_code` is the job's own transient fault.
    Anything else is final. `reports_to` is the queue its state changes go to."""

    name: str
    command: tuple[str, ...]
    vcpu: float
    memory_mb: int
    timeout_s: int
    attempts: int
    reports_to: str
    submitted_by: str  # the function that may submit it
    retry_on: tuple[tuple[str, str], ...] = ()
    retry_exit_code: int = 75
    stores: tuple[StoreGrant, ...] = ()
    table: tuple[TableOp, ...] = ()
    sends_to: tuple[str, ...] = ()
    publishes: bool = False
    light: bool = False


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
    batch_jobs: tuple[BatchJob, ...] = ()

    def batch_job(self, name: str) -> BatchJob:
        return next(j for j in self.batch_jobs if j.name == name)

    def principal(self, name: str) -> Function | BatchJob:
        """A function or a batch job by name: whatever a policy is rendered for."""
        principals: tuple[Function | BatchJob, ...] = (*self.functions, *self.batch_jobs)
        return next(p for p in principals if p.name == name)

    def function(self, name: str) -> Function:
        return next(f for f in self.functions if f.name == name)

    def queue(self, name: str) -> Queue:
        return next(q for q in self.queues if q.name == name)

    def store(self, name: str) -> Store:
        return next(s for s in self.stores if s.name == name)

    def store_for_prefix(self, prefix: str) -> str:
        return next(s.name for s in self.stores if prefix in s.prefixes)

    def consumes(self, function: str) -> tuple[str, ...]:
        return tuple(q.name for q in self.queues if q.consumer == function)

    def visibility_timeout(self, queue: str) -> int:
        """SQS guidance: at least 6x the consumer's timeout, so a slow batch is not redelivered."""
        return 6 * self.function(self.queue(queue).consumer).timeout_s


DATA, ARTIFACTS = "data", "artifacts"


def default_topology(schedule: str = "rate(1 hour)", *, batch: bool = False) -> Topology:
    """The deployment. batch=True adds training on the batch engine: the job, the queue its
    state changes land in and the light function that settles them (docs/training-engines.md).
    """
    base = _base_topology(schedule)
    return with_batch(base) if batch else base


def _base_topology(schedule: str) -> Topology:
    r: Access = "read"
    w: Access = "write"
    rw: Access = "readwrite"
    return Topology(
        stores=(
            Store(DATA, DATA_PREFIXES, expire_days={QUARANTINE: 90}),
            Store(ARTIFACTS, ARTIFACT_PREFIXES, expire_days={CAPTURES: 30}, noncurrent_days=30),
        ),
        queues=(Queue("validate", consumer="validate"),
                Queue("train", consumer="train", batch_size=1, max_concurrency=2)),
        table=Table(),
        # Each grant is what the code calls (tests/infra/test_policy_coverage.py lists the
        # calls): load_spec probes specs/<model>.yaml|.yml|.json (a listing of that one key);
        # an upload (dataset, labels) may be gone when its job runs: probed so that is a final
        # NotFound; a quarantine copy is read back (head) after it is written; the monitor
        # writes only retrain-*.csv datasets.
        functions=(
            Function(
                "validate", "validate.handler", "zip", memory_mb=1024, timeout_s=120,
                stores=(StoreGrant(DATA, SPECS, r, probes=True),
                        StoreGrant(DATA, DATASETS, r, probes=True),
                        # lists: a labels upload is checked against the earlier files (ids
                        # relabelled differently are reported, issue 23)
                        StoreGrant(DATA, LABELS, r, probes=True, lists=True),
                        StoreGrant(DATA, QUARANTINE, rw, multipart=True),
                        StoreGrant(ARTIFACTS, REPORTS, w),
                        # batch scoring: the file and its options, the version's model, and
                        # the output (a rerun reads the manifest back)
                        StoreGrant(DATA, SCORING, r, probes=True),
                        StoreGrant(DATA, PREDICTIONS, rw, probes=True),
                        StoreGrant(ARTIFACTS, MODELS, r),
                        # ... and, with {"capture": true}, a sample of the scored rows captured
                        # as requests are (Put only, like serve)
                        StoreGrant(ARTIFACTS, CAPTURES, w)),
                # a fanned-out scoring job's chunks are counted in the table (a conditional
                # transaction: put) and read back one get each by the one that completes the
                # set; it sends to its own queue: one message per chunk (core/scoring/fanout.py)
                table=("get", "put"), sends_to=("train", "validate"), publishes=True,
            ),
            Function(
                "train", "train.handler", "image", memory_mb=3008, timeout_s=900, light=False,
                stores=(StoreGrant(DATA, SPECS, r, probes=True),
                        StoreGrant(DATA, DATASETS, r, probes=True),
                        StoreGrant(ARTIFACTS, REPORTS, r),
                        StoreGrant(ARTIFACTS, MODELS, rw)),
                # sends to its own queue: an experiment fans its trials out as messages
                table=("get", "query", "put"), publishes=True, sends_to=("train",),
            ),
            Function(
                "serve", "serve.handler", "zip", memory_mb=1024, timeout_s=30,
                stores=(StoreGrant(ARTIFACTS, MODELS, r),
                        StoreGrant(ARTIFACTS, CAPTURES, w),
                        # the read-only console (/ui/): the monitoring reports' HTML only
                        StoreGrant(ARTIFACTS, REPORTS, r, match="*/monitoring/*.html"),
                        # ... and the serving health counters of a version (issue 23)
                        StoreGrant(ARTIFACTS, HEALTH, r, lists=True)),
                # query: the console lists versions, history, aliases and monitoring runs
                table=("get", "query"), publishes=True,
            ),
            Function(
                "monitor", "monitor.handler", "zip", memory_mb=2048, timeout_s=600,
                stores=(StoreGrant(ARTIFACTS, CAPTURES, r, lists=True),
                        # the monitoring policy as applied now (issue 23), not the champion's
                        StoreGrant(DATA, SPECS, r, probes=True),
                        # closed hours compacted to captures/<model>/parquet/ (Put only)
                        StoreGrant(ARTIFACTS, CAPTURES, w, match="*/parquet/*"),
                        StoreGrant(ARTIFACTS, MODELS, r),
                        StoreGrant(DATA, LABELS, r, lists=True),
                        StoreGrant(DATA, DATASETS, r),
                        StoreGrant(DATA, DATASETS, w, match="*/retrain-*.csv",
                                   multipart=True),
                        StoreGrant(ARTIFACTS, REPORTS, w)),
                table=("get", "query", "put", "delete"), publishes=True,
            ),
        ),
        object_triggers=(
            ObjectCreatedTrigger(DATA, DATASETS, "validate"),
            ObjectCreatedTrigger(DATA, LABELS, "validate"),
            ObjectCreatedTrigger(DATA, SCORING, "validate"),
        ),
        schedules=(ScheduleTrigger("monitor", schedule),),
        http=HttpTrigger("serve", (
            ("POST", "/v1/models/{model}:predict"), ("GET", "/v1/models/{model}"),
            ("POST", "/v2/models/{model}/infer"), ("GET", "/v2/models/{model}"),
            ("GET", "/v2/models/{model}/ready"), ("GET", "/v2/health/ready"),
            ("GET", "/v2/health/live"),
            # a pinned version (issue 23): any registered version, loaded on demand
            ("POST", "/v1/models/{model}/versions/{version}:predict"),
            ("POST", "/v2/models/{model}/versions/{version}/infer"),
            ("GET", "/v2/models/{model}/versions/{version}"),
            ("GET", "/v2/models/{model}/versions/{version}/ready"),
            ("GET", "/ui"), ("GET", "/ui/{proxy+}"),  # the read-only console
        )),
    )


# -- training on the batch engine (issue 15) ---------------------------------------------------
TRAIN_JOB, SCORE_JOB, JOBS_QUEUE = "train-large", "score-large", "jobs"
# Attempts retried for infrastructure reasons only (Batch evaluateOnExit patterns): Fargate Spot
# took the task back (the task's stoppedReason, docs.aws.amazon.com/AmazonECS/latest/
# developerguide/fargate-capacity-providers.html), the Fargate task could not start, the image
# could not be pulled. (Not "Host EC2*": the engine is Fargate, there is no EC2 host; Batch
# takes at most 5 conditions, so each one must be able to match.)
BATCH_RETRY_ON = (("onStatusReason", "Your Spot Task was interrupted*"),
                  ("onStatusReason", "ResourceInitializationError*"),
                  ("onReason", "CannotPullContainerError*"))


def with_batch(t: Topology, *, vcpu: float = 4, memory_mb: int = 16384, timeout_s: int = 4 * 3600,
               attempts: int = 2) -> Topology:
    """`t` plus the batch training job (what `train` may submit), the `jobs` queue and the
    `jobs` function that turns the engine's state changes into registry states + alerts."""
    train = t.function("train")
    job = BatchJob(
        TRAIN_JOB, ("python3", "-m", "mlops_kit.train_job"), vcpu=vcpu, memory_mb=memory_mb,
        timeout_s=timeout_s, attempts=attempts, reports_to=JOBS_QUEUE, submitted_by=train.name,
        retry_on=BATCH_RETRY_ON, stores=train.stores, table=train.table,
        sends_to=train.sends_to, publishes=train.publishes)
    # on_job_state: get_version, then complete_version (a conditional put); a scoring job's
    # record likewise (core/scoring/batch.on_job_state)
    settle = Function("jobs", "jobs.handler", "zip", memory_mb=512, timeout_s=60,
                      table=("get", "put"), publishes=True)
    return replace(t, functions=(*t.functions, settle),
                   queues=(*t.queues, Queue(JOBS_QUEUE, consumer="jobs")),
                   batch_jobs=(*t.batch_jobs, job, scoring_job(t, vcpu=vcpu, memory_mb=memory_mb,
                                                               timeout_s=timeout_s,
                                                               attempts=attempts)))


def scoring_job(t: Topology, *, vcpu: float, memory_mb: int, timeout_s: int,
                attempts: int) -> BatchJob:
    """Batch scoring past what functions can do (core/scoring/batch.py): submitted by
    `validate` (which routes scoring uploads), the same image and entry point as training
    (MLOPSKIT_JOB_KIND=score). Its grants are the scoring path's only: read the file and its
    options (scoring/), the version's model; write parts, rejects and the manifest
    (predictions/, read back on a rerun); quarantine an unreadable file; captures (Put only);
    the job record and the registry in the table (get, and the conditional put that ends it).
    No queue: the whole file is scored in one container, nothing is fanned out."""
    r: Access = "read"
    w: Access = "write"
    rw: Access = "readwrite"
    validate = t.function("validate")
    return BatchJob(
        SCORE_JOB, ("python3", "-m", "mlops_kit.train_job"), vcpu=vcpu, memory_mb=memory_mb,
        timeout_s=timeout_s, attempts=attempts, reports_to=JOBS_QUEUE,
        submitted_by=validate.name, retry_on=BATCH_RETRY_ON,
        stores=(StoreGrant(DATA, SCORING, r, probes=True),
                StoreGrant(DATA, PREDICTIONS, rw, probes=True),
                StoreGrant(DATA, QUARANTINE, rw, multipart=True),
                StoreGrant(ARTIFACTS, MODELS, r),
                StoreGrant(ARTIFACTS, CAPTURES, w)),
        table=("get", "put"), publishes=True)


def batch_retry_strategy(job: BatchJob, attempts: int | None = None) -> dict[str, Any]:
    """AWS Batch's retryStrategy for a job (job definition and submit_job alike): RETRY on the
    infrastructure reasons and the job's transient exit code, EXIT on anything else. Batch
    retries what matches no condition, hence the catch-all; it takes at most 5 conditions."""
    rules = [{key: pattern, "action": "RETRY"} for key, pattern in job.retry_on]
    rules.append({"onExitCode": str(job.retry_exit_code), "action": "RETRY"})
    rules.append({"onStatusReason": "*", "action": "EXIT"})
    if len(rules) > 5:
        raise ValueError(f"batch job {job.name}: at most 5 evaluateOnExit conditions")
    return {"attempts": attempts or job.attempts, "evaluateOnExit": rules}


def batch_container_properties(job: BatchJob, image: str, execution_role: str, job_role: str,
                               environment: Mapping[str, str],
                               log_options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Fargate job definition's containerProperties (the Pulumi program and the emulator
    alike): the job's command and size, its two roles, no public IP."""
    return {
        "image": image, "command": list(job.command),
        "resourceRequirements": [{"type": "VCPU", "value": f"{job.vcpu:g}"},
                                 {"type": "MEMORY", "value": str(job.memory_mb)}],
        "executionRoleArn": execution_role, "jobRoleArn": job_role,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "networkConfiguration": {"assignPublicIp": "DISABLED"},
        "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        "readonlyRootFilesystem": False,  # the trainer spools Parquet to /tmp
        "logConfiguration": {"logDriver": "awslogs",
                             **({"options": dict(log_options)} if log_options else {})},
    }


def batch_event_pattern(job_queue_arn: str) -> dict[str, Any]:
    """The EventBridge pattern of a queue's final job states (the only ones that settle a
    version; intermediate states would only cost invocations)."""
    return {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"],
            "detail": {"jobQueue": [job_queue_arn], "status": ["SUCCEEDED", "FAILED"]}}


# Environment variable each function gets, per resource (names from settings.Settings).
ENV_FOR = {
    "data_store": "MLOPSKIT_DATA_BUCKET",
    "artifact_store": "MLOPSKIT_ARTIFACT_BUCKET",
    "table": "MLOPSKIT_TABLE_NAME",
    "train_queue": "MLOPSKIT_TRAIN_QUEUE_URL",
    "validate_queue": "MLOPSKIT_VALIDATE_QUEUE_URL",
    "topic": "MLOPSKIT_TOPIC_ARN",
    "backend": "MLOPSKIT_BACKEND",
    "stack": "MLOPSKIT_STACK",
    "jobs_queue": "MLOPSKIT_JOBS_QUEUE_URL",
    "batch_job_queue": "MLOPSKIT_BATCH_JOB_QUEUE",
    "batch_job_definition": "MLOPSKIT_BATCH_JOB_DEFINITION",
    # the scoring job's definition (same job queue): validate submits to it
    "score_job_definition": "MLOPSKIT_SCORE_JOB_DEFINITION",
}

# Which ENV_FOR entry carries each store's bucket name and each queue's URL (used by infra/ to
# set function environments by looping over the topology instead of naming resources again).
STORE_ENV = {DATA: ENV_FOR["data_store"], ARTIFACTS: ENV_FOR["artifact_store"]}
QUEUE_ENV = {"validate": ENV_FOR["validate_queue"], "train": ENV_FOR["train_queue"],
             JOBS_QUEUE: ENV_FOR["jobs_queue"]}
