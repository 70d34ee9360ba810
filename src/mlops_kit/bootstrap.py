"""The composition root: settings -> adapters -> a lifecycle Context / ModelService.

The only place that chooses a backend. Handlers, the CLI and the local server call into here."""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from mlops_kit.clock import SystemClock
from mlops_kit.core.context import Context
from mlops_kit.core.sizing import RouteLimits
from mlops_kit.errors import ConfigError
from mlops_kit.ports import Clock, JobRunner, Queue
from mlops_kit.topology import SCORE_JOB, TRAIN_JOB, Topology, default_topology

log = logging.getLogger("mlops_kit.bootstrap")

if TYPE_CHECKING:
    from mlops_kit.core.serving.loader import Preloaded
    from mlops_kit.core.serving.service import ModelService
    from mlops_kit.light_settings import LightSettings
    from mlops_kit.settings import Settings

    # the serve function's are read without pydantic (light_settings): the same fields
    AnySettings: TypeAlias = Settings | LightSettings


@dataclass
class Backend:
    ctx: Context
    validate_queue: Queue
    settings: AnySettings
    # the sessions preload() started opening; handed to the next service()
    preloaded: Preloaded | None = None

    def preload(self, models: Sequence[str]) -> Preloaded | None:
        """Start opening these models' champion and challenger sessions on a background thread
        (loader.Preloaded) for service() to use: the serve function calls it on its first
        request, before it imports the rest of the serving stack, so onnxruntime builds the
        sessions (GIL released) while the imports run. Returns at once (the thread reads the
        registry too); never raises
        (the model cache then loads as it always does and reports its own error)."""
        from mlops_kit.core.serving.loader import Preloaded

        try:
            self.preloaded = Preloaded.start(self.ctx.store, self.ctx.registry, models)
        except Exception as exc:  # noqa: BLE001 - an optimisation only
            log.warning("serving preload skipped: %s", type(exc).__name__)
        return self.preloaded

    def service(self, *, capture: bool | None = None) -> ModelService:
        # Imported here: onnxruntime is only needed by serving, not by validate/monitor; the
        # capture buffer (numpy) not before the serve function's preload started (issue 28).
        from mlops_kit.core.capture.buffer import CaptureBuffer
        from mlops_kit.core.serving.service import ModelService

        s = self.settings
        buffer = None
        if s.capture if capture is None else capture:
            buffer = CaptureBuffer(self.ctx.store, self.ctx.clock, max_rows=s.capture_max_rows,
                                   max_age_s=s.capture_max_age_s)
        return ModelService(self.ctx.store, self.ctx.registry, capture=buffer,
                            notifier=self.ctx.notifier, refresh_seconds=s.refresh_seconds,
                            warm_versions=s.serving_warm_versions,
                            preloaded=self.preloaded, read_spec=serving_spec)

    def console(self, authorize: Callable[[Mapping[str, str]], None] | None = None) -> Callable:
        """The read-only console's /ui/ handler for HttpApi(ui=...). The console package is
        imported and built on the first /ui/ request, never on the inference path."""
        built: list = []
        lock = threading.Lock()

        def handle(method: str, path: str, headers: Mapping[str, str], body: bytes | None):
            if not built:
                with lock:
                    if not built:
                        from mlops_kit.console import Console

                        built.append(Console(self.ctx.store, self.ctx.registry,
                                             authorize=authorize))
            return built[0](method, path, headers, body)

        return handle


def serving_spec(data: Any) -> Any:
    """A version's stored spec as the serving processes read it: spec_light's dataclasses (no
    pydantic at a cold start), or ModelSpec when only its rules can decide (spec_light)."""
    from mlops_kit.core.spec_light import read_spec

    return read_spec(data, _model_spec)


def _model_spec(data: Any) -> Any:
    from mlops_kit.core.spec import parse_spec

    return parse_spec(data)


# backend name -> (factory module, the extra that installs its SDKs)
FACTORIES = {
    "local": ("mlops_kit.adapters.local.factory", None),
    "aws": ("mlops_kit.adapters.aws.factory", "aws"),
    "azure": ("mlops_kit.adapters.azure.factory", "azure"),
}


