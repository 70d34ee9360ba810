"""Dataset validation: real reports on real (synthetic) files, good and broken."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC, COLUMNS, broken_churn_csv, churn_columns, churn_csv
from mlops_kit.core.validation.validator import detect_format, validate_dataset
from mlops_kit.errors import ValidationError

SPEC = parse_spec(CHURN_SPEC)
SMALL = parse_spec({**CHURN_SPEC, "validation": {**CHURN_SPEC["validation"], "min_rows": 3}})


def run(data: bytes, spec=SPEC, fmt="csv", **kw):
    return validate_dataset(io.BytesIO(data), fmt, spec, **kw)


def failed(result) -> dict[tuple[str, str | None], dict]:
    return {(r["rule"], r["column"]): r for r in result.report["rules"] if not r["passed"]}


def lines(n=6, seed=7) -> tuple[str, list[str]]:
    header, *rows = churn_csv(n, seed=seed).decode().strip().split("\n")
    return header, rows


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def churn_table(n: int, seed: int = 7) -> pa.Table:
    cols = churn_columns(n, seed=seed)
    return pa.table({c: cols[c] for c in COLUMNS})


# -- format detection ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "fmt"),
    [
        ("datasets/churn/a.csv", "csv"),
        ("x/Y.CSV", "csv"),
        ("d.parquet", "parquet"),
        ("d.pq", "parquet"),
    ],
)
def test_detect_format(key, fmt):
    assert detect_format(key) == fmt


def test_detect_format_rejects_other_suffixes():
    with pytest.raises(ValidationError, match=r"\.csv, \.parquet or \.pq"):
        detect_format("datasets/churn/data.xlsx")


# -- happy path ---------------------------------------------------------------------------
def test_good_csv_passes_and_lists_every_rule():
    result = run(churn_csv(1000))
    rep = result.report
    assert result.passed and rep["passed"] and result.rows == rep["rows"] == 1000
    assert rep["format"] == "csv" and rep["columns"] == COLUMNS
    assert rep["summary"].startswith("passed: 1000 rows")
    rules = {(r["rule"], r["column"]) for r in rep["rules"]}
    assert {
        ("range", "age"),
        ("type", "monthly_charges"),
        ("category", "region"),
        ("null_fraction", "support_calls"),
        ("target", "churned"),
        ("class_balance", "churned"),
        ("min_rows", None),
        ("missing_column", None),
        ("unknown_column", None),
        ("parse", None),
        ("duplicate_column", None),
    } <= rules
    assert all(r["passed"] and r["count"] == 0 and r["examples"] == [] for r in rep["rules"])
    # customer_id is an extra column: ignored by default, but the report says so.
    unknown = next(r for r in rep["rules"] if r["rule"] == "unknown_column")
    assert "customer_id" in unknown["message"]
    json.dumps(rep)
    json.dumps(result.profile)


def test_profile_shape_and_values():
    cols = churn_columns(2000)
    prof = run(churn_csv(2000)).profile
    assert prof["rows"] == 2000
    assert set(prof["features"]) == set(SPEC.feature_names)
    charges = prof["features"]["monthly_charges"]
    assert charges["type"] == "numeric" and charges["count"] == 2000 and charges["null_rate"] == 0
    exact = cols["monthly_charges"]
    assert charges["min"] == min(exact) and charges["max"] == max(exact)
    assert charges["mean"] == pytest.approx(sum(exact) / len(exact), rel=1e-9)
    assert len(charges["edges"]) == 9 and charges["edges"] == sorted(charges["edges"])
    assert len(charges["freqs"]) == 10 and sum(charges["freqs"]) == pytest.approx(1.0)
    assert all(0.07 < f < 0.13 for f in charges["freqs"])  # deciles of a continuous column
    assert len(charges["sample"]) == 1000
    calls = prof["features"]["support_calls"]  # Poisson: few distinct values -> deduped edges
    assert len(calls["edges"]) < 9 and len(calls["freqs"]) == len(calls["edges"]) + 1
    expected_nulls = sum(v is None for v in cols["support_calls"]) / 2000
    assert calls["null_rate"] == pytest.approx(expected_nulls) and calls["count"] == 2000 - round(
        expected_nulls * 2000
    )
    plan = prof["features"]["plan"]
    assert plan["type"] == "categorical" and set(plan["freqs"]) == {"basic", "standard", "premium"}
    assert sum(plan["freqs"].values()) == pytest.approx(1.0)
    assert plan["freqs"]["basic"] == pytest.approx(cols["plan"].count("basic") / 2000)
    target = prof["target"]
    assert target["type"] == "categorical" and set(target["freqs"]) == {"0", "1"}
    assert target["freqs"]["1"] == pytest.approx(sum(cols["churned"]) / 2000)


def test_small_chunks_give_the_same_result_as_one_chunk():
    data = churn_csv(20_000)
    one = run(data, chunk_bytes=64 << 20)
    many = run(data, chunk_bytes=16 << 10)  # ~50 batches
    assert one.report == many.report
    for name, entry in one.profile["features"].items():
        other = many.profile["features"][name]
        if entry["type"] == "numeric":
            for key in ("count", "null_rate", "min", "max"):
                assert entry[key] == other[key]
            assert entry["mean"] == pytest.approx(other["mean"], rel=1e-12)
            assert entry["std"] == pytest.approx(other["std"], rel=1e-9)
            # Reservoir quantiles differ by sampling only.
            for a, b in zip(entry["freqs"], other["freqs"]):
                assert abs(a - b) < 0.05
        else:
            assert entry == other


def test_reservoir_is_bounded():
    prof = run(churn_csv(5000), sample_size=300).profile
    assert len(prof["features"]["age"]["sample"]) == 300


# -- broken data --------------------------------------------------------------------------
def test_broken_csv_names_columns_rules_rows_and_values():
    result = run(broken_churn_csv())
    assert not result.passed and result.rows == 300
    bad = failed(result)
    assert set(bad) == {
        ("range", "age"),
        ("type", "monthly_charges"),
        ("category", "region"),
        ("target", "churned"),
    }
    age = bad[("range", "age")]
    assert age["count"] == 2 and age["message"] == "age: 2 values outside [18, 120]"
    assert age["examples"] == [{"row": 4, "value": "-4"}, {"row": 11, "value": "250"}]
    assert bad[("type", "monthly_charges")]["examples"] == [{"row": 6, "value": "lots"}]
    assert bad[("category", "region")]["examples"] == [{"row": 8, "value": "atlantis"}]
    assert bad[("target", "churned")]["examples"] == [{"row": 10, "value": None}]
    summary = result.report["summary"]
    for word in ("age", "range", "monthly_charges", "type", "region", "category", "churned"):
        assert word in summary
    # Bad values are kept out of the profile.
    assert result.profile["features"]["age"]["min"] >= 18
    assert result.profile["features"]["monthly_charges"]["count"] == 299


def test_examples_are_capped_at_max_examples():
    cols = churn_columns(300)
    cols["age"] = [500] * 300
    header = ",".join(COLUMNS)
    body = "\n".join(
        ",".join("" if cols[c][i] is None else str(cols[c][i]) for c in COLUMNS) for i in range(300)
    )
    spec = parse_spec({**CHURN_SPEC, "validation": {**CHURN_SPEC["validation"], "max_examples": 3}})
    rule = failed(run(f"{header}\n{body}\n".encode(), spec))[("range", "age")]
    assert rule["count"] == 300 and [e["row"] for e in rule["examples"]] == [1, 2, 3]


def test_not_nullable_null_fraction_min_rows_and_class_balance():
    spec = parse_spec(
        {
            **CHURN_SPEC,
            "features": [
                {**f, "nullable": False} if f["name"] == "payment" else f
                for f in CHURN_SPEC["features"]
            ],
            "validation": {"min_rows": 500, "max_null_fraction": 0.02, "min_class_fraction": 0.4},
        }
    )
    result = run(churn_csv(300), spec)
    bad = failed(result)
    nulls = sum(v is None for v in churn_columns(300)["payment"])
    assert bad[("nullable", "payment")]["count"] == nulls > 0
    assert bad[("null_fraction", "payment")]["count"] == nulls
    assert "above validation.max_null_fraction" in bad[("null_fraction", "payment")]["message"]
    assert bad[("min_rows", None)]["message"] == "300 rows, fewer than validation.min_rows 500"
    # classes as training sees them: the integer 1, not the text '1'
    assert "classes 1 (" in bad[("class_balance", "churned")]["message"]


def test_single_class_target_fails():
    header, rows = lines(10)
    rows = [r.rsplit(",", 1)[0] + ",1" for r in rows]
    bad = failed(run("\n".join([header, *rows]).encode(), SMALL))
    assert "at least 2 classes" in bad[("class_balance", "churned")]["message"]


def test_unknown_columns_reject():
    spec = parse_spec(
        {**CHURN_SPEC, "validation": {**CHURN_SPEC["validation"], "unknown_columns": "reject"}}
    )
    bad = failed(run(churn_csv(300), spec))
    assert bad[("unknown_column", "customer_id")]["count"] == 1


def test_missing_column_fails_fast():
    header, rows = lines()
    result = run("\n".join([header.replace(",age,", ",agee,"), *rows]).encode(), SMALL)
    bad = failed(result)
    assert set(bad) == {("missing_column", "age")}
    assert "agee" in bad[("missing_column", "age")]["message"]
    assert "not scanned" in result.report["summary"]
    assert result.profile["features"] == {}


# -- bad files never raise ----------------------------------------------------------------
def test_empty_file():
    result = run(b"")
    assert not result.passed and result.rows == 0
    assert failed(result)[("parse", None)]["message"] == "file is empty: no header row"


def test_header_only():
    result = run((",".join(COLUMNS) + "\n").encode(), SMALL)
    assert result.rows == 0 and set(failed(result)) == {
        ("min_rows", None),
        ("class_balance", "churned"),
    }


def test_ragged_rows_are_reported_with_row_numbers_and_skipped():
    header, rows = lines()
    short = rows[1].rsplit(",", 1)[0]
    data = "\n".join(
        [
            header,
            rows[0],
            short,
            rows[2],
            rows[3] + ",extra",
            rows[4]
            .replace(",north,", ",atlantis,")
            .replace(",south,", ",atlantis,")
            .replace(",east,", ",atlantis,")
            .replace(",west,", ",atlantis,"),
        ]
    )
    result = run(data.encode(), SMALL)
    bad = failed(result)
    parse = bad[("parse", None)]
    assert parse["count"] == 2
    assert [e["row"] for e in parse["examples"]] == [2, 4]
    assert parse["examples"][0]["value"].startswith("8 fields: ")
    assert result.rows == 3
    # Later examples still point at the real file row (5), not the 3rd well-formed row.
    assert bad[("category", "region")]["examples"] == [{"row": 5, "value": "atlantis"}]


def test_bom_crlf_and_quoted_delimiters():
    header, rows = lines()
    quoted = [r.replace(",basic,", ',"basic",') for r in rows]
    quoted[0] = quoted[0].replace(f",{churn_columns(6)['region'][0]},", ',"north, or so",')
    data = ("\ufeff" + "\r\n".join([header, *quoted]) + "\r\n").encode()
    result = run(data, SMALL)
    assert result.report["columns"][0] == "customer_id"  # BOM stripped
    assert set(failed(result)) == {("category", "region")}
    assert failed(result)[("category", "region")]["examples"] == [
        {"row": 1, "value": "north, or so"}
    ]


def test_invalid_utf8_value():
    data = churn_csv(6).replace(b"basic", b"bas\xffic", 1)
    bad = failed(run(data, SMALL))
    enc = bad[("parse", "plan")]
    assert enc["count"] == 1 and "UTF-8" in enc["message"]
    assert enc["examples"][0]["value"] == "bas\ufffdic"


def test_invalid_utf8_header():
    result = run(b"cust\xffomer_id,age\n1,2\n")
    assert "not valid UTF-8" in failed(result)[("parse", None)]["message"]


def test_duplicate_header():
    header, rows = lines()
    result = run("\n".join([header + ",plan", *[r + ",basic" for r in rows]]).encode(), SMALL)
    bad = failed(result)
    assert set(bad) == {("duplicate_column", "plan")}
    assert "positions [6, 10]" in bad[("duplicate_column", "plan")]["message"]


def test_binary_garbage_does_not_raise():
    result = run(bytes(range(256)) * 40)
    assert not result.passed and result.report["rules"]


# -- parquet ------------------------------------------------------------------------------
def test_parquet_good():
    result = run(parquet_bytes(churn_table(1000)), fmt="parquet")
    assert result.passed, result.report["summary"]
    assert result.report["format"] == "parquet" and result.rows == 1000
    assert result.profile["target"]["freqs"].keys() == {"0", "1"}
    csv_prof = run(churn_csv(1000)).profile
    assert result.profile["features"]["age"]["mean"] == pytest.approx(
        csv_prof["features"]["age"]["mean"]
    )
    assert result.profile["features"]["plan"] == csv_prof["features"]["plan"]


def test_parquet_non_seekable_stream():
    class OneWay(io.RawIOBase):
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            chunk = self.inner.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    result = validate_dataset(OneWay(parquet_bytes(churn_table(500))), "parquet", SPEC)
    assert result.passed and result.rows == 500


def test_parquet_wrong_types():
    table = churn_table(300)
    table = table.set_column(
        COLUMNS.index("age"),
        "age",
        pa.array([str(a) if i != 7 else "old" for i, a in enumerate(table["age"].to_pylist())]),
    )
    table = table.set_column(
        COLUMNS.index("tenure_months"), "tenure_months", pa.array([True] * 300)
    )
    table = table.set_column(COLUMNS.index("region"), "region", pa.array([[1, 2]] * 300))
    bad = failed(run(parquet_bytes(table), fmt="parquet"))
    assert bad[("type", "age")]["examples"] == [{"row": 8, "value": "old"}]
    assert bad[("type", "tenure_months")]["count"] == 300
    assert bad[("type", "region")]["count"] == 300


def test_parquet_missing_column_and_garbage():
    table = churn_table(300).drop_columns(["churned"])
    assert set(failed(run(parquet_bytes(table), fmt="parquet"))) == {("missing_column", "churned")}
    garbage = run(b"PAR1 not really parquet", fmt="parquet")
    assert (
        not garbage.passed
        and "could not read the parquet file" in failed(garbage)[("parse", None)]["message"]
    )


def test_unknown_format_raises():
    with pytest.raises(ValidationError):
        run(churn_csv(10), fmt="xlsx")


def test_csv_from_a_one_way_stream_without_seekable():
    class ReadOnly:  # like a hashing wrapper around an object-store body: read() only
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def read(self, n=-1):
            return self.inner.read(n)

    assert validate_dataset(ReadOnly(churn_csv(300)), "csv", SPEC).passed
    header, rows = lines()
    data = "\n".join([header, rows[0], rows[1] + ",extra", *rows[2:]]).encode()
    result = validate_dataset(ReadOnly(data), "csv", SMALL)
    parse = failed(result)[("parse", None)]
    assert parse["count"] == 1 and parse["examples"][0]["row"] is None
    assert "not seekable" in parse["message"] and result.rows == 5
