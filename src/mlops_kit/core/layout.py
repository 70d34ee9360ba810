"""The object-store layout: a user-facing contract, identical on every backend.

Every object key, prefix and the model-name pattern are spelled here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from posixpath import basename

from mlops_kit.errors import InvalidName

# Model and feature names end up in object keys, table keys and URL paths.
NAME_PATTERN = "[a-z0-9][a-z0-9_-]{0,62}"
NAME_RE = re.compile(f"^{NAME_PATTERN}$")

SPECS = "specs/"
DATASETS = "datasets/"
QUARANTINE = "quarantine/"
LABELS = "labels/"
MODELS = "models/"
CAPTURES = "captures/"
REPORTS = "reports/"
SCORING = "scoring/"
PREDICTIONS = "predictions/"
DATASET_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_KEY_LEN = 900
DATA_PREFIXES = (SPECS, DATASETS, QUARANTINE, LABELS, SCORING, PREDICTIONS)  # the data store
ARTIFACT_PREFIXES = (MODELS, CAPTURES, REPORTS)  # the artifact store


def check_name(value: str, what: str = "model name") -> str:
    """Model/feature names end up in object keys and table keys: no traversal, no escapes."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidName(
            f"{what} {value!r} is invalid: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit",
            field="model" if what == "model name" else what,
        )
    return value


def spec_keys(model: str) -> list[str]:
    m = check_name(model)
    return [f"{SPECS}{m}.yaml", f"{SPECS}{m}.yml", f"{SPECS}{m}.json"]


def spec_key(model: str, suffix: str = ".yaml") -> str:
    return f"{SPECS}{check_name(model)}{suffix}"


def dataset_prefix(model: str) -> str:
    return f"{DATASETS}{check_name(model)}/"


def dataset_key(model: str, filename: str) -> str:
    return f"{DATASETS}{check_name(model)}/{safe_filename(filename)}"


def quarantine_key(model: str, filename: str) -> str:
    return f"{QUARANTINE}{check_name(model)}/{safe_filename(filename)}"


def labels_quarantine_key(model: str, filename: str) -> str:
    """A bad labels file's copy (beside quarantined datasets, in a folder of its own)."""
    return f"{QUARANTINE}{check_name(model)}/labels/{safe_filename(filename)}"


def retrain_dataset_key(model: str, at: datetime) -> str:
    """Retrain on drift writes here; the upload trigger validates and trains it like any other."""
    return f"{dataset_prefix(model)}retrain-{at:%Y%m%dT%H%M%S}.csv"


def labels_prefix(model: str) -> str:
    return f"{LABELS}{check_name(model)}/"


def labels_key(model: str, filename: str) -> str:
    return f"{labels_prefix(model)}{safe_filename(filename)}"


def scoring_key(model: str, filename: str) -> str:
    """A file of records to score (batch scoring): an upload here starts a scoring job."""
    return f"{SCORING}{check_name(model)}/{safe_filename(filename)}"


def scoring_options_key(model: str, name: str) -> str:
    """Optional options beside a scoring file: {"version"|"alias", "keep"}."""
    return f"{SCORING}{check_name(model)}/{safe_filename(name)}.json"


def predictions_prefix(model: str, name: str) -> str:
    return f"{PREDICTIONS}{check_name(model)}/{safe_filename(name)}/"


def predictions_part_key(model: str, name: str, part: int) -> str:
    return f"{predictions_prefix(model, name)}part-{int(part):05d}.parquet"


def predictions_rejects_key(model: str, name: str) -> str:
    return f"{predictions_prefix(model, name)}rejects.parquet"


def predictions_chunk_rejects_key(model: str, name: str, chunk: int) -> str:
    """One chunk's rejected rows (a fanned-out job), merged into rejects.parquet at the end."""
    return f"{predictions_prefix(model, name)}_rejects/chunk-{int(chunk):05d}.parquet"


def predictions_manifest_key(model: str, name: str) -> str:
    """Written last: its presence means the job is complete (query engines skip '_' names)."""
    return f"{predictions_prefix(model, name)}_manifest.json"


def model_prefix(model: str, version: int) -> str:
    return f"{MODELS}{check_name(model)}/{int(version):06d}/"


