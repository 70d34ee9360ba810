"""The inference service: which version answers (champion, canary, shadow), model loading with
integrity checks and refresh, and capture. The local HTTP server and the cloud `serve` function
both call this; neither has serving logic of its own."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_kit.core.layout import artifact_key, check_name
from mlops_kit.core.registry import CHALLENGER, CHAMPION, Registry
from mlops_kit.core.serving.capture import CaptureBuffer
from mlops_kit.core.serving.predictor import Predictor
from mlops_kit.core.spec import parse_spec
from mlops_kit.errors import IntegrityError, MlopsKitError, NotFound
from mlops_kit.ports import Notifier, ObjectStore

log = logging.getLogger("mlops_kit.serving")


def canary_share(request_id: str) -> float:
    """A deterministic number in [0, 1) per request id: the same id always routes the same way."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(slots=True)
class Inference:
    """What one request got: the predictor that answered and its raw outputs."""

    predictor: Predictor
    labels: np.ndarray
    probabilities: np.ndarray | None
    request_id: str
    challenger: bool


@dataclass
class _Loaded:
    version: int | None
    predictor: Predictor | None
    checked_at: float
    extra: dict[str, Any]


class ModelService:
    def __init__(
        self,
        store: ObjectStore,
        registry: Registry,
        *,
        capture: CaptureBuffer | None = None,
        notifier: Notifier | None = None,
        refresh_seconds: float = 2.0,
        monotonic=time.monotonic,
    ) -> None:
        self.store = store
        self.registry = registry
        self.capture = capture
        self.notifier = notifier
        self.refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], _Loaded] = {}
        self._routes: dict[str, tuple] = {}
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------
    def load_version(self, model: str, version: int) -> Predictor:
        record = self.registry.get_version(model, version)
        if record.get("status") != "registered":
            raise NotFound(f"model {model!r} version {version} is not servable", field="version")
        spec = parse_spec(json.loads(self.store.get(artifact_key(model, version, "spec.json"))))
        onnx_bytes = self.store.get(artifact_key(model, version))
        return Predictor(
            onnx_bytes,
            spec,
            version=version,
            classes=record.get("classes"),
            sha256=record.get("sha256"),
        )

    def predictor(self, model: str, alias: str = CHAMPION) -> tuple[Predictor | None, dict]:
        """The predictor an alias points at, refreshed at most every refresh_seconds."""
        check_name(model)
        key = (model, alias)
        now = self._monotonic()
        cached = self._cache.get(key)
        if cached and now - cached.checked_at < self.refresh_seconds:
            return cached.predictor, cached.extra
        with self._lock:
            cached = self._cache.get(key)
            if cached and now - cached.checked_at < self.refresh_seconds:
                return cached.predictor, cached.extra
            pointer = self.registry.get_alias(model, alias) or {}
            version = pointer.get("version")
            extra: dict[str, Any] = {k: pointer[k] for k in ("mode", "weight") if k in pointer}
            if cached and cached.version == version:
                self._cache[key] = _Loaded(version, cached.predictor, now, extra)
                return cached.predictor, extra
            predictor = None
            if version is not None:
                try:
                    predictor = self.load_version(model, int(version))
                except IntegrityError as exc:
                    # Keep serving what we had; tell a person.
                    log.error("refusing model %s v%s: %s", model, version, exc.message)
                    if self.notifier:
                        self.notifier.publish(
                            f"mlops-kit ALERT: {model} v{version} refused",
                            {"event": "integrity_error", "model": model, "version": version,
                             "error": exc.message},
                        )
                    predictor = cached.predictor if cached else None
                    version = cached.version if cached else None
            self._cache[key] = _Loaded(version, predictor, now, extra)
            return predictor, extra

    def _routing(self, model: str) -> tuple[Predictor | None, Predictor | None, dict]:
        """(champion, challenger, challenger's routing) with one cache probe on the warm path."""
        now = self._monotonic()
        hit = self._routes.get(model)
        if hit is not None and now - hit[0] < self.refresh_seconds:
            return hit[1], hit[2], hit[3]
        champion, _ = self.predictor(model, CHAMPION)
        challenger, info = self.predictor(model, CHALLENGER)
        self._routes[model] = (now, champion, challenger, info)
        return champion, challenger, info

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._routes.clear()

    # -- predicting ----------------------------------------------------------------------
    def predict(self, model: str, instances: Any, *, request_id: str | None = None) -> dict:
        """KServe V1: records in, JSON-ready predictions out."""
        inf = self.infer(model, lambda p: p.inputs_from_request(instances), request_id=request_id)
        out = inf.predictor.format(inf.labels, inf.probabilities)
        out.update(model=model, version=inf.predictor.version, request_id=inf.request_id)
        if inf.challenger:
            out["role"] = "challenger"
        return out

    def infer(self, model: str, to_feed: Callable[[Predictor], dict[str, np.ndarray]], *,
              request_id: str | None = None) -> Inference:
        """Route, score and capture. `to_feed` builds the ONNX feed with the champion's schema
        (records for V1 and JSON V2, columns for binary V2); the raw output arrays come back."""
        request_id = request_id or uuid.uuid4().hex
        champion, challenger, info = self._routing(model)
        if champion is None:
            raise NotFound(f"model {model!r} has no champion to serve", field="model")
        feed = to_feed(champion)
        answer, shadow = champion, None
        if challenger is not None and challenger.version != champion.version:
            if info.get("mode", "canary") == "shadow":
                shadow = challenger
            elif canary_share(request_id) < float(info.get("weight", 0.0)):
                answer = challenger
        started = time.perf_counter()
        labels, proba = answer.run_arrays(feed)
        latency_ms = (time.perf_counter() - started) * 1000
        capture = self.capture
        if capture is not None:
            now = self.registry.clock.now()
            capture.capture(model, request_id, now, answer.version, "served", latency_ms, feed,
                            labels, proba)
            if shadow is not None:
                t0 = time.perf_counter()
                try:
                    s_labels, s_proba = shadow.run_arrays(feed)
                    capture.capture(model, request_id, now, shadow.version, "shadow",
                                    (time.perf_counter() - t0) * 1000, feed, s_labels, s_proba)
                except MlopsKitError as exc:  # a broken shadow never hurts the answer
                    log.warning("shadow model failed: %s", exc.message)
        return Inference(answer, labels, proba, request_id, answer is not champion)

    def metadata(self, model: str, *, copy_out: bool = True) -> dict[str, Any]:
        """The served model's description. copy_out=False: the cached dict itself (read only)."""
        champion, _ = self.predictor(model, CHAMPION)
        if champion is None:
            raise NotFound(f"model {model!r} has no champion to serve", field="model")
        meta = champion.metadata  # built once per loaded version (V2 infer asks per request)
        if meta is None:
            spec = champion.spec
            meta = champion.metadata = {
                "name": model,
                "version": champion.version,
                "task": spec.task.value,
                "target": spec.target,
                "classes": champion.classes,
                "features": [f.model_dump(mode="json") for f in spec.features],
                "unknown_fields": spec.serving.unknown_fields,
                "sha256": champion.sha256,
            }
        return copy.deepcopy(meta) if copy_out else meta
