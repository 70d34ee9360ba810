"""Model loading: a registered version's artifact read, checked against the sha256 the registry
recorded, and opened as an onnxruntime session; and the champions' sessions opened on a
background thread while a serve function is still starting (issue 28, cold start).

Light on purpose: no spec, no pydantic model, and onnxruntime only when a session is opened,
so a serve function can start its champions' sessions before it imports the rest of the kit.
onnxruntime releases the GIL while it builds a session (a 100-tree forest: ~110 ms), so that
time overlaps the imports instead of following them."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_kit.core import onnx_meta
from mlops_kit.core.layout import OPTIMIZED_MODEL_FILE, artifact_key
from mlops_kit.errors import IntegrityError, NotFound
from mlops_kit.ports import ObjectStore

if TYPE_CHECKING:
    from mlops_kit.core.registry import Registry

log = logging.getLogger("mlops_kit.serving")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Artifact:
    """A version's model bytes, checked, and the session opened on them. `optimized`: the bytes
    are its model.ort (the session uses them in place: the session keeps them alive)."""

    model: str
    version: int
    sha256: str | None
    optimized: bool
    session: Any


def open_session(model_bytes: bytes, *, model: str, version: int, sha256: str | None,
                 optimized: bool = False, threads: int = 1) -> Any:
    """The session over `model_bytes`, after their sha256 is checked against the registry's;
    IntegrityError when they differ or onnxruntime refuses them."""
    if sha256 is not None and sha256_hex(model_bytes) != sha256:
        raise IntegrityError(f"model {model} v{version}: artifact sha256 does not match the registry")
    import onnxruntime as ort

    try:
        return onnx_meta.session(ort, model_bytes, threads, optimized=optimized)
    except Exception as exc:  # noqa: BLE001 - a corrupt artifact is an integrity problem
        raise IntegrityError(f"model {model} v{version} cannot be loaded: {exc}") from None


def open_artifact(store: ObjectStore, model: str, version: int, record: dict[str, Any]
                  ) -> Artifact:
    """The version's model.ort when export wrote one (its graph optimisations already applied;
    the parity gate checked it), else its model.onnx. model.ort is skipped when missing or when
    this onnxruntime cannot load it (the ORT format is tied to onnxruntime's version); a sha256
    mismatch is never skipped: it raises, as model.onnx's does."""
    if record.get("ort_sha256"):
        try:
            ort_bytes = store.get(artifact_key(model, version, OPTIMIZED_MODEL_FILE))
        except NotFound:
            log.warning("model %s v%s: %s missing, loading model.onnx", model, version,
                        OPTIMIZED_MODEL_FILE)
        else:
            try:
                return Artifact(model, version, record["ort_sha256"], True, open_session(
                    ort_bytes, model=model, version=version, sha256=record["ort_sha256"],
                    optimized=True))
            except IntegrityError as exc:
                if sha256_hex(ort_bytes) != record["ort_sha256"]:
                    raise
                log.warning("model %s v%s: %s not loadable (%s), loading model.onnx", model,
                            version, OPTIMIZED_MODEL_FILE, exc.message)
    onnx_bytes = store.get(artifact_key(model, version))
    return Artifact(model, version, record.get("sha256"), False, open_session(
        onnx_bytes, model=model, version=version, sha256=record.get("sha256")))


def _expected(record: dict[str, Any], artifact: Artifact) -> str | None:
    return record.get("ort_sha256") if artifact.optimized else record.get("sha256")


class Preloaded:
    """Sessions opened ahead of the model cache: the serve function's first request starts
    them before it imports the rest of the serving stack. `start` reads the models' alias
    pointers and version records now (small registry reads), then opens the artifacts one
    after another (champions first) on a daemon thread. `take` hands a session to the model
    cache when the cache loads that very version (same model, version and recorded sha256),
    once; otherwise (the alias moved, the preload failed) it returns None and the cache loads
    as it always does, reporting its own errors. A failed preload is logged, never raised."""

    def __init__(self) -> None:
        self._futures: dict[tuple[str, int], Future[Artifact]] = {}
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    @classmethod
    def start(cls, store: ObjectStore, registry: Registry, models: Iterable[str],
              aliases: Sequence[str] = ("champion", "challenger")) -> Preloaded:
        self = cls()
        jobs: list[tuple[Future[Artifact], str, int, dict[str, Any]]] = []
        for model in models:
            try:
                pointers = registry.aliases(model)  # both aliases in one read
                for alias in aliases:
                    version = (pointers.get(alias) or {}).get("version")
                    if version is None or (model, int(version)) in self._futures:
                        continue
                    record = registry.get_version(model, int(version))
                    if record.get("status") != "registered":
                        continue
                    future: Future[Artifact] = Future()
                    self._futures[(model, int(version))] = future
                    jobs.append((future, model, int(version), record))
            except Exception as exc:  # noqa: BLE001 - the model cache reads it again
                log.warning("preload %s: registry read failed (%s)", model, type(exc).__name__)
        if jobs:
            import onnxruntime  # noqa: F401 - imported here, not on the thread: the caller's
            # own imports would otherwise wait on its import lock while competing for the GIL

            self.thread = threading.Thread(target=self._run, args=(store, jobs),
                                           name="mlops-kit-preload", daemon=True)
            self.thread.start()
        return self

    @staticmethod
    def _run(store: ObjectStore, jobs: list) -> None:
        for future, model, version, record in jobs:
            try:
                future.set_result(open_artifact(store, model, version, record))
            except BaseException as exc:  # noqa: BLE001 - reported by the first request's load
                log.warning("preload %s v%s failed: %s", model, version,
                            getattr(exc, "message", None) or type(exc).__name__)
                future.set_exception(exc)

    def models(self) -> list[tuple[str, int]]:
        """The (model, version) pairs still waiting to be taken."""
        with self._lock:
            return list(self._futures)

    def take(self, model: str, version: int, record: dict[str, Any]) -> Artifact | None:
        """The preloaded session of exactly this version (waiting for it if it is still being
        opened), or None. Each session is taken once: the cache keeps it from then on."""
        with self._lock:
            future = self._futures.pop((model, int(version)), None)
        if future is None:
            return None
        try:
            artifact = future.result()  # no timeout: a second load would only compete with it
        except Exception:  # noqa: BLE001 - failed: the caller loads it and reports why
            return None
        return artifact if artifact.sha256 == _expected(record, artifact) else None
