"""Typed stack configuration: parsed and validated here, without pulumi, so it is unit-testable.

`infra/__main__.py` reads raw values from `pulumi.Config` (and only there) and hands them to
`parse_config`. Every problem is collected and reported at once, each naming the key and the
rule, so a `pulumi up` fails before any resource is touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AuthMode = Literal["iam", "jwt"]

# The only values CloudWatch Logs accepts for retentionInDays (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)
LAMBDA_MEMORY_MB = (128, 10240)  # Lambda's memory range, in MB
SSE_ALGORITHMS = ("aws:kms", "AES256")

# Project-namespace keys `__main__` reads (pulumi config set <key> ...), plus aws:region.
KEYS = (
    "namePrefix", "schedule", "memory", "authMode", "jwtIssuer", "jwtAudience",
    "logRetentionDays", "deletionProtection", "alarmEmail", "sseAlgorithm", "packageDir",
    "trainImageUri", "throttleRateLimit", "throttleBurstLimit", "latencyP99Ms",
)
OBJECT_KEYS = ("memory", "jwtAudience")  # read with get_object (structured values)

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
# Lower-case so it can start bucket names; short so "<prefix>-<function>" fits every limit.
_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_IMAGE_URI = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[\w./-]+"
                        r"(:[\w.-]+|@sha256:[0-9a-f]{64})$")


class ConfigError(ValueError):
    """Stack configuration is invalid; the message lists every problem, one per line."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(self.problems))


@dataclass(frozen=True)
class StackConfig:
    region: str
    name_prefix: str
    schedule: str = "rate(1 hour)"
    memory: Mapping[str, int] = field(default_factory=dict)  # function -> MB override
    auth_mode: AuthMode = "iam"
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    log_retention_days: int = 30
    deletion_protection: bool = True
    alarm_email: str | None = None
    sse_algorithm: str = "aws:kms"
    package_dir: str | None = None  # prebuilt zips (python -m infra.packaging --out DIR)
    train_image_uri: str | None = None  # prebuilt training image; else the program builds it
    throttle_rate_limit: float = 50.0
    throttle_burst_limit: int = 100
    latency_p99_ms: int = 1000

    def memory_for(self, function: str, default: int) -> int:
        return int(self.memory.get(function, default))


def _bool(key: str, value: Any, problems: list[str], default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    problems.append(f"{key}: expected true or false, got {value!r}")
    return default


def _int(key: str, value: Any, problems: list[str], default: int) -> int:
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError):
        problems.append(f"{key}: expected a whole number, got {value!r}")
        return default


