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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from mlops_kit.core.capture.buffer import CaptureBuffer
from mlops_kit.core.layout import artifact_key, check_name
from mlops_kit.core.registry import CHALLENGER, CHAMPION, Registry
from mlops_kit.core.serving.health import ServingHealth
from mlops_kit.core.serving.loader import Preloaded, open_artifact
from mlops_kit.core.serving.predictor import Predictor
from mlops_kit.errors import IntegrityError, MlopsKitError, NotFound
from mlops_kit.ports import Notifier, ObjectStore

log = logging.getLogger("mlops_kit.serving")
# to_feed(predictor, ignore): the ONNX feed a request gives that version (ValidationError when
# the request does not satisfy its contract); `ignore`: fields the version ignores when sent
ToFeed = Callable[[Predictor, frozenset[str]], dict[str, np.ndarray]]


def _model_spec(data: Any) -> Any:
    from mlops_kit.core.spec import parse_spec

    return parse_spec(data)


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
        warm_versions: int = 4,
        preloaded: Preloaded | None = None,
        read_spec: Callable[[Any], Any] | None = None,
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
        # pinned versions (/versions/{v}/...): at most warm_versions loaded, least recently
        # used dropped first; each re-checked against the registry every refresh_seconds
        self.warm_versions = max(1, int(warm_versions))
        self._pinned: OrderedDict[tuple[str, int], tuple[Predictor, float]] = OrderedDict()
        self._pin_lock = threading.Lock()
        self.health = ServingHealth(store, registry.clock)
        # champions' sessions the serve function started opening at init (loader.Preloaded)
        self.preloaded = preloaded
        # a version's spec.json -> its spec: ModelSpec by default (scoring, training); the
        # serving processes pass spec_light.read_spec (no pydantic at a cold start)
        self.read_spec = read_spec or _model_spec
        if capture is not None:
            capture.health = self.health

    # -- loading -------------------------------------------------------------------------
    def load_version(self, model: str, version: int) -> Predictor:
        """A registered version: its artifact checked and opened (loader.open_artifact: model.ort
        when export wrote one), or the session the serve function preloaded for it."""
        record = self.registry.get_version(model, version)
        if record.get("status") != "registered":
            raise NotFound(f"model {model!r} version {version} is not servable", field="version")
        spec = self.read_spec(json.loads(self.store.get(artifact_key(model, version, "spec.json"))))
        # (the spec first: at a cold start it is parsed while the preloaded session opens)
        artifact = self.preloaded.take(model, version, record) if self.preloaded else None
        if artifact is None:
            artifact = open_artifact(self.store, model, version, record)
        return Predictor(artifact.session, spec, version=version, classes=record.get("classes"),
                         sha256=artifact.sha256, optimized=artifact.optimized)

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
            extra: dict[str, Any] = {k: pointer[k] for k in ("mode", "weight", "ignored_fields")
                                     if k in pointer}
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

    def _routing(self, model: str
                 ) -> tuple[Predictor | None, Predictor | None, dict, frozenset[str]]:
        """(champion, challenger, challenger's routing, fields the champion ignores) with one
        cache probe on the warm path."""
        now = self._monotonic()
        hit = self._routes.get(model)
        if hit is not None and now - hit[0] < self.refresh_seconds:
            return hit[1], hit[2], hit[3], hit[4]
        champion, champ_info = self.predictor(model, CHAMPION)
        challenger, info = self.predictor(model, CHALLENGER)
        ignored = frozenset(champ_info.get("ignored_fields") or ())
        self._routes[model] = (now, champion, challenger, info, ignored)
        return champion, challenger, info, ignored

    def pinned(self, model: str, version: int) -> Predictor:
        """Any registered version (archived or failed ones are not servable), loaded on
        demand; at most warm_versions stay loaded (LRU)."""
        check_name(model)
        key, now = (model, int(version)), self._monotonic()
        with self._pin_lock:
            hit = self._pinned.get(key)
            if hit is not None:
                self._pinned.move_to_end(key)
        if hit is not None and now - hit[1] < self.refresh_seconds:
            return hit[0]
        if hit is not None:  # still servable? (archived meanwhile: dropped)
            record = self.registry.get_version(model, int(version))
            if record.get("status") != "registered":
                with self._pin_lock:
                    self._pinned.pop(key, None)
                raise NotFound(f"model {model!r} version {version} is not servable "
                               f"({record.get('status')})", field="version")
            predictor = hit[0]
        else:  # the champion's or challenger's session when it is that version, else a load
            predictor = next((c.predictor for (m, _), c in list(self._cache.items())
                              if m == model and c.version == int(version) and c.predictor),
                             None) or self.load_version(model, int(version))
        with self._pin_lock:
            self._pinned[key] = (predictor, now)
            self._pinned.move_to_end(key)
            while len(self._pinned) > self.warm_versions:
                self._pinned.popitem(last=False)
        return predictor

    def warm(self) -> list[tuple[str, int]]:
        """The pinned versions loaded now, least recently used first."""
        with self._pin_lock:
            return list(self._pinned)

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._routes.clear()
        with self._pin_lock:
            self._pinned.clear()

    # -- predicting ----------------------------------------------------------------------
    def v1_feed(self, model: str, body: bytes) -> tuple[Predictor, dict[str, np.ndarray]] | None:
        """The champion's compiled decoder's feed for a raw V1 body (decoder.V1Decoder), or
        None: the caller parses the body and takes the exact path. Only a fresh routing cache
        entry is used (no load, no registry read, no alert: nothing happens twice)."""
        hit = self._routes.get(model)
        if hit is None or self._monotonic() - hit[0] >= self.refresh_seconds:
            return None
        champion = hit[1]
        if champion is None or (decoder := champion.v1_decoder) is None:
            return None
        feed = decoder.feed(body)
        return None if feed is None else (champion, feed)

    def predict(self, model: str, instances: Any, *, request_id: str | None = None,
                version: int | None = None,
                decoded: tuple[Predictor, dict[str, np.ndarray]] | None = None) -> dict:
        """KServe V1: records in, JSON-ready predictions out. `version`: a pinned version.
        decoded: (predictor, feed) from v1_feed; `instances` is then a callable giving the
        records, called only if another version (a canary, a shadow, a new champion) needs
        them."""
        def to_feed(p: Predictor, ignore: frozenset[str]) -> dict[str, np.ndarray]:
            if decoded is not None:
                if p is decoded[0] and not ignore:
                    return decoded[1]
                return p.inputs_from_request(instances(), ignore)
            return p.inputs_from_request(instances, ignore)

        inf = self.infer(model, to_feed, request_id=request_id, version=version)
        out = inf.predictor.format(inf.labels, inf.probabilities)
        out["model"], out["version"], out["request_id"] = model, inf.predictor.version, \
            inf.request_id
        if inf.challenger:
            out["role"] = "challenger"
        return out

    def champion_answer(self, model: str, decoded: tuple[Predictor, dict[str, np.ndarray]],
                        request_id: str | None) -> dict | None:
        """`predict(decoded=...)`'s answer when the decoded feed's champion answers alone (the
        warm path's common request): what infer + _answer + format do for it, without the
        routing closure, the second routing probe and the Inference record. None when anything
        else may answer (a canary, a shadow, ignored fields, a stale or changed routing
        entry): the caller then calls `predict`, the general path."""
        hit = self._routes.get(model)
        champion = decoded[0]
        if hit is None or hit[1] is not champion or hit[4] \
                or self._monotonic() - hit[0] >= self.refresh_seconds:
            return None
        challenger = hit[2]
        if challenger is not None and challenger.version != champion.version:
            return None
        feed = decoded[1]
        request_id = request_id or uuid.uuid4().hex
        started = time.perf_counter()
        try:
            labels, proba = champion.run_arrays(feed)
        except Exception as exc:
            exc.served_version = champion.version  # type: ignore[attr-defined]
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        capture = self.capture
        if capture is not None:
            capture.capture(model, request_id, self._capture_time(capture), champion.version,
                            "served", latency_ms, feed, labels, proba)
        out = champion.format(labels, proba)
        out["model"], out["version"], out["request_id"] = model, champion.version, request_id
        return out

    def infer(self, model: str, to_feed: ToFeed, *, request_id: str | None = None,
              version: int | None = None) -> Inference:
        """Route, score and capture. The champion's contract decides the answer's status: a
        request the champion refuses is refused, whoever else would take it. A canary answers
        only requests its own contract accepts (else the champion answers and the skip is
        counted); a shadow scores after the answer is decided, and nothing it does (refusing
        the request, failing) reaches the caller: it is counted and logged.
        An exception raised here carries `served_version` (the health counters' version)."""
        request_id = request_id or uuid.uuid4().hex
        if version is not None:
            answer = self.pinned(model, version)
            return self._answer(model, answer, None, to_feed, frozenset(), request_id, False)
        champion, challenger, info, ignored = self._routing(model)
        if champion is None:
            raise NotFound(f"model {model!r} has no champion to serve", field="model")
        canary = shadow = None
        if challenger is not None and challenger.version != champion.version:
            if info.get("mode", "canary") == "shadow":
                shadow = challenger
            elif canary_share(request_id) < float(info.get("weight", 0.0)):
                canary = challenger
        inf = self._answer(model, champion, canary, to_feed, ignored, request_id, True)
        if shadow is not None and self.capture is not None:
            self._shadow(model, shadow, to_feed, request_id)
        return inf

    def _answer(self, model: str, champion: Predictor, canary: Predictor | None,
                to_feed: ToFeed, ignored: frozenset[str], request_id: str,
                routed: bool) -> Inference:
        try:
            feed = to_feed(champion, ignored)
        except Exception as exc:
            exc.served_version = champion.version  # type: ignore[attr-defined]
            raise
        answer = champion
        if canary is not None:
            try:
                feed, answer = to_feed(canary, frozenset()), canary
            except MlopsKitError as exc:  # the request does not fit the canary's contract
                self.health.event(model, canary.version, "canary_skipped")
                log.info("canary v%s skipped: %s", canary.version, exc.message)
        started = time.perf_counter()
        try:
            labels, proba = answer.run_arrays(feed)
        except Exception as exc:
            if answer is champion:
                exc.served_version = champion.version  # type: ignore[attr-defined]
                raise
            # a failing canary: the champion answers; counted against the canary
            self.health.event(model, answer.version, "canary_failed")
            self.health.record(model, answer.version, 500, 0.0)
            log.warning("canary v%s failed (%s); the champion answers", answer.version,
                        type(exc).__name__)
            answer, feed = champion, to_feed(champion, ignored)
            labels, proba = answer.run_arrays(feed)
        latency_ms = (time.perf_counter() - started) * 1000
        capture = self.capture
        if capture is not None:
            capture.capture(model, request_id, self._capture_time(capture), answer.version,
                            "served", latency_ms, feed, labels, proba)
        return Inference(answer, labels, proba, request_id, routed and answer is not champion)

    def _capture_time(self, capture: CaptureBuffer) -> datetime | None:
        """The capture's time by the registry's clock; None (the buffer reads it, without a
        datetime) when the buffer has that clock, as every backend builds it."""
        clock = self.registry.clock
        return None if capture.clock is clock else clock.now()

    def _shadow(self, model: str, shadow: Predictor, to_feed: ToFeed, request_id: str) -> None:
        """Score the shadow in isolation: its own feed from the request (its contract), its
        own failure handling. Never raises."""
        try:
            feed = to_feed(shadow, frozenset())
        except Exception as exc:  # noqa: BLE001 - the request does not fit the shadow
            self.health.event(model, shadow.version, "shadow_skipped")
            log.debug("shadow v%s skipped: %s", shadow.version, exc)
            return
        t0 = time.perf_counter()
        try:
            s_labels, s_proba = shadow.run_arrays(feed)
            if self.capture is not None:
                self.capture.capture(model, request_id, self._capture_time(self.capture),
                                     shadow.version, "shadow", (time.perf_counter() - t0) * 1000,
                                     feed, s_labels, s_proba)
        except Exception as exc:  # noqa: BLE001 - a broken shadow never hurts the answer
            self.health.event(model, shadow.version, "shadow_failed")
            log.warning("shadow model v%s failed: %s", shadow.version,
                        getattr(exc, "message", None) or type(exc).__name__)

    def metadata(self, model: str, *, copy_out: bool = True,
                 version: int | None = None) -> dict[str, Any]:
        """The served model's description (`version`: a pinned version's). copy_out=False: the
        cached dict itself (read only)."""
        if version is not None:
            champion: Predictor | None = self.pinned(model, version)
            ignored: frozenset[str] = frozenset()
        else:
            champion, _, _, ignored = self._routing(model)
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
        if ignored:  # the fields this champion ignores when sent (dropped features)
            meta = {**meta, "ignored_fields": sorted(ignored)}
        return copy.deepcopy(meta) if copy_out else meta
