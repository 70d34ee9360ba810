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

from infra.batch_config import BatchConfig, parse_batch

AuthMode = Literal["iam", "jwt"]
# Browser sign-in to the console on AWS (infra/components/console_signin.py): off, a Cognito
# user pool the stack creates, or any OIDC issuer + public client given in config.
ConsoleAuth = Literal["none", "cognito", "oidc"]

# The only values CloudWatch Logs accepts for retentionInDays (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)
LAMBDA_MEMORY_MB = (128, 10240)  # Lambda's memory range, in MB
SSE_ALGORITHMS = ("aws:kms", "AES256")

# Project-namespace keys `__main__` reads (pulumi config set <key> ...), plus aws:region, with
# the type Pulumi.yaml declares for each and the StackConfig field it fills (a test checks that
# Pulumi.yaml's `config:` schema and this module agree: keys, types and defaults).
SCHEMA: dict[str, tuple[str, str]] = {
    "cloud": ("string", "cloud"),
    "azureAuthClientId": ("string", "azure_auth_client_id"),
    "azureOperatorPrincipalId": ("string", "azure_operator_principal_id"),
    "azureConsoleSignIn": ("boolean", "azure_console_sign_in"),
    "namePrefix": ("string", "name_prefix"),
    "schedule": ("string", "schedule"),
    "memory": ("object", "memory"),
    "reservedConcurrency": ("object", "reserved_concurrency"),
    "authMode": ("string", "auth_mode"),
    "jwtIssuer": ("string", "jwt_issuer"),
    "jwtAudience": ("array", "jwt_audience"),
    "consoleAuth": ("string", "console_auth"),
    "consoleOidcIssuer": ("string", "console_oidc_issuer"),
    "consoleOidcClientId": ("string", "console_oidc_client_id"),
    "logRetentionDays": ("integer", "log_retention_days"),
    "deletionProtection": ("boolean", "deletion_protection"),
    "alarmEmail": ("string", "alarm_email"),
    "sseAlgorithm": ("string", "sse_algorithm"),
    "packageDir": ("string", "package_dir"),
    "trainImageUri": ("string", "train_image_uri"),
    "throttleRateLimit": ("integer", "throttle_rate_limit"),
    "throttleBurstLimit": ("integer", "throttle_burst_limit"),
    "latencyP99Ms": ("integer", "latency_p99_ms"),
    "tracing": ("boolean", "tracing"),
    "detailedApiMetrics": ("boolean", "detailed_api_metrics"),
    "batch": ("object", "batch"),  # infra/batch_config.py
}
KEYS = tuple(SCHEMA)
OBJECT_KEYS = tuple(k for k, (t, _) in SCHEMA.items() if t in ("object", "array"))  # JSON

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
# Lower-case so it can start bucket names; short so "<prefix>-<function>" fits every limit.
_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# An ECR image: repo:tag, repo@sha256:<digest> or repo:tag@sha256:<digest>. Lambda gets the
# digest only (it refuses a tag and a digest together); a bare tag is resolved to its digest.
_IMAGE_URI = re.compile(r"^(?P<repo>\d{12}\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com"
                        r"(\.cn)?/(?P<name>[a-z0-9][\w./-]*))"
                        r"(:(?P<tag>[\w][\w.-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$")


