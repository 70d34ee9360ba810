"""Late ground truth: labels files under labels/<model>/ (request_id + target), checked on
upload and indexed as numpy arrays (64-bit join keys + labels) for the join."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from mlops_kit.core import layout
from mlops_kit.core.capture.chunks import id_keys, label_keys
from mlops_kit.core.capture.reader import CHUNK_ROWS
from mlops_kit.core.context import Context, load_spec
from mlops_kit.core.layout import check_name
from mlops_kit.core.missing import is_missing_text
from mlops_kit.core.monitoring import label_checks
from mlops_kit.core.stats import category_key
from mlops_kit.errors import MlopsKitError, SpecError, ValidationError


# -- labels -------------------------------------------------------------------------------
class LabelIndex:
    """Late ground truth keyed by captured row id (request_id, or request_id#i in a batch), as
    sorted 64-bit join keys (capture.chunks.label_keys) + labels: ~20 bytes per label, no id
    strings kept. Later uploads win for a repeated id (label_checks.in_upload_order). A file
    that cannot be read (not UTF-8, no target column: what ingest quarantines) or that ingest
    quarantined is skipped and listed in `skipped`, so one bad file never stops monitoring."""

    def __init__(self, keys: np.ndarray, origin: np.ndarray, values: np.ndarray, kept: int,
                 files: int, read: int, skipped: list[dict[str, str]] | None = None) -> None:
        self.keys, self.origin, self.values = keys, origin, values
        self.kept, self.files, self.read = kept, files, read
        self.skipped = skipped or []
        self.hit = np.zeros(values.size, dtype=bool)

    @classmethod
    def load(cls, ctx: Context, model: str, target: str, *, numeric: bool) -> LabelIndex:
        keys: list[np.ndarray] = []
        origins: list[np.ndarray] = []
        primaries: list[np.ndarray] = []
        values: list[np.ndarray] = []
        skipped: list[dict[str, str]] = []
        files = read = 0
        quarantined = label_checks.quarantined_etags(ctx, model)
        for info in label_checks.in_upload_order(list(ctx.store.list(layout.labels_prefix(model)))):
            if not info.key.endswith(".csv"):
                continue
            files += 1
            if quarantined.get(info.key) == info.etag:  # wrong labels never count
                skipped.append({"key": info.key, "reason": "quarantined at upload"})
                continue
            parts: list[tuple] = []
            file_read = 0
            try:
                with ctx.store.open(info.key) as f:
                    for ids, vals in read_labels(f, info.key, target, numeric):
                        k, origin, primary = label_keys(ids)
                        parts.append((k, origin + read + file_read, primary,
                                      np.asarray(vals, dtype=np.float64 if numeric else object)))
                        file_read += len(ids)
            except ValidationError as exc:
                skipped.append({"key": info.key, "reason": exc.message})
                continue
            for k, origin, primary, v in parts:
                keys.append(k)
                origins.append(origin)
                primaries.append(primary)
                values.append(v)
            read += file_read
        if not keys:
            empty = np.empty(0, np.int64)
            return cls(empty, empty, np.empty(0, object), 0, files, 0, skipped)
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
        return cls(k[keep][order], origin[keep][order], v, int(kept.sum()), files, read, skipped)

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


def _label_values(vals: list[str], numeric: bool | None) -> list[Any]:
    """Raw label strings -> float (unparseable: NaN), category keys, or stripped text (None:
    as written), each distinct value converted once."""
    index: dict[str, int] = {}
    setdefault = index.setdefault
    codes = [setdefault(v, len(index)) for v in vals]
    if numeric is None:
        conv: list[Any] = [u.strip() for u in index]
    elif numeric:
        conv = [_float(u) for u in index]
    else:
        conv = [category_key(u.strip()) for u in index]
    return [conv[c] for c in codes]


def _float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan


def read_labels(stream: BinaryIO, key: str, target: str, numeric: bool | None,
                chunk: int = CHUNK_ROWS * 50) -> Iterator[tuple[list[str], list[Any]]]:
    """(ids, labels) chunks of a labels CSV (request_id or id + the target column). Rows whose
    id or label is missing (core/missing.py) are skipped. ValidationError, naming the file and
    the reason, for a file that is not UTF-8 CSV or lacks a column. csv.reader with columns
    taken by C-level transposes (a DictReader builds a dict per row: ~10x slower)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        header = next(reader, None) or []
        missing = [c for c in ("request_id", target)
                   if c not in header and not (c == "request_id" and "id" in header)]
        if missing:
            raise ValidationError(f"{key}: labels need the columns request_id and {target!r}; "
                                  f"missing {missing} (header: {header[:20]})", field=missing[0])
        # the last column of a repeated name, as DictReader reads it
        col = {name: i for i, name in enumerate(header)}
        id_at, t_at, width = col["request_id" if "request_id" in col else "id"], col[target], \
            len(header)
        while rows := list(itertools.islice(reader, chunk)):
            if any(len(r) < width for r in rows):  # short rows: the missing cells are empty
                rows = [r + [""] * (width - len(r)) if len(r) < width else r for r in rows]
            cols = list(zip(*rows, strict=False))
            ids, vals = list(cols[id_at]), list(cols[t_at])
            keep = [i for i, (rid, v) in enumerate(zip(ids, vals, strict=True))
                    if not (is_missing_text(rid) or is_missing_text(v))]
            if len(keep) < len(rows):
                ids, vals = [ids[i] for i in keep], [vals[i] for i in keep]
            if ids:
                yield list(map(str.strip, ids)), _label_values(list(vals), numeric)
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{key}: not valid UTF-8 (byte {exc.start} of a block): save "
                              "the labels as UTF-8 CSV", field="labels") from None
    except csv.Error as exc:
        raise ValidationError(f"{key}: not a CSV file: {exc}", field="labels") from None
    finally:
        text.detach()


