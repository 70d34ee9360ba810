"""Ports: what the core needs from the outside world. Adapters (local, aws, ...) implement them.

The core depends on these Protocols only; it never imports boto3, sqlite3 or os.environ.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    version_id: str | None = None
    last_modified: datetime | None = None


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key -> bytes store with prefixes (a bucket, or a folder locally)."""

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo: ...
    def put_file(self, key: str, path: str) -> ObjectInfo: ...
    def get(self, key: str) -> bytes: ...
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream (for bounded-memory reads of big files)."""
        ...
    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object (end past the size: up to the end); a ranged
        GET, so a chunk of a big file is read without the bytes before it."""
        ...
    def head(self, key: str) -> ObjectInfo: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def copy(self, src: str, dst: str) -> ObjectInfo: ...
    def delete(self, key: str) -> None: ...


# -- key-value table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Absent:
    """Condition: the item must not exist yet."""


@dataclass(frozen=True)
class Equals:
    """Condition: the item exists and item[attr] == value (value None: attribute missing)."""

    attr: str
    value: Any


@dataclass(frozen=True)
class AbsentOrEquals:
    """Condition: the item does not exist, or item[attr] == value."""

    attr: str
    value: Any


Condition = Absent | Equals | AbsentOrEquals | None


@dataclass(frozen=True)
class Put:
    pk: str
    sk: str
    item: dict[str, Any]
    condition: Condition = None


@dataclass(frozen=True)
class Delete:
    pk: str
    sk: str
    condition: Condition = None


@runtime_checkable
class KeyValueTable(Protocol):
    """Items addressed by (pk, sk), sorted by sk within a pk. Values are JSON-like."""

    def get(self, pk: str, sk: str) -> dict[str, Any] | None: ...
    def put(self, pk: str, sk: str, item: dict[str, Any], condition: Condition = None) -> None:
        """Raises errors.ConditionFailed when the condition does not hold."""
        ...
    def delete(self, pk: str, sk: str, condition: Condition = None) -> None: ...
    def query(
        self, pk: str, sk_prefix: str = "", *, reverse: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Items of one pk whose sk starts with sk_prefix, sorted by sk. Each carries pk/sk."""
        ...
    def transact(self, ops: Sequence[Put | Delete]) -> None:
        """All-or-nothing; raises errors.ConditionFailed if any condition fails."""
        ...


# -- queue ------------------------------------------------------------------------------------


@dataclass
class Message:
    id: str
    body: dict[str, Any]
    receipt: str
    receive_count: int = 1
    attributes: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Queue(Protocol):
    """At-least-once queue with visibility timeout and a dead-letter queue."""

    name: str

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> str: ...
    def receive(
        self, max_messages: int = 1, *, visibility_timeout: int | None = None, wait_seconds: int = 0
    ) -> list[Message]: ...
    def ack(self, message: Message) -> None:
        """Delete a processed message."""
        ...
    def release(self, message: Message, *, delay_seconds: int = 0) -> None:
        """Make a message visible again (processing failed; will count as a receive)."""
        ...
    def depth(self) -> int: ...
    def dead_letters(self) -> list[Message]: ...


@runtime_checkable
class Notifier(Protocol):
    def publish(self, subject: str, message: dict[str, Any]) -> None: ...


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...


# -- training engines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobHandle:
    """A training job handed to an engine (AWS Batch; a separate process locally)."""

    engine: str
    name: str  # the engine's job name, derived from the run key
    job_id: str
    created: bool  # False: a job with this name already existed (a duplicate submit)


@dataclass(frozen=True)
class JobState:
    """A job's state change as an engine reports it (Batch Job State Change; a process exit)."""

    engine: str
    name: str
    job_id: str
    status: str  # SUBMITTED | PENDING | RUNNABLE | STARTING | RUNNING | SUCCEEDED | FAILED
    reason: str | None = None  # why it stopped (the engine's words)
    env: dict[str, str] = field(default_factory=dict)  # the job's environment (model, run id)
    attempts: int = 0


@runtime_checkable
class JobRunner(Protocol):
    """Runs one training job outside the queue consumer. `submit` is idempotent by name: a
    redelivered message finds the job it already started instead of starting a second."""

    engine: str

    def submit(self, name: str, env: dict[str, str]) -> JobHandle: ...


# -- experiments --------------------------------------------------------------------------------


@runtime_checkable
class TrialRunner(Protocol):
    """Runs a search's trials and yields one outcome dict per trial (any order) as each ends.
    core/training/trials.py has the in-process and the worker-process runners; a Batch
    container or another engine can bring its own."""

    def __call__(self, spec: Any, frame: Any, trials: list[dict[str, Any]], *,
                 max_seconds: float | None = None) -> Iterator[dict[str, Any]]: ...


@runtime_checkable
class ExperimentTracker(Protocol):
    """An outside experiment tracker (MLflow) that mirrors finished runs; optional."""

    def log_run(self, run: dict[str, Any], trials: list[dict[str, Any]],
                outcome: dict[str, Any], model_onnx: bytes | None) -> str | None:
        """Log a finished run and its trials (idempotent); returns the tracker's run id."""
        ...


@dataclass(frozen=True)
class Adapters:
    """What an adapter factory (adapters/<backend>/factory.py) hands the composition root."""

    store: ObjectStore
    table: KeyValueTable
    validate_queue: Queue
    train_queue: Queue
    notifier: Notifier
    jobs: JobRunner | None = None  # the batch training engine, when one is configured
    scoring_jobs: JobRunner | None = None  # the batch engine's scoring job, likewise
