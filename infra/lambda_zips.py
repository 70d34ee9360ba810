"""Reproducible Lambda zip artifacts for the light functions (validate, serve, monitor).

    python -m infra.lambda_zips --out build/lambda            # all zip functions of the topology
    python -m infra.lambda_zips --out build/lambda --function serve

Dependencies are installed for the Lambda platform, not this machine (manylinux2014_x86_64,
CPython 3.12, wheels only), then zipped with src/mlops_kit and functions/*.py. Entries are
sorted and carry a fixed timestamp and mode, so the same inputs give the same bytes and the same
sha256 (no spurious Lambda updates). Each artifact is checked against Lambda's 250 MB unzipped
limit and its sizes are reported (and written to manifest.json).

manifest.json also records a fingerprint of each zip's inputs (its requirement specifiers and
the bytes of src/mlops_kit and functions/*.py): an unchanged function is not zipped again, so a
`pulumi preview` or `up` after `make package` reuses the cached zips. With `offline=True` (what
`pulumi preview` uses) nothing is installed or zipped: a missing or stale zip is an error that
says to run `make package`.

Version specifiers come from pyproject.toml (never re-declared here) and the versions installed
from the committed lock requirements/lambda.txt (`pip install -c`, resolved for Lambda's platform
by `make lock`): the same inputs give the same zip next month too. Which extras each function
needs is the only knowledge this module adds.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # zip + layers, unzipped
# Lambda's python3.12 runtime is Amazon Linux 2023 (glibc 2.34): manylinux2014 wheels, plus
# manylinux_2_28 ones (recent onnxruntime publishes only those; pip expands it to older tags).
PLATFORMS, PYTHON_VERSION = ("manylinux2014_x86_64", "manylinux_2_28_x86_64"), "3.12"
LOCK = ROOT / "requirements" / "lambda.txt"  # every light function's versions, pinned
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time leaks in

# What every light function stands on: the serving core. (`pip install mlops-kit` is the whole
# local lifecycle -- CLI, validation, training -- so pyproject's base dependencies are not a
# zip's base: these names are, with the specifiers pyproject gives them.)
LAMBDA_BASE = ("numpy", "onnxruntime", "orjson", "msgspec", "pydantic")
# Distribution names each light function needs beyond LAMBDA_BASE. serve runs ONNX models and
# validate does too for batch scoring (scoring/ uploads; imported only when one arrives, so its
# cold start stays light: tests/functions/test_light_imports.py); monitor and jobs leave
# onnxruntime out.
EXTRA_DISTS: dict[str, tuple[str, ...]] = {
    # pyjwt[crypto]: the console sign-in functions (consoleAuth) run serve's zip and verify
    # the OIDC ID token with it (imported by the callback only, never by serve or the authorizer)
    "serve": ("pyyaml", "aws-lambda-powertools", "pyjwt"),
    "validate": ("pyarrow", "pyyaml", "aws-lambda-powertools"),
    "monitor": ("pyarrow", "pyyaml", "aws-lambda-powertools"),
    "jobs": ("aws-lambda-powertools",),  # batch job state changes (issue 15): registry only
}
WITHOUT_DISTS: dict[str, tuple[str, ...]] = {
    "monitor": ("onnxruntime",),
    "jobs": ("onnxruntime",),
}
# Never needed at run time; dropping them keeps pyarrow + onnxruntime + numpy under the limit.
_PRUNE_DIRS = {"__pycache__", "tests", "test", "include"}
_PRUNE_SUFFIXES = (".pyc", ".pyo", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp")
# Optional parts the kit never imports (pyarrow.fs imports the filesystems it finds), C++
# sources, and the unversioned / fully-versioned copies of libraries a wheel cannot symlink
# (the loader asks for the SONAME, lib*.so.N). Together ~55 MB: validate and monitor
# (pyarrow + onnxruntime + numpy) are over 250 MB without this.
_PRUNE_GLOBS = (
    "pyarrow/*flight*", "pyarrow/libarrow_s3.so*", "pyarrow/_s3fs.*", "pyarrow/_pyarrow_cpp_tests*",
    "pyarrow/src/*", "pyarrow/libarrow*.so", "pyarrow/libarrow*.so.*.*.*",
    "onnxruntime/transformers/*", "onnxruntime/quantization/*", "onnxruntime/tools/*",
)


class PackageTooLarge(RuntimeError):
    pass


class PackagesNotBuilt(RuntimeError):
    """Offline (pulumi preview): a zip is missing or older than its inputs."""


@dataclass(frozen=True)
class Artifact:
    function: str
    path: str
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int

    @property
    def base64_sha256(self) -> str:  # what Lambda's source_code_hash expects
        import base64
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def requirements_for(function: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """LAMBDA_BASE plus this function's extra distributions, with their specifiers taken from
    whichever pyproject group declares them (the base dependencies or an extra)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = {
        _dist_name(r): r
        for group in (project["dependencies"], *project.get("optional-dependencies", {}).values())
        for r in group if not r.startswith("mlops-kit")
    }
    reqs = [declared.get(dist, dist) for dist in (*LAMBDA_BASE, *EXTRA_DISTS.get(function, ()))]
    dropped = set(WITHOUT_DISTS.get(function, ()))
    return sorted({r for r in reqs if _dist_name(r) not in dropped}, key=_dist_name)