class ConfigError(ValueError):
    """Stack configuration is invalid; the message lists every problem, one per line."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(self.problems))


@dataclass(frozen=True)
class StackConfig:
    region: str
    name_prefix: str
    cloud: Literal["aws", "azure"] = "aws"  # azure: infra/azure_stack renders the same topology
    azure_auth_client_id: str | None = None  # azure: the Entra ID app inference callers use
    azure_operator_principal_id: str | None = None  # azure: who gets the data roles
    azure_console_sign_in: bool = False  # azure: browsers sign in to /ui (login redirect)
    schedule: str = "rate(1 hour)"
    memory: Mapping[str, int] = field(default_factory=dict)  # function -> MB override
    auth_mode: AuthMode = "iam"
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    console_auth: ConsoleAuth = "none"
    console_oidc_issuer: str | None = None
    console_oidc_client_id: str | None = None
    log_retention_days: int = 30
    deletion_protection: bool = True
    alarm_email: str | None = None
    sse_algorithm: str = "aws:kms"
    package_dir: str | None = None  # prebuilt zips (python -m infra.lambda_zips --out DIR)
    train_image_uri: str | None = None  # prebuilt training image; else the program builds it
    throttle_rate_limit: int = 50
    throttle_burst_limit: int = 100
    latency_p99_ms: int = 1000
    # Opt-in only: reserved concurrency is carved out of the account's unreserved pool, and
    # new accounts (quota 10 or 50) refuse any reservation that leaves less than 10.
    reserved_concurrency: Mapping[str, int] = field(default_factory=dict)
    tracing: bool = False  # X-Ray on every function (paid per trace)
    detailed_api_metrics: bool = False  # per-route API Gateway metrics (paid per metric)
    batch: BatchConfig = field(default_factory=BatchConfig)  # training on AWS Batch

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


def _per_function(key: str, value: Any, functions: tuple[str, ...], problems: list[str],
                  bounds: tuple[int, int], unit: str, example: int) -> dict[str, int]:
    """An object of function name -> whole number within bounds (memory, reservedConcurrency)."""
    out: dict[str, int] = {}
    if value in (None, ""):
        return out
    if not isinstance(value, Mapping):
        problems.append(f"{key}: expected an object like {{\"serve\": {example}}} "
                        f"(pulumi config set --path {key}.serve {example})")
        return out
    lo, hi = bounds
    for fn, raw_n in value.items():
        if fn not in functions:
            problems.append(f"{key}.{fn}: unknown function; known: {', '.join(functions)}")
            continue
        n = _int(f"{key}.{fn}", raw_n, problems, -1)
        if n != -1 and not lo <= n <= hi:
            problems.append(f"{key}.{fn}: {n} {unit} is outside {lo}-{hi}")
        out[fn] = n
    return out


def image_uri_parts(uri: str) -> dict[str, str | None]:
    """repo (registry/name), name, region, tag, digest of a valid trainImageUri."""
    m = _IMAGE_URI.match(uri)
    if not m:
        raise ValueError(f"not an ECR image URI: {uri!r}")
    return {k: m.group(k) for k in ("repo", "name", "region", "tag", "digest")}


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

    cloud = str(raw.get("cloud") or "aws")
    if cloud not in ("aws", "azure"):
        problems.append(f"cloud: {cloud!r} must be aws or azure")

    schedule = str(raw.get("schedule") or "rate(1 hour)")
    rate = _RATE.match(schedule)
    if rate:
        n, unit = int(rate.group(1)), rate.group(2)
        if n < 1 or (n == 1) != (not unit.endswith("s")):
            problems.append(f"schedule: {schedule!r}: use rate(1 hour) for one unit and "
                            "rate(N hours) for N > 1")
    elif not _CRON.match(schedule):
        problems.append(f"schedule: {schedule!r} must be rate(N unit) or cron(m h dom mon dow y)")

    memory = _per_function("memory", raw.get("memory"), functions, problems,
                           LAMBDA_MEMORY_MB, "MB", example=2048)
    reserved = _per_function("reservedConcurrency", raw.get("reservedConcurrency"), functions,
                             problems, (1, 1000), "concurrent executions", example=5)

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

    console_auth = str(raw.get("consoleAuth") or "none").strip().lower()
    console_issuer = str(raw.get("consoleOidcIssuer") or "").strip() or None
    console_client = str(raw.get("consoleOidcClientId") or "").strip() or None
    if console_auth not in ("none", "cognito", "oidc"):
        problems.append(f"consoleAuth: {console_auth!r} must be none, cognito or oidc")
    elif console_auth == "oidc":
        if not console_issuer or not console_issuer.startswith("https://"):
            problems.append("consoleOidcIssuer: required when consoleAuth is oidc, an https:// "
                            "issuer URL")
        if not console_client:
            problems.append("consoleOidcClientId: required when consoleAuth is oidc (a public "
                            "client: authorization code + PKCE, no secret)")
    elif console_issuer or console_client:
        problems.append("consoleOidcIssuer/consoleOidcClientId: only used with consoleAuth oidc")

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
    found = _IMAGE_URI.match(str(image)) if image else None
    if image and not (found and (found.group("tag") or found.group("digest"))):
        problems.append(f"trainImageUri: {image!r} must be an ECR image URI "
                        "(<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>, @sha256:<digest> "
                        "or :<tag>@sha256:<digest>)")

    throttle_rate = _int("throttleRateLimit", raw.get("throttleRateLimit"), problems, 50)
    if throttle_rate < 1:
        problems.append(f"throttleRateLimit: expected >= 1 request/s, got {throttle_rate}")
    burst = _int("throttleBurstLimit", raw.get("throttleBurstLimit"), problems, 100)
    if burst < 1:
        problems.append(f"throttleBurstLimit: expected >= 1, got {burst}")
    latency = _int("latencyP99Ms", raw.get("latencyP99Ms"), problems, 1000)
    if latency < 1:
        problems.append(f"latencyP99Ms: expected >= 1, got {latency}")

    deletion_protection = _bool("deletionProtection", raw.get("deletionProtection"), problems,
                                True)
    tracing = _bool("tracing", raw.get("tracing"), problems, False)
    detailed = _bool("detailedApiMetrics", raw.get("detailedApiMetrics"), problems, False)
    batch = parse_batch(raw.get("batch"), problems)
    if problems:
        raise ConfigError(problems)
    return StackConfig(
        region=str(region), name_prefix=name_prefix, cloud=cloud,  # type: ignore[arg-type]
        schedule=schedule, memory=memory,
        auth_mode=auth_mode,  # type: ignore[arg-type]  # checked above
        jwt_issuer=str(jwt_issuer) if jwt_issuer else None, jwt_audience=jwt_audience,
        console_auth=console_auth,  # type: ignore[arg-type]  # checked above
        console_oidc_issuer=console_issuer, console_oidc_client_id=console_client,
        log_retention_days=retention, deletion_protection=deletion_protection,
        alarm_email=str(alarm_email) if alarm_email else None, sse_algorithm=sse,
        package_dir=raw.get("packageDir") or None, train_image_uri=image,
        throttle_rate_limit=throttle_rate, throttle_burst_limit=burst, latency_p99_ms=latency,
        reserved_concurrency=reserved, tracing=tracing, detailed_api_metrics=detailed,
        batch=batch,
    )
