"""Settings -> the embedded local adapters (files, SQLite table, SQLite queues, a JSONL notifier)
under the workspace folder. State survives restarts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlops_kit.adapters.local.notifier import FileNotifier
from mlops_kit.adapters.local.process_runner import ProcessRunner
from mlops_kit.adapters.local.queue import SqliteQueue
from mlops_kit.adapters.local.store import FileObjectStore
from mlops_kit.adapters.local.table import SqliteTable
from mlops_kit.core import outcomes
from mlops_kit.ports import Adapters, Message, Notifier
from mlops_kit.topology import Topology

if TYPE_CHECKING:  # the serve function builds its backend from light_settings (no pydantic)
    from mlops_kit.settings import Settings


def build(settings: Settings, topology: Topology) -> Adapters:
    root = Path(settings.workspace).resolve()
    root.mkdir(parents=True, exist_ok=True)
    queues_db = root / "queues.db"
    notifier = FileNotifier(root / "notifications.jsonl")
    return Adapters(
        store=FileObjectStore(root / "store"),
        table=SqliteTable(root / "registry.db"),
        validate_queue=SqliteQueue(queues_db, "validate",
                                   visibility_timeout=settings.validate_visibility_s,
                                   max_receives=settings.max_receives,
                                   on_dead_letter=dead_letter_alert(notifier, "validate")),
        train_queue=SqliteQueue(queues_db, "train", visibility_timeout=settings.train_visibility_s,
                                max_receives=settings.max_receives,
                                on_dead_letter=dead_letter_alert(notifier, "train")),
        notifier=notifier,
        jobs=process_runner(settings, {"MLOPSKIT_BACKEND": "local", "MLOPSKIT_WORKSPACE": str(root)})
        if settings.job_runner in (None, "process") else None,
    )


def dead_letter_alert(notifier: Notifier, queue: str):
    """What the cloud's DLQ-depth alarm does: tell an operator a message gave up retrying."""

    def alert(msg: Message) -> None:
        outcomes.dead_letter_alert(notifier, queue, message_id=msg.id, attempts=msg.receive_count,
                               body=msg.body)

    return alert


def process_runner(settings: Settings, env: dict[str, str]) -> ProcessRunner:
    """Large training jobs in a separate process (`python -m mlops_kit.train_job`)."""
    return ProcessRunner(Path(settings.workspace).resolve() / "jobs",
                         attempts=settings.batch_attempts, timeout_s=settings.batch_timeout_s,
                         env=env)
