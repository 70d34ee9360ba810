"""The Azure Functions deployment package (`make package-azure`): one zip every app of an Azure
stack runs (each app registers only its own function's triggers, MLOPSKIT_FUNCTION).

    function_app.py, host.json                   functions/azure/ (the Python v2 programming model)
    .python_packages/lib/site-packages/...       requirements/azure-functions.txt, Linux x86_64
                                                 wheels for the stack's Python, + src/mlops_kit

The dependencies are built here, never on the platform (no remote build): the exact versions
the lock pins, from wheels only (`pip install --platform manylinux... --only-binary=:all:`, so
this machine's OS never leaks in). `pulumi up` does not publish it: the deploy workflow (or
docs/deploy-azure.md by hand) pushes it to each app after `up` (`az functionapp deployment
source config-zip`, Flex Consumption's one deploy).

    python -m infra.flex_package --out build/azure      # = make package-azure
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.lambda_zips import _walk, mb, write_zip

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "azure-functions.txt"
APP_DIR = ROOT / "functions" / "azure"
SITE_PACKAGES = ".python_packages/lib/site-packages"  # where the Python worker looks
PYTHON_VERSION = "3.11"  # infra/azure_stack/config.py AzureConfig.python_version (a test ties them)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")  # Flex runs Linux x86_64
# What a package may weigh: "The maximum size for a deployment package file is 1 GB"
# (learn.microsoft.com/azure/azure-functions/run-functions-from-deployment-package; Flex
# Consumption runs from the package it is given). The unzipped size is reported too: it is what
# every new instance mounts (cold start).
PACKAGE_LIMIT = 1024 * 1024 * 1024


class PackageTooLarge(RuntimeError):
    pass


@dataclass(frozen=True)
class Package:
    path: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int

    def report(self, limit: int = PACKAGE_LIMIT) -> str:
        return (f"{self.path}: {mb(self.zipped_bytes)} zipped ({100 * self.zipped_bytes / limit:.0f}% "
                f"of the {mb(limit)} limit), {mb(self.unzipped_bytes)} unzipped, {self.files} files, "
                f"sha256 {self.sha256[:16]}")


def pip_command(target: Path, lock: Path = LOCK, python_version: str = PYTHON_VERSION) -> list[str]:
    """Every locked distribution as a Linux x86_64 wheel for `python_version`, nothing resolved
    afresh (--no-deps: the lock is complete)."""
    return [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps",
            "--no-warn-conflicts", *(a for p in PLATFORMS for a in ("--platform", p)),
            "--python-version", python_version, "--implementation", "cp",
            "--only-binary=:all:", "--target", str(target), "-r", str(lock)]


def install(target: Path, lock: Path = LOCK) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    subprocess.run(pip_command(target, lock), check=True)


def entries(deps: Path | None, root: Path = ROOT) -> dict[str, Path]:
    """arcname -> file: the app at the root, the dependencies and mlops_kit under SITE_PACKAGES."""
    out = {name: root / "functions" / "azure" / name for name in ("function_app.py", "host.json")}
    if deps is not None:
        for f in _walk(deps, prune=False):  # no pruning: training imports more than Lambda's
            rel = f.relative_to(deps).as_posix()
            if not rel.startswith("bin/"):  # console scripts with this machine's shebang
                out[f"{SITE_PACKAGES}/{rel}"] = f
    pkg = root / "src" / "mlops_kit"
    for f in _walk(pkg, prune=False):
        out[f"{SITE_PACKAGES}/mlops_kit/{f.relative_to(pkg).as_posix()}"] = f
    return out


def build(out_dir: Path, *, install_deps: bool = True, lock: Path = LOCK, root: Path = ROOT,
          limit: int = PACKAGE_LIMIT) -> Package:
    out_dir = Path(out_dir)
    deps = out_dir / ".deps" if install_deps else None
    if deps is not None:
        install(deps, lock)
    files = entries(deps, root)
    path = out_dir / "package.zip"
    sha, unzipped = write_zip(files, path)
    package = Package(path, sha, path.stat().st_size, unzipped, len(files))
    if package.zipped_bytes > limit:
        raise PackageTooLarge(f"{package.report(limit)}: over the limit")
    return package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.flex_package", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "azure")
    parser.add_argument("--no-deps", action="store_true",
                        help="skip pip (code only; for a look, not for deploying)")
    args = parser.parse_args(argv)
    try:
        package = build(args.out, install_deps=not args.no_deps)
    except PackageTooLarge as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(package.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
