"""The `batch` stack config object: training on AWS Batch (Fargate) when the data is big
(docs/training-engines.md). Validated without pulumi, like infra/config.py, which calls
`parse_batch` and reports its problems with everyone else's.

    pulumi config set --path batch.enabled true
    pulumi config set --path batch.vcpu 4
    pulumi config set --path batch.memoryMb 16384
    pulumi config set --path 'batch.subnetIds[0]' subnet-0abc...   # your VPC (else one is made)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Fargate task sizes (AWS Batch ResourceRequirement / ECS task size): vCPU -> allowed MiB.
FARGATE_MEMORY: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4096 + 1, 1024)),
    1: tuple(range(2048, 8192 + 1, 1024)),
    2: tuple(range(4096, 16384 + 1, 1024)),
    4: tuple(range(8192, 30720 + 1, 1024)),
    8: tuple(range(16384, 61440 + 1, 4096)),
    16: tuple(range(32768, 122880 + 1, 8192)),
}
NETWORKS = ("endpoints", "nat", "public")
FIELDS = {"enabled", "vcpu", "memoryMb", "maxVcpus", "timeoutMinutes", "attempts", "spot",
          "network", "zones", "ephemeralStorageGb", "subnetIds", "securityGroupIds",
          "maxFunctionRows", "memoryFraction"}
# Fargate ephemeral storage: 20 GiB without a setting; 21-200 GiB when set
# (docs.aws.amazon.com/batch/latest/APIReference/API_EphemeralStorage.html)
EPHEMERAL_GIB = (21, 200)
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG = re.compile(r"^sg-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class BatchConfig:
    enabled: bool = False
    vcpu: float = 4
    memory_mb: int = 16384
    max_vcpus: int = 64  # the compute environment's ceiling (how many jobs at once)
    timeout_minutes: int = 240
    attempts: int = 2
    spot: bool = False  # FARGATE_SPOT: about 70% cheaper, may be interrupted (then retried)
    # a VPC the program creates: private subnets reaching AWS through VPC endpoints, or a NAT;
    # or public subnets (a public IP per task, no ingress): nothing billed while idle
    network: Literal["endpoints", "nat", "public"] = "endpoints"
    zones: int = 1  # availability zones of the created subnets (each adds its endpoints' cost)
    ephemeral_storage_gb: int | None = None  # the task's disk (Fargate's 20 GiB when unset)
    subnet_ids: tuple[str, ...] = ()  # or yours: private subnets with a route to AWS APIs
    security_group_ids: tuple[str, ...] = ()
    max_function_rows: int = 1_000_000  # routing: over this goes to batch
    memory_fraction: float = 0.7  # routing: an estimated peak over this share of train's memory

    @property
    def own_vpc(self) -> bool:
        return not self.subnet_ids


def _number(key: str, value: Any, problems: list[str], default: float) -> float:
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        problems.append(f"{key}: expected a number, got {value!r}")
        return default


def _flag(key: str, value: Any, problems: list[str], default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    problems.append(f"{key}: expected true or false, got {value!r}")
    return default


def _ids(key: str, value: Any, pattern: re.Pattern, problems: list[str]) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key}: expected a list of ids")
        return ()
    bad = [v for v in value if not pattern.match(v)]
    if bad:
        problems.append(f"{key}: {bad[0]!r} is not an id like {pattern.pattern[1:8]}...")
    return tuple(value)


def parse_batch(raw: Any, problems: list[str]) -> BatchConfig:
    """The `batch` object -> BatchConfig; problems are appended, each naming batch.<field>."""
    if raw in (None, "", {}):
        return BatchConfig()
    if not isinstance(raw, Mapping):
        problems.append("batch: expected an object (pulumi config set --path batch.enabled true)")
        return BatchConfig()
    for unknown in sorted(set(raw) - FIELDS):
        problems.append(f"batch.{unknown}: unknown; known: {', '.join(sorted(FIELDS))}")
    d = BatchConfig()
    vcpu = _number("batch.vcpu", raw.get("vcpu"), problems, d.vcpu)
    memory = int(_number("batch.memoryMb", raw.get("memoryMb"), problems, d.memory_mb))
    if vcpu not in FARGATE_MEMORY:
        problems.append(f"batch.vcpu: {vcpu:g} is not a Fargate size; use one of "
                        f"{', '.join(f'{v:g}' for v in FARGATE_MEMORY)}")
    elif memory not in FARGATE_MEMORY[vcpu]:
        sizes = FARGATE_MEMORY[vcpu]
        problems.append(f"batch.memoryMb: {memory} MiB does not go with {vcpu:g} vCPU on "
                        f"Fargate; use {sizes[0]}-{sizes[-1]} in steps of "
                        f"{sizes[1] - sizes[0] if len(sizes) > 1 else sizes[0]}")
    max_vcpus = int(_number("batch.maxVcpus", raw.get("maxVcpus"), problems, d.max_vcpus))
    if max_vcpus < vcpu:
        problems.append(f"batch.maxVcpus: {max_vcpus} is below one job's {vcpu:g} vCPU")
    timeout = int(_number("batch.timeoutMinutes", raw.get("timeoutMinutes"), problems,
                          d.timeout_minutes))
    if not 1 <= timeout <= 14 * 24 * 60:
        problems.append(f"batch.timeoutMinutes: {timeout} must be 1 to 20160 (14 days)")
    attempts = int(_number("batch.attempts", raw.get("attempts"), problems, d.attempts))
    if not 1 <= attempts <= 10:
        problems.append(f"batch.attempts: {attempts} must be 1 to 10 (Batch's limit)")
    network = str(raw.get("network") or d.network)
    if network not in NETWORKS:
        problems.append(f"batch.network: {network!r} must be one of {', '.join(NETWORKS)}")
    zones = int(_number("batch.zones", raw.get("zones"), problems, d.zones))
    if zones not in (1, 2):
        problems.append(f"batch.zones: {zones} must be 1 or 2 (availability zones)")
    disk = raw.get("ephemeralStorageGb")
    ephemeral = None if disk in (None, "") else int(_number(
        "batch.ephemeralStorageGb", disk, problems, EPHEMERAL_GIB[0]))
    if ephemeral is not None and not EPHEMERAL_GIB[0] <= ephemeral <= EPHEMERAL_GIB[1]:
        problems.append(f"batch.ephemeralStorageGb: {ephemeral} must be {EPHEMERAL_GIB[0]} to "
                        f"{EPHEMERAL_GIB[1]} GiB (Fargate)")
    subnets = _ids("batch.subnetIds", raw.get("subnetIds"), _SUBNET, problems)
    groups = _ids("batch.securityGroupIds", raw.get("securityGroupIds"), _SG, problems)
    if bool(subnets) != bool(groups):
        problems.append("batch.subnetIds and batch.securityGroupIds go together (your VPC), "
                        "or neither (the program creates one)")
    rows = int(_number("batch.maxFunctionRows", raw.get("maxFunctionRows"), problems,
                       d.max_function_rows))
    if rows < 1:
        problems.append(f"batch.maxFunctionRows: expected >= 1, got {rows}")
    fraction = _number("batch.memoryFraction", raw.get("memoryFraction"), problems,
                       d.memory_fraction)
    if not 0 < fraction <= 1:
        problems.append(f"batch.memoryFraction: {fraction} must be in (0, 1]")
    return BatchConfig(
        enabled=_flag("batch.enabled", raw.get("enabled"), problems, d.enabled), vcpu=vcpu,
        memory_mb=memory, max_vcpus=max_vcpus, timeout_minutes=timeout, attempts=attempts,
        spot=_flag("batch.spot", raw.get("spot"), problems, d.spot),
        network=network,  # type: ignore[arg-type]  # checked above
        zones=zones, ephemeral_storage_gb=ephemeral,
        subnet_ids=subnets, security_group_ids=groups, max_function_rows=rows,
        memory_fraction=fraction)
