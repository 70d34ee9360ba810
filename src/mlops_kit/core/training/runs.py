"""What identifies a training run, shared by every engine: the run key (one version per
dataset sha256 + spec hash) and the lineage recorded when the version is reserved."""

from __future__ import annotations

from typing import Any

from mlops_kit import __version__
from mlops_kit.core.spec import ModelSpec


def run_key(job: dict[str, Any], spec: ModelSpec) -> str:
    return f"{job['sha256']}:{spec.spec_hash()[:16]}"


def lineage(job: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    return {
        "dataset_key": job["dataset_key"], "dataset_etag": job.get("etag"),
        "dataset_version_id": job.get("version_id"), "dataset_sha256": job["sha256"],
        "rows": job.get("rows"), "validation_report": job.get("report_key"),
        "spec_hash": spec.spec_hash(), "package_version": __version__,
        "estimator": spec.estimator.kind, "trigger": job.get("trigger", "upload"),
    }
