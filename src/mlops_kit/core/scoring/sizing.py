"""Where a scoring job runs: on functions (the whole file, or fanned out in chunks over the
validate queue) or on the batch engine (AWS Batch on Fargate; a separate process locally).
Pure: numbers in, a route out.

The estimate is time, from the throughput measured by bench/batch_scoring.py (results in
bench/results/batch_scoring.json): the 100-tree forest of the HTTP bench, 1M rows of its CSV
(53 bytes a row), every row checked and written, on 2 shared cores: 256k rows/s median, 97k the
slowest of 3 runs (another process had the cores; one core alone, unloaded, does ~160k). Below
the slowest is taken (90k, measured before rows were sorted for the run: kept), so a slower
model, a single-core function or a busier core still fits.

A job leaves the functions when
- one unit a function must score in one invocation (the whole file when it is not split; else
  the largest chunk: a CSV chunk of scoring_chunk_bytes, or a Parquet row group, never split)
  is estimated over FUNCTION_SHARE of the validate function's timeout (120 s): it would time
  out, be redelivered and time out again; or
- the whole job is estimated over `batch_seconds` of function time (default an hour: past it,
  one container scores the file without flooding the validate queue ahead of datasets).
Without a batch engine the job stays on functions, and the route's reason says why it would
have left them (recorded in the job and its manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ROWS_PER_S = 90_000  # below the slowest measured run (forest, 1M rows: 97k; median 256k)
CSV_BYTES_PER_S = 4_500_000  # ROWS_PER_S x 53-byte CSV rows, rounded down
FUNCTION_TIMEOUT_S = 120  # the validate function's timeout (topology.py)
FUNCTION_SHARE = 0.5  # a unit estimated over half the timeout is not sent to a function
BATCH_SECONDS = 3600.0  # default function-time budget of one job (settings: scoring_batch_seconds)

ScoringEngine = Literal["function", "batch"]


@dataclass(frozen=True)
class ScoringSize:
    """What the router knows about a file before scoring it: the estimated seconds of the
    whole job and of the largest unit one function invocation would score."""

    total_s: float
    largest_unit_s: float
    units: int  # invocations on functions (1: the whole file in one)
    unit: str  # what the largest unit is, in words


def csv_size(size: int, chunk_bytes: int, split: bool) -> ScoringSize:
    """A CSV file of `size` bytes; split: fanned out in chunks of about chunk_bytes."""
    unit = min(size, chunk_bytes) if split and chunk_bytes > 0 else size
    units = -(-size // unit) if unit else 1
    what = f"a {unit / 1e6:.0f} MB CSV chunk" if units > 1 else f"the {size / 1e6:.0f} MB CSV file"
    return ScoringSize(size / CSV_BYTES_PER_S, unit / CSV_BYTES_PER_S, units, what)


def parquet_size(row_groups: list[int], split: bool) -> ScoringSize:
    """A Parquet file by its row groups' row counts; split: one or more row groups a chunk
    (a row group is never split, so the largest is the least a function must score)."""
    rows = sum(row_groups)
    unit = max(row_groups, default=0) if split else rows
    what = (f"a row group of {unit} rows" if split and len(row_groups) > 1
            else f"the {rows}-row Parquet file" + (" (one row group)" if split else ""))
    return ScoringSize(rows / ROWS_PER_S, unit / ROWS_PER_S,
                       len(row_groups) if split else 1, what)


@dataclass(frozen=True)
class ScoringRoute:
    engine: ScoringEngine
    reason: str


def choose_scoring_engine(size: ScoringSize, *, batch_available: bool,
                          batch_seconds: float = BATCH_SECONDS,
                          function_timeout_s: float = FUNCTION_TIMEOUT_S) -> ScoringRoute:
    """Functions while the job fits them; else the batch engine when there is one."""
    limit = function_timeout_s * FUNCTION_SHARE
    if size.largest_unit_s > limit:
        why = (f"{size.unit} is estimated at {size.largest_unit_s:.0f} s, over {limit:.0f} s "
               f"({FUNCTION_SHARE:.0%} of the function's {function_timeout_s:.0f} s timeout)")
    elif size.total_s > batch_seconds:
        why = (f"the job is estimated at {size.total_s:.0f} s of function time in "
               f"{size.units} invocation(s), over the {batch_seconds:.0f} s budget")
    else:
        return ScoringRoute("function", f"estimated {size.total_s:.1f} s in {size.units} "
                                        f"invocation(s), {size.largest_unit_s:.1f} s at most "
                                        "each: fits the function")
    if not batch_available:
        return ScoringRoute("function", why + "; no batch engine is configured, scoring on "
                                              "functions anyway")
    return ScoringRoute("batch", why)
