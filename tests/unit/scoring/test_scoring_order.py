"""Batch scoring runs each batch's rows sorted by their features (core/scoring/engine.py:
sort_order, sorted_run: a tree ensemble walks sorted rows about twice as fast) and gives the
outputs back in the file's order. These tests hold that to what matters: every row gets its
own prediction, in its own place, whatever the order the run saw; parts and row numbers are
as a sequential run's, and a rerun writes the same bytes."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlops_kit.core import layout
from mlops_kit.core.scoring import engine
from mlops_kit.core.scoring.checks import ColumnCheck
from mlops_kit.core.serving.service import ModelService
from mlops_kit.core.synthetic import churn_csv
from mlops_kit.local.worker import put_object, run_once

pytestmark = pytest.mark.check


def _checked(backend, n: int, seed: int):
    predictor = ModelService(backend.ctx.store, backend.ctx.registry).load_version("churn", 1)
    table = pacsv.read_csv(io.BytesIO(churn_csv(n, seed=seed)))
    cols = {c: table.column(c).combine_chunks() for c in predictor.feature_names}
    return predictor, ColumnCheck(predictor.spec).check(cols, n)


def test_sort_order_groups_rows_by_category_then_number(trained):
    _, checked = _checked(trained, 3000, seed=5)
    order = engine.sort_order(checked.feed, checked.codes)
    assert order is not None and sorted(order.tolist()) == list(range(3000))  # a permutation
    fewest = min(checked.codes.values(), key=lambda c: int(c.max()))
    first = fewest[order]
    assert (np.diff(first) >= 0).all()  # the primary key: the category with fewest levels
    assert engine.sort_order({}, {}) is None


def test_a_sorted_run_gives_every_row_its_own_outputs_in_place(trained):
    predictor, checked = _checked(trained, 5000, seed=9)
    want_labels, want_proba = predictor.run_arrays(checked.feed)
    labels, proba = engine.sorted_run(predictor, checked.feed, checked.codes)
    assert labels.tolist() == want_labels.tolist()
    assert proba is not None and want_proba is not None
    np.testing.assert_allclose(proba, want_proba, rtol=0, atol=1e-6)
    # and row by row, each record alone (no neighbours at all)
    for i in (0, 1, 2499, 4999):
        one = {k: v[i:i + 1] for k, v in checked.feed.items()}
        lab, pro = predictor.run_arrays(one)
        assert lab[0] == labels[i]
        np.testing.assert_allclose(pro[0], proba[i], rtol=0, atol=1e-6)


def test_parts_keep_file_order_across_batches_and_a_rerun_writes_the_same_bytes(
        trained, monkeypatch):
    """Small batches (many runs in flight on the pool) and a part size that cuts through
    batches: rows numbered 0..n-1 in order across the parts, rejects where they were, and the
    same part bytes when the same file is scored again under another name."""
    monkeypatch.setattr(engine, "CHUNK_ROWS", 700)
    monkeypatch.setattr(engine, "PART_ROWS", 1500)
    monkeypatch.setattr(engine, "READ_BYTES", 64 << 10)
    body = churn_csv(6000, seed=21).decode().splitlines()
    header = body[0].split(",")
    age = header.index("age")
    for i in (10, 2222, 5999):  # rows below the spec's minimum age
        cells = body[i + 1].split(",")
        cells[age] = "3"
        body[i + 1] = ",".join(cells)
    data = ("\n".join(body) + "\n").encode()
    store = trained.ctx.store
    parts_of = {}
    for name in ("first", "again"):
        put_object(trained, f"scoring/churn/{name}.csv", data)
        [result] = run_once(trained)
        assert result["status"] == "scored", result
        m = json.loads(store.get(layout.predictions_manifest_key("churn", name)))
        assert m["rows_in"] == 6000 and m["rows_rejected"] == 3 and m["rows_scored"] == 5997
        assert len(m["parts"]) >= 3  # parts fill by whole batches of 700 rows
        parts_of[name] = [store.get(k) for k in m["parts"]]
        out = pa.concat_tables([pq.read_table(io.BytesIO(b)) for b in parts_of[name]])
        assert out.column("row").to_pylist() == [r for r in range(6000)
                                                 if r not in (10, 2222, 5999)]
        rejects = pq.read_table(io.BytesIO(store.get(m["rejects"]))).to_pylist()
        assert [(r["row"], r["column"]) for r in rejects] == [(10, "age"), (2222, "age"),
                                                              (5999, "age")]
    assert parts_of["first"] == parts_of["again"]
    # the predictions are the unsorted run's, row for row
    predictor, checked = _checked(trained, 6000, seed=21)
    out = pa.concat_tables([pq.read_table(io.BytesIO(b)) for b in parts_of["first"]])
    want, _ = predictor.run_arrays(checked.feed)
    keep = [r for r in range(6000) if r not in (10, 2222, 5999)]
    assert out.column("prediction").to_pylist() == want[keep].tolist()


def test_a_wide_model_is_sorted_by_its_first_few_features_only():
    rng = np.random.default_rng(3)
    feed = {f"x{i}": rng.integers(0, 3, size=(2000, 1)).astype(np.float32) for i in range(40)}
    codes = {"c": rng.integers(0, 2, size=2000)}
    feed["c"] = np.where(codes["c"] == 0, "a", "b").astype(object).reshape(-1, 1)
    order = engine.sort_order(feed, codes)
    keys = [codes["c"]] + [feed[f"x{i}"].ravel() for i in range(engine.SORT_KEYS - 1)]
    assert order is not None and order.tolist() == np.lexsort(keys[::-1]).tolist()