def install_deps(requirements: Iterable[str], target: Path, lock: Path = LOCK) -> None:
    """pip-install wheels for the Lambda platform into target (never this machine's wheels),
    at the versions the lock pins."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--no-warn-conflicts",  # the target dir is not this venv: its resolver check is noise
        *(arg for p in PLATFORMS for arg in ("--platform", p)),
        "--python-version", PYTHON_VERSION, "--implementation", "cp",
        "--only-binary=:all:", "--target", str(target), "-c", str(lock), *requirements,
    ]
    subprocess.run(cmd, check=True)


def _walk(root: Path, prune: bool) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if not (d in _PRUNE_DIRS and (prune or d == "__pycache__")))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")) or (prune and name.endswith(_PRUNE_SUFFIXES)):
                continue
            yield Path(dirpath) / name


def collect_entries(deps_dir: Path | None, root: Path = ROOT) -> dict[str, Path]:
    """arcname -> file: dependencies (pruned), the mlops_kit package, the function handlers."""
    entries: dict[str, Path] = {}
    if deps_dir is not None:
        for f in _walk(deps_dir, prune=True):
            rel = f.relative_to(deps_dir).as_posix()
            if rel.startswith("bin/") or any(fnmatch.fnmatchcase(rel, g) for g in _PRUNE_GLOBS):
                continue  # bin/: console scripts with this machine's shebang
            entries[rel] = f
    pkg = root / "src" / "mlops_kit"
    for f in _walk(pkg, prune=False):
        entries["mlops_kit/" + f.relative_to(pkg).as_posix()] = f
    for f in sorted((root / "functions").glob("*.py")):
        entries[f.name] = f
    return entries


# Bytecode for the runtime's Python. Lambda's task directory is read-only, so a zip without
# __pycache__ compiles every module it imports on every cold start: measured 917 vs 314 ms
# spawn-to-answer on the demo model, 1056 vs 422 ms on the forest (bench/cold_start.py, no .pyc
# vs .pyc). The .pyc must come from the runtime's minor version (its magic number), so it is
# built only with a CPython 3.12 found on this machine; `unchecked-hash` pycs never stat their
# source (nothing to check on a read-only, fixed-timestamp tree) and hash it instead of its
# mtime, so the same source gives the same bytes.
LAMBDA_PYTHON_ENV = "MLOPSKIT_LAMBDA_PYTHON"
_COMPILE = """
import py_compile, sys
for line in sys.stdin.read().splitlines():
    src, dst, arc = line.split("\\t")
    try:  # dfile: the path tracebacks show, where Lambda unpacks the zip
        py_compile.compile(src, cfile=dst, dfile="/var/task/" + arc, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        pass  # a file the runtime would not import either (a template, a py2 leftover)
"""


def runtime_python() -> str | None:
    """A CPython of the Lambda runtime's minor version (PYTHON_VERSION), or None."""
    import glob

    candidates = [os.environ.get(LAMBDA_PYTHON_ENV, ""), shutil.which(f"python{PYTHON_VERSION}")]
    candidates += sorted(glob.glob(os.path.expanduser(
        f"~/.pyenv/versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}")), reverse=True)
    candidates += [f"/usr/bin/python{PYTHON_VERSION}", f"/usr/local/bin/python{PYTHON_VERSION}"]
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == PYTHON_VERSION:
            return exe
    return None


def add_bytecode(entries: dict[str, Path], work: Path, python: str) -> dict[str, Path]:
    """entries plus `<dir>/__pycache__/<name>.cpython-312.pyc` for every .py, compiled by
    `python` (the runtime's version) into `work`."""
    tag = "cpython-" + PYTHON_VERSION.replace(".", "")
    jobs, out = [], dict(entries)
    for arc, src in entries.items():
        if not arc.endswith(".py"):
            continue
        folder, _, name = arc.rpartition("/")
        pyc = f"{folder + '/' if folder else ''}__pycache__/{name[:-3]}.{tag}.pyc"
        dst = work / pyc
        dst.parent.mkdir(parents=True, exist_ok=True)
        jobs.append(f"{src}\t{dst}\t{arc}")
        out[pyc] = dst
    subprocess.run([python, "-c", _COMPILE], input="\n".join(jobs), text=True, check=True)
    return {k: v for k, v in out.items() if v.exists()}


def write_zip(entries: dict[str, Path], out: Path) -> tuple[str, int]:
    """Deterministic zip: sorted names, fixed timestamp, normalised modes. -> (sha256, unzipped)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    unzipped = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            src = entries[name]
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            mode = 0o755 if os.access(src, os.X_OK) and src.suffix in ("", ".so") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever machine builds it
            data = src.read_bytes()
            unzipped += len(data)
            zf.writestr(info, data, compresslevel=9)
    tmp.replace(out)
    return hashlib.sha256(out.read_bytes()).hexdigest(), unzipped


def check_size(artifact: Artifact, limit: int = LAMBDA_UNZIPPED_LIMIT) -> None:
    if artifact.unzipped_bytes > limit:
        raise PackageTooLarge(
            f"{artifact.function}: {mb(artifact.unzipped_bytes)} unzipped exceeds Lambda's "
            f"{mb(limit)} limit for zip packages; trim dependencies or ship it as an image")


def mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def build_function(function: str, out_dir: Path, deps_dir: Path | None, root: Path = ROOT,
                   limit: int = LAMBDA_UNZIPPED_LIMIT, python: str | None = None) -> Artifact:
    """python: the runtime's CPython, to ship bytecode (runtime_python()); None: sources only.
    Bytecode adds 13-17 MB unzipped; a zip it would push over the limit ships sources only."""
    entries = collect_entries(deps_dir, root)
    if python is not None:
        work = out_dir / ".pyc" / function
        shutil.rmtree(work, ignore_errors=True)
        try:
            return _build(function, out_dir, add_bytecode(entries, work, python), limit)
        except PackageTooLarge as exc:
            print(f"warning: {exc}; shipping {function} without bytecode", file=sys.stderr)
    return _build(function, out_dir, entries, limit)


def _build(function: str, out_dir: Path, entries: dict[str, Path], limit: int) -> Artifact:
    path = out_dir / f"{function}.zip"
    sha, unzipped = write_zip(entries, path)
    artifact = Artifact(function, str(path), sha, path.stat().st_size, unzipped, len(entries))
    check_size(artifact, limit)
    return artifact


def load_artifact(function: str, path: Path, limit: int = LAMBDA_UNZIPPED_LIMIT) -> Artifact:
    """Describe (and size-check) a zip built earlier, e.g. by `make package` in CI."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no zip for function {function}; build it with "
            f"`python -m infra.lambda_zips --out {path.parent}`")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    artifact = Artifact(function, str(path), hashlib.sha256(path.read_bytes()).hexdigest(),
                        path.stat().st_size, sum(i.file_size for i in infos), len(infos))
    check_size(artifact, limit)
    return artifact


