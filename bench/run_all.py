"""Run every benchmark (one subprocess each, sharing one scratch dir so the models and data
files are made once), then regenerate the results table in bench/README.md from
bench/results/*.json.

    python bench/run_all.py              # everything, < 10 minutes on 2 cores
    python bench/run_all.py --only warm_inference cold_start
    python bench/run_all.py --render     # only rebuild the README table from the JSON files
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import RESULTS, fmt_num, machine  # noqa: E402

SCRIPTS = ["warm_inference", "cold_start", "http_serving", "http_load", "capture_formats",
           "validation", "lifecycle", "monitoring", "artifact_sizes", "console", "experiments",
           "batch_training", "batch_scoring", "spec_init", "drift_types"]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def run(names: list[str], smoke: bool, out: Path) -> dict[str, dict]:
    workdir = Path(tempfile.mkdtemp(prefix="mlops-kit-bench-"))
    status: dict[str, dict] = {}
    try:
        for name in names:
            t0 = time.perf_counter()
            cmd = [sys.executable, str(BENCH / f"{name}.py"), "--workdir", str(workdir),
                   "--out", str(out)] + (["--smoke"] if smoke else [])
            print(f"== {name}", flush=True)
            proc = subprocess.run(cmd, check=False)
            status[name] = {"ok": proc.returncode == 0,
                            "seconds": round(time.perf_counter() - t0, 1)}
            print(f"   {name}: {'ok' if proc.returncode == 0 else 'FAILED'} in "
                  f"{status[name]['seconds']} s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def _spread(s: dict) -> str:
    if not s:
        return "–"
    if s.get("n", 1) >= 4:
        return f"{fmt_num(s['p25'])}–{fmt_num(s['p75'])}"
    if s.get("n", 1) > 1:
        return f"{fmt_num(s['min'])}–{fmt_num(s['max'])} (min–max)"
    return "1 run"


def _verdict(r: dict) -> str:
    if r.get("met") is None:
        return "–"
    return "**met**" if r["met"] else "**MISSED**"


def render(results_dir: Path = RESULTS, readme: Path = BENCH / "README.md",
           timings: dict[str, dict] | None = None) -> str:
    docs = []
    for name in SCRIPTS:
        p = results_dir / f"{name}.json"
        if p.exists():
            docs.append(json.loads(p.read_text()))
    m = docs[0]["machine"] if docs else machine()
    v = m["versions"]
    lines = [
        f"Machine: {m['cpu_count']} CPUs, {m['cpu_model']}; Python {m['python']}; "
        f"{m['platform']}; commit {m['commit']}.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
        "",
        "Median and spread (p25–p75 over repeated samples, or min–max over few runs). The ratio "
        "compares each figure with its baseline measured in the same run.",
        "",
        "| figure | model | metric | median | spread | baseline (median) | ratio | target | "
        "verdict | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in docs:
        for r in d["rows"]:
            s, b = r["stats"], r.get("baseline_stats") or {}
            base = f"{r['baseline']}: {fmt_num(b.get('median'))} {r['unit']}" \
                if r.get("baseline") else "–"
            ratio = f"{r['ratio']:.2f} {r['ratio_label']}" if r.get("ratio") is not None else "–"
            lines.append(
                f"| {r['figure']} | {r.get('model') or '–'} | {r['metric']} | "
                f"{fmt_num(s['median'])} {r['unit']} | {_spread(s)} | {base} | {ratio} | "
                f"{r.get('target') or '–'} | {_verdict(r)} | {r.get('note', '')} |")
        if d.get("smoke"):
            lines.append(f"| _{d['name']}: SMOKE run (tiny inputs), not a benchmark_ |"
                         + " |" * 9)
    if timings:
        total = sum(t["seconds"] for t in timings.values())
        lines += ["", "Run time: " + ", ".join(
            f"{k} {t['seconds']:.0f} s{'' if t['ok'] else ' (FAILED)'}"
            for k, t in timings.items()) + f"; total {total:.0f} s."]
    table = "\n".join(lines)
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1] if END in rest else ""
    readme.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=SCRIPTS)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--render", action="store_true", help="only rebuild the README table")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    timings = None
    times_file = args.out / "run_times.json"
    if not args.render:
        t0 = time.perf_counter()
        timings = run(args.only or SCRIPTS, args.smoke, args.out)
        print(f"== all done in {time.perf_counter() - t0:.0f} s")
        # --only refreshes some figures: keep the others' last run times
        known = json.loads(times_file.read_text()) if times_file.exists() else {}
        times_file.write_text(json.dumps({**known, **timings}, indent=2) + "\n")
    if args.out.resolve() == RESULTS.resolve():
        every = json.loads(times_file.read_text()) if times_file.exists() else None
        print(render(args.out, timings={k: every[k] for k in SCRIPTS if k in every}
                     if every else None))
    return 0 if timings is None or all(t["ok"] for t in timings.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
