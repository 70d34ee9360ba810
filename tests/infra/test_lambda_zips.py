"""Lambda zip packaging: reproducible bytes, the right contents, the 250 MB check, sizes reported."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

from infra import lambda_zips
from infra.lambda_zips import (
    Artifact,
    PackageTooLarge,
    build_function,
    collect_entries,
    load_artifact,
    write_zip,
)
from mlops_kit.topology import default_topology

ROOT = Path(__file__).resolve().parents[2]


def small_tree(root: Path) -> Path:
    """A repo-shaped tree: src/mlops_kit, functions/*.py and a fake installed-deps dir."""
    (root / "src" / "mlops_kit" / "core").mkdir(parents=True)
    (root / "src" / "mlops_kit" / "__init__.py").write_text("")
    (root / "src" / "mlops_kit" / "core" / "serving.py").write_text("X = 1\n")
    (root / "src" / "mlops_kit" / "__pycache__").mkdir()
    (root / "src" / "mlops_kit" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"junk")
    (root / "functions").mkdir()
    (root / "functions" / "serve.py").write_text("def handler(e, c):\n    return e\n")
    (root / "functions" / "Dockerfile").write_text("FROM scratch\n")
    deps = root / "deps"
    for rel in ("numpy/__init__.py", "numpy/_core/tests/test_a.py", "numpy/_core/include/a.h",
                "pyarrow/lib.cpython-312-x86_64-linux-gnu.so", "pyarrow/libarrow.so.2600",
                "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2600",
                "pyarrow/libarrow_python.so.2600.1.0", "pyarrow/libarrow_flight.so.2600",
                "pyarrow/_s3fs.cpython-312-x86_64-linux-gnu.so", "pyarrow/lib.pyx",
                "bin/f2py"):
        (deps / rel).parent.mkdir(parents=True, exist_ok=True)
        (deps / rel).write_bytes(rel.encode() * 100)
    return root


def test_zip_is_reproducible(tmp_path):
    root = small_tree(tmp_path / "repo")
    entries = collect_entries(root / "deps", root)
    sha1, size1 = write_zip(entries, tmp_path / "a.zip")
    # touch every file: a different mtime must not change a byte
    for f in entries.values():
        os.utime(f, (1_700_000_000, 1_700_000_000))
    sha2, size2 = write_zip(dict(reversed(list(entries.items()))), tmp_path / "b.zip")
    assert (sha1, size1) == (sha2, size2)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_zip_contents(tmp_path):
    root = small_tree(tmp_path / "repo")
    names = set(collect_entries(root / "deps", root))
    assert {"serve.py", "mlops_kit/__init__.py", "mlops_kit/core/serving.py",
            "numpy/__init__.py", "pyarrow/lib.cpython-312-x86_64-linux-gnu.so",
            "pyarrow/libarrow.so.2600", "pyarrow/libarrow_python.so.2600"} <= names
    # handlers at the root (Lambda resolves serve.handler), no Dockerfile, no caches, no tests,
    # no C headers/sources, no optional pyarrow parts, no duplicate library copies, no bin/
    for dropped in ("Dockerfile", "mlops_kit/__pycache__/x.cpython-312.pyc",
                    "numpy/_core/tests/test_a.py", "numpy/_core/include/a.h",
                    "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2600.1.0",
                    "pyarrow/libarrow_flight.so.2600", "pyarrow/_s3fs.cpython-312-x86_64-linux-gnu.so",
                    "pyarrow/lib.pyx", "bin/f2py"):
        assert dropped not in names, dropped


def test_size_check_and_report(tmp_path):
    root = small_tree(tmp_path / "repo")
    art = build_function("serve", tmp_path / "out", root / "deps", root)
    assert art.zipped_bytes == (tmp_path / "out" / "serve.zip").stat().st_size
    assert 0 < art.zipped_bytes < art.unzipped_bytes
    with zipfile.ZipFile(art.path) as zf:
        assert art.unzipped_bytes == sum(i.file_size for i in zf.infolist())
        assert art.files == len(zf.infolist())
    assert load_artifact("serve", Path(art.path)) == art
    text = lambda_zips.report([art])
    assert "serve" in text and lambda_zips.mb(art.unzipped_bytes) in text and "of 250 MB" in text

    with pytest.raises(PackageTooLarge, match=r"serve: .* unzipped exceeds Lambda's 0\.0 MB"):
        build_function("serve", tmp_path / "out", root / "deps", root, limit=1000)


def test_load_artifact_missing_zip_says_how_to_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m infra.lambda_zips --out"):
        load_artifact("serve", tmp_path / "serve.zip")


def test_source_code_hash_is_base64_sha256():
    art = Artifact("f", "p", "00" * 31 + "ff", 1, 1, 1)
    import base64
    assert base64.b64decode(art.base64_sha256) == bytes.fromhex(art.sha256)


def test_requirements_come_from_pyproject():
    serve = lambda_zips.requirements_for("serve")
    names = {lambda_zips._dist_name(r) for r in serve}
    assert {"numpy", "onnxruntime", "pydantic", "msgspec"} <= names and "pydantic-settings" not in names
    assert not names & {"pyarrow", "scikit-learn", "skl2onnx", "pandas"}  # serving stays light
    validate = {lambda_zips._dist_name(r) for r in lambda_zips.requirements_for("validate")}
    assert "pyarrow" in validate and "scikit-learn" not in validate
    assert any(r.startswith("pyarrow>=") for r in lambda_zips.requirements_for("validate"))
    assert lambda_zips.zip_functions() == ["validate", "serve", "monitor", "jobs"]


def test_make_package_builds_every_zip_a_stack_may_render(package_dir, tmp_path):
    """Issue 25, item 9: `make package` (python -m infra.lambda_zips --out build/lambda, no
    --function) built no jobs.zip, so a stack with packageDir and batch.enabled failed at
    `pulumi up` with "no zip for function jobs". Every stack's zip functions are built."""
    from infra import __main__ as program
    from tests.infra.harness import base_config, run_program

    make = (ROOT / "Makefile").read_text()
    recipe = make.split("\npackage:", 1)[1].split("\n\n", 1)[0]
    assert "-m infra.lambda_zips --out build/lambda" in recipe and "--function" not in recipe
    built = set(lambda_zips.zip_functions())  # what that command builds
    for batch in ("false", "true"):
        cfg = program.parse_config({"region": "eu-west-1", "namePrefix": "mlk-test",
                                    "batch": {"enabled": batch == "true"}},
                                   [f.name for f in default_topology().functions])
        needed = set(lambda_zips.zip_functions(program.stack_topology(cfg)))
        assert needed <= built, (batch, needed - built)
    # and the Batch-enabled stack renders from exactly those zips
    only = tmp_path / "pkg"
    only.mkdir()
    for fn in built:
        (only / f"{fn}.zip").write_bytes((package_dir / f"{fn}.zip").read_bytes())
    graph = run_program(base_config(only, batch='{"enabled": true}'))
    assert graph.one("aws:lambda/function:Function", "mlk-test-jobs")


def test_cli_without_deps(tmp_path, capsys):
    assert lambda_zips.main(["--out", str(tmp_path), "--no-deps", "--function", "serve"]) == 0
    out = capsys.readouterr().out
    assert "serve" in out and "wrote 1 artifact(s)" in out
    with zipfile.ZipFile(tmp_path / "serve.zip") as zf:
        assert "serve.py" in zf.namelist() and "mlops_kit/topology.py" in zf.namelist()
    assert (tmp_path / "manifest.json").exists()


@pytest.mark.slow
def test_real_build_for_lambda_platform(tmp_path):
    """pip-installs manylinux / CPython 3.12 wheels (network) and checks the 250 MB limit."""
    art, = lambda_zips.build_all(tmp_path, ["serve"])
    print("\n" + lambda_zips.report([art]), file=sys.stderr)
    with zipfile.ZipFile(art.path) as zf:
        names = zf.namelist()
    assert any(n.startswith("onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-x86_64")
               for n in names)
    assert any(n.startswith("numpy/") and "cpython-312-x86_64-linux-gnu.so" in n for n in names)
    assert art.unzipped_bytes < lambda_zips.LAMBDA_UNZIPPED_LIMIT


def test_no_module_in_infra_shadows_an_installed_package():
    """Pulumi runs the program with infra/ first on sys.path: a module there named like an
    installed top-level package (infra/packaging.py was one: pulumi imports `packaging`)
    would be imported in its place."""
    from importlib.metadata import packages_distributions

    installed = set(packages_distributions()) | set(sys.stdlib_module_names)
    ours = {p.stem for p in (ROOT / "infra").glob("*.py") if p.stem != "__main__"}
    ours |= {p.name for p in (ROOT / "infra").iterdir() if (p / "__init__.py").is_file()}
    assert "packaging" in installed  # the check sees what pulumi imports
    assert ours & installed == set(), f"rename {sorted(ours & installed)} in infra/"


def test_zips_ship_bytecode_of_the_runtimes_python(tmp_path):
    """Lambda's task directory is read-only: a zip without __pycache__ compiles every import
    at every cold start (bench/cold_start.py: 917 vs 314 ms on the demo model without .pyc).
    With a CPython 3.12 at hand, each .py gets an unchecked-hash .pyc of 3.12's magic number
    (https://docs.python.org/3/library/py_compile.html#py_compile.PycInvalidationMode), the
    same bytes on a rebuild, and the runtime imports it without its source's mtime."""
    python = lambda_zips.runtime_python()
    if python is None:
        pytest.skip("no CPython 3.12 on this machine: the build warns and ships sources only")
    import subprocess

    root = small_tree(tmp_path / "repo")
    arts = [build_function("serve", tmp_path / f"out{i}", root / "deps", root=root,
                           python=python) for i in (1, 2)]
    assert arts[0].sha256 == arts[1].sha256  # reproducible with bytecode too
    with zipfile.ZipFile(arts[0].path) as zf:
        names = set(zf.namelist())
        pyc = zf.read("mlops_kit/core/__pycache__/serving.cpython-312.pyc")
        zf.extractall(tmp_path / "task")
    assert "__pycache__/serve.cpython-312.pyc" in names
    assert "mlops_kit/__pycache__/x.cpython-312.pyc" not in names  # a stray pyc never ships
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # flags: hash-based, unchecked
    # the runtime's Python loads it without writing anything (a read-only task directory)
    task = tmp_path / "task"
    for p in task.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    out = subprocess.run([python, "-c", "import mlops_kit.core.serving as m, sys; "
                          "print(m.__cached__, m.X)"], cwd=task, capture_output=True,
                         text=True, env={"PYTHONPATH": str(task), "PATH": os.environ["PATH"]})
    assert out.returncode == 0 and out.stdout.split()[1] == "1", out.stderr
    magic = subprocess.run([python, "-c", "import importlib.util, sys; "
                            "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                           capture_output=True, text=True).stdout
    assert pyc[:4].hex() == magic
