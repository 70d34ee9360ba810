"""The model registry: versions (monotonic, reserved by conditional write), aliases (champion,
challenger with a canary/shadow weight), an append-only history, approval, rollback, lineage,
and the promotion gates. Stored in the KeyValueTable port; every transaction stays in one
partition (the model's)."""

from mlops_kit.core.registry.gates import decide_promotion
from mlops_kit.core.registry.model_registry import (
    ALIASES,
    CHALLENGER,
    CHAMPION,
    FAILED,
    PENDING,
    REGISTERED,
    REJECTED,
    Registry,
    Reservation,
)

__all__ = ["ALIASES", "CHALLENGER", "CHAMPION", "FAILED", "PENDING", "REGISTERED", "REJECTED", "Registry",
           "Reservation", "decide_promotion"]
