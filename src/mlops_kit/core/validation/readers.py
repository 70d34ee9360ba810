"""Readers for validation: stream a CSV (pyarrow's streaming reader, ragged rows skipped and
located) or Parquet file (row-group batches) into the validator, and normalise each column
batch (any Arrow type) to float64 or text.

Memory does not grow with the file: CSV blocks (chunk_bytes each; a row may not exceed two
blocks) are read at most CSV_BLOCKS_AHEAD ahead of the batches processed (see _Prefixed), and
Parquet is read with pre_buffer off (with it on, pyarrow keeps the cached column-chunk ranges
of every row group read until the file is closed).
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
import threading
from typing import BinaryIO, Protocol, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlops_kit.core.spec import CategoricalFeature, NumericFeature
from mlops_kit.core.validation.columns import Column
from mlops_kit.core.validation.rules import ARROW_ERRORS, HEADER_LIMIT, NULL_VALUES, Rule


class Validator(Protocol):
    """What a reader feeds (implemented by validator.Validator; a Protocol keeps the readers
    below the validator in the import graph)."""

    lim: int
    parse: Rule
    ragged_rows: list[int]
    cols: dict[str, Column]

    def check_header(self, names: list[str]) -> bool: ...
    def add_batch(self, columns: dict[str, pa.Array], n: int) -> None: ...
    def fail_parse(self, message: str) -> None: ...


CSV_BLOCKS_AHEAD = 2  # CSV blocks read but not yet taken as batches (see _Prefixed)


# -- value conversion -----------------------------------------------------------------------
def decode_text(arr: pa.Array, enc_rule: Rule, off: int, lim: int) -> pa.Array:
    """binary -> string; invalid UTF-8 is reported and kept with replacement characters."""
    try:
        return pc.cast(arr, pa.string())
    except pa.ArrowInvalid:
        raw = arr.to_pylist()
        bad = np.zeros(len(raw), dtype=bool)
        out: list[str | None] = []
        for i, b in enumerate(raw):
            if b is None:
                out.append(None)
                continue
            try:
                out.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = True
                out.append(b.decode("utf-8", errors="replace"))
        enc_rule.add(bad, lambda i: out[i], off, lim)
        return pa.array(out, pa.string())


def _parse_float(text: str | None) -> float | None:
    if text is None:
        return math.nan
    s = text.strip()
    if not s or "_" in s:
        return None
    try:
        return float(s)
    except ValueError:
        return None


def _text_to_float(text: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """float64 with NaN for nulls, plus a mask of values that are not finite numbers."""
    try:
        vals = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        bad = None
    except pa.ArrowInvalid:  # slow path, only for a batch holding unparseable values
        parsed = [_parse_float(t) for t in text.to_pylist()]
        bad = np.fromiter((p is None for p in parsed), dtype=bool, count=len(parsed))
        vals = np.array([math.nan if p is None else p for p in parsed], dtype=np.float64)
    inf = np.isinf(vals)
    if inf.any():
        vals = np.where(inf, np.nan, vals)
        bad = inf if bad is None else bad | inf
    return vals, bad


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def add_column(col: Column, arr: pa.Array, n: int, off: int, lim: int, fmt: str) -> None:
    """Normalise one batch of one column (any Arrow type) and count it into col."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionarydecode_text()
    t = arr.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        arr = decode_text(arr, col.encoding, off, lim)
        t = arr.type
    if fmt == "parquet" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        # CSV null markers ("", "NA", ...) mean missing in Parquet text columns too.
        marker = pc.is_in(arr, value_set=pa.array(NULL_VALUES, t))
        arr = pc.if_else(marker, pa.scalar(None, t), arr)
    if col.kind == "numeric":
        if _is_number(t):
            vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            inf = np.isinf(vals)
            bad = inf if inf.any() else None
            vals = np.where(inf, np.nan, vals) if bad is not None else vals
            shown = lambda i, a=arr: str(a[i].as_py())  # noqa: E731
        elif _is_text(t):
            vals, bad = _text_to_float(arr)
            shown = lambda i, a=arr: a[i].as_py()  # noqa: E731
        else:  # bool, timestamp, list, struct...: not a number at all
            bad = ~arr.is_null().to_numpy(zero_copy_only=False)
            vals = np.full(n, np.nan)
            shown = lambda i, a=arr: str(a[i].as_py())[:100]  # noqa: E731
        f = col.feature if isinstance(col.feature, NumericFeature) else None
        col.add_numeric(
            vals,
            bad,
            shown,
            off,
            lim,
            col.range_rule,
            f.min if f else None,
            f.max if f else None,
        )
    else:
        if not _is_text(t):
            if _is_number(t) or pa.types.is_boolean(t):
                arr = pc.cast(arr, pa.string())
            else:
                bad = ~arr.is_null().to_numpy(zero_copy_only=False)
                col.rules["type"].add(bad, lambda i, a=arr: str(a[i].as_py())[:100], off, lim)
                arr = pa.nulls(n, pa.string())
        elif pa.types.is_null(t):
            arr = pa.nulls(n, pa.string())
        cats = col.feature.categories if isinstance(col.feature, CategoricalFeature) else None
        col.add_text(arr, off, lim, col.cat_rule, cats)