def load_labels(ctx: Context, model: str, target: str) -> dict[str, Any]:
    """All labels as text by id (small label sets, tools and tests; monitoring uses LabelIndex).
    Unreadable files are skipped, as monitoring skips them."""
    labels: dict[str, Any] = {}
    quarantined = label_checks.quarantined_etags(ctx, model)
    for info in label_checks.in_upload_order(list(ctx.store.list(layout.labels_prefix(model)))):
        if not info.key.endswith(".csv") or quarantined.get(info.key) == info.etag:
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


def ingest_labels(ctx: Context, model: str, key: str) -> dict[str, Any]:
    """A labels upload: check it (UTF-8 CSV with request_id + the target column; values among
    the served model's classes, or numbers for regression) and count its rows. The labels are
    joined at the next monitoring run. A bad file is quarantined with a report, like a bad
    dataset (final: never retried), and monitoring skips it. Ids it labels differently from
    earlier files (or twice itself) are reported: the later label wins (label_checks.py)."""
    check_name(model)
    etag = ctx.store.head(key).etag  # as listings spell it (LabelIndex compares the two)
    try:
        spec = load_spec(ctx.store, model)
        this: dict[str, str] = {}
        values: dict[str, list[str]] = {}
        twice: list[dict] = []
        rows = 0
        numeric = not spec.task.is_classification
        with ctx.store.open(key) as f:
            for ids, vals in read_labels(f, key, spec.target, None):
                rows += len(ids)
                for rid, v in zip(ids, vals, strict=True):
                    before = this.get(rid)
                    if before is not None and not label_checks._same(before, v, numeric):
                        twice.append({"id": rid, "earlier": before, "now": v, "in_file": True})
                    this[rid] = v
                    values.setdefault(v, []).append(rid)
        rule = label_checks.check_values(values, spec, label_checks.model_classes(ctx, model))
        if rule is not None and not rule["passed"]:
            return _quarantine(ctx, model, key, ValidationError(rule["message"],
                                                                field=spec.target),
                               etag=etag, rules=[rule])
    except (ValidationError, SpecError) as exc:
        return _quarantine(ctx, model, key, exc, etag=etag)
    out: dict[str, Any] = {"status": "labels_received", "model": model, "key": key,
                           "rows": rows, "ids": len(this)}
    if rule is None:
        out["checked"] = "label values not checked: no version is served yet"
    found = label_checks.conflicts(ctx, model, key, this, twice, spec, read_labels)
    if found["message"]:
        report_key = (f"{layout.reports_prefix(model, 'labels')}"
                      f"{layout.safe_filename(key.rsplit('/', 1)[-1])}.{str(etag)[:8]}.json")
        report = {"kind": "labels", "model": model, "labels_key": key, "etag": etag,
                  "checked_at": ctx.clock.now().isoformat(), "rows": rows,
                  "summary": found["message"], "conflicts": found}
        ctx.store.put(report_key, json.dumps(report, indent=2, default=str).encode(),
                      content_type="application/json")
        ctx.notifier.publish(f"mlops-kit: labels for {model} relabel earlier ids",
                             {"event": "labels_conflicts", "model": model, "key": key,
                              "report_key": report_key, "summary": found["message"]})
        out.update(summary=found["message"], conflicts=found, report_key=report_key)
    return out


def _quarantine(ctx: Context, model: str, key: str, exc: MlopsKitError, *, etag: str | None = None,
                rules: list[dict] | None = None) -> dict[str, Any]:
    qkey = layout.labels_quarantine_key(model, key.rsplit("/", 1)[-1])
    reason = exc.message
    rules = rules or [{"rule": "spec" if isinstance(exc, SpecError) else "labels",
                       "column": exc.field, "passed": False, "count": 1, "message": reason,
                       "examples": []}]
    report = {"passed": False, "kind": "labels", "model": model, "labels_key": key,
              "etag": etag, "summary": f"failed: {reason}",
              "checked_at": ctx.clock.now().isoformat(), "rules": rules,
              "original": f"{key} is kept; monitoring skips it (a corrected upload is read)"}
    ctx.store.copy(key, qkey)  # a copy: the original is kept, monitoring skips it
    label_checks.remember_quarantine(ctx, model, key, etag, reason)
    ctx.store.put(qkey + ".report.json", json.dumps(report, indent=2).encode(),
                  content_type="application/json")
    ctx.notifier.publish(f"mlops-kit: labels for {model} quarantined",
                         {"event": "labels_quarantined", "model": model, "key": key,
                          "quarantine_key": qkey, "reason": reason})
    return {"status": "quarantined", "kind": "labels", "model": model, "key": key,
            "reason": reason, "summary": f"failed: {reason}", "quarantine_key": qkey,
            "quarantine_report_key": qkey + ".report.json",
            "failed_rules": [r for r in rules if not r.get("passed")]}