def zip_functions(topology=None) -> list[str]:
    """The zip functions of `topology`; without one, of every stack (batch.enabled adds
    `jobs`): `make package` builds them all, so a Batch-enabled stack with packageDir finds
    its zips (issue 25, item 9)."""
    if topology is None:
        sys.path.insert(0, str(ROOT / "src"))
        from mlops_kit.topology import default_topology
        topology = default_topology(batch=True)
    return [f.name for f in topology.functions if f.package == "zip"]


def inputs_fingerprint(function: str, install: bool = True, root: Path = ROOT) -> str:
    """sha256 of what a function's zip is made of: requirement specifiers, the lock and our own
    files."""
    digest = hashlib.sha256()
    digest.update(("\n".join(requirements_for(function, root / "pyproject.toml"))
                   if install else "no-deps").encode() + b"\0")
    lock = root / "requirements" / "lambda.txt"
    if install and lock.exists():
        digest.update(lock.read_bytes() + b"\0")
    for arcname, path in sorted(collect_entries(None, root).items()):
        digest.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cached(out_dir: Path, fn: str, inputs: str) -> Artifact | None:
    manifest = out_dir / "manifest.json"
    try:
        entry = json.loads(manifest.read_text()).get(fn) or {}
    except (OSError, ValueError):
        return None
    path = out_dir / f"{fn}.zip"
    if entry.get("inputs") != inputs or not path.is_file():
        return None
    artifact = load_artifact(fn, path)
    return artifact if artifact.sha256 == entry.get("sha256") else None


