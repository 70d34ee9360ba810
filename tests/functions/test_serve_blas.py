"""The serve function keeps numpy's OpenBLAS to one thread (issue 28, cold start): its pool's
spinning threads cost ~100 ms of CPU per cold start on 2 cores (bench/cold_start.py), CPU a
function with less than one vCPU pays; serving does no BLAS work. The function's own
OPENBLAS_NUM_THREADS wins (https://github.com/OpenMathLib/OpenBLAS#setting-the-number-of-threads-using-environment-variables)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
CODE = ("import serve\nfrom threadpoolctl import threadpool_info\nimport json\n"
        "print(json.dumps([p['num_threads'] for p in threadpool_info()"
        " if p['internal_api'] == 'openblas']))")


def _blas_threads(**env: str) -> list[int]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True, cwd=FUNCTIONS,
                         env={**clean, "PYTHONPATH": str(FUNCTIONS), **env})
    return json.loads(out.stdout)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenBLAS starts no pool")
def test_serve_starts_numpy_with_one_blas_thread():
    pytest.importorskip("threadpoolctl")
    assert _blas_threads() == [1]
    assert _blas_threads(OPENBLAS_NUM_THREADS="2") == [2]  # the deployment's choice wins
