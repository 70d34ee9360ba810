"""The cloud-neutral handler layer: what an entry point does once the platform has delivered
its event, whatever the cloud. The Azure Functions app (functions/azure/function_app.py) and
the Azure emulator call into here; each cloud's shell only translates its event objects.

- `events`: the objects a validate-queue message announces (Event Grid BlobCreated in the
  Event Grid or CloudEvents schema, or our own {"key": ...} body);
- `jobs`: validate / train a message's worth of work, with the retry semantics
  (a final failure is an outcome: reported and acknowledged; a retryable one raises);
- `http`: the serve shell over core.serving.http_api.HttpApi (one per warm instance);
- `schedule`: the topology's rate(...) schedule as an Azure NCRONTAB expression;
- `runtime`: one Backend per warm instance, built from the settings on first use.
"""

from mlops_kit.handlers.blob_events import CreatedObject, created_objects
from mlops_kit.handlers.http import HttpShell
from mlops_kit.handlers.messages import is_retryable, settle, train_message, validate_message
from mlops_kit.handlers.runtime import Runtime
from mlops_kit.handlers.schedule import ncrontab, ncrontab_seconds, rate_seconds

__all__ = ["CreatedObject", "HttpShell", "Runtime", "created_objects", "is_retryable", "ncrontab",
           "ncrontab_seconds", "rate_seconds", "settle", "train_message", "validate_message"]