# -- readers --------------------------------------------------------------------------------
class _Prefixed(io.RawIOBase):
    """The peeked header bytes followed by the rest of the stream, with back-pressure.

    pyarrow's streaming CSV reader reads blocks on an I/O thread up to 32 blocks ahead of the
    batches taken (not configurable): 256 MB at 8 MB blocks, i.e. memory that grows with the
    file up to that size. Each read here is one block; it waits while `ahead` blocks are
    already read but not yet taken as batches (two more while the consumer is waiting for a
    batch: a row can straddle two blocks). Past that, a consumer still waiting after STALL_S
    lets the read through, so it never deadlocks. After close() reads return EOF without touching the stream.
    """

    STALL_S = 1.0

    def __init__(self, head: bytes, rest: BinaryIO, ahead: int) -> None:
        self.head, self.rest, self.ahead = memoryview(head), rest, ahead
        self._cv = threading.Condition()
        self._reads = self._taken = 0
        self._waiting, self._open = True, True

    def readable(self) -> bool:
        return True

    def wait_batch(self) -> None:
        """The consumer is about to wait for the next batch."""
        with self._cv:
            self._waiting = True
            self._cv.notify_all()

    def took_batch(self) -> None:
        """The consumer has a batch and processes it."""
        with self._cv:
            self._waiting = False
            self._taken += 1
            self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self._open = False
            self._cv.notify_all()
        super().close()

    def readinto(self, buf) -> int:
        with self._cv:
            # waiting for a batch: allow the two blocks a straddling row needs
            while self._open and self._reads - self._taken >= self.ahead + 2 * self._waiting:
                if not self._waiting:
                    self._cv.wait()
                elif not self._cv.wait(self.STALL_S) and self._waiting:
                    break
            if not self._open:
                return 0
            self._reads += 1
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def _read_header(stream: BinaryIO) -> tuple[bytes, list[str] | None, str | None]:
    head = b""
    while b"\n" not in head and len(head) < HEADER_LIMIT:
        chunk = stream.read(64 * 1024)
        if not chunk:
            break
        head += chunk
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if not line.strip(b" \t\r\n\xef\xbb\xbf"):
        return head, None, "file is empty: no header row"
    if b"\n" not in head and len(head) >= HEADER_LIMIT:
        return head, None, f"no line break in the first {HEADER_LIMIT} bytes: not a CSV file"
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return (
            head,
            None,
            f"header row is not valid UTF-8 (byte {exc.start}): save the file as UTF-8",
        )
    return head, next(csv.reader([text])), None


def _locate_ragged(stream: BinaryIO, start: int, width: int) -> list[int]:
    """Second pass (seekable files with ragged rows only): which data rows were ragged."""
    stream.seek(start)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    rows, n = [], 0
    reader = csv.reader(text)
    next(reader, None)
    for rec in reader:
        if not rec or rec == [""]:
            continue
        n += 1
        if len(rec) != width:
            rows.append(n)
    text.detach()
    return rows


def scan_csv(v: Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    seekable = getattr(stream, "seekable", None)
    start = stream.tell() if seekable is not None and seekable() else None
    head, names, error = _read_header(stream)
    if error or names is None:
        v.fail_parse(error or "no header")
        return False
    if not v.check_header(names):
        return False
    # Unique internal names so duplicate headers still parse; the first occurrence is checked.
    internal: list[str] = []
    first: dict[str, str] = {}
    for i, n in enumerate(names):
        internal.append(n if n not in first else f"{n}\x00{i}")
        first.setdefault(n, n)
    wanted = list(v.cols)
    ragged: list[tuple[int, int, str]] = []

    def on_invalid(row) -> str:
        ragged.append((row.expected_columns, row.actual_columns, row.text))
        return "skip"

    src = _Prefixed(head, stream, CSV_BLOCKS_AHEAD)
    reader = pcsv.open_csv(
        src,
        read_options=pcsv.ReadOptions(
            column_names=internal,
            skip_rows=1,
            block_size=max(chunk_bytes, 4096, 2 * len(head)),
            use_threads=False,
        ),
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pcsv.ConvertOptions(
            column_types={n: pa.binary() for n in wanted},
            include_columns=wanted,
            null_values=NULL_VALUES,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    try:
        while True:
            src.wait_batch()
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            src.took_batch()
            v.add_batch({n: batch.column(n) for n in wanted}, batch.num_rows)
    finally:
        src.close()
        if ragged:
            _report_ragged(v, stream, start, len(names), ragged)
    return True


def _report_ragged(v: Validator, stream: BinaryIO, start: int | None, width: int, ragged: list) -> None:
    rows: list[int | None] = [None] * len(ragged)
    if start is not None:
        try:
            found = _locate_ragged(stream, start, width)
            if len(found) == len(ragged):
                rows = list(found)
                v.ragged_rows = found
        except ARROW_ERRORS + (csv.Error,):
            pass
    p = v.parse
    p.count = len(ragged)
    p.describe = lambda c: (
        f"{c} rows have the wrong number of fields (expected {width}); they were "
        "skipped"
        + (
            ""
            if v.ragged_rows
            else "; the stream is not seekable, so row numbers in this report count well-formed rows only"
        )
    )
    p.examples = [
        {"row": r, "value": f"{got} fields: {text[:200]}"}
        for r, (_, got, text) in list(zip(rows, ragged, strict=True))[: v.lim]
    ]


def scan_parquet(v: Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    if hasattr(stream, "seekable") and stream.seekable():
        return _scan_parquet_seekable(v, stream, chunk_bytes)
    # Parquet's footer is at the end: spool a one-way stream (memory up to 64 MB, then disk).
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        return _scan_parquet_seekable(v, cast(BinaryIO, spool), chunk_bytes)


def _scan_parquet_seekable(v: Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    pf = pq.ParquetFile(stream, pre_buffer=False)
    names = list(pf.schema_arrow.names)
    if not v.check_header(names):
        return False
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        index.setdefault(n, i)
    wanted = list(v.cols)
    unique = len(set(names)) == len(names)
    batch_rows = max(1024, min(1 << 20, chunk_bytes // max(1, 8 * len(names))))
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted if unique else None):
        cols = {n: batch.column(n if unique else index[n]) for n in wanted}
        v.add_batch(cols, batch.num_rows)
    return True
