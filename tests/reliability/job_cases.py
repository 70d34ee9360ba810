"""Helpers for the job-outcome tests (issue 12): small datasets, and the one check every job
must pass -- it ended in exactly one clear, final outcome."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from mlops_kit.bootstrap import Backend
from mlops_kit.core.synthetic import churn_columns

FINAL = {"registered", "rejected", "failed", "quarantined"}


def to_csv(cols: dict[str, list], *, encoding: str = "utf-8") -> bytes:
    names = list(cols)
    n = len(cols[names[0]])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for i in range(n):
        w.writerow(["" if cols[c][i] is None else cols[c][i] for c in names])
    return buf.getvalue().encode(encoding)


def churn_cols(n: int = 400, seed: int = 7) -> dict[str, list]:
    cols = churn_columns(n, seed=seed)
    cols.pop("customer_id")
    return cols


def outcome(backend: Backend, model: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The one final outcome of one upload, after asserting the invariants of issue 12: no
    version pending, nothing in a dead-letter queue or left in a queue, no retried attempt,
    no traceback anywhere in the results, reports or notifications."""
    ctx = backend.ctx
    text = json.dumps(results, default=str) + json.dumps(ctx.notifier.messages(), default=str)
    assert "Traceback" not in text, text[-2000:]
    assert not [r for r in results if r.get("retryable")], results  # no hopeless retries
    assert backend.validate_queue.dead_letters() == [] and ctx.train_queue.dead_letters() == []
    assert backend.validate_queue.depth() == 0 and ctx.train_queue.depth() == 0
    versions = ctx.registry.list_versions(model) if model in ctx.registry.list_models() else []
    assert [v for v in versions if v["status"] == "pending"] == [], versions
    final = [r for r in results if r.get("status") in FINAL]
    assert len(final) == 1, results
    out = final[0]
    if out["status"] == "quarantined":
        report = json.loads(ctx.store.get(out["quarantine_report_key"]))
        assert report["passed"] is False and report["summary"].startswith("failed")
        assert [r for r in report["rules"] if not r["passed"]], report
        assert versions == []
        out["report"] = report
    else:
        assert "version" in out, out
        record = ctx.registry.get_version(model, out["version"])
        assert record["status"] == out["status"]
        if out["status"] != "registered":
            assert record["reasons"] and all(isinstance(r, str) and r for r in record["reasons"])
        out["record"] = record
    return out