def build_all(out_dir: Path, functions: Iterable[str] | None = None,
              install: bool = True, offline: bool = False) -> list[Artifact]:
    """Build each function's zip unless the cached one has the same inputs; identical
    requirement sets share one install. offline: never install or zip (pulumi preview)."""
    out_dir = Path(out_dir)
    deps_root = out_dir / ".deps"
    artifacts, inputs = [], {}
    python: str | None | bool = False  # looked up once, when a zip is built
    for fn in functions or zip_functions():
        plain = inputs_fingerprint(fn, install)
        if offline:  # preview takes the zip `make package` built, with bytecode or without
            inputs[fn] = plain
            cached = _cached(out_dir, fn, plain + "+pyc") or _cached(out_dir, fn, plain)
        else:  # a zip built before a 3.12 was at hand is rebuilt with bytecode
            if python is False:
                python = runtime_python()
                if python is None:
                    print(f"warning: no CPython {PYTHON_VERSION} here (set {LAMBDA_PYTHON_ENV}):"
                          " the zips ship no bytecode, so every Lambda cold start compiles its "
                          "imports (about 3x slower)", file=sys.stderr)
            inputs[fn] = plain + ("+pyc" if python else "")
            cached = _cached(out_dir, fn, inputs[fn])
        if cached is not None:
            artifacts.append(cached)
            continue
        if offline:
            raise PackagesNotBuilt(
                f"{out_dir / (fn + '.zip')}: missing or older than the code; `pulumi preview` "
                "installs nothing: run `make package` first (or set packageDir)")
        deps_dir = None
        if install:
            reqs = requirements_for(fn)
            deps_dir = deps_root / hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:12]
            if not (deps_dir / ".complete").exists():
                install_deps(reqs, deps_dir)
                (deps_dir / ".complete").write_text("\n".join(reqs))
        artifacts.append(build_function(fn, out_dir, deps_dir,
                                        python=python if isinstance(python, str) else None))
    manifest_path = out_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    manifest.update({a.function: {**asdict(a), "inputs": inputs[a.function]} for a in artifacts})
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return artifacts


def report(artifacts: Iterable[Artifact]) -> str:
    lines = [f"{'function':<10} {'zipped':>10} {'unzipped':>10} {'of 250 MB':>9} {'files':>6}"
             "  sha256"]
    for a in artifacts:
        pct = 100 * a.unzipped_bytes / LAMBDA_UNZIPPED_LIMIT
        lines.append(f"{a.function:<10} {mb(a.zipped_bytes):>10} {mb(a.unzipped_bytes):>10} "
                     f"{pct:>8.0f}% {a.files:>6}  {a.sha256[:16]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lambda_zips", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    parser.add_argument("--function", action="append", help="only this function (repeatable)")
    parser.add_argument("--no-deps", action="store_true",
                        help="skip pip (code only; for a quick look, not for deploying)")
    args = parser.parse_args(argv)
    known = zip_functions()
    for fn in args.function or ():
        if fn not in known:
            parser.error(f"--function {fn}: not a zip function; zip functions: {', '.join(known)}")
    try:
        artifacts = build_all(args.out, args.function, install=not args.no_deps)
    except PackageTooLarge as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report(artifacts))
    print(f"wrote {len(artifacts)} artifact(s) and manifest.json to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
