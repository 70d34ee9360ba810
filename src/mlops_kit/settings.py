"""Every environment variable the kit reads, in one place, read once.

Names are MLOPSKIT_<FIELD>; e.g. MLOPSKIT_BACKEND=aws, MLOPSKIT_DATA_BUCKET=... No secrets live
here: credentials come from the platform (IAM role, AWS profile), the local token is hashed
on disk.

`Settings(**keywords)` merges the environment under its keywords (keywords > MLOPSKIT_*
variables > defaults, names case-insensitive) and validates the result: each field's type
(environment strings converted: "3" -> 3, "true"/"yes"/"on"/"1" -> True, a path -> Path), its
allowed values and bounds. A bad value raises SettingsError naming the field and the rule, never
a half-read Settings. A frozen msgspec Struct, not a pydantic model (issue 28): building the
pydantic model (pydantic's import, its plugin loader's importlib.metadata, the schema) was
~60 ms of every serve cold start before the model's session could start opening (the spec,
which the first request needs too, still imports pydantic, but by then the session is opening
on its own thread); msgspec (the serving decoder's library) adds ~8 ms."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

ENV_PREFIX = "MLOPSKIT_"


def environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The MLOPSKIT_* variables as field names (MLOPSKIT_DATA_BUCKET -> data_bucket)."""
    env = os.environ if environ is None else environ
    n = len(ENV_PREFIX)
    return {k[n:].lower(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}


class SettingsError(ValueError):
    """A setting's value breaks its field's rule. errors(): [{"loc": (field,), "msg": why}]
    (the shape the CLI's message is built from: MLOPSKIT_<FIELD>: why)."""

    def __init__(self, field: str | None, msg: str) -> None:
        super().__init__(f"{field}: {msg}" if field else msg)
        self.field, self.msg = field, msg

    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": (self.field,) if self.field else (), "msg": self.msg}]


# the spellings of a boolean an environment variable may use (pydantic's, which this replaced)
_BOOLS = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
          **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False)}
_AT = re.compile(r"^(.*) - at `\$\.(\w+)`$")


def _decode(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise NotImplementedError


class _Validating(type(msgspec.Struct)):  # type: ignore[misc]
    """Settings(**keywords): the environment merged under the keywords, then converted and
    checked against the fields (msgspec.convert, lax: strings become numbers and booleans)."""

    def __call__(cls, **keywords: Any) -> Any:
        data: dict[str, Any] = {**environment(), **keywords}
        for name in cls._bool_fields:
            value = data.get(name)
            if isinstance(value, str) and value.strip().lower() in _BOOLS:
                data[name] = _BOOLS[value.strip().lower()]
        try:
            return msgspec.convert(data, cls, strict=False, dec_hook=_decode)
        except msgspec.ValidationError as exc:
            m = _AT.match(str(exc))
            raise SettingsError(m.group(2), m.group(1)) if m else SettingsError(None, str(exc)) \
                from None


class Settings(msgspec.Struct, metaclass=_Validating, frozen=True, kw_only=True):
    backend: Literal["local", "aws", "azure"] = "local"
    workspace: Path = Path(".mlops-kit")  # local backend state

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
    azure_client_id: str | None = None  # user-assigned identity
    # Azurite only: refused unless its endpoints are on loopback (never in repr)
    azure_connection_string: str | None = None
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
    refresh_seconds: Annotated[float, Meta(ge=0)] = 2.0
    capture: bool = True
    # pinned versions (/versions/{v}/ routes) kept loaded per serving instance, LRU beyond
    serving_warm_versions: Annotated[int, Meta(ge=1, le=64)] = 4
    capture_max_rows: Annotated[int, Meta(ge=1)] = 2000
    capture_max_age_s: Annotated[float, Meta(ge=0)] = 10.0
    # `mlops-kit serve`: append each captured request to a local spool (fsync'ed) before its
    # response, replayed on start: no captured row lost even to SIGKILL (local/capture_spool)
    capture_durable: bool = False
    auth: Literal["token", "none"] = "token"

    # queues (local)
    max_receives: Annotated[int, Meta(ge=1)] = 3
    validate_visibility_s: Annotated[int, Meta(ge=1)] = 120
    train_visibility_s: Annotated[int, Meta(ge=1)] = 900

    log_level: str = "INFO"

    # experiments (a spec with a `search`): where trials run. auto = worker processes on the
    # local backend, one train-queue message per trial (fan-out) on a cloud backend.
    trials: Literal["auto", "processes", "sequential", "queue"] = "auto"
    trial_workers: Annotated[int, Meta(ge=1)] | None = None  # default: usable cores
    # optional MLflow mirror of runs and trials (pip install 'mlops-kit[mlflow]'); credentials
    # go in MLflow's own MLFLOW_TRACKING_TOKEN / _USERNAME / _PASSWORD, never in the URI.
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "mlops-kit"

    # training engines (docs/training-engines.md): when a job leaves the train function
    train_function_memory_mb: Annotated[int, Meta(ge=128)] = 3008  # the deployment sets it
    train_memory_fraction: Annotated[float, Meta(gt=0, le=1)] = 0.7  # peak estimate budget
    train_max_function_rows: Annotated[int, Meta(ge=1)] = 1_000_000
    # batch scoring: a file larger than this is split into chunks of about this size, one
    # validate-queue message each (core/scoring/fanout.py); 0 never splits. 32 MiB of the demo
    # model's ~47-byte CSV rows is ~700k rows, 40-70 s at the 10-18k rows/s measured: within
    # the validate function's 120 s
    scoring_chunk_bytes: Annotated[int, Meta(ge=0)] = 32 << 20
    # ... and a job estimated at more function time than this (or with a chunk that cannot
    # finish in the validate function's timeout) goes to the batch engine, when there is one
    # (core/scoring/sizing.py)
    scoring_batch_seconds: Annotated[float, Meta(gt=0)] = 3600.0
    batch_job_queue: str | None = None  # AWS Batch (set by the deployment when enabled)
    batch_job_definition: str | None = None
    # the scoring job's definition on the same job queue (validate submits large scoring
    # jobs to it; set by the deployment when batch is enabled)
    score_job_definition: str | None = None
    batch_attempts: Annotated[int, Meta(ge=1, le=10)] = 2
    batch_timeout_s: Annotated[int, Meta(ge=60)] = 4 * 3600
    # Where large jobs go: batch (AWS Batch), process (`python -m mlops_kit.train_job` in a
    # separate process: the local default, and `emulate`'s "Batch"), none (train in the
    # consumer). Unset: process locally, batch on aws when batch_job_queue is set.
    job_runner: Literal["batch", "process", "none"] | None = None

    _bool_fields: ClassVar[tuple[str, ...]] = ()  # the bool fields' names, set below

    def model_copy(self, *, update: dict[str, Any]) -> Settings:
        """A copy with these fields replaced (not validated: the caller's own values)."""
        return msgspec.structs.replace(self, **update)

    def __repr__(self) -> str:
        shown = (f"{f}={getattr(self, f)!r}" for f in self.__struct_fields__
                 if f != "azure_connection_string")
        return f"Settings({', '.join(shown)})"


Settings._bool_fields = tuple(f.name for f in msgspec.structs.fields(Settings) if f.type is bool)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