MODEL_FILE = "model.onnx"
# onnxruntime's ORT format of the graph after its optimisations, written beside model.onnx when
# the parity gate checked it (registry entry: ort_sha256); serving prefers it
OPTIMIZED_MODEL_FILE = "model.ort"


def artifact_key(model: str, version: int, name: str = MODEL_FILE) -> str:
    return model_prefix(model, version) + name


def capture_prefix(model: str) -> str:
    return f"{CAPTURES}{check_name(model)}/"


def capture_hour_prefix(model: str, at: datetime) -> str:
    """Raw captures of one hour: captures/<model>/<YYYY-MM-DD>/<HH>/ (serve writes here)."""
    return f"{capture_prefix(model)}{at:%Y-%m-%d}/{at:%H}/"


def capture_object_key(model: str, at: datetime, unique: str, suffix: str) -> str:
    """One flush of the capture buffer: named by the flush time (its hour partition) and a
    random suffix, so concurrent writers never collide."""
    return f"{capture_hour_prefix(model, at)}{at:%Y%m%dT%H%M%S}-{unique}{suffix}"


# Serving health counters sit beside the captures, not among them: readers of
# captures/<model>/ (the monitor, query engines over a table's location) see captures only. A
# model name never starts with "_", so this folder is never a model's.
HEALTH = f"{CAPTURES}_health/"


def health_hour_prefix(model: str, at: datetime) -> str:
    """Serving health counters of one hour: captures/_health/<model>/<YYYY-MM-DD>/<HH>/ (one
    small JSON object per flush of a serving instance)."""
    return f"{HEALTH}{check_name(model)}/{at:%Y-%m-%d}/{at:%H}/"


# Compacted captures live apart from the raw ones (query engines read every object under a
# table's location), Hive-style so DuckDB / Athena / Spark see dt and hour as columns.
CAPTURE_PARQUET = "parquet/"


def capture_parquet_prefix(model: str) -> str:
    return f"{capture_prefix(model)}{CAPTURE_PARQUET}"


def capture_parquet_hour_prefix(model: str, hour: datetime) -> str:
    return f"{capture_parquet_prefix(model)}dt={hour:%Y-%m-%d}/hour={hour:%H}/"


def capture_parquet_key(model: str, hour: datetime, part: int = 0) -> str:
    """Part `part` of the Parquet compaction of one hour partition."""
    return f"{capture_parquet_hour_prefix(model, hour)}{check_name(model)}-{hour:%Y%m%dT%H}-" \
           f"{int(part):03d}.parquet"


def capture_parquet_manifest_key(model: str, hour: datetime) -> str:
    """Written last by the compaction; query engines skip names that start with '_'."""
    return f"{capture_parquet_hour_prefix(model, hour)}_manifest.json"


def reports_prefix(model: str, kind: str) -> str:
    """kind: validation | monitoring."""
    return f"{REPORTS}{check_name(model)}/{kind}/"


def validation_report_key(model: str, filename: str, stamp: str, etag: str) -> str:
    return f"{reports_prefix(model, 'validation')}{safe_filename(filename)}.{stamp}.{etag[:8]}.json"


def safe_filename(name: str) -> str:
    base = basename(name.replace("\\", "/"))
    if not base or base in {".", ".."} or len(base) > 255 or any(ord(c) < 32 for c in base):
        raise InvalidName(f"file name {name!r} is invalid", field="file")
    return base


@dataclass(frozen=True)
class ParsedKey:
    kind: str  # dataset | labels | scoring | spec | other
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
        if (key.startswith(SCORING) and len(parts) == 3 and parts[2]
                and parts[2].lower().endswith(DATASET_SUFFIXES)):
            return ParsedKey("scoring", check_name(parts[1]), safe_filename(parts[2]))
        if key.startswith(LABELS) and len(parts) == 3 and parts[2]:
            return ParsedKey("labels", check_name(parts[1]), safe_filename(parts[2]))
        if key.startswith(SPECS) and len(parts) == 2:
            stem = parts[1].rsplit(".", 1)[0]
            return ParsedKey("spec", check_name(stem), parts[1])
    except InvalidName:
        return ParsedKey("other", None, None)
    return ParsedKey("other", None, None)
