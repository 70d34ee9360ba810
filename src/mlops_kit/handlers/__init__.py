"""The cloud-neutral handler layer: what an entry point does once the platform has delivered
its event, whatever the cloud. The AWS Lambda functions (functions/*.py), the Azure Functions
app (functions/azure/function_app.py), the local worker and the emulators call into here; each
cloud's shell only translates its event objects.

- `blob_events`: the objects a validate-queue message announces (an S3 notification, Event
  Grid BlobCreated in the Event Grid or CloudEvents schema, or our own {"key": ...} body);
- `messages`: validate / train a message's worth of work, with the retry semantics
  (a final failure is an outcome: reported and acknowledged; a retryable one raises);
- `http`: the serve shell over core.serving.http_api.HttpApi (one per warm instance);
- `schedule`: the topology's rate(...) schedule as an Azure NCRONTAB expression;
- `runtime`: one Backend per warm instance, built from the settings on first use.

Names are imported on first use (PEP 562), so a queue function that imports `messages` never
loads the serving stack (onnxruntime) the `http` shell needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CreatedObject": "blob_events", "created_objects": "blob_events",
    "HttpShell": "http",
    "is_retryable": "messages", "settle": "messages", "train_message": "messages",
    "validate_message": "messages",
    "Runtime": "runtime",
    "ncrontab": "schedule", "ncrontab_seconds": "schedule", "rate_seconds": "schedule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
