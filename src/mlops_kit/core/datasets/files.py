"""The dataset files: CSV (pyarrow's streaming reader, every wanted column as binary, at most
CSV_BLOCKS_AHEAD blocks read ahead: see _Prefixed) and Parquet (row-group batches with
pre_buffer off; with it on, pyarrow keeps every row group's column chunks until the file is
closed; a one-way stream is spooled first, the footer is at the end). Validation streams the
batches; training reads them to the end (`read_columns`). Values: see values.py."""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
import threading
from collections.abc import Callable, Collection, Generator, Iterator
from contextlib import closing
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlops_kit.errors import ValidationError

HEADER_LIMIT = 1 << 20  # a header line longer than this is not a CSV header
CSV_BLOCKS_AHEAD = 2  # CSV blocks read but not yet taken as batches (see _Prefixed)


class HashingReader:
    """Wraps a binary stream; sha256 of everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.raw.close()

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()


# -- CSV ------------------------------------------------------------------------------------
def read_csv_header(stream: BinaryIO) -> tuple[bytes, list[str] | None, str | None]:
    """(the bytes read, the column names, or why there is no header)."""
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
        return head, None, (f"header row is not valid UTF-8 (byte {exc.start}): save the file "
                            "as UTF-8")
    return head, next(csv.reader([text])), None


class _Prefixed(io.RawIOBase):
    """The peeked header bytes followed by the rest of the stream, with back-pressure.

    pyarrow's streaming CSV reader reads blocks on an I/O thread up to 32 blocks ahead of the
    batches taken (not configurable): 256 MB at 8 MB blocks, i.e. memory that grows with the
    file up to that size. Each read here is one block; it waits while `ahead` blocks are
    already read but not yet taken as batches (two more while the consumer is waiting for a
    batch: a row can straddle two blocks). Past that, a consumer still waiting after STALL_S
    lets the read through, so it never deadlocks. After close() reads return EOF without
    touching the stream.
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


def csv_batches(stream: BinaryIO, head: bytes, names: list[str], wanted: list[str],
                chunk_bytes: int, on_invalid_row: Callable[[Any], str] | None = None,
                null_values: Collection[str] = ("",),
                newlines_in_values: bool = False,
                ) -> Generator[pa.RecordBatch, None, None]:
    """Batches of the wanted columns, binary. `null_values`: the missing tokens every column
    shares (missing.shared_markers), made null by the reader; `normalise` applies the rest per
    column. A duplicate name reads its first occurrence. `newlines_in_values`: a quoted value
    may hold a line break (pyarrow's ParseOptions; batch scoring reads so)."""
    internal: list[str] = []
    first: dict[str, str] = {}
    for i, n in enumerate(names):
        internal.append(n if n not in first else f"{n}\x00{i}")
        first.setdefault(n, n)
    src = _Prefixed(head, stream, CSV_BLOCKS_AHEAD)
    reader = pcsv.open_csv(
        src,
        read_options=pcsv.ReadOptions(column_names=internal, skip_rows=1, use_threads=False,
                                      block_size=max(chunk_bytes, 4096, 2 * len(head))),
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid_row,
                                        newlines_in_values=newlines_in_values),
        convert_options=pcsv.ConvertOptions(
            column_types={n: pa.binary() for n in wanted}, include_columns=wanted,
            null_values=list(null_values), strings_can_be_null=True,
            quoted_strings_can_be_null=True),
    )
    try:
        while True:
            src.wait_batch()
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            src.took_batch()
            yield batch
    finally:
        src.close()


# -- Parquet --------------------------------------------------------------------------------
def parquet_batches(stream: BinaryIO, wanted: list[str] | None, chunk_bytes: int,
                    on_header: Callable[[list[str]], bool] = lambda names: True,
                    ) -> Iterator[dict[str, pa.Array]]:
    """Column batches ({name: array}) of a Parquet file; `on_header(names)` False stops."""
    if hasattr(stream, "seekable") and stream.seekable():
        yield from _parquet_seekable(stream, wanted, chunk_bytes, on_header)
        return
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        yield from _parquet_seekable(spool, wanted, chunk_bytes, on_header)


def _parquet_seekable(stream, wanted, chunk_bytes, on_header) -> Iterator[dict[str, pa.Array]]:
    pf = pq.ParquetFile(stream, pre_buffer=False)
    names = list(pf.schema_arrow.names)
    if not on_header(names):
        return
    wanted = names if wanted is None else wanted
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        index.setdefault(n, i)
    unique = len(set(names)) == len(names)
    batch_rows = max(1024, min(1 << 20, chunk_bytes // max(1, 8 * len(names))))
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted if unique else None):
        yield {n: batch.column(n if unique else index[n]) for n in wanted}


# -- the whole file (training) --------------------------------------------------------------
def read_columns(stream: BinaryIO, fmt: str, wanted: list[str], *,
                 chunk_bytes: int = 16 << 20,
                 null_values: Collection[str] = ("",)) -> dict[str, pa.Array]:
    """Every row of the wanted columns, raw (apply `normalise`): the reader validation streams,
    read to the end. Whatever validation would report fails here with a ValidationError."""
    def check(names: list[str]) -> bool:
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ValidationError(f"column {missing[0]!r} is missing from the dataset",
                                  field=missing[0])
        return True

    def ragged(row) -> str:
        raise ValidationError(f"a row has {row.actual_columns} fields, expected "
                              f"{row.expected_columns}", field="dataset")

    parts: dict[str, list] = {n: [] for n in wanted}
    if fmt == "csv":
        head, names, error = read_csv_header(stream)
        if error or names is None:
            raise ValidationError(error or "no header row", field="dataset")
        check(names)
        with closing(csv_batches(stream, head, names, wanted, chunk_bytes, ragged,
                                 null_values)) as batches:
            for batch in batches:
                for n in wanted:
                    parts[n].append(batch.column(n))
    elif fmt == "parquet":
        for cols in parquet_batches(stream, wanted, chunk_bytes, check):
            for n in wanted:
                parts[n].append(cols[n])
    else:
        raise ValidationError(f"unsupported dataset format {fmt!r}: use csv or parquet",
                              field="dataset")
    out = {}
    for n in wanted:
        chunks = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in parts[n]]
        # batches of a category column may carry different dictionaries: decode each
        chunks = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in chunks]
        out[n] = pa.concat_arrays(chunks) if chunks else pa.array([], pa.binary())
    return out
