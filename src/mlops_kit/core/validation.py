"""Dataset validation: stream a CSV or Parquet upload in bounded memory, check it against the model
spec, and build the reference profile that monitoring compares live traffic with.

Bad files never raise: an empty file, ragged rows, invalid UTF-8, duplicate headers or a Parquet
column of the wrong type each become a failed rule in the report. The happy path is vectorised
(pyarrow + numpy per batch); a per-value Python path runs only for a batch whose values do not
parse, to name the offending rows.

Example row numbers are 1-based data rows (the header is not counted; blank lines are skipped).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlops_kit.core.drift import OTHER_CATEGORY, numeric_freqs, quantile_edges
from mlops_kit.core.spec import CategoricalFeature, ModelSpec, NumericFeature
from mlops_kit.errors import ValidationError

__all__ = ["NULL_VALUES", "ValidationResult", "detect_format", "validate_dataset"]

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
HEADER_LIMIT = 1 << 20  # a header line longer than this is not a CSV header
TRACKED_CATEGORIES = 10_000  # distinct values counted per column before lumping into __other__
PROFILE_CATEGORIES = 100  # values kept in a categorical profile
PROFILE_SAMPLE = 1000
_ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, EOFError)


@dataclass
class ValidationResult:
    passed: bool
    rows: int
    report: dict
    profile: dict


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


# -- rules --------------------------------------------------------------------------------
@dataclass
class _Rule:
    rule: str
    column: str | None
    describe: Callable[[int], str]  # count -> message
    count: int = 0
    examples: list[dict] = field(default_factory=list)
    rows_final: bool = False  # example rows are already file row numbers (not ordinals)
    failed: bool | None = None  # None: failed iff count > 0

    def add(self, mask: np.ndarray, values: Callable[[int], Any], offset: int, limit: int) -> None:
        hits = int(mask.sum())
        if not hits:
            return
        self.count += hits
        room = limit - len(self.examples)
        for i in np.flatnonzero(mask)[:room] if room > 0 else ():
            self.examples.append({"row": offset + int(i) + 1, "value": values(int(i))})

    def as_dict(self) -> dict:
        failed = self.count > 0 if self.failed is None else self.failed
        return {
            "rule": self.rule,
            "column": self.column,
            "passed": not failed,
            "count": self.count if failed else 0,
            "message": self.describe(self.count),
            "examples": self.examples if failed else [],
        }


def _fmt(x: float | None) -> str:
    return "-inf" if x is None else f"{x:g}"


class _Column:
    """Per-column state across batches: rule counters plus profile statistics."""

    def __init__(
        self,
        name: str,
        kind: str,
        nullable: bool,
        spec: ModelSpec,
        seed: int,
        sample_size: int,
        is_target: bool = False,
    ) -> None:
        self.name, self.kind, self.nullable, self.is_target = name, kind, nullable, is_target
        self.nulls = 0
        self.rules: dict[str, _Rule] = {}
        n = name
        if kind == "numeric":
            self.rules["type"] = _Rule(
                "type",
                n,
                lambda c: (
                    f"{n}: {c} values are not finite numbers"
                    if c
                    else f"{n}: all values are numbers"
                ),
            )
            self.n, self.mean, self.m2 = 0, 0.0, 0.0
            self.lo, self.hi = math.inf, -math.inf
            self.sample_size = sample_size
            self.res_vals = np.empty(0)
            self.res_keys = np.empty(0)
            self.rng = np.random.default_rng([seed, len(name)])
        else:
            self.rules["type"] = _Rule(
                "type",
                n,
                lambda c: f"{n}: {c} values are not text" if c else f"{n}: all values are text",
            )
            self.counts: dict[str, int] = {}
        if is_target:
            self.rules["target"] = _Rule(
                "target",
                n,
                lambda c: (
                    f"{n}: {c} rows have no usable target value"
                    if c
                    else f"{n}: every row has a target"
                ),
            )
        elif not nullable:
            self.rules["nullable"] = _Rule(
                "nullable",
                n,
                lambda c: (
                    f"{n}: {c} missing values but the column is not nullable"
                    if c
                    else f"{n}: no missing values"
                ),
            )

    # numeric ---------------------------------------------------------------------------
    def add_numeric(
        self,
        vals: np.ndarray,
        bad: np.ndarray | None,
        text: Callable,
        off: int,
        lim: int,
        range_rule: _Rule | None,
        lo: float | None,
        hi: float | None,
    ) -> None:
        nan = np.isnan(vals)
        if bad is not None:
            self.rules["type"].add(bad, text, off, lim)
            if self.is_target:
                self.rules["target"].add(bad, text, off, lim)
            nulls = nan & ~bad
        else:
            nulls = nan
        self.nulls += int(nulls.sum())
        null_rule = self.rules.get("target") or self.rules.get("nullable")
        if null_rule is not None:
            null_rule.add(nulls, lambda i: None, off, lim)
        if range_rule is not None:
            outside = np.zeros(vals.shape, dtype=bool)
            if lo is not None:
                outside |= vals < lo
            if hi is not None:
                outside |= vals > hi
            range_rule.add(outside, text, off, lim)
            nan = nan | outside  # the profile describes valid values only
        good = vals[~nan]
        if not good.size:
            return
        # Chan et al. parallel mean/variance: exact and stable across batches.
        n_b, mean_b = good.size, float(good.mean())
        m2_b = float(((good - mean_b) ** 2).sum())
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.n * n_b / total
        self.n = total
        self.lo, self.hi = min(self.lo, float(good.min())), max(self.hi, float(good.max()))
        # Reservoir by random priorities: keep the sample_size smallest keys ever seen.
        keys = np.concatenate([self.res_keys, self.rng.random(n_b)])
        pool = np.concatenate([self.res_vals, good])
        if keys.size > self.sample_size:
            keep = np.argpartition(keys, self.sample_size)[: self.sample_size]
            keys, pool = keys[keep], pool[keep]
        self.res_keys, self.res_vals = keys, pool

    # categorical -------------------------------------------------------------------------
    def add_text(
        self,
        text: pa.Array,
        off: int,
        lim: int,
        cat_rule: _Rule | None,
        categories: list[str] | None,
    ) -> None:
        nulls = text.is_null().to_numpy(zero_copy_only=False)
        self.nulls += int(nulls.sum())
        null_rule = self.rules.get("target") or self.rules.get("nullable")
        if null_rule is not None:
            null_rule.add(nulls, lambda i: None, off, lim)
        if cat_rule is not None and categories is not None:
            ok = pc.is_in(text, value_set=pa.array(categories, pa.string())).to_numpy(
                zero_copy_only=False
            )
            cat_rule.add(~ok & ~nulls, lambda i: text[i].as_py(), off, lim)
        vc = pc.value_counts(text.drop_null())
        for value, count in zip(
            vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True
        ):
            if value in self.counts or len(self.counts) < TRACKED_CATEGORIES:
                self.counts[value] = self.counts.get(value, 0) + count
            else:
                self.counts[OTHER_CATEGORY] = self.counts.get(OTHER_CATEGORY, 0) + count

    def profile(self, rows: int) -> dict:
        null_rate = self.nulls / rows if rows else 0.0
        if self.kind == "categorical":
            total = sum(self.counts.values())
            top = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            kept, rest = top[:PROFILE_CATEGORIES], sum(c for _, c in top[PROFILE_CATEGORIES:])
            freqs = {k: c / total for k, c in kept} if total else {}
            if rest:
                freqs[OTHER_CATEGORY] = freqs.get(OTHER_CATEGORY, 0.0) + rest / total
            return {"type": "categorical", "null_rate": null_rate, "freqs": freqs}
        sample = self.res_vals[np.argsort(self.res_keys)]  # random order, seed-stable
        edges = quantile_edges(sample)
        return {
            "type": "numeric",
            "count": self.n,
            "null_rate": null_rate,
            "mean": self.mean if self.n else 0.0,
            "std": math.sqrt(self.m2 / self.n) if self.n else 0.0,
            "min": self.lo if self.n else 0.0,
            "max": self.hi if self.n else 0.0,
            "edges": edges,
            "freqs": numeric_freqs(sample, edges) if self.n else [],
            "sample": [float(x) for x in sample[:PROFILE_SAMPLE]],
        }


# -- value conversion ---------------------------------------------------------------------
def _decode(arr: pa.Array, enc_rule: _Rule, off: int, lim: int) -> pa.Array:
    """binary -> string; invalid UTF-8 is reported and kept with replacement characters."""
    try:
        return pc.cast(arr, pa.string())
    except pa.ArrowInvalid:
        raw = arr.to_pylist()
        bad = np.zeros(len(raw), dtype=bool)
        out = []
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


# -- the validator ------------------------------------------------------------------------
class _Validator:
    def __init__(self, spec: ModelSpec, fmt: str, seed: int, sample_size: int) -> None:
        self.spec, self.fmt = spec, fmt
        self.lim = spec.validation.max_examples
        self.rows = 0
        self.header: list[str] = []
        self.file_rules: list[_Rule] = []
        self.parse = _Rule(
            "parse", None, lambda c: f"could not parse {c} rows" if c else "file parsed"
        )
        self.ragged_rows: list[int] = []
        self.cols: dict[str, _Column] = {}
        self.col_rules: dict[str, list[_Rule]] = {}
        target_kind = "categorical" if spec.task.is_classification else "numeric"
        for f in [*spec.features, None]:
            name = f.name if f else spec.target
            kind = (
                target_kind
                if f is None
                else ("numeric" if isinstance(f, NumericFeature) else "categorical")
            )
            col = _Column(
                name, kind, f.nullable if f else False, spec, seed, sample_size, f is None
            )
            col.encoding = _Rule(
                "parse", name, lambda c, n=name: f"{n}: {c} values are not valid UTF-8"
            )
            col.encoding.failed = None
            self.cols[name] = col
            col.range_rule = col.cat_rule = None
            if isinstance(f, NumericFeature) and (f.min is not None or f.max is not None):
                bounds = f"[{_fmt(f.min)}, {_fmt(f.max) if f.max is not None else 'inf'}]"
                col.range_rule = _Rule(
                    "range",
                    name,
                    lambda c, n=name, b=bounds: (
                        f"{n}: {c} values outside {b}" if c else f"{n}: all values within {b}"
                    ),
                )
            if isinstance(f, CategoricalFeature) and f.categories is not None:
                col.cat_rule = _Rule(
                    "category",
                    name,
                    lambda c, n=name, cats=f.categories: (
                        f"{n}: {c} values not in the allowed categories {cats}"
                        if c
                        else f"{n}: all values in the allowed categories"
                    ),
                )
            col.feature = f

    # header checks: duplicate, missing, unknown. Returns False to stop (nothing to scan).
    def check_header(self, names: list[str]) -> bool:
        self.header = names
        seen: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i + 1)
        dupes = {n: pos for n, pos in seen.items() if len(pos) > 1}
        for n, pos in dupes.items():
            r = _Rule(
                "duplicate_column",
                n,
                lambda c, n=n, pos=pos: (
                    f"{n}: header has {len(pos)} columns with this name (positions {pos}); "
                    "the first one was validated"
                ),
            )
            r.count = len(pos) - 1
            self.file_rules.append(r)
        if not dupes:
            self.file_rules.append(
                _Rule("duplicate_column", None, lambda c: "column names are unique")
            )
        required = [*self.spec.feature_names, self.spec.target]
        missing = [n for n in required if n not in seen]
        for n in missing:
            r = _Rule(
                "missing_column",
                n,
                lambda c, n=n: (
                    f"{n}: required column is missing from the header (found: {names[:50]})"
                ),
            )
            r.count = 1
            self.file_rules.append(r)
        if not missing:
            self.file_rules.append(
                _Rule("missing_column", None, lambda c: "all required columns present")
            )
        unknown = [n for n in seen if n not in set(required)]
        reject = self.spec.validation.unknown_columns == "reject"
        for n in unknown if reject else ():
            r = _Rule(
                "unknown_column",
                n,
                lambda c, n=n: (
                    f"{n}: column is not in the spec (validation.unknown_columns is 'reject')"
                ),
            )
            r.count = 1
            self.file_rules.append(r)
        if not (reject and unknown):
            self.file_rules.append(
                _Rule(
                    "unknown_column",
                    None,
                    lambda c: (
                        f"{len(unknown)} extra columns ignored: {unknown[:20]}"
                        if unknown
                        else "no unknown columns"
                    ),
                )
            )
        return not missing

    def add_batch(self, columns: dict[str, pa.Array], n: int) -> None:
        off, lim = self.rows, self.lim
        for name, col in self.cols.items():
            arr = columns[name]
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            t = arr.type
            if pa.types.is_binary(t) or pa.types.is_large_binary(t):
                arr = _decode(arr, col.encoding, off, lim)
                t = arr.type
            if self.fmt == "parquet" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
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
                f = col.feature
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
                        col.rules["type"].add(
                            bad, lambda i, a=arr: str(a[i].as_py())[:100], off, lim
                        )
                        arr = pa.nulls(n, pa.string())
                elif pa.types.is_null(t):
                    arr = pa.nulls(n, pa.string())
                cats = col.feature.categories if col.feature is not None else None
                col.add_text(arr, off, lim, col.cat_rule, cats)
        self.rows += n

    def fail_parse(self, message: str) -> None:
        self.file_rules.append(_Rule("parse", None, lambda c, m=message: m, count=1))

    # -- report -------------------------------------------------------------------------
    def finish(self, scanned: bool) -> ValidationResult:
        spec, rows = self.spec, self.rows
        rules: list[_Rule] = []
        if self.parse.count:
            self.parse.rows_final = True
            rules.append(self.parse)
        rules += [r for r in self.file_rules if r.rule == "parse"]
        if not any(r.rule == "parse" for r in rules):
            rules.append(_Rule("parse", None, lambda c: "file parsed"))
        rules += [r for r in self.file_rules if r.rule != "parse"]
        profile: dict = {"rows": rows, "features": {}, "target": {}}
        if scanned:
            mr = spec.validation.min_rows
            r = _Rule(
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
                        rules.append(self._class_balance(col))
                else:
                    rules.append(self._null_fraction(col))
                entry = col.profile(rows)
                if col.is_target:
                    profile["target"] = entry
                else:
                    profile["features"][name] = entry
        self._fix_rows(rules)
        out = [r.as_dict() for r in rules]
        failed = [r for r in out if not r["passed"]]
        passed = not failed
        if passed:
            summary = f"passed: {rows} rows, {len(out)} rules checked"
        else:
            parts = [
                f"{r['column']} ({r['rule']}: {r['count']})"
                if r["column"]
                else f"{r['rule']} ({r['count']})"
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
        }
        return ValidationResult(passed=passed, rows=rows, report=report, profile=profile)

    def _null_fraction(self, col: _Column) -> _Rule:
        rows, cap = self.rows, self.spec.validation.max_null_fraction
        share = col.nulls / rows if rows else 0.0
        r = _Rule(
            "null_fraction",
            col.name,
            lambda c: (
                f"{col.name}: {share:.1%} missing, above validation.max_null_fraction {cap:.1%}"
                if share > cap
                else f"{col.name}: {share:.1%} missing (max {cap:.1%})"
            ),
        )
        r.count = col.nulls if share > cap else 0
        return r

    def _class_balance(self, col: _Column) -> _Rule:
        total = sum(col.counts.values())
        floor = self.spec.validation.min_class_fraction
        shares = {k: v / total for k, v in col.counts.items()} if total else {}
        small = sorted(k for k, s in shares.items() if s < floor)
        name = col.name
        if len(shares) < 2:
            msg = f"{name}: needs at least 2 classes, found {len(shares)} {sorted(shares)[:5]}"
            count = 1
        elif small:
            msg = (
                f"{name}: classes "
                + ", ".join(f"{k!r} ({shares[k]:.1%})" for k in small[:10])
                + f" are below validation.min_class_fraction {floor:.1%}"
            )
            count = len(small)
        else:
            msg = f"{name}: {len(shares)} classes, smallest {min(shares.values()):.1%}"
            count = 0
        r = _Rule("class_balance", name, lambda c: msg)
        r.count = count
        return r

    def _fix_rows(self, rules: list[_Rule]) -> None:
        """Batch ordinals skip ragged rows; shift examples back to file row numbers."""
        skipped = self.ragged_rows
        if not skipped:
            return
        for r in rules:
            if r.rows_final:
                continue
            for ex in r.examples:
                k = a = ex["row"]
                while True:
                    nxt = k + bisect.bisect_right(skipped, a)
                    if nxt == a:
                        break
                    a = nxt
                ex["row"] = a


# -- readers ------------------------------------------------------------------------------
class _Prefixed(io.RawIOBase):
    """The peeked header bytes followed by the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
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


