"""The object-store layout: a user-facing contract, identical on every backend."""

from __future__ import annotations

from dataclasses import dataclass
from posixpath import basename

from mlops_kit.core.spec import check_name
from mlops_kit.errors import InvalidName

SPECS = "specs/"
DATASETS = "datasets/"
QUARANTINE = "quarantine/"
LABELS = "labels/"
MODELS = "models/"
CAPTURES = "captures/"
REPORTS = "reports/"
DATASET_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_KEY_LEN = 900


def spec_keys(model: str) -> list[str]:
    m = check_name(model)
    return [f"{SPECS}{m}.yaml", f"{SPECS}{m}.yml", f"{SPECS}{m}.json"]


def dataset_key(model: str, filename: str) -> str:
    return f"{DATASETS}{check_name(model)}/{safe_filename(filename)}"


def quarantine_key(model: str, filename: str) -> str:
    return f"{QUARANTINE}{check_name(model)}/{safe_filename(filename)}"


def model_prefix(model: str, version: int) -> str:
    return f"{MODELS}{check_name(model)}/{version:06d}/"


def safe_filename(name: str) -> str:
    base = basename(name.replace("\\", "/"))
    if not base or base in {".", ".."} or len(base) > 255 or any(ord(c) < 32 for c in base):
        raise InvalidName(f"file name {name!r} is invalid", field="file")
    return base


@dataclass(frozen=True)
class ParsedKey:
    kind: str  # dataset | labels | spec | other
    model: str | None
    filename: str | None


def parse_key(key: str) -> ParsedKey:
    """Classify an uploaded key. Anything escaping the layout is 'other' (and ignored)."""
    if len(key) > MAX_KEY_LEN or ".." in key.split("/"):
        return ParsedKey("other", None, None)
    parts = key.split("/")
    try:
        if key.startswith(DATASETS) and len(parts) == 3 and parts[2]:
            return ParsedKey("dataset", check_name(parts[1]), safe_filename(parts[2]))
        if key.startswith(LABELS) and len(parts) == 3 and parts[2]:
            return ParsedKey("labels", check_name(parts[1]), safe_filename(parts[2]))
        if key.startswith(SPECS) and len(parts) == 2:
            stem = parts[1].rsplit(".", 1)[0]
            return ParsedKey("spec", check_name(stem), parts[1])
    except InvalidName:
        return ParsedKey("other", None, None)
    return ParsedKey("other", None, None)
