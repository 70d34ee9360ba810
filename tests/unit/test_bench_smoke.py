"""The benchmark scripts stay runnable: each one runs on tiny inputs (--smoke) and writes a
result document of the agreed shape. No timing is asserted here, ever: numbers live in
bench/README.md, produced by `make bench`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SCRIPTS = ["warm_inference", "cold_start", "http_serving", "http_load", "capture_formats",
           "validation", "lifecycle", "monitoring", "artifact_sizes", "console", "experiments",
           "batch_training", "batch_scoring", "spec_init", "drift_types"]
ROW_KEYS = {"figure", "model", "metric", "unit", "stats", "baseline", "baseline_stats", "ratio",
            "ratio_label", "target", "met", "note"}
STAT_KEYS = {"median", "p25", "p75", "p99", "min", "max", "n"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-work")


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_script_smoke(name, workdir, tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--workdir", str(workdir),
         "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / f"{name}.json").read_text())
    assert doc["name"] == name and doc["smoke"] is True
    m = doc["machine"]
    assert m["cpu_count"] >= 1 and m["cpu_model"] and m["versions"]["onnxruntime"]
    assert doc["rows"], "a benchmark with no figures"
    for row in doc["rows"]:
        assert set(row) >= ROW_KEYS, sorted(ROW_KEYS - set(row))
        assert set(row["stats"]) >= STAT_KEYS
        s = row["stats"]
        assert s["n"] >= 1 and s["min"] <= s["median"] <= s["max"]
        assert s["median"] >= 0
        if row["baseline"] is not None:
            assert set(row["baseline_stats"]) >= STAT_KEYS
            assert row["ratio"] is not None and row["ratio"] > 0
        assert row["met"] in (True, False, None)
        if row["target"] is not None:
            assert isinstance(row["met"], bool)


def test_render_writes_the_table(tmp_path):
    """The README renderer turns result documents into one table row per figure."""
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
        from common import row, summary
    finally:
        sys.path.remove(str(BENCH))
    results = tmp_path / "results"
    results.mkdir()
    doc = {"name": "warm_inference", "smoke": False,
           "machine": {"cpu_count": 2, "cpu_model": "Test CPU", "python": "3.x",
                       "platform": "linux", "versions": {"onnxruntime": "1"}, "commit": "abc"},
           "rows": [row("warm", "churn", "p50", summary([1.0, 2.0, 3.0, 4.0]), "ms",
                        baseline="sklearn", baseline_stats=summary([30.0]), ratio=15.0,
                        ratio_label="x faster", target=">= 10x", met=True, note="n")]}
    (results / "warm_inference.json").write_text(json.dumps(doc))
    readme = tmp_path / "README.md"
    readme.write_text("# B\n\n<!-- results:begin -->\nold\n<!-- results:end -->\ntail\n")
    run_all.render(results, readme)
    text = readme.read_text()
    assert "old" not in text and text.endswith("tail\n")
    table_rows = [ln for ln in text.splitlines() if ln.startswith("| warm |")]
    assert len(table_rows) == 1
    assert "2.50 ms" in table_rows[0] and "15.00 x faster" in table_rows[0]
    assert "**met**" in table_rows[0] and "Test CPU" in text


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")
def test_http_load_counts_a_server_trees_cpu(tmp_path):
    """bench/http_load.py's server CPU per request: a child that burns CPU is counted in its
    parent's tree (granian's workers are children of `mlops-kit serve`)."""
    sys.path.insert(0, str(BENCH))
    try:
        import http_load
    finally:
        sys.path.remove(str(BENCH))
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\n"
                              "print(1, flush=True)\nsys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    idle = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "1"
        assert http_load.tree_cpu_s(child.pid) >= 0.25
        assert http_load.tree_cpu_s(idle.pid) < 0.25
        assert http_load.tree_cpu_s(os.getpid()) >= http_load.tree_cpu_s(child.pid)
    finally:
        for p in (child, idle):
            p.stdin.close()
            p.wait(10)