def _scan_csv(v: _Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    seekable = getattr(stream, "seekable", None)
    start = stream.tell() if seekable is not None and seekable() else None
    head, names, error = _read_header(stream)
    if error:
        v.fail_parse(error)
        return False
    if not v.check_header(names):
        return False
    # Unique internal names so duplicate headers still parse; the first occurrence is checked.
    internal, first = [], {}
    for i, n in enumerate(names):
        internal.append(n if n not in first else f"{n}\x00{i}")
        first.setdefault(n, n)
    wanted = list(v.cols)
    ragged: list[tuple[int, int, str]] = []

    def on_invalid(row) -> str:
        ragged.append((row.expected_columns, row.actual_columns, row.text))
        return "skip"

    reader = pcsv.open_csv(
        _Prefixed(head, stream),
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
        for batch in reader:
            v.add_batch({n: batch.column(n) for n in wanted}, batch.num_rows)
    finally:
        if ragged:
            _report_ragged(v, stream, start, len(names), ragged)
    return True


def _report_ragged(
    v: _Validator, stream: BinaryIO, start: int | None, width: int, ragged: list
) -> None:
    rows: list[int | None] = [None] * len(ragged)
    if start is not None:
        try:
            found = _locate_ragged(stream, start, width)
            if len(found) == len(ragged):
                rows = found
                v.ragged_rows = found
        except _ARROW_ERRORS + (csv.Error,):
            pass
    p = v.parse
    p.count = len(ragged)
    p.describe = lambda c: (
        f"{c} rows have the wrong number of fields (expected {width}); they were "
        "skipped"
        + (
            ""
            if v.ragged_rows
            else "; the stream is not seekable, so row numbers in this "
            "report count well-formed rows only"
        )
    )
    p.examples = [
        {"row": r, "value": f"{got} fields: {text[:200]}"}
        for r, (_, got, text) in list(zip(rows, ragged, strict=True))[: v.lim]
    ]


def _scan_parquet(v: _Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    if hasattr(stream, "seekable") and stream.seekable():
        return _scan_parquet_seekable(v, stream, chunk_bytes)
    # Parquet's footer is at the end: spool a one-way stream (memory up to 64 MB, then disk).
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        return _scan_parquet_seekable(v, spool, chunk_bytes)


def _scan_parquet_seekable(v: _Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    pf = pq.ParquetFile(stream)
    names = list(pf.schema_arrow.names)
    if not v.check_header(names):
        return False
    index = {}
    for i, n in enumerate(names):
        index.setdefault(n, i)
    wanted = list(v.cols)
    unique = len(set(names)) == len(names)
    batch_rows = max(1024, min(1 << 20, chunk_bytes // max(1, 8 * len(names))))
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted if unique else None):
        cols = {n: batch.column(n if unique else index[n]) for n in wanted}
        v.add_batch(cols, batch.num_rows)
    return True


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
        raise ValidationError(
            f"unsupported dataset format {fmt!r}: use csv or parquet", field="format"
        )
    v = _Validator(spec, fmt, seed, sample_size)
    scanned = False
    try:
        scanned = (_scan_csv if fmt == "csv" else _scan_parquet)(v, stream, chunk_bytes)
    except _ARROW_ERRORS as exc:
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        where = f" after {v.rows} rows" if v.rows else ""
        v.fail_parse(f"could not read the {fmt} file{where}: {msg}")
        scanned = bool(v.header) and not any(
            r.rule == "missing_column" and r.count for r in v.file_rules
        )
    return v.finish(scanned)
