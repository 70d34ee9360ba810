"""The composition root: settings -> adapters -> a lifecycle Context / ModelService.

The only place that chooses a backend. Handlers, the CLI and the local server call into here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_kit.adapters.local import FileNotifier, FileObjectStore, SqliteQueue, SqliteTable
from mlops_kit.clock import SystemClock
from mlops_kit.core.context import Context
from mlops_kit.core.serving.capture import CaptureBuffer
from mlops_kit.ports import Clock, Queue
from mlops_kit.settings import Settings

if TYPE_CHECKING:
    from mlops_kit.core.serving.service import ModelService


@dataclass
class Backend:
    ctx: Context
    validate_queue: Queue
    settings: Settings

    def service(self, *, capture: bool | None = None) -> ModelService:
        # Imported here: onnxruntime is only needed by serving, not by validate/monitor.
        from mlops_kit.core.serving.service import ModelService

        s = self.settings
        buffer = None
        if s.capture if capture is None else capture:
            buffer = CaptureBuffer(self.ctx.store, self.ctx.clock, max_rows=s.capture_max_rows,
                                   max_age_s=s.capture_max_age_s)
        return ModelService(self.ctx.store, self.ctx.registry, capture=buffer,
                            notifier=self.ctx.notifier, refresh_seconds=s.refresh_seconds)


def local_backend(settings: Settings, clock: Clock | None = None) -> Backend:
    root = Path(settings.workspace).resolve()
    root.mkdir(parents=True, exist_ok=True)
    store = FileObjectStore(root / "store")
    table = SqliteTable(root / "registry.db")
    queues_db = root / "queues.db"
    validate_q = SqliteQueue(queues_db, "validate", visibility_timeout=settings.validate_visibility_s,
                             max_receives=settings.max_receives)
    train_q = SqliteQueue(queues_db, "train", visibility_timeout=settings.train_visibility_s,
                          max_receives=settings.max_receives)
    notifier = FileNotifier(root / "notifications.jsonl")
    ctx = Context(store=store, table=table, train_queue=train_q, notifier=notifier,
                  clock=clock or SystemClock())
    return Backend(ctx, validate_q, settings)


def aws_backend(settings: Settings, clock: Clock | None = None) -> Backend:
    from mlops_kit.adapters.aws.factory import build_aws_backend

    return build_aws_backend(settings, clock or SystemClock())


def azure_backend(settings: Settings, clock: Clock | None = None) -> Backend:
    from mlops_kit.adapters.azure.factory import build

    parts = build(settings)
    ctx = Context(store=parts["store"], table=parts["table"], train_queue=parts["train_queue"],
                  notifier=parts["notifier"], clock=clock or SystemClock())
    return Backend(ctx, parts["validate_queue"], settings)


def build_backend(settings: Settings | None = None, clock: Clock | None = None) -> Backend:
    from mlops_kit.settings import get_settings

    settings = settings or get_settings()
    if settings.backend == "aws":
        return aws_backend(settings, clock)
    if settings.backend == "azure":
        return azure_backend(settings, clock)
    return local_backend(settings, clock)
