"""Dataset validation: stream a CSV or Parquet upload in bounded memory, check it against the model
spec, and build the reference profile that monitoring compares live traffic with.

Bad files never raise: an empty file, ragged rows, invalid UTF-8, duplicate headers or a Parquet
column of the wrong type each become a failed rule in the report. The happy path is vectorised
(pyarrow + numpy per batch); a per-value Python path runs only for a batch whose values do not
parse, to name the offending rows.

Example row numbers are 1-based data rows (the header is not counted; blank lines are skipped).

The work is split across sibling modules (about 300 lines each): rules (report rules, header
checks, constants), columns (per-column counters, whole-file rules and profile statistics) and
readers (CSV / Parquet streaming and per-type normalisation). This module keeps the public API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_kit.core.datasets import is_text_type
from mlops_kit.core.spec import ModelSpec
from mlops_kit.core.validation.columns import (
    Column,
    class_balance,
    make_column,
    null_fraction,
    positive_class,
    task_classes,
)
from mlops_kit.core.validation.readers import add_column, scan_csv, scan_parquet
from mlops_kit.core.validation.rules import (
    ARROW_ERRORS,
    NULL_VALUES,
    Rule,
    fix_rows,
    header_rules,
)
from mlops_kit.errors import ValidationError

__all__ = ["NULL_VALUES", "ValidationResult", "detect_format", "validate_dataset"]


@dataclass
class ValidationResult:
    passed: bool
    rows: int
    report: dict
    profile: dict


class ColumnHash:
    """One column's content, whatever the reader's chunking: the values as bytes (numbers and
    the like through Arrow's cast to text) hashed as two streams, the bytes and the lengths
    (-1 for a missing value), combined at the end."""

    def __init__(self) -> None:
        self.data, self.lengths = hashlib.sha256(), hashlib.sha256()

    def update(self, arr: pa.Array) -> None:
        t = arr.type
        try:
            if not (pa.types.is_binary(t) or pa.types.is_large_binary(t) or is_text_type(t)):
                arr = pc.cast(arr, pa.large_string())  # numbers, booleans, dates as text
            text = pc.cast(arr, pa.large_binary())
        except (pa.ArrowException, ValueError):  # not castable (nested): slower, exact
            text = pa.array([None if v is None else str(v).encode() for v in arr.to_pylist()],
                            pa.large_binary())
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[
            text.offset:text.offset + len(text) + 1]
        if len(offsets):
            lengths = np.diff(offsets).astype("<i4")
            if text.null_count:
                lengths[text.is_null().to_numpy(zero_copy_only=False)] = -1
            self.lengths.update(lengths.tobytes())
            data = text.buffers()[2]
            if data is not None:
                self.data.update(memoryview(data)[int(offsets[0]):int(offsets[-1])])

    def hexdigest(self) -> str:
        return hashlib.sha256((self.data.hexdigest() + self.lengths.hexdigest()).encode()
                              ).hexdigest()


def detect_format(key_or_filename: str) -> Literal["csv", "parquet"]:
    lowered = key_or_filename.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValidationError(
        f"{key_or_filename!r}: unsupported dataset format; use a .csv, .parquet or .pq file",
        field="dataset",
    )


class Validator:
    """State of one validation: file-level rules, one Column per spec column, the row count."""

    def __init__(self, spec: ModelSpec, fmt: str, seed: int, sample_size: int) -> None:
        self.spec, self.fmt = spec, fmt
        self.applied: list[str] = []  # missing tokens the CSV reader nulled (scan_csv)
        self.lim = spec.validation.max_examples
        self.rows = 0
        self.header: list[str] = []
        self.file_rules: list[Rule] = []
        self.parse = Rule("parse", None, lambda c: f"could not parse {c} rows" if c else "file parsed")
        self.ragged_rows: list[int] = []
        self.cols: dict[str, Column] = {}
        for f in [*spec.features, None]:
            col = make_column(f, spec, seed, sample_size)
            self.cols[col.name] = col
        # the data's content: one hash per spec column (column order and extra columns do not
        # count), so a reordered or widened copy of the same rows is recognised as unchanged
        self.content = {name: ColumnHash() for name in self.cols}

    def check_header(self, names: list[str]) -> bool:
        """Duplicate, missing, unknown columns. Returns False to stop (nothing to scan)."""
        self.header = names
        rules, scannable = header_rules(self.spec, names)
        self.file_rules += rules
        return scannable

    def add_batch(self, columns: dict[str, pa.Array], n: int) -> None:
        for name, col in self.cols.items():
            add_column(col, columns[name], n, self.rows, self.lim, self.fmt, self.applied)
            self.content[name].update(columns[name])
        self.rows += n

    def content_hash(self) -> str:
        whole = hashlib.sha256()
        for name in sorted(self.content):
            whole.update(f"{name}\x1d{self.content[name].hexdigest()}\x1e".encode())
        return whole.hexdigest()

    def fail_parse(self, message: str) -> None:
        self.file_rules.append(Rule("parse", None, lambda c, m=message: m, count=1))

    # -- report -------------------------------------------------------------------------
    def finish(self, scanned: bool) -> ValidationResult:
        spec, rows = self.spec, self.rows
        rules: list[Rule] = []
        if self.parse.count:
            self.parse.rows_final = True
            rules.append(self.parse)
        rules += [r for r in self.file_rules if r.rule == "parse"]
        if not any(r.rule == "parse" for r in rules):
            rules.append(Rule("parse", None, lambda c: "file parsed"))
        rules += [r for r in self.file_rules if r.rule != "parse"]
        profile: dict = {"rows": rows, "features": {}, "target": {}}
        if scanned:
            mr = spec.validation.min_rows
            r = Rule(
                "min_rows",
                None,
                lambda c: (
                    f"{rows} rows, fewer than validation.min_rows {mr}"
                    if rows < mr
                    else f"{rows} rows (min_rows {mr})"
                ),
            )
            r.count = 0 if rows >= mr else mr - rows
            rules.append(r)
            for name, col in self.cols.items():
                rules += [col.rules["type"]]
                if col.encoding.count:
                    rules.append(col.encoding)
                rules += [x for x in (col.rules.get("nullable"), col.range_rule, col.cat_rule) if x]
                if col.is_target:
                    rules.append(col.rules["target"])
                    if spec.task.is_classification:
                        rules.append(task_classes(col, spec))
                        rules.append(class_balance(col, spec))
                        if spec.task.value == "binary_classification":
                            rules.append(positive_class(col, spec))
                else:
                    rules.append(null_fraction(col, rows, spec))
                entry = col.profile(rows)
                if col.is_target:
                    profile["target"] = entry
                else:
                    profile["features"][name] = entry
        fix_rows(rules, self.ragged_rows)
        out = [r.as_dict() for r in rules]
        failed = [r for r in out if not r["passed"]]
        passed = not failed
        if passed:
            summary = f"passed: {rows} rows, {len(out)} rules checked"
        else:
            parts = [
                f"{r['column']} ({r['rule']}: {r['count']})" if r["column"] else f"{r['rule']} ({r['count']})"
                for r in failed
            ]
            summary = f"failed {len(failed)} of {len(out)} rules: " + ", ".join(parts[:20])
            if not scanned:
                summary += "; data rows were not scanned"
        report = {
            "passed": passed,
            "rows": rows,
            "format": self.fmt,
            "columns": self.header,
            "summary": summary,
            "rules": out,
            "content_hash": self.content_hash() if scanned else None,
        }
        return ValidationResult(passed=passed, rows=rows, report=report, profile=profile)


def validate_dataset(
    stream: BinaryIO,
    fmt: str,
    spec: ModelSpec,
    *,
    chunk_bytes: int = 8 << 20,
    sample_size: int = 10_000,
    seed: int = 0,
) -> ValidationResult:
    """Check a dataset against the spec; never raises for bad data (a failed report instead)."""
    if fmt not in ("csv", "parquet"):
        raise ValidationError(f"unsupported dataset format {fmt!r}: use csv or parquet", field="format")
    v = Validator(spec, fmt, seed, sample_size)
    scanned = False
    try:
        scanned = (scan_csv if fmt == "csv" else scan_parquet)(v, stream, chunk_bytes)
    except ARROW_ERRORS as exc:
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        where = f" after {v.rows} rows" if v.rows else ""
        v.fail_parse(f"could not read the {fmt} file{where}: {msg}")
        scanned = bool(v.header) and not any(r.rule == "missing_column" and r.count for r in v.file_rules)
    return v.finish(scanned)
