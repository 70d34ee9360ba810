"""Capture formats, measured to pick one: a flush of 2,000 captured rows (the buffer's default
size, 1-record requests of the demo model) encoded as
- JSON lines (the format before: a dict per row, json.dumps per line),
- a JSON header + the raw scored arrays (core.capture.codec, numpy only: what serving may
  import; the chosen one),
- numpy's .npz of the same arrays, plain and compressed (zlib),
- Arrow IPC and Parquet (pyarrow: would add pyarrow to the serve zip, which the serving import
  contract forbids; measured for the record),
and read back the way monitoring would (json.loads per line vs arrays). Plus the longest GIL
stall a flush causes: a ticker thread sleeps 0.2 ms in a loop while the main thread encodes;
its longest gap is how long a request thread could have waited.
Baseline: JSON lines (the format before)."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np

from common import parse_args, row, summary, time_calls, write_result

ROWS = 2000


def blocks(n: int):
    from mlops_kit.core.capture.codec import RequestBlock
    from mlops_kit.core.synthetic import churn_columns

    cols = churn_columns(n, seed=5)
    num = ["tenure_months", "monthly_charges", "support_calls", "age"]
    cat = ["plan", "region", "payment"]
    out = []
    for i in range(n):
        feed = {k: np.array([[np.nan if cols[k][i] is None else cols[k][i]]], np.float32)
                for k in num}
        feed.update({k: np.array([[cols[k][i] or "__missing__"]], dtype=object) for k in cat})
        p = float(i % 7) / 7
        out.append(RequestBlock(f"{i:032x}", 1_772_000_000_000_000 + i, 1, False, 0.12, feed,
                                np.array([int(p > 0.5)]), np.array([[1 - p, p]], np.float32)))
    return out


def jsonl(model: str, bl) -> bytes:
    """The JSON-lines flush as it was (row dicts, json.dumps per row)."""
    lines = []
    for b in bl:
        feats = {}
        for k, v in b.feed.items():
            x = v.ravel().tolist()[0]
            feats[k] = None if x == "__missing__" or (isinstance(x, float) and x != x) else x
        lines.append(json.dumps({
            "id": b.request_id, "request_id": b.request_id, "at": "2026-03-02T12:00:00+00:00",
            "model": model, "version": b.version, "role": "served",
            "latency_ms": round(b.latency_ms, 3), "features": feats,
            "prediction": int(b.labels[0]),
            "probabilities": np.round(b.probabilities[0].astype(np.float64), 6).tolist()},
            separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def npz(model: str, bl, compressed: bool = False) -> bytes:
    """The same arrays (and the header as a 0-d string) as numpy's .npz."""
    from mlops_kit.core.capture import codec

    header, arrays = codec.unpack(codec.encode(model, bl))
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(
        buf, header=np.array(json.dumps(header)), **arrays)
    return buf.getvalue()


def arrow_table(model: str, bl):
    from mlops_kit.core.capture import codec
    from mlops_kit.core.capture.parquet import chunk_table

    return chunk_table(codec.decode(codec.encode(model, bl)), model)


def arrow_ipc(model: str, bl) -> bytes:
    import pyarrow as pa

    table = arrow_table(model, bl)
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def parquet(model: str, bl) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(arrow_table(model, bl), sink)
    return sink.getvalue()


def max_stall_ms(fn, repeats: int) -> float:
    """Longest gap a 0.2 ms-sleeping thread sees while fn runs (GIL held by fn)."""
    gaps: list[float] = []
    stop = threading.Event()

    def ticker():
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.0002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    t = threading.Thread(target=ticker)
    t.start()
    time.sleep(0.01)
    for _ in range(repeats):
        fn()
    stop.set()
    t.join()
    return max(gaps) * 1000


def main() -> None:
    args = parse_args(__doc__)
    from mlops_kit.core.capture import codec

    n = 200 if args.smoke else ROWS
    reps = 3 if args.smoke else 30
    bl = blocks(n)
    encoders = {
        "JSON lines (before)": lambda: jsonl("churn", bl),
        "header + raw arrays (chosen)": lambda: codec.encode("churn", bl),
        ".npz": lambda: npz("churn", bl),
        ".npz compressed": lambda: npz("churn", bl, compressed=True),
        "Arrow IPC (pyarrow)": lambda: arrow_ipc("churn", bl),
        "Parquet (pyarrow)": lambda: parquet("churn", bl),
    }
    bodies = {k: f() for k, f in encoders.items()}
    readers = {
        "JSON lines (before)": lambda b: [json.loads(x) for x in b.splitlines()],
        "header + raw arrays (chosen)": codec.decode,
        ".npz": lambda b: dict(np.load(io.BytesIO(b), allow_pickle=False)),
        ".npz compressed": lambda b: dict(np.load(io.BytesIO(b), allow_pickle=False)),
        "Arrow IPC (pyarrow)": lambda b: __import__("pyarrow").ipc.open_file(b).read_all(),
        "Parquet (pyarrow)": lambda b: __import__("pyarrow.parquet").parquet.read_table(
            io.BytesIO(b)),
    }
    enc = {k: summary(time_calls(f, reps, warmup=2)) for k, f in encoders.items()}
    dec = {k: summary(time_calls(lambda k=k: readers[k](bodies[k]), reps, warmup=2))
           for k in encoders}
    stall = {k: summary([max_stall_ms(f, 3) for _ in range(3 if args.smoke else 5)])
             for k, f in encoders.items()}
    base = "JSON lines (before)"
    rows = []
    for k in encoders:
        note = (f"{len(bodies[k]) / 1024:.0f} KiB per {n:,} rows; read back "
                f"{dec[k]['median']:.2f} ms ({dec[base]['median'] / dec[k]['median']:.1f}x "
                f"faster than JSON); longest GIL stall seen by another thread "
                f"{stall[k]['median']:.2f} ms")
        rows.append(row(f"capture flush, {n:,} rows: encode", k, "time", enc[k], "ms",
                        baseline="JSON lines (before)", baseline_stats=enc[base],
                        ratio=enc[base]["median"] / enc[k]["median"], ratio_label="x faster",
                        note=note, bytes=len(bodies[k]), decode_stats=dec[k],
                        stall_stats=stall[k]))
    path = write_result("capture_formats", rows, smoke=args.smoke, out_dir=args.out)
    print(path)
    for r in rows:
        print(f"{r['model']:22s} encode {r['stats']['median']:7.2f} ms  {r['note']}")


if __name__ == "__main__":
    main()
