"""Issue 23's scenario, shared by the local, Lambda (moto) and Azure tests: churn v1 is the
champion; v2 was trained from a spec that adds the required feature `contract`, so v2 breaks
v1's callers (and v1 refuses v2's callers' `contract` field as unknown)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from mlops_kit.core.registry import CHALLENGER, CHAMPION
from mlops_kit.core.synthetic import churn_csv
from tests.support import FAST_SPEC, apply_spec, feature_records, make_backend

MODEL = "churn"
CONTRACT = {"name": "contract", "type": "categorical", "categories": ["monthly", "yearly"]}
V2_SPEC = {**FAST_SPEC, "features": [*FAST_SPEC["features"], CONTRACT]}


def contract_csv(n: int, seed: int) -> bytes:
    """churn data with a `contract` column."""
    rng = random.Random(seed)
    lines = churn_csv(n, seed=seed).decode().splitlines()
    out = [lines[0] + ",contract"] + [f"{line},{rng.choice(['monthly', 'yearly'])}"
                                      for line in lines[1:]]
    return ("\n".join(out) + "\n").encode()


def train_breaking_version(backend) -> list[dict[str, Any]]:
    """Apply the spec with `contract` and upload data for it: the worker trains v2."""
    from mlops_kit.local.worker import put_object, run_once

    apply_spec(backend, V2_SPEC)
    put_object(backend, f"datasets/{MODEL}/with-contract.csv", contract_csv(900, seed=31))
    return run_once(backend)


def build_two_contracts(template: Path, target: Path) -> Path:
    """A copy of the trained template (v1 champion) plus v2 (+contract), not promoted."""
    shutil.copytree(template, target)
    outcomes = train_breaking_version(make_backend(target))
    assert outcomes[-1]["status"] == "registered", outcomes
    return target


def v1_request(seed: int) -> dict[str, Any]:
    """What v1's callers send: v1's features, no `contract`."""
    return feature_records(1, seed=seed)[0]


def v2_request(seed: int) -> dict[str, Any]:
    """What v2's callers send: `contract` too (v1 refuses it as an unknown field)."""
    return {**feature_records(1, seed=seed)[0], "contract": "yearly"}


def mixed_request(i: int) -> dict[str, Any]:
    """Request i of a mixed stream: v1 callers, v2 callers, and broken ones."""
    kind = i % 4
    if kind == 3:
        return {**v1_request(i), "age": "old"}  # refused by every version
    return v2_request(i) if kind == 1 else v1_request(i)


def copy_versions(src, dst_ctx, versions=(1, 2)) -> None:
    """Put src's versions (artifacts + registry entries) into another backend, v1 champion:
    the cloud serving paths are driven with the very models trained locally."""
    store, reg = src.ctx.store, src.ctx.registry
    for v in versions:
        for info in store.list(f"models/{MODEL}/{v:06d}/"):
            dst_ctx.store.put(info.key, store.get(info.key))
        record = reg.get_version(MODEL, v)
        res = dst_ctx.registry.reserve_version(MODEL, record["run_key"], record["lineage"])
        assert res.version == v
        dst_ctx.registry.complete_version(MODEL, v, {
            k: val for k, val in record.items()
            if k not in ("model", "version", "run_key", "created_at", "lineage")})
    dst_ctx.registry.set_alias(MODEL, CHAMPION, 1, actor="test", reason="seed")


def set_challenger(ctx, mode: str, weight: float = 0.5) -> None:
    ctx.registry.set_alias(MODEL, CHALLENGER, 2, actor="test", reason=f"{mode} test",
                           extra={"mode": mode, "weight": weight}, allow_breaking=True)
