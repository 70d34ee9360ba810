"""The event router: what an object landing in the store starts. The local runtime and the
cloud handlers call this; each stage's use case lives in its own package."""

from __future__ import annotations

from typing import Any

from mlops_kit.core import layout
from mlops_kit.core.context import Context
from mlops_kit.core.monitoring.labels import ingest_labels
from mlops_kit.core.validation.usecase import validate_upload

__all__ = ["is_score_chunk", "on_object_created", "on_score_chunk"]


def on_object_created(ctx: Context, key: str, etag: str | None = None,
                      version_id: str | None = None) -> dict[str, Any]:
    parsed = layout.parse_key(key)
    if parsed.model is None:
        return {"status": "ignored", "key": key, "reason": "not a key of the layout"}
    if parsed.kind == "dataset":
        return validate_upload(ctx, parsed.model, key, etag=etag, version_id=version_id)
    if parsed.kind == "labels":
        return ingest_labels(ctx, parsed.model, key)
    if parsed.kind == "scoring":  # onnxruntime is imported only here: validate starts light
        from mlops_kit.core.scoring.usecase import score_upload

        return score_upload(ctx, parsed.model, key, etag=etag, version_id=version_id)
    return {"status": "ignored", "key": key, "reason": f"{parsed.kind} objects start nothing"}


def is_score_chunk(body: object) -> bool:
    """A validate-queue message that is one chunk of a fanned-out scoring job (its body
    {"score_chunk": {...}}, sent by core/scoring/fanout.py), not an object notification."""
    return isinstance(body, dict) and "score_chunk" in body


def on_score_chunk(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from mlops_kit.core.scoring.fanout import score_chunk

    return score_chunk(ctx, body)
