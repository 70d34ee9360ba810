"""Late ground truth: labels files under labels/<model>/ (request_id + target), checked on
upload and indexed as two numpy arrays (64-bit id hash + label) for the join."""

from __future__ import annotations

import csv
import io
import itertools
import math
from typing import Any

import numpy as np

from mlops_kit.core import layout
from mlops_kit.core.capture_columns import id_keys, label_keys
from mlops_kit.core.context import load_spec
from mlops_kit.core.layout import check_name
from mlops_kit.core.monitoring.captures import CHUNK_ROWS
from mlops_kit.core.stats import category_key


# -- labels -------------------------------------------------------------------------------
class LabelIndex:
    """Late ground truth keyed by captured row id (request_id, or request_id#i in a batch), as
    sorted 64-bit join keys (capture_columns.label_keys) + labels: ~20 bytes per label, no id
    strings kept. Later files win for a repeated id."""

    def __init__(self, keys: np.ndarray, origin: np.ndarray, values: np.ndarray, kept: int,
                 files: int, read: int) -> None:
        self.keys, self.origin, self.values = keys, origin, values
        self.kept, self.files, self.read = kept, files, read
        self.hit = np.zeros(values.size, dtype=bool)

    @classmethod
    def load(cls, ctx, model: str, target: str, *, numeric: bool) -> LabelIndex:
        keys: list[np.ndarray] = []
        origins: list[np.ndarray] = []
        primaries: list[np.ndarray] = []
        values: list[np.ndarray] = []
        files = read = 0

        def add(ids: list[str], vals: list[str]) -> None:
            nonlocal read
            k, origin, primary = label_keys(ids)
            keys.append(k)
            origins.append(origin + read)
            primaries.append(primary)
            values.append(_label_values(vals, numeric))
            read += len(ids)

        for info in ctx.store.list(layout.labels_prefix(model)):
            if not info.key.endswith(".csv"):
                continue
            files += 1
            with ctx.store.open(info.key) as f:
                for ids, vals in _read_pairs(io.TextIOWrapper(f, encoding="utf-8-sig",
                                                              newline=""), target):
                    add(ids, vals)
        if not keys:
            empty = np.empty(0, np.int64)
            return cls(empty, empty, np.empty(0, object), 0, files, 0)
        k, origin, primary = np.concatenate(keys), np.concatenate(origins), \
            np.concatenate(primaries)
        v = np.concatenate(values)
        # the last label of each id wins: keep the labels whose id key occurs last
        pk, po = k[primary], origin[primary]
        _, last_rev = np.unique(pk[::-1], return_index=True)
        kept = np.zeros(v.size, dtype=bool)
        kept[po[::-1][last_rev]] = True
        sel = kept[origin]
        o = np.argsort(origin[sel], kind="stable")
        k, origin = k[sel][o], origin[sel][o]
        _, last_rev = np.unique(k[::-1], return_index=True)  # a key twice: the later label
        keep = k.size - 1 - last_rev
        order = np.argsort(k[keep], kind="stable")
        return cls(k[keep][order], origin[keep][order], v, int(kept.sum()), files, read)

    def __len__(self) -> int:
        return self.kept

    def lookup_keys(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of row keys that have a label, their labels)."""
        if not self.keys.size or not keys.size:
            return np.zeros(keys.size, dtype=bool), self.values[:0]
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        found = self.keys[pos] == keys
        labels = self.origin[pos[found]]
        self.hit[labels] = True
        return found, self.values[labels]

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mask of row ids that have a label, their labels): ids spelled out."""
        return self.lookup_keys(id_keys(ids))


def _read_pairs(text, target: str, size: int = CHUNK_ROWS * 50):
    """(row ids, raw label strings) in chunks of `size` rows: csv.reader, columns taken by
    position with C-level transposes (a DictReader builds a dict per row: ~10x slower). A row's
    id is request_id, or id when that is empty; rows without an id or a label are skipped."""
    reader = csv.reader(text)
    header = next(reader, None) or []
    col = {name: i for i, name in reversed(list(enumerate(header)))}  # first of a repeated name
    t = col.get(target)
    primary, fallback = col.get("request_id"), col.get("id")
    if t is None or (primary is None and fallback is None):
        return
    width = len(header)
    while rows := list(itertools.islice(reader, size)):
        if any(len(r) != width for r in rows):  # ragged rows: pad them
            rows = [r + [""] * (width - len(r)) if len(r) < width else r for r in rows]
        cols = list(zip(*rows, strict=False))
        ids = list(map(str.strip, cols[primary] if primary is not None else cols[fallback]))
        if fallback is not None and primary is not None and "" in ids:
            ids = [i or f.strip() for i, f in zip(ids, cols[fallback], strict=True)]
        vals = list(cols[t])
        blank = list(map(str.strip, vals))
        if "" in ids or "" in blank:
            keep = [i for i, (a, b) in enumerate(zip(ids, blank, strict=True)) if a and b]
            ids, vals = [ids[i] for i in keep], [vals[i] for i in keep]
        if ids:
            yield ids, vals


def _label_values(vals: list[str], numeric: bool) -> np.ndarray:
    """Raw label strings -> float64 (unparseable: NaN) or category keys, each distinct value
    converted once."""
    index: dict[str, int] = {}
    setdefault = index.setdefault
    codes = np.fromiter((setdefault(v, len(index)) for v in vals), dtype=np.int64,
                        count=len(vals))
    if numeric:
        conv = np.array([_float(u) for u in index], dtype=np.float64)
    else:
        conv = np.array([category_key(u.strip()) for u in index] + [None], dtype=object)[:-1]
    return conv[codes]


def _float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan


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
