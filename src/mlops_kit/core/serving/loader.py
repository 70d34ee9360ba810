"""Model loading: a registered version's artifact read, checked against the sha256 the registry
recorded, and opened as an onnxruntime session; and the champions' sessions opened on a
background thread while a serve function is still starting (issue 28, cold start).

Light on purpose: no spec, no pydantic model, and onnxruntime only when a session is opened,
so a serve function can start its champions' sessions before it imports the rest of the kit.
onnxruntime releases the GIL while it builds a session (a 100-tree forest: ~110 ms), so that
time overlaps the imports instead of following them."""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
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
    them before it imports the rest of the serving stack. `start` returns at once; a daemon
    thread reads each model's alias pointers and version records, then opens the champion's
    and the challenger's artifacts, so the registry's and the object store's round trips
    overlap the imports too (a cloud backend's first calls also set up their connections).
    `take` hands a session to the model cache when the cache loads that very version (same
    model, version and recorded sha256), once; otherwise (the alias moved, the preload failed)
    it returns None and the cache loads as it always does, reporting its own errors. A failed
    preload is logged, never raised. The thread runs in a copy of the caller's context (the
    emulator's per-function identity is a context variable, adapters/aws/_clients.py)."""

    def __init__(self, models: Iterable[str]) -> None:
        self._ready = {m: threading.Event() for m in models}
        self._opened: dict[tuple[str, int], Artifact | BaseException] = {}
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    @classmethod
    def start(cls, store: ObjectStore, registry: Registry, models: Iterable[str],
              aliases: Sequence[str] = ("champion", "challenger")) -> Preloaded:
        self = cls(models)
        if self._ready:
            context = contextvars.copy_context()
            self.thread = threading.Thread(target=context.run,
                                           args=(self._run, store, registry, aliases),
                                           name="mlops-kit-preload", daemon=True)
            self.thread.start()
            # onnxruntime imported here, after the thread started: its registry reads, the
            # artifact's read and sha256 (I/O and hashlib release the GIL) overlap this import,
            # and its open_session finds the module imported (or waits on its import lock).
            # Not on the thread: the extension's load holds the GIL (measured: 34-91 ms stalls
            # of the other thread), so it would only delay the caller's own imports.
            import onnxruntime  # noqa: F401
        return self

    def _run(self, store: ObjectStore, registry: Registry, aliases: Sequence[str]) -> None:
        for model, ready in self._ready.items():
            try:
                pointers = registry.aliases(model)  # both aliases in one read
                for alias in aliases:
                    version = (pointers.get(alias) or {}).get("version")
                    if version is None or (model, int(version)) in self._opened:
                        continue
                    record = registry.get_version(model, int(version))
                    if record.get("status") != "registered":
                        continue
                    try:
                        opened: Artifact | BaseException = open_artifact(
                            store, model, int(version), record)
                    except Exception as exc:  # noqa: BLE001 - reported by the cache's own load
                        log.warning("preload %s v%s failed: %s", model, version,
                                    getattr(exc, "message", None) or type(exc).__name__)
                        opened = exc
                    with self._lock:
                        self._opened[(model, int(version))] = opened
            except Exception as exc:  # noqa: BLE001 - the model cache reads it again
                log.warning("preload %s: registry read failed (%s)", model, type(exc).__name__)
            finally:
                ready.set()

    def wait(self, timeout: float | None = None) -> dict[tuple[str, int], Artifact | BaseException]:
        """Wait for the thread; what it opened (or why not) per (model, version), not taken."""
        if self.thread is not None:
            self.thread.join(timeout)
        with self._lock:
            return dict(self._opened)

    def take(self, model: str, version: int, record: dict[str, Any]) -> Artifact | None:
        """The preloaded session of exactly this version (waiting while the thread is still on
        this model), or None. Each session is handed over once: the cache keeps it."""
        ready = self._ready.get(model)
        if ready is None:
            return None
        ready.wait()  # no timeout: a second load would only compete with this one
        with self._lock:
            opened = self._opened.pop((model, int(version)), None)
        if not isinstance(opened, Artifact):
            return None
        return opened if opened.sha256 == _expected(record, opened) else None
