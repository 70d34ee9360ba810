"""Labels validated like datasets. A labels file whose values are not the model's classes (or,
for regression, not numbers) is quarantined with a report, and monitoring skips it: wrong labels
never overwrite right ones. Ids labelled twice with different values (in the file, or against
earlier files) are reported: the later label wins and the report says which.

Upload order decides "later": files are read in the order they were written (then by key),
here and in LabelIndex. A quarantined file is remembered in the table (LABELS#<model>, by key
and etag) so monitoring, which reads every file under labels/<model>/, skips it; the original
is never deleted, and a corrected upload under the same name (a new etag) is read again."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from mlops_kit.core import layout
from mlops_kit.core.metrics import label_key
from mlops_kit.core.registry import CHALLENGER, CHAMPION
from mlops_kit.core.table_keys import labels_pk
from mlops_kit.errors import NotFound, ValidationError
from mlops_kit.ports import ObjectInfo

MAX_EXAMPLES = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def quarantined_etags(ctx, model: str) -> dict[str, str]:
    """key -> etag of the labels files quarantined (one query)."""
    return {i["sk"]: str(i.get("etag")) for i in ctx.table.query(labels_pk(model))}


def quarantined(ctx, model: str, info: ObjectInfo) -> bool:
    """Was this labels file (this very upload: key and etag) quarantined? One GetItem (the
    validate role reads items, it does not query)."""
    marker = ctx.table.get(labels_pk(model), info.key)
    return marker is not None and str(marker.get("etag")) == str(info.etag)


def remember_quarantine(ctx, model: str, key: str, etag: str | None, reason: str) -> None:
    ctx.table.put(labels_pk(model), key, {"etag": str(etag), "status": "quarantined",
                                          "reason": reason[:500],
                                          "at": ctx.clock.now().isoformat()})


def in_upload_order(infos: list[ObjectInfo]) -> list[ObjectInfo]:
    return sorted(infos, key=lambda i: (i.last_modified or _EPOCH, i.key))


def model_classes(ctx, model: str) -> list | None:
    """The classes the served versions (champion, challenger) predict; None if none is served."""
    out: list = []
    for alias in (CHAMPION, CHALLENGER):
        version = (ctx.registry.get_alias(model, alias) or {}).get("version")
        if version is None:
            continue
        try:
            classes = ctx.registry.get_version(model, int(version)).get("classes") or []
        except NotFound:
            continue
        out += [c for c in classes if c not in out]
    return out or None


def _same(a: str, b: str, numeric: bool) -> bool:
    if numeric:
        fa, fb = _number(a), _number(b)
        return fa == fb or (fa is None and fb is None)
    return label_key(a) == label_key(b)


def _number(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def check_values(values: dict[str, list[str]], spec, classes: list | None) -> dict | None:
    """The rule every value must pass, or None when it cannot be judged (no served classes).
    `values`: distinct label text -> ids carrying it."""
    numeric = not spec.task.is_classification
    if numeric:
        bad = {v: ids for v, ids in values.items() if _number(v) is None}
        allowed = "numbers"
    elif classes is None:
        return None
    else:
        keys = {label_key(c) for c in classes}
        bad = {v: ids for v, ids in values.items() if label_key(v) not in keys}
        allowed = f"the model's classes {[str(c) for c in classes]}"
    count = sum(len(ids) for ids in bad.values())
    return {"rule": "label_values", "column": spec.target, "passed": not bad, "count": count,
            "message": (f"{spec.target}: {count} labels are not {allowed}: found "
                        f"{sorted(bad)[:MAX_EXAMPLES]}" if bad
                        else f"{spec.target}: every label is one of {allowed}"),
            "examples": [{"row": None, "value": f"{v!r}: {len(ids)} rows (e.g. id {ids[0]})"}
                         for v, ids in sorted(bad.items())[:MAX_EXAMPLES]]}


def conflicts(ctx, model: str, key: str, this: dict[str, str], in_file: list[dict],
              spec, read_labels) -> dict[str, Any]:
    """Ids of this file labelled differently before (earlier files, not quarantined) and twice
    in this file. The later label wins in monitoring (LabelIndex); this says so."""
    numeric = not spec.task.is_classification
    earlier: list[dict] = []
    for info in in_upload_order(list(ctx.store.list(layout.labels_prefix(model)))):
        if info.key == key or not info.key.endswith(".csv") or quarantined(ctx, model, info):
            continue
        try:
            with ctx.store.open(info.key) as f:
                for ids, vals in read_labels(f, info.key, spec.target, None):
                    for rid, v in zip(ids, vals, strict=True):
                        mine = this.get(rid)
                        if mine is not None and not _same(mine, v, numeric):
                            earlier.append({"id": rid, "earlier_file": info.key,
                                            "earlier": v, "now": mine})
        except ValidationError:
            continue  # unreadable: monitoring skips it too
    # one entry per id: the last earlier file's value is the one replaced
    by_id = {c["id"]: c for c in earlier}
    out = {"earlier_files": len(by_id), "in_file": len(in_file),
           "examples": [*list(by_id.values())[:MAX_EXAMPLES], *in_file[:MAX_EXAMPLES]]}
    parts = []
    if by_id:
        parts.append(f"{len(by_id)} ids were labelled differently by earlier files: this "
                     "file's labels win")
    if in_file:
        parts.append(f"{len(in_file)} ids appear twice in this file with different labels: "
                     "the later row wins")
    out["message"] = "; ".join(parts)
    return out
