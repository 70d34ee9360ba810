"""Every environment variable the kit reads, in one place, read once.

Names are MLOPSKIT_<FIELD>; e.g. MLOPSKIT_BACKEND=aws, MLOPSKIT_DATA_BUCKET=... No secrets live
here: credentials come from the platform (IAM role, AWS profile), the local token is hashed
on disk.

A plain pydantic model that merges the environment under its keyword arguments (keywords >
MLOPSKIT_* variables > defaults, names case-insensitive: pydantic-settings' rules for these
flat fields). Not pydantic-settings itself: importing it (asyncio, ssl, argparse, dotenv, its
cloud providers) was about a quarter of the serve function's imports, on every cold start."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "MLOPSKIT_"


def environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The MLOPSKIT_* variables as field names (MLOPSKIT_DATA_BUCKET -> data_bucket)."""
    env = os.environ if environ is None else environ
    n = len(ENV_PREFIX)
    return {k[n:].lower(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**environment(), **data}
        return data

    backend: Literal["local", "aws", "azure"] = "local"
    workspace: Path = Field(default=Path(".mlops-kit"), description="local backend state")

    # AWS names (set by the Pulumi program as function env vars; by `emulate` locally)
    region: str | None = None
    endpoint_url: str | None = None
    data_bucket: str | None = None
    artifact_bucket: str | None = None
    table_name: str | None = None
    validate_queue_url: str | None = None
    train_queue_url: str | None = None
    topic_arn: str | None = None
    jobs_queue_url: str | None = None  # batch job state changes (the `jobs` function's queue)
    # the deployment's name prefix: the Stack dimension of the monitor's metrics (EMF)
    stack: str | None = None
    # console sign-in on AWS (console/signin.py): the SSM SecureString holding the cookie key
    # (its name only: the value never sits in the environment) and the OIDC issuer + client
    console_key_parameter: str | None = None
    console_oidc_issuer: str | None = None
    console_oidc_client_id: str | None = None

    # Azure (set by the deployment as app settings; by the emulator locally). No keys: the
    # managed identity authenticates (DefaultAzureCredential). Names default to the topology's.
    azure_storage_account: str | None = None
    azure_endpoint_suffix: str = "core.windows.net"
    azure_client_id: str | None = Field(default=None, description="user-assigned identity")
    azure_connection_string: str | None = Field(
        default=None, repr=False,
        description="Azurite only: refused unless its endpoints are on loopback")
    azure_data_container: str | None = None
    azure_artifact_container: str | None = None
    azure_table_name: str | None = None
    azure_validate_queue: str | None = None
    azure_train_queue: str | None = None
    azure_alerts_queue: str | None = None
    # the monitor's schedule, rate(N minutes|hours|days); default: the topology's (Azure
    # Functions reads it when the app is indexed and renders it as NCRONTAB)
    monitor_schedule: str | None = None
    # Azure Functions: the one topology function whose triggers an app registers (one app per
    # function, each with its own identity); None: every function (one app, the emulator)
    function: str | None = None

    # serving
    # how often a warm server re-reads the champion/challenger aliases (one small table read
    # each); a promotion or rollback is served within this many seconds (docs/serving.md)
    refresh_seconds: float = Field(default=2.0, ge=0)
    capture: bool = True
    # pinned versions (/versions/{v}/ routes) kept loaded per serving instance, LRU beyond
    serving_warm_versions: int = Field(default=4, ge=1, le=64)
    capture_max_rows: int = Field(default=2000, ge=1)
    capture_max_age_s: float = Field(default=10.0, ge=0)
    # `mlops-kit serve`: append each captured request to a local spool (fsync'ed) before its
    # response, replayed on start: no captured row lost even to SIGKILL (local/capture_spool)
    capture_durable: bool = False
    auth: Literal["token", "none"] = "token"

    # queues (local)
    max_receives: int = Field(default=3, ge=1)
    validate_visibility_s: int = Field(default=120, ge=1)
    train_visibility_s: int = Field(default=900, ge=1)

    log_level: str = "INFO"

    # experiments (a spec with a `search`): where trials run. auto = worker processes on the
    # local backend, one train-queue message per trial (fan-out) on a cloud backend.
    trials: Literal["auto", "processes", "sequential", "queue"] = "auto"
    trial_workers: int | None = Field(default=None, ge=1, description="default: usable cores")
    # optional MLflow mirror of runs and trials (pip install 'mlops-kit[mlflow]'); credentials
    # go in MLflow's own MLFLOW_TRACKING_TOKEN / _USERNAME / _PASSWORD, never in the URI.
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "mlops-kit"

    # training engines (docs/training-engines.md): when a job leaves the train function
    train_function_memory_mb: int = Field(default=3008, ge=128)  # the deployment sets it
    train_memory_fraction: float = Field(default=0.7, gt=0, le=1)  # peak estimate budget
    train_max_function_rows: int = Field(default=1_000_000, ge=1)
    # batch scoring: a file larger than this is split into chunks of about this size, one
    # validate-queue message each (core/scoring/fanout.py); 0 never splits. 32 MiB of the demo
    # model's ~47-byte CSV rows is ~700k rows, 40-70 s at the 10-18k rows/s measured: within
    # the validate function's 120 s
    scoring_chunk_bytes: int = Field(default=32 << 20, ge=0)
    # ... and a job estimated at more function time than this (or with a chunk that cannot
    # finish in the validate function's timeout) goes to the batch engine, when there is one
    # (core/scoring/sizing.py)
    scoring_batch_seconds: float = Field(default=3600.0, gt=0)
    batch_job_queue: str | None = None  # AWS Batch (set by the deployment when enabled)
    batch_job_definition: str | None = None
    # the scoring job's definition on the same job queue (validate submits large scoring
    # jobs to it; set by the deployment when batch is enabled)
    score_job_definition: str | None = None
    batch_attempts: int = Field(default=2, ge=1, le=10)
    batch_timeout_s: int = Field(default=4 * 3600, ge=60)
    # Where large jobs go: batch (AWS Batch), process (`python -m mlops_kit.train_job` in a
    # separate process: the local default, and `emulate`'s "Batch"), none (train in the
    # consumer). Unset: process locally, batch on aws when batch_job_queue is set.
    job_runner: Literal["batch", "process", "none"] | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
