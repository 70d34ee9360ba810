"""The typed Context every use case takes: the ports plus the registry built on them.

Built by mlops_kit.bootstrap (the composition root); nothing in core builds adapters."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_kit.core import layout
from mlops_kit.core.registry import Registry
from mlops_kit.core.registry.experiments import RunStore
from mlops_kit.core.sizing import RouteLimits
from mlops_kit.errors import SpecError
from mlops_kit.ports import (
    Clock,
    ExperimentTracker,
    JobRunner,
    KeyValueTable,
    Notifier,
    ObjectStore,
    Queue,
    TrialRunner,
)

if TYPE_CHECKING:  # the spec (pydantic models) is imported by what reads one, not by every
    # function's composition root: the serve function's cold start (issue 28)
    from mlops_kit.core.spec import ModelSpec


@dataclass
class Context:
    """Everything a use case may touch. Built by mlops_kit.bootstrap (the composition root)."""

    store: ObjectStore
    table: KeyValueTable
    train_queue: Queue
    notifier: Notifier
    clock: Clock
    # the training queue's visibility timeout: a version pending for longer is shown as stuck
    stuck_after_s: float | None = None
    # Experiments: how a search's trials run. In this process with `trial_runner` (None: one
    # after another), or, with `fan_out_trials`, one train-queue message per trial.
    trial_runner: TrialRunner | None = None
    fan_out_trials: bool = False
    tracker: ExperimentTracker | None = None
    # Who watches a job's steps (the CLI's progress display); None: nobody.
    progress: Callable[[str, dict[str, Any]], None] | None = None
    jobs: JobRunner | None = None  # the batch training engine (core/training/engines.py)
    limits: RouteLimits = field(default_factory=RouteLimits)  # when training leaves the function
    # Batch scoring: a file over scoring_chunk_bytes (0: never) is split into chunks, one
    # message each on scoring_queue (the validate queue the upload came through; None: the
    # whole file is scored in one go). core/scoring/fanout.py.
    scoring_queue: Queue | None = None
    scoring_chunk_bytes: int = 32 << 20
    # ... and a job estimated past what functions can do goes to scoring_jobs, the batch engine
    # where it can run scoring (None: it stays on functions). core/scoring/sizing.py, batch.py
    scoring_jobs: JobRunner | None = None
    scoring_batch_seconds: float = 3600.0
    registry: Registry = field(init=False)
    runs: RunStore = field(init=False)

    def __post_init__(self) -> None:
        self.registry = Registry(self.table, self.clock, self.notifier, self.stuck_after_s)
        self.runs = RunStore(self.table, self.clock)

    def step(self, name: str, **info: Any) -> None:
        """A step of the running job ended (trained, exported, parity, registered, ...)."""
        if self.progress is not None:
            try:
                self.progress(name, info)
            except Exception:  # noqa: BLE001 - a display problem never fails a job
                logging.getLogger("mlops_kit.progress").debug("progress callback failed",
                                                              exc_info=True)


def load_spec(store: ObjectStore, model: str) -> ModelSpec:
    from mlops_kit.core.spec import load_spec_bytes

    for key in layout.spec_keys(model):
        if store.exists(key):
            spec = load_spec_bytes(store.get(key), source=key)
            if spec.name != model:
                raise SpecError(f"{key}: name is {spec.name!r} but the file is for {model!r}",
                                field="name")
            return spec
    raise SpecError(
        f"no spec for model {model!r}: upload specs/{model}.yaml first (mlops-kit spec apply)",
        field="model",
    )



def to_json(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
