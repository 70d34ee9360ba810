"""Batch scoring on the local backend (real files, SQLite, onnxruntime): an upload under
scoring/<model>/ ends as Parquet parts, rejects and a manifest written last, scored exactly as
the HTTP path scores the same records."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit.core import layout
from mlops_kit.core.scoring import engine
from mlops_kit.core.serving.service import ModelService
from mlops_kit.core.synthetic import churn_csv, churn_records
from mlops_kit.local.worker import put_object, run_once

pytestmark = pytest.mark.check


def _read_parts(store, keys) -> pa.Table:
    return pa.concat_tables([pq.read_table(io.BytesIO(store.get(k))) for k in keys])


def _manifest(store, name="batch"):
    return json.loads(store.get(layout.predictions_manifest_key("churn", name)))


def _csv(records: list[dict]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(records[0]))
    w.writeheader()
    w.writerows(records)
    return out.getvalue().encode()


def test_a_csv_upload_is_scored_like_the_http_path(trained):
    store = trained.ctx.store
    put_object(trained, "scoring/churn/batch.json", json.dumps({"keep": ["customer_id"]}).encode())
    put_object(trained, "scoring/churn/batch.csv", churn_csv(2500, seed=11))
    [result] = run_once(trained)
    assert result["status"] == "scored", result
    m = _manifest(store)
    assert m["rows_in"] == m["rows_scored"] == 2500 and m["rows_rejected"] == 0
    assert m["version"] == 1 and m["chosen_by"] == "champion" and len(m["input"]["sha256"]) == 64
    out = _read_parts(store, m["parts"])
    assert out.column_names == m["columns"]
    assert out.column("row").to_pylist() == list(range(2500))
    # the same records through the serving path give the same answers
    records = churn_records(2500, seed=11)
    served = ModelService(store, trained.ctx.registry).load_version("churn", 1)
    feats = [{k: r[k] for k in served.feature_names} for r in records[:500]]
    want = served.predict(feats)
    assert out.column("prediction").to_pylist()[:500] == want["predictions"]
    got_p1 = out.column(f"probability_{served.classes[1]}").to_pylist()[:500]
    assert max(abs(a - b[1]) for a, b in zip(got_p1, want["probabilities"], strict=True)) < 1e-5
    assert out.column("customer_id").to_pylist()[:3] == [str(r["customer_id"])
                                                          for r in records[:3]]


def test_bad_rows_are_rejected_with_the_rule_and_the_rest_scored(trained, monkeypatch):
    monkeypatch.setattr(engine, "CHUNK_ROWS", 64)  # rejects across several batches
    monkeypatch.setattr(engine, "PART_ROWS", 100)  # several parts
    records = [{k: v for k, v in r.items() if k not in ("churned",)}
               for r in churn_records(300, seed=5)]
    records[7]["monthly_charges"] = "abc"  # not a number
    records[150]["age"] = 7  # below the spec's min 18
    records[151]["plan"] = "platinum"  # not a category
    records[299]["region"] = ""  # missing, and region is not nullable
    put_object(trained, "scoring/churn/batch.csv", _csv(records))
    [result] = run_once(trained)
    m = _manifest(trained.ctx.store)
    rejects = pq.read_table(io.BytesIO(trained.ctx.store.get(m["rejects"]))).to_pylist()
    by_row = {r["row"]: r for r in rejects}
    assert by_row[7]["column"] == "monthly_charges" and "expected a number" in by_row[7]["error"]
    assert by_row[150]["column"] == "age" and "18" in by_row[150]["error"]
    assert by_row[151]["column"] == "plan" and "platinum" in by_row[151]["error"]
    assert by_row[299]["column"] == "region"
    assert sorted(by_row) == [7, 150, 151, 299], rejects
    assert m["rows_scored"] == 296 and m["rows_in"] == 300 and m["rows_rejected"] == 4
    out = _read_parts(trained.ctx.store, m["parts"])
    assert len(m["parts"]) >= 3
    assert sorted(out.column("row").to_pylist() + list(by_row)) == list(range(300))


def test_parquet_pinned_version_and_redelivery_is_idempotent(trained):
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "churned"}
                                  for r in churn_records(400, seed=2)])
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=128)
    put_object(trained, "scoring/churn/batch.json", b'{"version": 1}')
    put_object(trained, "scoring/churn/batch.parquet", buf.getvalue())
    [first] = run_once(trained)
    assert first["status"] == "scored" and first["chosen_by"] == "version 1"
    from mlops_kit.core.router import on_object_created

    again = on_object_created(trained.ctx, "scoring/churn/batch.parquet")
    assert again["already"] is True and again["rows_scored"] == 400


@pytest.mark.parametrize("body, name, why", [
    (b"\x00\x01 not a table", "junk.parquet", "not a readable Parquet file"),
    (b"a,b\n1,2\n", "nocols.csv", "is missing from the file"),
])
def test_an_unreadable_file_is_quarantined_and_kept(trained, body, name, why):
    key = f"scoring/churn/{name}"
    put_object(trained, key, body)
    [result] = run_once(trained)
    assert result["status"] == "quarantined" and why in result["reason"], result
    assert trained.ctx.store.get(key) == body  # the original stays
    assert trained.ctx.store.exists(result["quarantine_report_key"])


def test_no_model_to_score_with_is_a_final_failure(backend):
    put_object(backend, "scoring/churn/batch.csv", churn_csv(10, seed=1))
    [result] = run_once(backend)
    assert result["status"] == "failed" and result["final"] is True
    assert "no champion" in result["error"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_manifest_sha256_is_the_uploads_and_a_csv_is_read_once(trained, monkeypatch, fmt):
    """A CSV file's sha256 is taken while it is scored (one read of the object, not a second
    one after: on S3 or Blob storage that would be the whole file downloaded again); a
    Parquet file, read by ranges, is hashed by a read of its own. Either way the digest is
    the uploaded bytes'."""
    import hashlib

    if fmt == "csv":
        body = churn_csv(3000, seed=4)
    else:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "churned"}
                                             for r in churn_records(3000, seed=4)]), buf)
        body = buf.getvalue()
    key = f"scoring/churn/hashed.{fmt}"
    store = trained.ctx.store
    opened: list[str] = []
    real_open = store.open

    def counting_open(k, *a, **kw):
        opened.append(k)
        return real_open(k, *a, **kw)

    monkeypatch.setattr(store, "open", counting_open)
    put_object(trained, key, body)
    [result] = run_once(trained)
    assert result["status"] == "scored" and result["rows_scored"] == 3000, result
    m = _manifest(store, "hashed")
    assert m["input"]["sha256"] == hashlib.sha256(body).hexdigest()
    if fmt == "csv":
        assert opened.count(key) == 1
