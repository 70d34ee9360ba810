"""The settings the serve function reads at a cold start, without pydantic (issue 28).

mlops_kit.settings.Settings (a pydantic model) stays the settings of everything else; building
it costs pydantic's import, its plugin loader and the schema: ~60-90 ms of CPU at every serve
cold start, before the model's session can start opening. read_settings() reads the same
MLOPSKIT_* variables into a frozen dataclass with the same field names and defaults.

Only the plain spellings are converted here: an ASCII string; a boolean in one of pydantic's
spellings (any case); an integer of at most 18 digits with an optional sign; a finite decimal
number; a Literal's exact value; then each field's bounds. Anything else (whitespace around a
number, `1_000`, `3.0` for an integer, a value out of bounds or not allowed, non-ASCII text)
is not guessed at: read_settings() returns pydantic's Settings() for that environment, which
converts it by its own rules or raises its own error. So the two agree on every environment
(tests/unit/test_light_settings.py checks it with hypothesis), and an error names the field as
pydantic's does.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlops_kit.settings import Settings

ENV_PREFIX = "MLOPSKIT_"


def environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The MLOPSKIT_* variables as field names (MLOPSKIT_DATA_BUCKET -> data_bucket)."""
    env = os.environ if environ is None else environ
    n = len(ENV_PREFIX)
    return {k[n:].lower(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}


class LightSettings:
    """Settings' fields, names and defaults (the test compares them with Settings.model_fields):
    each default is a class attribute, each value read from the environment an instance one;
    frozen. A plain class, not a dataclass: a dataclass compiles its generated __init__ (52
    fields), __repr__ and __eq__ at every import, ~3 ms of the cold start before the preload."""


    backend: Literal["local", "aws", "azure"] = "local"
    workspace: Path = Path(".mlops-kit")
    region: str | None = None
    endpoint_url: str | None = None
    data_bucket: str | None = None
    artifact_bucket: str | None = None
    table_name: str | None = None
    validate_queue_url: str | None = None
    train_queue_url: str | None = None
    topic_arn: str | None = None
    jobs_queue_url: str | None = None
    stack: str | None = None
    console_key_parameter: str | None = None
    console_oidc_issuer: str | None = None
    console_oidc_client_id: str | None = None
    azure_storage_account: str | None = None
    azure_endpoint_suffix: str = "core.windows.net"
    azure_client_id: str | None = None
    azure_connection_string: str | None = None  # never in repr
    azure_data_container: str | None = None
    azure_artifact_container: str | None = None
    azure_table_name: str | None = None
    azure_validate_queue: str | None = None
    azure_train_queue: str | None = None
    azure_alerts_queue: str | None = None
    monitor_schedule: str | None = None
    function: str | None = None
    refresh_seconds: float = 2.0
    capture: bool = True
    serving_warm_versions: int = 4
    capture_max_rows: int = 2000
    capture_max_age_s: float = 10.0
    capture_durable: bool = False
    auth: Literal["token", "none"] = "token"
    max_receives: int = 3
    validate_visibility_s: int = 120
    train_visibility_s: int = 900
    log_level: str = "INFO"
    trials: Literal["auto", "processes", "sequential", "queue"] = "auto"
    trial_workers: int | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "mlops-kit"
    train_function_memory_mb: int = 3008
    train_memory_fraction: float = 0.7
    train_max_function_rows: int = 1_000_000
    scoring_chunk_bytes: int = 32 << 20
    scoring_batch_seconds: float = 3600.0
    batch_job_queue: str | None = None
    batch_job_definition: str | None = None
    score_job_definition: str | None = None
    batch_attempts: int = 2
    batch_timeout_s: int = 4 * 3600
    job_runner: Literal["batch", "process", "none"] | None = None

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - _FIELDS
        if unknown:
            raise TypeError(f"LightSettings: no field {sorted(unknown)}")
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"LightSettings is frozen: {name} cannot be set")

    def __repr__(self) -> str:
        shown = (f"{k}={getattr(self, k)!r}" for k in FIELDS if k != "azure_connection_string")
        return f"LightSettings({', '.join(shown)})"


FIELDS: tuple[str, ...] = tuple(LightSettings.__annotations__)
_FIELDS = frozenset(FIELDS)


# field -> (kind, rule): kind str | path | bool | int | float | a tuple of allowed values;
# rule: the bounds (ge, gt, le) of a number. Every other field is an optional string.
_BOUNDS: dict[str, tuple[float | None, float | None, float | None]] = {
    "refresh_seconds": (0, None, None), "serving_warm_versions": (1, None, 64),
    "capture_max_rows": (1, None, None), "capture_max_age_s": (0, None, None),
    "max_receives": (1, None, None), "validate_visibility_s": (1, None, None),
    "train_visibility_s": (1, None, None), "trial_workers": (1, None, None),
    "train_function_memory_mb": (128, None, None), "train_memory_fraction": (None, 0, 1),
    "train_max_function_rows": (1, None, None), "scoring_chunk_bytes": (0, None, None),
    "scoring_batch_seconds": (None, 0, None), "batch_attempts": (1, None, 10),
    "batch_timeout_s": (60, None, None),
}
_KINDS: dict[str, Any] = {
    "backend": ("local", "aws", "azure"), "workspace": "path",
    "auth": ("token", "none"), "trials": ("auto", "processes", "sequential", "queue"),
    "job_runner": ("batch", "process", "none"),
    "capture": "bool", "capture_durable": "bool",
    "refresh_seconds": "float", "capture_max_age_s": "float", "train_memory_fraction": "float",
    "scoring_batch_seconds": "float",
    **{name: "int" for name in ("serving_warm_versions", "capture_max_rows", "max_receives",
                                "validate_visibility_s", "train_visibility_s", "trial_workers",
                                "train_function_memory_mb", "train_max_function_rows",
                                "scoring_chunk_bytes", "batch_attempts", "batch_timeout_s")},
}
# pydantic's boolean spellings (pydantic-core compares them ignoring ASCII case)
_BOOLS = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
          **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False)}
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


class _Unsure(Exception):
    """A value this reader does not convert: pydantic's Settings decides."""


def _convert(name: str, text: str) -> Any:
    if not text.isascii():
        raise _Unsure
    kind = _KINDS.get(name, "str")
    if kind == "str":
        return text
    if kind == "path":
        return Path(text)
    if kind == "bool":
        try:
            return _BOOLS[text.lower()]
        except KeyError:
            raise _Unsure from None
    if isinstance(kind, tuple):
        if text not in kind:
            raise _Unsure
        return text
    if not (_INT if kind == "int" else _FLOAT).fullmatch(text):
        raise _Unsure
    value: float = int(text) if kind == "int" else float(text)
    ge, gt, le = _BOUNDS[name]
    if not math.isfinite(value) or (ge is not None and not value >= ge) \
            or (gt is not None and not value > gt) or (le is not None and not value <= le):
        raise _Unsure
    return value


def read_settings() -> LightSettings | Settings:
    """The MLOPSKIT_* environment as settings: a LightSettings, or pydantic's Settings() when a
    value is spelled in a way only pydantic's rules decide (it raises its ValidationError for
    a bad one)."""
    values: dict[str, Any] = {}
    try:
        for name, text in environment().items():
            if name in _FIELDS:  # unknown names are ignored (Settings: extra="ignore")
                values[name] = _convert(name, text)
    except _Unsure:
        from mlops_kit.settings import Settings

        return Settings()
    return LightSettings(**values)
