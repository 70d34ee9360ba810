"""ExperimentTracker on MLflow: each finished run becomes an MLflow run with one nested run
per trial (params, CV and holdout metrics, status, reason as tags), and the winner's ONNX model
and the run summary as artifacts. Users keep their MLflow UI; the kit's own records stay the
source of truth (a tracker failure is recorded on the run and never fails it).

Needs `pip install 'mlops-kit[mlflow]'` (mlflow-skinny: the client, no server). mlflow is
imported on the first log, so a function that never logs (serve) never loads it. Credentials
use MLflow's own variables (MLFLOW_TRACKING_TOKEN, ..._USERNAME/_PASSWORD), never the URI.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mlops_kit.errors import MlopsKitError

__all__ = ["MlflowTracker"]

# MLflow's defaults retry a dead server for minutes (7 retries, backoff x2, 120 s timeout): the
# training function must not spend its budget on an optional mirror. Users may override.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
RUN_KEY_TAG = "mlopskit.run_key"
STATUS = {"ok": "FINISHED", "failed": "FAILED", "skipped": "KILLED"}
MAX_PARAM = 6000
MAX_TAG = 5000


def _metrics(prefix: str, values: dict[str, Any] | None) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in (values or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class MlflowTracker:
    def __init__(self, tracking_uri: str, experiment: str = "mlops-kit") -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                from mlflow.tracking import MlflowClient
            except ModuleNotFoundError:
                raise MlopsKitError("MLOPSKIT_MLFLOW_TRACKING_URI is set but mlflow is not "
                                    "installed: pip install 'mlops-kit[mlflow]'",
                                    field="mlflow_tracking_uri") from None
            for key, value in _HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment)
        except Exception:  # noqa: BLE001 - created concurrently by another run: read it back
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def log_run(self, run: dict[str, Any], trials: list[dict[str, Any]],
                outcome: dict[str, Any], model_onnx: bytes | None) -> str | None:
        exp = self._experiment_id()
        key = f"{run['model']}/{run['run']}/{str(run.get('dataset_sha256'))[:16]}"
        existing = self.client.search_runs(
            [exp], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
        if existing:  # logged before (a redelivered finish): once is enough
            return existing[0].info.run_id
        metric = run["metric"]
        now = int(time.time() * 1000)
        parent = self.client.create_run(exp, start_time=now, run_name=(
            f"{run['model']} run {run['run']}"), tags={
            RUN_KEY_TAG: key, "mlopskit.model": run["model"], "mlopskit.run": str(run["run"]),
            "mlopskit.version": str(run.get("version")),
            "mlopskit.dataset_key": str(run.get("dataset_key")),
            "mlopskit.spec_hash": str(run.get("spec_hash")), "mlopskit.engine": str(run.get("engine")),
            "mlopskit.winner": str(run.get("winner")),
            "mlopskit.version_status": str(outcome.get("status")),
            "mlopskit.promoted": str(bool(outcome.get("promoted"))).lower(),
        }).info.run_id
        best = next((t for t in trials if t["hash"] == run.get("winner")), None)
        self._batch(parent, params={
            "strategy": run.get("strategy"), "metric": metric, "cv": run.get("cv"),
            "max_candidates": run.get("max_candidates"), "trials": run.get("total"),
            "winner_kind": best and best["kind"],
            **{f"winner.{k}": v for k, v in ((best or {}).get("params") or {}).items()},
        }, metrics={**_metrics("best_cv_", (best or {}).get("cv")),
                    **_metrics("holdout_", outcome.get("metrics")),
                    **_metrics("trials_", run.get("counts"))}, when=now)
        for t in trials:
            self._trial(exp, parent, t, best_hash=run.get("winner"), when=now)
        with tempfile.TemporaryDirectory() as tmp:
            summary = Path(tmp) / "run.json"
            summary.write_text(json.dumps({"run": run, "outcome": outcome}, default=str,
                                          sort_keys=True, indent=1))
            self.client.log_artifact(parent, str(summary))
            if model_onnx is not None:
                onnx = Path(tmp) / "model.onnx"
                onnx.write_bytes(model_onnx)
                self.client.log_artifact(parent, str(onnx), artifact_path="model")
        self.client.set_terminated(parent, status="FINISHED" if run["status"] == "finished"
                                   else "FAILED", end_time=int(time.time() * 1000))
        return parent

    def _trial(self, exp: str, parent: str, t: dict[str, Any], *, best_hash: Any,
               when: int) -> None:
        tags = {"mlflow.parentRunId": parent, "mlopskit.trial": t["hash"],
                "mlopskit.kind": t["kind"], "mlopskit.status": t.get("status", "?"),
                "mlopskit.best": str(t["hash"] == best_hash).lower()}
        if t.get("reason"):
            tags["mlopskit.reason"] = str(t["reason"])[:MAX_TAG]
        child = self.client.create_run(exp, start_time=when, tags=tags,
                                       run_name=f"{t['kind']} {t['hash']}").info.run_id
        self._batch(child, params={"kind": t["kind"], **(t.get("params") or {})}, metrics={
            **_metrics("cv_", t.get("cv")), **_metrics("cv_std_", t.get("cv_std")),
            **_metrics("holdout_", t.get("holdout")),
            **_metrics("", {k: t.get(k) for k in ("fit_seconds", "seconds")})}, when=when)
        self.client.set_terminated(child, status=STATUS.get(t.get("status", ""), "FAILED"),
                                   end_time=when)

    def _batch(self, run_id: str, *, params: dict[str, Any], metrics: dict[str, float],
               when: int) -> None:
        from mlflow.entities import Metric, Param

        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, when, 0) for k, v in sorted(metrics.items())],
            params=[Param(k, str(v)[:MAX_PARAM]) for k, v in sorted(params.items())
                    if v is not None])
