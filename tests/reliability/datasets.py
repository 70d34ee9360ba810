"""Bad (and awkward-but-valid) dataset files, made here from the synthetic churn data."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlops_kit.core.synthetic import churn_csv

GOOD = churn_csv(300, seed=5)
HEADER, *ROWS = GOOD.decode().strip().split("\n")
COLS = HEADER.split(",")


def _csv(header: str, rows: list[str]) -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _with_column(name: str, values) -> bytes:
    table = pacsv.read_csv(io.BytesIO(GOOD))
    return _parquet(table.set_column(table.schema.get_field_index(name), name, pa.array(values)))


def _quoted_ids(rows: list[str]) -> list[str]:
    # the first column (customer_id, not a feature) carries a quoted delimiter and quote
    return [f'"C,{i:04d} ""x"""' + r[r.index(","):] for i, r in enumerate(rows)]


def _region_with_comma(rows: list[str]) -> list[str]:
    i = COLS.index("region")
    out = []
    for r in rows:
        cells = r.split(",")
        cells[i] = '"north, east"'
        out.append(",".join(cells))
    return out


def _huge_field(size: int) -> bytes:
    """Row 11's customer_id (an ignored column) is `size` bytes long."""
    row = "y" * size + ROWS[10][ROWS[10].index(","):]
    return _csv(HEADER, [*ROWS[:10], row, *ROWS[11:]])


# name -> (file name, bytes, failing rule names expected in the report)
BAD = {
    "ragged rows": ("ragged.csv", _csv(HEADER, [r + (",1,2" if i % 7 == 0 else "")
                                                for i, r in enumerate(ROWS)]), {"parse"}),
    "latin-1 encoding": ("latin1.csv", GOOD.replace(b"basic", "b\xe4sic".encode("latin-1")),
                         {"parse"}),
    "empty file": ("empty.csv", b"", {"parse"}),
    "header only": ("header.csv", (HEADER + "\n").encode(), {"min_rows"}),
    "duplicate headers": ("dup.csv", _csv(HEADER + ",age", [r + ",30" for r in ROWS]),
                          {"duplicate_column"}),
    "huge single line": ("huge.csv", b"x" * (24 << 20), {"parse"}),
    "a 40 MB row": ("hugerow.csv", _huge_field(40 << 20), {"parse"}),
    "quoted delimiter in a category": ("qcat.csv", _csv(HEADER, _region_with_comma(ROWS)),
                                       {"category"}),
    "NUL bytes": ("nul.csv", GOOD[:200] + b"\x00\x00" + GOOD[200:], None),
    "binary garbage": ("garbage.csv", bytes(range(256)) * 64, None),
    "parquet with wrong types": ("wrongtypes.parquet", _with_column("age", ["old"] * 300),
                                 {"type"}),
    "parquet with a missing column": (
        "missing.parquet", _parquet(pacsv.read_csv(io.BytesIO(GOOD)).drop(["age"])),
        {"missing_column"}),
    "corrupt parquet": ("corrupt.parquet", b"PAR1" + b"\x00" * 100 + b"PAR1", {"parse"}),
    "truncated parquet": ("truncated.parquet", _with_column("age", list(range(18, 318)))[:-50],
                          {"parse"}),
    "csv bytes named .parquet": ("csv.parquet", GOOD, {"parse"}),
}

# awkward but valid: validated and trained, with the right row count
VALID = {
    "UTF-8 BOM": ("bom.csv", b"\xef\xbb\xbf" + GOOD),
    "CRLF line endings": ("crlf.csv", GOOD.replace(b"\n", b"\r\n")),
    "quoted delimiters and quotes": ("quoted.csv", _csv(HEADER, _quoted_ids(ROWS))),
    "no trailing newline": ("nonl.csv", GOOD.rstrip(b"\n")),
    # validation reads 8 MB blocks; training must read what validation accepted
    "an 8 MB field in an ignored column": ("hugefield.csv", _huge_field(8 << 20)),
}