def build_backend(settings: AnySettings | None = None, clock: Clock | None = None,
                  topology: Topology | None = None) -> Backend:
    """The one place that turns settings into a backend (local | aws | azure). The serve
    function passes light_settings.read_settings(): this module imports no pydantic."""
    if settings is None:
        from mlops_kit.settings import get_settings

        settings = get_settings()
    module_name, extra = FACTORIES[settings.backend]
    try:
        factory = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra is None or (exc.name or "").startswith("mlops_kit"):
            raise
        raise ConfigError(f"the {settings.backend} backend needs {exc.name}: "
                            f"pip install 'mlops-kit[{extra}]'", field="backend") from None
    topology = topology or default_topology()
    parts = factory.build(settings, topology)
    # after this long a pending version's job is neither running nor waiting: it is stuck
    stuck_after = (settings.train_visibility_s if settings.backend == "local"
                   else topology.visibility_timeout("train"))
    jobs = job_runner(settings, parts.jobs)
    # scoring on the batch engine: locally the same process engine; on aws the scoring job
    # (score-large: its own definition and role, submitted by validate, topology.py)
    scoring_jobs = (jobs if settings.backend == "local"
                    else job_runner(settings, parts.scoring_jobs, SCORE_JOB)
                    if settings.backend == "aws" else None)
    ctx = Context(store=parts.store, table=parts.table, train_queue=parts.train_queue,
                  notifier=parts.notifier, clock=clock or SystemClock(),
                  stuck_after_s=stuck_after, jobs=jobs,
                  scoring_jobs=scoring_jobs,
                  limits=route_limits(settings), scoring_queue=parts.validate_queue,
                  scoring_chunk_bytes=settings.scoring_chunk_bytes,
                  scoring_batch_seconds=settings.scoring_batch_seconds,
                  **experiment_engine(settings))
    return Backend(ctx, parts.validate_queue, settings)


# (settings, the topology's batch job: train-large or score-large) -> its engine
JobRunnerFactory = Callable[["AnySettings", str], JobRunner | None]
# The batch engine a runtime supplies for every aws backend built from now on, in place of the
# one the settings choose. Only `emulate` sets it (its process engine stands in for AWS Batch
# and runs each job under its batch job role's keys); deployments never do.
_supplied_job_runner: JobRunnerFactory | None = None


def use_job_runner(factory: JobRunnerFactory | None) -> None:
    """Supply the batch engine of the aws backends built from now on (None: the settings')."""
    global _supplied_job_runner
    _supplied_job_runner = factory


def job_runner(settings: AnySettings, configured: JobRunner | None,
               job: str = TRAIN_JOB) -> JobRunner | None:
    """Where large trainings (or, job=SCORE_JOB, large scoring jobs) run. On aws: what a
    runtime supplied (use_job_runner), or a separate process on this machine when
    MLOPSKIT_JOB_RUNNER=process; else (and on the other backends, whose factories choose
    themselves) what the factory configured."""
    if settings.backend != "aws":
        return configured
    if _supplied_job_runner is not None:
        return _supplied_job_runner(settings, job)
    if settings.job_runner == "process":
        from mlops_kit.adapters.local.factory import process_runner

        # light_settings' LightSettings has Settings' fields
        return process_runner(settings, {})  # type: ignore[arg-type]
    return configured


def experiment_engine(settings: AnySettings) -> dict[str, Any]:
    """Where a search's trials run (Context.trial_runner / fan_out_trials) and the optional
    MLflow tracker. Builds nothing heavy: runners import scikit-learn only when they run."""
    mode = settings.trials
    if mode == "auto":
        mode = "processes" if settings.backend == "local" else "queue"
    out: dict[str, Any] = {"fan_out_trials": mode == "queue"}
    if mode == "processes":
        # imported here: the cloud functions (queue mode) never load the training package
        from mlops_kit.core.training.trials import JoblibRunner

        out["trial_runner"] = JoblibRunner(settings.trial_workers or len(os.sched_getaffinity(0)))
    if settings.mlflow_tracking_uri:
        # imports mlflow only when a run is logged: serving never needs it
        from mlops_kit.adapters.mlflow_tracking import MlflowTracker

        out["tracker"] = MlflowTracker(settings.mlflow_tracking_uri, settings.mlflow_experiment)
    return out


def route_limits(settings: AnySettings) -> RouteLimits:
    """When training leaves the function (docs/training-engines.md)."""
    return RouteLimits(function_memory_mb=settings.train_function_memory_mb,
                       memory_fraction=settings.train_memory_fraction,
                       max_function_rows=settings.train_max_function_rows)


def local_backend(settings: Settings, clock: Clock | None = None) -> Backend:
    return build_backend(settings.model_copy(update={"backend": "local"}), clock)


def aws_backend(settings: Settings, clock: Clock | None = None) -> Backend:
    return build_backend(settings.model_copy(update={"backend": "aws"}), clock)