def parse_config(raw: Mapping[str, Any], function_names: Iterable[str]) -> StackConfig:
    """Validate raw config values (strings or structured objects) into a StackConfig."""
    problems: list[str] = []
    functions = tuple(function_names)

    region = raw.get("region")
    if not region:
        problems.append("aws:region: required (pulumi config set aws:region eu-west-1)")
    elif not _REGION.match(str(region)):
        problems.append(f"aws:region: {region!r} is not an AWS region name like eu-west-1")

    name_prefix = str(raw.get("namePrefix") or "")
    if not name_prefix:
        problems.append("namePrefix: required (pulumi config set namePrefix mlopskit-dev)")
    elif not _NAME_PREFIX.match(name_prefix) or "--" in name_prefix:
        problems.append(
            f"namePrefix: {name_prefix!r} must be 3-24 chars of a-z, 0-9 and single '-', "
            "starting with a letter (it starts bucket and function names)")

    schedule = str(raw.get("schedule") or "rate(1 hour)")
    rate = _RATE.match(schedule)
    if rate:
        n, unit = int(rate.group(1)), rate.group(2)
        if n < 1 or (n == 1) != (not unit.endswith("s")):
            problems.append(f"schedule: {schedule!r}: use rate(1 hour) for one unit and "
                            "rate(N hours) for N > 1")
    elif not _CRON.match(schedule):
        problems.append(f"schedule: {schedule!r} must be rate(N unit) or cron(m h dom mon dow y)")

    memory_raw = raw.get("memory") or {}
    memory: dict[str, int] = {}
    if not isinstance(memory_raw, Mapping):
        problems.append("memory: expected an object like {\"serve\": 2048} "
                        "(pulumi config set --path memory.serve 2048)")
    else:
        lo, hi = LAMBDA_MEMORY_MB
        for fn, mb in memory_raw.items():
            if fn not in functions:
                problems.append(f"memory.{fn}: unknown function; known: {', '.join(functions)}")
                continue
            value = _int(f"memory.{fn}", mb, problems, -1)
            if value != -1 and not lo <= value <= hi:
                problems.append(f"memory.{fn}: {value} MB is outside Lambda's {lo}-{hi} MB")
            memory[fn] = value

    auth_mode = str(raw.get("authMode") or "iam").strip().lower()
    jwt_issuer = raw.get("jwtIssuer") or None
    audience_raw = raw.get("jwtAudience") or ()
    if isinstance(audience_raw, str):
        audience_raw = [a for a in audience_raw.split(",") if a.strip()]
    jwt_audience = tuple(str(a).strip() for a in audience_raw)
    if auth_mode == "none":
        problems.append("authMode: 'none' is not allowed: the inference API is never anonymous; "
                        "use iam (SigV4) or jwt")
    elif auth_mode not in ("iam", "jwt"):
        problems.append(f"authMode: {auth_mode!r} must be iam or jwt")
    elif auth_mode == "jwt":
        if not jwt_issuer or not str(jwt_issuer).startswith("https://"):
            problems.append("jwtIssuer: required when authMode is jwt, an https:// issuer URL")
        if not jwt_audience:
            problems.append("jwtAudience: required when authMode is jwt (one or more audiences)")

    retention = _int("logRetentionDays", raw.get("logRetentionDays"), problems, 30)
    if retention not in LOG_RETENTION_DAYS:
        problems.append(f"logRetentionDays: {retention} is not accepted by CloudWatch Logs; "
                        f"use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")

    alarm_email = raw.get("alarmEmail") or None
    if alarm_email and not _EMAIL.match(str(alarm_email)):
        problems.append(f"alarmEmail: {alarm_email!r} is not an email address")

    sse = str(raw.get("sseAlgorithm") or "aws:kms")
    if sse not in SSE_ALGORITHMS:
        problems.append(f"sseAlgorithm: {sse!r} must be one of {', '.join(SSE_ALGORITHMS)}")

    image = raw.get("trainImageUri") or None
    if image and not _IMAGE_URI.match(str(image)):
        problems.append(f"trainImageUri: {image!r} must be an ECR image URI "
                        "(<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or @sha256:...)")

    rate_limit = raw.get("throttleRateLimit")
    try:
        throttle_rate = 50.0 if rate_limit in (None, "") else float(rate_limit)
        if throttle_rate <= 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"throttleRateLimit: expected a positive number, got {rate_limit!r}")
        throttle_rate = 50.0
    burst = _int("throttleBurstLimit", raw.get("throttleBurstLimit"), problems, 100)
    if burst < 1:
        problems.append(f"throttleBurstLimit: expected >= 1, got {burst}")
    latency = _int("latencyP99Ms", raw.get("latencyP99Ms"), problems, 1000)
    if latency < 1:
        problems.append(f"latencyP99Ms: expected >= 1, got {latency}")

    deletion_protection = _bool("deletionProtection", raw.get("deletionProtection"), problems,
                                True)
    if problems:
        raise ConfigError(problems)
    return StackConfig(
        region=str(region), name_prefix=name_prefix, schedule=schedule, memory=memory,
        auth_mode=auth_mode,  # type: ignore[arg-type]  # checked above
        jwt_issuer=str(jwt_issuer) if jwt_issuer else None, jwt_audience=jwt_audience,
        log_retention_days=retention, deletion_protection=deletion_protection,
        alarm_email=str(alarm_email) if alarm_email else None, sse_algorithm=sse,
        package_dir=raw.get("packageDir") or None, train_image_uri=image,
        throttle_rate_limit=throttle_rate, throttle_burst_limit=burst, latency_p99_ms=latency,
    )
