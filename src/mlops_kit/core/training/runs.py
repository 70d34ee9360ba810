"""What identifies a training run, shared by every engine: the run key (one version per
dataset sha256 + spec hash) and the lineage recorded when the version is reserved."""

from __future__ import annotations

from typing import Any

from mlops_kit import __version__
from mlops_kit.core.spec import ModelSpec


def run_key(job: dict[str, Any], spec: ModelSpec) -> str:
    """One version per (data, spec meaning). The data is its content hash when validation
    computed one (the spec's columns as a set: column order and extra columns do not count),
    else the file's sha256 (jobs queued before content hashes existed)."""
    content = job.get("content_hash")
    if content:
        return f"c{content[:63]}:{spec.meaning_hash()[:16]}"
    return f"{job['sha256']}:{spec.spec_hash()[:16]}"


def unchanged(job: dict[str, Any], record: dict[str, Any]) -> bool:
    """A reserved run found for another upload: the same content and meaning as that version
    (a redelivery of the same upload is not `unchanged`, it resumes)."""
    lineage = record.get("lineage") or {}
    return (lineage.get("dataset_key"), lineage.get("dataset_sha256")) != (
        job.get("dataset_key"), job.get("sha256"))


def lineage(job: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    return {
        "dataset_key": job["dataset_key"], "dataset_etag": job.get("etag"),
        "dataset_version_id": job.get("version_id"), "dataset_sha256": job["sha256"],
        "rows": job.get("rows"), "validation_report": job.get("report_key"),
        "spec_hash": spec.spec_hash(), "package_version": __version__,
        "estimator": spec.estimator.kind, "trigger": job.get("trigger", "upload"),
        **({"content_hash": job["content_hash"]} if job.get("content_hash") else {}),
    }


def unchanged_outcome(ctx: Any, model: str, version: int, record: dict,
               job: dict[str, Any]) -> dict[str, Any]:
    """Another upload with the same content (the spec's columns, in any order, extra columns
    ignored) and the same spec meaning as `version`: no new version. Final, and said."""
    was = (record.get("lineage") or {}).get("dataset_key")
    reason = (f"{job.get('dataset_key')} has the same data and spec as v{version} "
              f"(trained from {was}): no new version")
    out = {"status": "unchanged", "model": model, "version": version,
           "registry_status": record.get("status"), "dataset_key": job.get("dataset_key"),
           "reason": reason, "promoted": False}
    ctx.notifier.publish(f"mlops-kit: {model} unchanged (v{version})",
                         {"event": "unchanged", **{k: out[k] for k in (
                             "model", "version", "dataset_key", "reason")}})
    return out
