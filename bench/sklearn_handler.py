"""The baseline: what a user writes without the kit. The same trained sklearn pipeline, loaded
with joblib once per container, called from a Lambda handler for HTTP API v2 events (and from
the same server as the kit's local server (ServerThread), through `SklearnApi.handle`).

It is deliberately generous to the baseline: no schema validation, no capture, no canary; just
JSON -> DataFrame -> predict_proba -> JSON.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

import joblib
import numpy as np
import pandas as pd

MISSING_CATEGORY = "__missing__"  # the encoding the pipeline was trained with
_PREDICT = re.compile(r"^/v1/models/([a-z0-9][a-z0-9_-]{0,62}):predict$")


class SklearnModel:
    def __init__(self, path: str, features: list[str], categorical: list[str]) -> None:
        self.pipeline = joblib.load(path)
        self.features = features
        self.categorical = categorical
        self.classes = self.pipeline.classes_.tolist()

    def predict(self, instances: list[dict]) -> dict[str, Any]:
        df = pd.DataFrame.from_records(instances, columns=self.features)
        for c in self.categorical:
            df[c] = df[c].fillna(MISSING_CATEGORY).astype(object)
        numeric = [c for c in self.features if c not in self.categorical]
        df[numeric] = df[numeric].astype(np.float32)
        proba = self.pipeline.predict_proba(df)
        labels = np.asarray(self.classes)[proba.argmax(axis=1)]
        return {"predictions": labels.tolist(), "probabilities": np.round(proba, 6).tolist()}


class Response:
    def __init__(self, status: int, body: dict) -> None:
        self.status, self.body = status, body
        self.headers = {"content-type": "application/json"}

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()

    def payload(self) -> bytes:  # what the local server sends (the kit's Response has it too)
        return self.json_bytes()


class _NoService:
    capture = None


class SklearnApi:
    """Same call shape as mlops_kit.core.serving.http_api.HttpApi.handle, for ServerThread."""

    service = _NoService()
    authorize = None

    def __init__(self, models: dict[str, SklearnModel]) -> None:
        self.models = models

    def handle(self, method, path, headers, body, request_id=None, *,
               authorized=False) -> Response:
        m = _PREDICT.match(path.split("?", 1)[0])
        if method != "POST" or not m or m.group(1) not in self.models:
            return Response(404, {"error": "not found"})
        try:
            data = json.loads(body)
            out = self.models[m.group(1)].predict(data["instances"])
        except (ValueError, KeyError, TypeError) as exc:
            return Response(400, {"error": str(exc)[:200]})
        out.update(model=m.group(1), request_id=request_id)
        return Response(200, out)


_api: SklearnApi | None = None


def _load_from_env() -> SklearnApi:
    """BENCH_SKLEARN_MODELS: JSON {model: {joblib, features, categorical}}."""
    spec = json.loads(os.environ["BENCH_SKLEARN_MODELS"])
    return SklearnApi({name: SklearnModel(m["joblib"], m["features"], m["categorical"])
                       for name, m in spec.items()})


def handler(event: dict, context: Any) -> dict:
    global _api
    if _api is None:
        _api = _load_from_env()
    http = (event.get("requestContext") or {}).get("http") or {}
    body = event.get("body") or ""
    body = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    resp = _api.handle(http.get("method", "GET"), event.get("rawPath", "/"),
                       event.get("headers") or {}, body,
                       request_id=(event.get("requestContext") or {}).get("requestId"))
    return {"statusCode": resp.status, "headers": resp.headers,
            "body": resp.json_bytes().decode(), "isBase64Encoded": False}
