"""The sizing rule that sends a scoring job past what functions can do to the batch engine
(core/scoring/sizing.py): estimated seconds from the measured throughput, against the validate
function's timeout and a job's function-time budget."""

from __future__ import annotations

import pytest

from mlops_kit.core.scoring.sizing import (
    CSV_BYTES_PER_S,
    FUNCTION_SHARE,
    FUNCTION_TIMEOUT_S,
    ROWS_PER_S,
    choose_scoring_engine,
    csv_size,
    parquet_size,
)

pytestmark = pytest.mark.check
MB = 1 << 20


def test_the_default_chunk_fits_the_function_with_room_to_spare():
    # the README's default: 32 MiB chunks for the validate function's 120 s
    size = csv_size(10 * 32 * MB, 32 * MB, split=True)
    assert size.units == 10
    assert size.largest_unit_s == pytest.approx(32 * MB / CSV_BYTES_PER_S)
    assert size.largest_unit_s < FUNCTION_TIMEOUT_S * FUNCTION_SHARE / 4
    route = choose_scoring_engine(size, batch_available=True)
    assert route.engine == "function" and "fits the function" in route.reason


def test_an_unsplit_file_past_the_timeout_goes_to_batch():
    # no queue to fan out on (or chunking off): the whole file is one invocation
    size = csv_size(1 << 30, 32 * MB, split=False)
    route = choose_scoring_engine(size, batch_available=True)
    assert route.engine == "batch"
    assert "CSV file" in route.reason and "timeout" in route.reason


def test_a_parquet_file_of_one_huge_row_group_goes_to_batch():
    rows = int(ROWS_PER_S * FUNCTION_TIMEOUT_S)  # one row group: never split
    route = choose_scoring_engine(parquet_size([rows], split=True), batch_available=True)
    assert route.engine == "batch" and "one row group" in route.reason
    # the same rows in 100 row groups fan out on functions
    small = parquet_size([rows // 100] * 100, split=True)
    assert choose_scoring_engine(small, batch_available=True).engine == "function"


def test_a_job_over_the_function_time_budget_goes_to_batch():
    size = csv_size(100 * 32 * MB, 32 * MB, split=True)  # 100 chunks that each fit
    assert size.total_s > 600
    route = choose_scoring_engine(size, batch_available=True, batch_seconds=600)
    assert route.engine == "batch" and "100 invocation(s)" in route.reason
    assert choose_scoring_engine(size, batch_available=True).engine == "function"


def test_without_a_batch_engine_the_job_stays_on_functions_and_says_why():
    size = csv_size(1 << 30, 32 * MB, split=False)
    route = choose_scoring_engine(size, batch_available=False)
    assert route.engine == "function"
    assert "timeout" in route.reason and "no batch engine is configured" in route.reason
