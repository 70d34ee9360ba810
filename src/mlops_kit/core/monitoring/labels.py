"""Late ground truth: labels files under labels/<model>/ (request_id + target), checked on
upload and indexed as two numpy arrays (64-bit id hash + label) for the join."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from mlops_kit.core import layout
from mlops_kit.core.context import load_spec
from mlops_kit.core.layout import check_name
from mlops_kit.core.monitoring.captures import CHUNK_ROWS
from mlops_kit.core.stats import category_key


# -- labels -------------------------------------------------------------------------------
def _id_hash(ids: list[str]) -> np.ndarray:
    # Python's str hash: 64 bits, stable within the process that builds and probes the index.
    return np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))


class LabelIndex:
    """Late ground truth keyed by captured row id (request_id, or request_id#i in a batch), as
    sorted 64-bit id hashes + labels: ~12 bytes per label. Later files win for a repeated id."""

    def __init__(self, hashes: np.ndarray, values: np.ndarray, files: int, read: int) -> None:
        self.hashes, self.values, self.files, self.read = hashes, values, files, read
        self.hit = np.zeros(hashes.size, dtype=bool)

    @classmethod
    def load(cls, ctx, model: str, target: str, *, numeric: bool) -> LabelIndex:
        hashes: list[np.ndarray] = []
        values: list[np.ndarray] = []
        files = read = 0
        for info in ctx.store.list(layout.labels_prefix(model)):
            if not info.key.endswith(".csv"):
                continue
            files += 1
            with ctx.store.open(info.key) as f:
                reader = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig"))
                ids: list[str] = []
                vals: list[Any] = []
                for row in reader:
                    rid = row.get("request_id") or row.get("id")
                    v = row.get(target)
                    if not rid or v is None or v.strip() == "":
                        continue
                    ids.append(rid.strip())
                    vals.append(_label_value(v, numeric))
                    if len(ids) >= CHUNK_ROWS * 10:
                        hashes.append(_id_hash(ids))
                        values.append(np.asarray(vals, dtype=np.float64 if numeric else object))
                        read += len(ids)
                        ids, vals = [], []
                if ids:
                    hashes.append(_id_hash(ids))
                    values.append(np.asarray(vals, dtype=np.float64 if numeric else object))
                    read += len(ids)
        if not hashes:
            return cls(np.empty(0, np.int64), np.empty(0, object), files, 0)
        h = np.concatenate(hashes)
        v = np.concatenate(values)
        # keep the last occurrence of each id, then sort by hash for searchsorted
        _, first_in_reversed = np.unique(h[::-1], return_index=True)
        keep = h.size - 1 - first_in_reversed
        order = np.argsort(h[keep], kind="stable")
        return cls(h[keep][order], v[keep][order], files, read)

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


def _label_value(v: str, numeric: bool) -> Any:
    if numeric:
        try:
            return float(v)
        except ValueError:
            return math.nan
    return category_key(v.strip())


def load_labels(ctx, model: str, target: str) -> dict[str, Any]:
    """All labels as a dict (small label sets, tools and tests; monitoring uses LabelIndex)."""
    labels: dict[str, Any] = {}
    for info in ctx.store.list(layout.labels_prefix(model)):
        if not info.key.endswith(".csv"):
            continue
        with ctx.store.open(info.key) as f:
            for row in csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig")):
                rid = row.get("request_id") or row.get("id")
                if rid and row.get(target) not in (None, ""):
                    labels[rid] = row[target]
    return labels


def ingest_labels(ctx, model: str, key: str) -> dict[str, Any]:
    """A labels upload: check its header (request_id + the target column) and count rows.
    The labels are joined at the next monitoring run; nothing else happens now."""


    check_name(model)
    target = load_spec(ctx.store, model).target
    rows = 0
    with ctx.store.open(key) as f:
        reader = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig"))
        header = reader.fieldnames or []
        missing = [c for c in ("request_id", target) if c not in header
                   and not (c == "request_id" and "id" in header)]
        if missing:
            reason = (f"{key}: labels need columns request_id and {target!r}; missing {missing} "
                      f"(header: {header})")
            ctx.notifier.publish(f"mlops-kit: labels for {model} rejected",
                                 {"event": "labels_rejected", "model": model, "key": key,
                                  "reason": reason})
            return {"status": "labels_rejected", "model": model, "key": key, "reason": reason}
        for row in reader:
            rows += bool(row.get(target) not in (None, ""))
    return {"status": "labels_received", "model": model, "key": key, "rows": rows}
