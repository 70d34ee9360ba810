"""Artifact sizes: each function's deployment package, unzipped, against Lambda's limits
(250 MB unzipped for zip + layers; 10 GB for a container image).

- zip functions (validate, serve, monitor): built by infra.lambda_zips for the Lambda platform
  (reproducible zips, pip cache reused between runs under build/bench-lambda);
- the training function is a container image: its Python dependency closure, installed size;
- baseline: a serve function shipping the sklearn pipeline instead (scikit-learn, scipy,
  pandas, joblib, numpy: their dependency closure, installed size), against the kit's serve
  closure measured the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from common import ROOT, parse_args, row, summary, write_result

ZIP_LIMIT = 250 * 2**20
IMAGE_LIMIT = 10 * 2**30
SERVE_DISTS = ["numpy", "onnxruntime", "pydantic", "pydantic-settings"]
SKLEARN_SERVE_DISTS = ["scikit-learn", "scipy", "pandas", "joblib", "numpy"]
TRAIN_DISTS = ["numpy", "onnxruntime", "pydantic", "pydantic-settings", "pyarrow", "pandas",
               "scikit-learn", "skl2onnx", "onnx", "pyyaml"]


def closure(names: list[str]) -> dict[str, int]:
    """Installed bytes per distribution, following Requires-Dist (no extras)."""
    from packaging.requirements import Requirement

    seen: dict[str, int] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            seen[key] = 0
            continue
        seen[key] = sum(f.size or 0 for f in dist.files or [] if f.size)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def build_zips(out: Path, smoke: bool) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "infra.lambda_zips", "--out", str(out)]
    if smoke:
        cmd.append("--no-deps")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=480,
                          check=False)
    manifest = out / "manifest.json"
    if proc.returncode != 0 or not manifest.exists():
        raise RuntimeError(f"infra.lambda_zips failed: {(proc.stderr or proc.stdout)[-1500:]}")
    return json.loads(manifest.read_text()), " ".join(cmd[1:])


def main() -> None:
    args = parse_args(__doc__)
    out = (args.workdir / "lambda") if args.smoke else ROOT / "build" / "bench-lambda"
    manifest, how = build_zips(out, args.smoke)
    kit = closure(SERVE_DISTS)
    skl = closure(SKLEARN_SERVE_DISTS)
    train = closure(TRAIN_DISTS)
    rows = []
    for fn, a in sorted(manifest.items()):
        unz = a["unzipped_bytes"]
        rows.append(row(
            f"artifact size: {fn} (zip)", None, "unzipped", summary([unz / 2**20]), "MB",
            baseline="Lambda zip limit (250 MB unzipped)", baseline_stats=summary([250.0]),
            ratio=unz / ZIP_LIMIT, ratio_label="of the limit", target="< 250 MB unzipped",
            met=unz < ZIP_LIMIT,
            note=f"{a['zipped_bytes'] / 2**20:.1f} MB zipped, {a['files']} files"
                 + (" (code only: --smoke skips dependencies)" if args.smoke else ""),
            zipped_mb=a["zipped_bytes"] / 2**20))
    kit_mb, skl_mb, train_mb = (sum(d.values()) / 2**20 for d in (kit, skl, train))
    rows.append(row(
        "artifact size: serve dependencies vs sklearn serving", "serve", "installed",
        summary([kit_mb]), "MB", baseline="scikit-learn + scipy + pandas + joblib + numpy",
        baseline_stats=summary([skl_mb]), ratio=skl_mb / kit_mb, ratio_label="x smaller",
        note="dependency closures as installed in this venv: "
             + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in sorted(kit.items(), key=lambda x: -x[1])
                         if v > 2**20) + " vs "
             + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in sorted(skl.items(), key=lambda x: -x[1])
                         if v > 2**20) + " (MB)",
        kit_closure=kit, baseline_closure=skl))
    rows.append(row(
        "artifact size: train (container image)", "train", "python deps installed",
        summary([train_mb]), "MB", baseline="Lambda image limit (10 GB)",
        baseline_stats=summary([IMAGE_LIMIT / 2**20]), ratio=train_mb * 2**20 / IMAGE_LIMIT,
        ratio_label="of the limit", target="< 10 GB image", met=train_mb * 2**20 < IMAGE_LIMIT,
        note="Python dependency closure only; the base image (public.ecr.aws/lambda/python) "
             "adds ~0.5 GB", closure=train))
    path = write_result("artifact_sizes", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"packaging": how})
    print(path)


if __name__ == "__main__":
    main()
