"""Captures compacted to Parquet and queried with DuckDB, as docs/captures.md says to: closed
hours only, once per hour, legacy JSON lines included, ids joinable with labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest

from mlops_kit.bootstrap import local_backend
from mlops_kit.clock import FixedClock
from mlops_kit.core import layout
from mlops_kit.core.capture.parquet import compact_captures
from tests.support import feature_records, store_captures

T0 = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)


@pytest.fixture
def mon(trained):
    return local_backend(trained.settings, clock=FixedClock(T0))


def test_closed_hours_compact_once_and_query_with_duckdb(mon, tmp_path):
    svc = mon.service(capture=True)
    for i in range(6):
        svc.predict("churn", feature_records(5, seed=i), request_id=f"b{i}")
    svc.predict("churn", feature_records(1, seed=9), request_id="single")
    svc.capture.flush()
    legacy = {"id": "old#0", "request_id": "old", "at": T0.isoformat(), "model": "churn",
              "version": 1, "role": "served", "latency_ms": 1.0,
              "features": {"age": 40, "plan": "pro"}, "prediction": 1,
              "probabilities": [0.3, 0.7]}
    store = mon.ctx.store
    store.put(layout.capture_hour_prefix("churn", T0) + "old.jsonl",
              (json.dumps(legacy) + "\n").encode())
    served = store_captures(store, layout.capture_hour_prefix("churn", T0))

    # 12:30 -> the hour is still open: nothing to do
    assert compact_captures(store, "churn", T0) == []
    mon.ctx.clock.advance(minutes=45)  # 13:15: 12:00-13:00 closed (+10 min grace)
    [manifest] = compact_captures(store, "churn", mon.ctx.clock.now())
    assert manifest["rows"] == 32 and manifest["sources"] == 2 and len(manifest["parts"]) == 1
    assert compact_captures(store, "churn", mon.ctx.clock.now()) == []  # once per hour
    assert manifest["parts"][0]["key"] == \
        "captures/churn/parquet/dt=2026-03-02/hour=12/churn-20260302T12-000.parquet"

    root = store.local_path("captures/churn/parquet")
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,churned\nb2#3,1\nsingle,0\nold#0,1\nnobody,1\n")
    con = duckdb.connect()
    glob = f"{root}/*/*/*.parquet"
    total, hours, days = con.execute(
        f"select count(*), min(hour), min(dt) from read_parquet('{glob}', "
        "hive_partitioning = true)").fetchone()
    assert total == 32 and str(hours) == "12" and str(days) == "2026-03-02"
    ids = {r[0] for r in con.execute(f"select id from read_parquet('{glob}')").fetchall()}
    assert ids == {r["id"] for r in served}
    joined = con.execute(
        f"select c.id, c.prediction, l.churned, len(c.probabilities), c.role, c.version "
        f"from read_parquet('{glob}') c join read_csv('{labels}') l on c.id = l.request_id "
        "order by c.id").fetchall()
    assert [j[0] for j in joined] == ["b2#3", "old#0", "single"]
    assert all(j[3] == 2 and j[4] == "served" and j[5] == 1 for j in joined)
    by_id = {r["id"]: r for r in served}
    assert [j[1] for j in joined] == [by_id[j[0]]["prediction"] for j in joined]
    # missing values are SQL NULLs; features keep their types
    nulls, typ = con.execute(
        f"select count(*) filter (where payment is null), typeof(any_value(age)) "
        f"from read_parquet('{glob}')").fetchone()
    assert nulls == sum(r["features"].get("payment") is None for r in served)
    assert typ in ("FLOAT", "DOUBLE")
