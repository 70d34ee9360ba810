"""`python -m mlops_kit.train_job`: one training job (or, with MLOPSKIT_JOB_KIND=score, one
scoring job: core/scoring/batch.py) on the batch engine (AWS Batch on Fargate,
or a separate process locally), from the same image as the train function.

The job is described by its environment (core/training/engines.py: the dataset key, the run id,
the model, the reserved version and the training message). The backend is built from settings
like every handler's (bootstrap), and the job runs the same train use case with the same
registry reservation, so a retried or duplicated job cannot register twice.

Prints one JSON line (the outcome) on stdout; logs go to stderr. Exit codes: 0 the job ran
(registered, rejected or a duplicate), 1 it failed for good (the version is `failed`, a
notification went out), 75 a transient fault (the engine retries the attempt), 2 usage.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from mlops_kit.bootstrap import build_backend
from mlops_kit.core.scoring.batch import ENV_KIND, SCORE_KIND
from mlops_kit.core.scoring.usecase import run_scoring_job
from mlops_kit.core.training.engines import EXIT_RETRY, run_batch_job
from mlops_kit.errors import MlopsKitError, TransientError
from mlops_kit.settings import get_settings

USAGE = 2


def main(env: dict[str, str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("MLOPSKIT_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    env = dict(os.environ if env is None else env)
    try:
        settings = get_settings()
        if settings.trials == "auto":  # a search's trials stay in this job (worker processes)
            settings = settings.model_copy(update={"trials": "processes"})
        backend = build_backend(settings)
        if env.get(ENV_KIND) == SCORE_KIND:  # a scoring job (core/scoring/batch.py)
            outcome, code = run_scoring_job(backend.ctx, env)
        else:
            outcome, code = run_batch_job(backend.ctx, env)
    except TransientError as exc:  # e.g. the table throttled before the job could start
        outcome, code = {"status": "retry", "reason": exc.message}, EXIT_RETRY
    except MlopsKitError as exc:  # not a training job / a backend that cannot be built
        outcome, code = {"status": "error", "reason": exc.message, "field": exc.field}, USAGE
    sys.stdout.write(json.dumps(outcome, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
