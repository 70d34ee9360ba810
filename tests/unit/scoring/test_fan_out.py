"""Scale out on the local backend: a file over the context's scoring_chunk_bytes is split into
chunks (CSV byte ranges, Parquet row groups), one validate-queue message each; every row is
accounted for once, under redelivery of every chunk, and the manifest is written once."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit.core import layout
from mlops_kit.core.scoring.records import ScoringJobs
from mlops_kit.core.synthetic import churn_csv, churn_records
from mlops_kit.local.worker import put_object, run_once

pytestmark = pytest.mark.check
MANIFEST = layout.predictions_manifest_key("churn", "big")


def _count_puts(store, key):
    """Count the writes of one key (the manifest must be written exactly once)."""
    calls = []
    real = store.put

    def put(k, data, **kw):
        if k == key:
            calls.append(k)
        return real(k, data, **kw)

    store.put = put
    return calls


def _table(store, keys) -> pa.Table:
    return pa.concat_tables([pq.read_table(io.BytesIO(store.get(k))) for k in keys])


def _file_rows(m, table) -> list[int]:
    first = {c["index"]: c["first_row"] for c in m["chunks"]}
    return [first[c] + r for c, r in zip(table.column("chunk").to_pylist(),
                                          table.column("row").to_pylist(), strict=True)]


def _whole(trained, body: bytes, name: str) -> pa.Table:
    """The same file scored in one go (no fan-out): the reference."""
    trained.ctx.scoring_chunk_bytes = 0
    put_object(trained, f"scoring/churn/{name}.csv", body)
    run_once(trained)
    m = json.loads(trained.ctx.store.get(layout.predictions_manifest_key("churn", name)))
    return _table(trained.ctx.store, m["parts"])


def test_a_big_csv_fans_out_and_every_row_is_accounted_for_once(trained):
    body = churn_csv(3000, seed=4)
    lines = body.split(b"\n")
    lines[2500 + 1] = lines[2500 + 1].replace(b",", b",x", 1)  # a bad row in a late chunk
    body = b"\n".join(lines)
    reference = _whole(trained, body, "small")
    store = trained.ctx.store
    trained.ctx.scoring_chunk_bytes = 40_000  # ~260 kB: about 7 chunks
    manifest_puts = _count_puts(store, MANIFEST)
    put_object(trained, "scoring/churn/big.csv", body)
    results = run_once(trained)
    assert results[0]["status"] == "running" and results[0]["chunks"] >= 4, results[0]
    chunks = results[0]["chunks"]
    assert [r["status"] for r in results[1:]].count("chunk_scored") == chunks - 1
    assert results[-1]["status"] == "scored" and len(manifest_puts) == 1
    m = json.loads(store.get(MANIFEST))
    assert m["chunked"] is True and len(m["chunks"]) == chunks
    assert m["rows_in"] == 3000 and m["rows_scored"] + m["rows_rejected"] == 3000
    out = _table(store, m["parts"])
    assert out.column_names == m["columns"] and out.num_rows == m["rows_scored"]
    rejects = pq.read_table(io.BytesIO(store.get(m["rejects"])))
    assert rejects.num_rows == m["rows_rejected"] >= 1
    rejected = _file_rows(m, rejects)
    assert 2500 in rejected
    assert sorted(_file_rows(m, out) + rejected) == list(range(3000))  # each row once
    # the same predictions as the file scored in one go, row for row
    assert reference.column("row").to_pylist() == _file_rows(m, out)
    assert reference.column("prediction").to_pylist() == out.column("prediction").to_pylist()
    job = ScoringJobs(trained.ctx.table, trained.ctx.clock).all("churn")
    big = [j for j in job if j["name"] == "big"]
    assert big[0]["status"] == "scored" and big[0]["done"] == big[0]["total"] == chunks


def test_every_chunk_delivered_twice_counts_once(trained):
    store, queue = trained.ctx.store, trained.ctx.scoring_queue
    trained.ctx.scoring_chunk_bytes = 30_000
    real_send = queue.send
    queue.send = lambda body, **kw: (real_send(body, **kw), real_send(body, **kw))[0]
    manifest_puts = _count_puts(store, MANIFEST)
    put_object(trained, "scoring/churn/big.csv", churn_csv(2000, seed=8))
    results = run_once(trained)
    chunks = results[0]["chunks"]
    statuses = [r["status"] for r in results[1:]]
    assert statuses.count("duplicate") == chunks, statuses
    assert statuses.count("scored") == 1 and len(manifest_puts) == 1
    m = json.loads(store.get(MANIFEST))
    assert m["rows_in"] == m["rows_scored"] == 2000
    assert sorted(_file_rows(m, _table(store, m["parts"]))) == list(range(2000))
    # the upload's own message (delivered twice too) sent its chunks once
    assert [r.get("dispatched") for r in results if r["status"] == "running"] == [chunks, 0]
    # and again after the end: answered by the manifest, nothing sent
    queue.send = real_send
    put_object(trained, "scoring/churn/big.csv", churn_csv(2000, seed=8))
    [again] = run_once(trained)
    assert again["already"] is True and len(manifest_puts) == 1


def test_a_lost_finisher_is_finished_by_the_redelivery(trained):
    """The chunk that completed the set died before writing the manifest: its redelivery
    finds itself counted and finishes the job."""
    from mlops_kit.core.scoring import fanout

    trained.ctx.scoring_chunk_bytes = 40_000
    real, sent = fanout._finish, []

    def dies_once(ctx, jobs, job):
        if not sent:
            sent.append(job)
            raise ConnectionError("the function timed out")  # retryable
        return real(ctx, jobs, job)

    fanout._finish = dies_once
    try:
        put_object(trained, "scoring/churn/big.csv", churn_csv(1500, seed=3))
        results = run_once(trained)
    finally:
        fanout._finish = real
    assert any(r.get("retryable") for r in results)
    assert results[-1]["status"] == "scored" and results[-1]["rows_in"] == 1500


def test_a_big_parquet_file_fans_out_by_row_groups(trained):
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "churned"}
                                  for r in churn_records(2000, seed=2)])
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=250)  # 8 row groups
    trained.ctx.scoring_chunk_bytes = 10_000
    put_object(trained, "scoring/churn/big.parquet", buf.getvalue())
    results = run_once(trained)
    assert results[0]["chunks"] >= 2 and results[-1]["status"] == "scored"
    m = json.loads(trained.ctx.store.get(MANIFEST))
    assert [c["first_row"] for c in m["chunks"]][0] == 0
    groups = [tuple(c["row_groups"]) for c in m["chunks"]]
    assert groups[0][0] == 0 and groups[-1][1] == 8
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:], strict=False))
    out = _table(trained.ctx.store, m["parts"])
    assert sorted(_file_rows(m, out)) == list(range(2000))


def test_a_ragged_row_in_a_later_chunk_quarantines_the_job_once(trained):
    body = churn_csv(2000, seed=6)
    lines = body.split(b"\n")
    lines[1800] = lines[1800] + b",extra,fields"
    trained.ctx.scoring_chunk_bytes = 30_000
    notes = []
    real = trained.ctx.notifier.publish
    trained.ctx.notifier.publish = lambda s, m: (notes.append(m), real(s, m))[1]
    put_object(trained, "scoring/churn/big.csv", b"\n".join(lines))
    results = run_once(trained)
    q = [r for r in results if r["status"] == "quarantined"]
    assert len(q) >= 1 and "a row has 11 fields, expected 9" in q[0]["reason"]
    assert q[0]["reason"].startswith("chunk ")
    assert sum(1 for n in notes if n.get("event") == "quarantined") == 1
    assert not trained.ctx.store.exists(MANIFEST)
    [job] = [j for j in ScoringJobs(trained.ctx.table, trained.ctx.clock).all("churn")
             if j["name"] == "big"]
    assert job["status"] == "quarantined"
    assert trained.ctx.store.exists(q[0]["quarantine_report_key"])


def test_scoring_jobs_are_listed_in_flight_and_when_ended_and_notified(trained):
    from mlops_kit.core.inflight import work_in_flight
    from mlops_kit.core.router import on_object_created

    notes = []
    real = trained.ctx.notifier.publish
    trained.ctx.notifier.publish = lambda s, m: (notes.append(m), real(s, m))[1]
    trained.ctx.scoring_chunk_bytes = 30_000
    trained.ctx.store.put("scoring/churn/big.csv", churn_csv(1500, seed=1))
    started = on_object_created(trained.ctx, "scoring/churn/big.csv")  # the upload's message
    view = work_in_flight(trained.ctx, trained.validate_queue, "churn")
    [row] = [r for r in view["jobs"] if r["kind"] == "score"]
    assert row["state"] == "running" and row["object"] == "scoring/churn/big.csv"
    assert row["where"] == f"validate queue: 0/{started['chunks']} chunks scored"
    queued = [r for r in view["jobs"] if r["kind"] == "validate"]
    assert len(queued) == started["chunks"] and view["in_flight"] == started["chunks"] + 1
    assert queued[0]["model"] == "churn" and " chunk " in queued[0]["object"]
    run_once(trained)
    put_object(trained, "scoring/churn/bad.csv", b"a,b\n1,2\n")  # unreadable: quarantined
    run_once(trained)
    rows = {r["object"]: r for r in work_in_flight(trained.ctx, trained.validate_queue,
                                                   "churn")["jobs"] if r["kind"] == "score"}
    assert rows["scoring/churn/big.csv"]["state"] == "scored"
    assert rows["scoring/churn/big.csv"]["ended_at"] and rows["scoring/churn/big.csv"][
        "rows_scored"] == 1500
    assert rows["scoring/churn/bad.csv"]["state"] == "quarantined"
    assert "missing" in rows["scoring/churn/bad.csv"]["last_error"]
    assert [n["event"] for n in notes if n.get("event") in ("scored", "quarantined")] == [
        "scored", "quarantined"]
    # and a job that cannot start (no model at all) is listed as failed, and notified
    trained.ctx.store.put("scoring/ghost/x.csv", churn_csv(10, seed=1))
    failed = on_object_created(trained.ctx, "scoring/ghost/x.csv")
    assert failed["status"] == "failed" and notes[-1]["event"] == "scoring_failed"
    [row] = ScoringJobs(trained.ctx.table, trained.ctx.clock).all("ghost")
    assert row["status"] == "failed" and "nothing to score with" in row["reason"]


def test_the_shared_message_shell_routes_chunks_as_azure_delivers_them(trained):
    """handlers.validate_message (the Azure app's validate trigger) takes the chunk messages
    as the storage queue delivers them (a JSON string) and ends the job."""
    from mlops_kit.handlers import validate_message

    trained.ctx.scoring_chunk_bytes = 30_000
    trained.ctx.store.put("scoring/churn/big.csv", churn_csv(1200, seed=5))
    [started] = validate_message(trained.ctx, json.dumps({"key": "scoring/churn/big.csv"}))
    assert started["status"] == "running"
    outcomes = []
    while msgs := trained.validate_queue.receive(10):
        for msg in msgs:
            outcomes += validate_message(trained.ctx, json.dumps(msg.body).encode())
            trained.validate_queue.ack(msg)
    assert len(outcomes) == started["chunks"] and outcomes[-1]["status"] == "scored"
    assert outcomes[-1]["rows_in"] == outcomes[-1]["rows_scored"] == 1200
    [bad] = validate_message(trained.ctx, json.dumps({"score_chunk": {"model": "churn"}}))
    assert bad["status"] == "failed" and "not a scoring chunk" in bad["error"]


def test_the_same_bytes_again_after_a_failure_for_want_of_a_model_are_scored(backend):
    """No model: the job fails (final). Once a model exists, the same bytes uploaded again
    (the same etag) start the job again instead of answering `failed` forever."""
    from mlops_kit.core.router import on_object_created

    body = churn_csv(50, seed=1)
    backend.ctx.store.put("scoring/churn/x.csv", body)
    assert on_object_created(backend.ctx, "scoring/churn/x.csv")["status"] == "failed"
    jobs = ScoringJobs(backend.ctx.table, backend.ctx.clock)
    [job] = jobs.all("churn")
    again, started = jobs.start("churn", "x", job["etag"], {"key": "scoring/churn/x.csv",
                                                            "chunked": False, "total": 1})
    assert started and again["status"] == "running" and again["rev"] == job["rev"] + 1
    # a redelivery finds it running: not started twice
    assert jobs.start("churn", "x", job["etag"], {"total": 1})[1] is False


def test_the_cli_scores_a_big_file_in_chunks_and_says_so(trained, tmp_path):
    from typer.testing import CliRunner

    from mlops_kit.cli.app import app

    data = tmp_path / "big.csv"
    data.write_bytes(churn_csv(1500, seed=9))
    r = CliRunner().invoke(app, ["score", str(data), "-m", "churn", "--json"],
                           env={"MLOPSKIT_WORKSPACE": str(trained.settings.workspace),
                                "MLOPSKIT_SCORING_CHUNK_BYTES": "30000"},
                           catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    statuses = [x["status"] for x in out["results"]]
    assert statuses[0] == "running" and statuses[-1] == "scored"
    assert statuses.count("chunk_scored") == out["results"][0]["chunks"] - 1
    assert f"split into {out['results'][0]['chunks']} chunks" in r.stderr
    assert "scored 1,500 rows" in r.stderr


@pytest.mark.parametrize("chunk_bytes", [0, 30_000])  # the whole file, and fanned out
def test_capture_samples_scored_rows_once_for_monitoring(trained, chunk_bytes):
    """{"capture": true}: a deterministic share of the scored rows is captured as requests
    are (same format, same place), once: every chunk delivered twice captures nothing more."""
    from tests.support import store_captures

    store, queue = trained.ctx.store, trained.ctx.scoring_queue
    trained.ctx.scoring_chunk_bytes = chunk_bytes
    real_send = queue.send
    queue.send = lambda body, **kw: (real_send(body, **kw), real_send(body, **kw))[0]
    put_object(trained, "scoring/churn/big.json",
               json.dumps({"capture": True, "capture_rate": 0.5}).encode())
    put_object(trained, "scoring/churn/big.csv", churn_csv(1500, seed=2))
    results = run_once(trained)
    queue.send = real_send
    # (the upload's own message, delivered twice too, is answered from the manifest)
    assert [r["status"] for r in results if not r.get("already")].count("scored") == 1
    rows = store_captures(store, "captures/churn/")
    assert 600 < len(rows) < 900  # half of 1,500, by row
    assert {r["version"] for r in rows} == {1}
    assert sum(r.get("captured") or 0 for r in results) == len(rows)
    assert {r["request_id"].split(":")[0] for r in rows} == {"score"}


def test_capture_options_are_checked(trained):
    for opts, field in (({"capture": "yes"}, "capture"), ({"capture": True, "capture_rate": 0},
                                                          "capture_rate")):
        put_object(trained, "scoring/churn/opt.json", json.dumps(opts).encode())
        put_object(trained, "scoring/churn/opt.csv", churn_csv(10, seed=2))
        [r] = run_once(trained)
        assert r["status"] == "failed" and field in r["error"], r


def _quoted_csv(n: int) -> tuple[bytes, list[str]]:
    """Churn rows with a `note` column whose quoted values hold line breaks, delimiters,
    doubled quotes and text that looks like whole rows (csv.writer quotes per RFC 4180)."""
    import csv

    records = [{k: v for k, v in r.items() if k != "churned"} for r in churn_records(n, seed=9)]
    notes = []
    for i, r in enumerate(records):
        note = f"row {i}" if i % 3 else f'line one\n{i},"x",basic,north\r\nsaid ""hi""\n'
        r["note"] = note
        notes.append(note)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    return out.getvalue().encode(), notes


def test_quoted_line_breaks_are_never_split_across_chunks(trained):
    """A chunk bound is a line break outside any quoted value (quote parity from the file's
    start, RFC 4180); the reader takes line breaks inside quoted values (pyarrow
    newlines_in_values). Every row once, its note intact, scored as the whole file is."""
    body, notes = _quoted_csv(1500)
    put_object(trained, "scoring/churn/small.json", b'{"keep": ["note"]}')
    reference = _whole(trained, body, "small")
    assert reference.column("note").to_pylist() == notes
    trained.ctx.scoring_chunk_bytes = 20_000
    put_object(trained, "scoring/churn/big.json", b'{"keep": ["note"]}')
    put_object(trained, "scoring/churn/big.csv", body)
    results = run_once(trained)
    assert results[0]["chunks"] >= 4 and results[-1]["status"] == "scored", results[-1]
    m = json.loads(trained.ctx.store.get(MANIFEST))
    assert m["rows_in"] == m["rows_scored"] == 1500 and "unsplit" not in m
    out = _table(trained.ctx.store, m["parts"])
    assert _file_rows(m, out) == list(range(1500))
    assert out.column("note").to_pylist() == notes
    assert out.column("prediction").to_pylist() == reference.column("prediction").to_pylist()
    # every bound sits where a row starts: right after a line that ends a record
    for c in m["chunks"][1:]:
        assert body[c["start"] - 1:c["start"]] == b"\n"
        assert body[:c["start"]].count(b'"') % 2 == 0


def test_quotes_inside_unquoted_values_are_literal_as_the_reader_reads_them(trained):
    """A quote that does not start a field (12", ab"c) is a literal character to pyarrow's
    reader, so the planner's quote walk does not take it for an opening quote: a file mixing
    such values with quoted line breaks is cut only between rows."""
    import csv

    body, notes = _quoted_csv(1500)
    # no CRLF inside values here: pyarrow drops the LF of one that straddles its block
    # boundary (apache/arrow#51368; README, batch scoring limits), which this file would hit
    body, notes = body.replace(b"\r\n", b"\n"), [n.replace("\r\n", "\n") for n in notes]
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    literal = ['12"', 'ab"c', 'say "hi" now', 'x"', "-"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="")
    for i, r in enumerate(rows):
        w.writerow(r)
        buf.write(",extra\n" if i == 0 else f",{literal[i % len(literal)]}\n")  # unquoted
    body = buf.getvalue().encode()
    put_object(trained, "scoring/churn/small.json", b'{"keep": ["note", "extra"]}')
    reference = _whole(trained, body, "small")
    trained.ctx.scoring_chunk_bytes = 20_000
    put_object(trained, "scoring/churn/big.json", b'{"keep": ["note", "extra"]}')
    put_object(trained, "scoring/churn/big.csv", body)
    results = run_once(trained)
    assert results[0]["chunks"] >= 4 and results[-1]["status"] == "scored", results[-1]
    m = json.loads(trained.ctx.store.get(MANIFEST))
    out = _table(trained.ctx.store, m["parts"])
    assert m["rows_in"] == m["rows_scored"] == reference.num_rows == 1500
    assert _file_rows(m, out) == list(range(1500))
    assert out.column("note").to_pylist() == reference.column("note").to_pylist() == notes
    assert out.column("extra").to_pylist() == [literal[(i + 1) % len(literal)]
                                               for i in range(1500)]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_fanned_out_manifest_carries_the_whole_objects_sha256(trained, fmt):
    """The planner streams the object once and hashes it: the manifest's input sha256 is
    sha256 of the uploaded bytes, as the whole-file path's is."""
    import hashlib

    if fmt == "csv":
        body = churn_csv(2000, seed=12)
    else:
        table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "churned"}
                                      for r in churn_records(2000, seed=12)])
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=200)
        body = buf.getvalue()
    trained.ctx.scoring_chunk_bytes = 5_000 if fmt == "parquet" else 20_000
    put_object(trained, f"scoring/churn/big.{fmt}", body)
    results = run_once(trained)
    assert results[0]["chunks"] >= 3 and results[-1]["status"] == "scored"
    m = json.loads(trained.ctx.store.get(MANIFEST))
    assert m["input"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert m["rows_scored"] == 2000


def test_a_chunk_whose_read_fails_once_is_retried_and_counted_once(trained):
    """A transient fault in a chunk's ranged GET (its message comes back): the retry scores
    the chunk, rewrites the same part keys, and every row is in the manifest once."""
    store = trained.ctx.store
    trained.ctx.scoring_chunk_bytes = 30_000
    real, failed = store.get_range, []

    def flaky(key, start, end):
        if start >= 60_000 and not failed:
            failed.append(start)
            raise ConnectionError("connection reset by peer")  # retryable
        return real(key, start, end)

    store.get_range = flaky
    try:
        put_object(trained, "scoring/churn/big.csv", churn_csv(2000, seed=14))
        results = run_once(trained)
    finally:
        store.get_range = real
    assert failed and any(r.get("retryable") for r in results), results
    assert results[-1]["status"] == "scored"
    m = json.loads(store.get(MANIFEST))
    assert m["rows_in"] == m["rows_scored"] == 2000
    out = _table(store, m["parts"])
    assert sorted(_file_rows(m, out)) == list(range(2000))


def test_a_fault_in_a_scoring_thread_fails_the_attempt_and_the_retry_scores_it(trained,
                                                                               monkeypatch):
    """onnxruntime runs on worker threads: an exception there reaches the chunk's attempt
    (retried), never a silently missing batch."""
    from mlops_kit.core.serving.predictor import Predictor

    real, failed = Predictor.run_arrays, []

    def flaky(self, feed):
        if not failed:
            failed.append(len(next(iter(feed.values()))))
            raise ConnectionError("a transient fault in the scoring thread")  # retryable
        return real(self, feed)

    monkeypatch.setattr(Predictor, "run_arrays", flaky)
    put_object(trained, "scoring/churn/small.csv", churn_csv(500, seed=15))
    results = run_once(trained)
    assert failed and results[0]["status"] == "failed" and results[0]["retryable"], results
    m = json.loads(trained.ctx.store.get(layout.predictions_manifest_key("churn", "small")))
    assert results[-1]["status"] == "scored" and m["rows_scored"] == 500


def test_chunk_bounds_are_row_starts_as_pyarrow_reads_the_file():
    """Generated CSV values (quoted with line breaks, delimiters and "" inside; unquoted with
    literal quotes such as 12" or ab"c; empty), fed in blocks of any size: reading each chunk
    on its own with the header gives the whole file's rows, in order."""
    import pyarrow.csv as pcsv
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mlops_kit.core.scoring.fanout import _Bounds

    quoted = st.text(alphabet='ab,\n"x ', max_size=8).map(lambda t: '"' + t.replace('"', '""')
                                                               + '"')
    plain = st.text(alphabet='ab"1 ', max_size=6).filter(lambda t: not t.startswith('"'))
    value = st.one_of(quoted, plain)
    rows = st.lists(st.tuples(value, value), min_size=1, max_size=60)

    def read(data: bytes) -> list[dict]:
        opts = pcsv.ParseOptions(newlines_in_values=True)
        conv = pcsv.ConvertOptions(column_types={"a": pa.string(), "b": pa.string()},
                                   strings_can_be_null=False)
        return pcsv.read_csv(io.BytesIO(data), parse_options=opts,
                             convert_options=conv).to_pylist()

    @settings(max_examples=200, deadline=None)
    @given(rows, st.integers(1, 40), st.integers(1, 64))
    def check(values, chunk_bytes, block):
        header = b"a,b\n"
        body = header + b"".join(f"{a},{b}\n".encode() for a, b in values)
        bounds = _Bounds(len(header), len(body), chunk_bytes)
        for i in range(0, len(body), block):
            bounds.feed(body[i:i + block])
        cuts = bounds.bounds + [len(body)]
        chunks = [header + body[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
        assert [r for c in chunks for r in read(c)] == read(body)

    check()
