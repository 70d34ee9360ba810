"""Late ground truth: labels files under labels/<model>/ (request_id + target), checked on
upload and indexed as two numpy arrays (64-bit id hash + label) for the join."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from mlops_kit.core import layout
from mlops_kit.core.context import load_spec
from mlops_kit.core.layout import check_name
from mlops_kit.core.missing import is_missing_text
from mlops_kit.core.monitoring.captures import CHUNK_ROWS
from mlops_kit.core.stats import category_key
from mlops_kit.errors import MlopsKitError, SpecError, ValidationError


# -- labels -------------------------------------------------------------------------------
def _id_hash(ids: list[str]) -> np.ndarray:
    # Python's str hash: 64 bits, stable within the process that builds and probes the index.
    return np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))


class LabelIndex:
    """Late ground truth keyed by captured row id (request_id, or request_id#i in a batch), as
    sorted 64-bit id hashes + labels: ~12 bytes per label. Later files win for a repeated id.
    A file that cannot be read (not UTF-8, no target column: what ingest quarantines) is skipped
    and listed in `skipped`, so one bad file never stops monitoring."""

    def __init__(self, hashes: np.ndarray, values: np.ndarray, files: int, read: int,
                 skipped: list[dict[str, str]] | None = None) -> None:
        self.hashes, self.values, self.files, self.read = hashes, values, files, read
        self.skipped = skipped or []
        self.hit = np.zeros(hashes.size, dtype=bool)

    @classmethod
    def load(cls, ctx, model: str, target: str, *, numeric: bool) -> LabelIndex:
        hashes: list[np.ndarray] = []
        values: list[np.ndarray] = []
        skipped: list[dict[str, str]] = []
        files = read = 0
        for info in ctx.store.list(layout.labels_prefix(model)):
            if not info.key.endswith(".csv"):
                continue
            files += 1
            file_hashes, file_values, file_read = [], [], 0
            try:
                with ctx.store.open(info.key) as f:
                    for ids, vals in read_labels(f, info.key, target, numeric):
                        file_hashes.append(_id_hash(ids))
                        file_values.append(np.asarray(vals, dtype=np.float64 if numeric
                                                      else object))
                        file_read += len(ids)
            except ValidationError as exc:
                skipped.append({"key": info.key, "reason": exc.message})
                continue
            hashes += file_hashes
            values += file_values
            read += file_read
        if not hashes:
            return cls(np.empty(0, np.int64), np.empty(0, object), files, 0, skipped)
        h = np.concatenate(hashes)
        v = np.concatenate(values)
        # keep the last occurrence of each id, then sort by hash for searchsorted
        _, first_in_reversed = np.unique(h[::-1], return_index=True)
        keep = h.size - 1 - first_in_reversed
        order = np.argsort(h[keep], kind="stable")
        return cls(h[keep][order], v[keep][order], files, read, skipped)

    def __len__(self) -> int:
        return int(self.hashes.size)

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mask of ids that have a label, their labels)."""
        if not self.hashes.size or not ids:
            return np.zeros(len(ids), dtype=bool), self.values[:0]
        h = _id_hash(ids)
        pos = np.minimum(np.searchsorted(self.hashes, h), self.hashes.size - 1)
        found = self.hashes[pos] == h
        self.hit[pos[found]] = True
        return found, self.values[pos[found]]


def _label_value(v: str, numeric: bool | None) -> Any:
    if numeric is None:  # as written
        return v.strip()
    if numeric:
        try:
            return float(v)
        except ValueError:
            return math.nan
    return category_key(v.strip())


def read_labels(stream: BinaryIO, key: str, target: str, numeric: bool | None,
                chunk: int = CHUNK_ROWS * 10) -> Iterator[tuple[list[str], list[Any]]]:
    """(ids, labels) chunks of a labels CSV (request_id or id + the target column). Rows whose
    id or label is missing (core/missing.py) are skipped. ValidationError, naming the file and
    the reason, for a file that is not UTF-8 CSV or lacks a column."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.DictReader(text)
        header = reader.fieldnames or []
        missing = [c for c in ("request_id", target)
                   if c not in header and not (c == "request_id" and "id" in header)]
        if missing:
            raise ValidationError(f"{key}: labels need the columns request_id and {target!r}; "
                                  f"missing {missing} (header: {header[:20]})", field=missing[0])
        id_col = "request_id" if "request_id" in header else "id"
        ids: list[str] = []
        vals: list[Any] = []
        for row in reader:
            rid, v = row.get(id_col), row.get(target)
            if rid is None or v is None or is_missing_text(rid) or is_missing_text(v):
                continue
            ids.append(rid.strip())
            vals.append(_label_value(v, numeric))
            if len(ids) >= chunk:
                yield ids, vals
                ids, vals = [], []
        if ids:
            yield ids, vals
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{key}: not valid UTF-8 (byte {exc.start} of a block): save "
                              "the labels as UTF-8 CSV", field="labels") from None
    except csv.Error as exc:
        raise ValidationError(f"{key}: not a CSV file: {exc}", field="labels") from None
    finally:
        text.detach()


def load_labels(ctx, model: str, target: str) -> dict[str, Any]:
    """All labels as text by id (small label sets, tools and tests; monitoring uses LabelIndex).
    Unreadable files are skipped, as monitoring skips them."""
    labels: dict[str, Any] = {}
    for info in ctx.store.list(layout.labels_prefix(model)):
        if not info.key.endswith(".csv"):
            continue
        found: dict[str, Any] = {}
        try:
            with ctx.store.open(info.key) as f:
                for ids, vals in read_labels(f, info.key, target, None):
                    found.update(zip(ids, vals, strict=True))
        except ValidationError:
            continue
        labels.update(found)
    return labels


def ingest_labels(ctx, model: str, key: str) -> dict[str, Any]:
    """A labels upload: check it (UTF-8 CSV with request_id + the target column) and count its
    rows. The labels are joined at the next monitoring run; nothing else happens now. A bad
    file is quarantined with a report, like a bad dataset (final: never retried)."""
    check_name(model)
    try:
        spec = load_spec(ctx.store, model)
        rows = 0
        with ctx.store.open(key) as f:
            for ids, _ in read_labels(f, key, spec.target, not spec.task.is_classification):
                rows += len(ids)
    except (ValidationError, SpecError) as exc:
        return _quarantine(ctx, model, key, exc)
    return {"status": "labels_received", "model": model, "key": key, "rows": rows}


def _quarantine(ctx, model: str, key: str, exc: MlopsKitError) -> dict[str, Any]:
    qkey = layout.labels_quarantine_key(model, key.rsplit("/", 1)[-1])
    reason = exc.message
    report = {"passed": False, "kind": "labels", "model": model, "labels_key": key,
              "summary": f"failed: {reason}", "checked_at": ctx.clock.now().isoformat(),
              "rules": [{"rule": "spec" if isinstance(exc, SpecError) else "labels",
                         "column": exc.field, "passed": False, "count": 1, "message": reason,
                         "examples": []}]}
    ctx.store.copy(key, qkey)  # a copy: monitoring skips the original, which is kept
    ctx.store.put(qkey + ".report.json", json.dumps(report, indent=2).encode(),
                  content_type="application/json")
    ctx.notifier.publish(f"mlops-kit: labels for {model} quarantined",
                         {"event": "labels_quarantined", "model": model, "key": key,
                          "quarantine_key": qkey, "reason": reason})
    return {"status": "quarantined", "kind": "labels", "model": model, "key": key,
            "reason": reason, "summary": f"failed: {reason}", "quarantine_key": qkey,
            "quarantine_report_key": qkey + ".report.json"}
