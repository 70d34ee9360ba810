"""Read models of experiment runs for the CLI (`mlops-kit runs ...`), the run report and the
console: trials ranked by the run's metric with the best marked, a run summary, and the
comparison of two runs. Pure functions over the records of core/registry/experiments.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["compare_runs", "ranked_trials", "run_summary"]


def _value(t: dict[str, Any], metric: str) -> float | None:
    v = (t.get("cv") or {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def ranked_trials(run: dict[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every planned trial: scored ones by the metric (best first), then failed, skipped and
    not yet recorded ones. Each row gets `rank` (scored only) and `best` (the run's winner, or
    the current leader while the run is still going)."""
    metric, sign = run["metric"], 1 if run.get("higher_is_better", True) else -1
    by_hash = {t["hash"]: t for t in trials}
    rows = [by_hash.get(p["hash"], {**p, "status": "pending"}) for p in run.get("trials", [])]
    rows += [t for t in trials if t["hash"] not in {p["hash"] for p in run.get("trials", [])}]
    scored = [r for r in rows if r.get("status") == "ok" and _value(r, metric) is not None]
    scored.sort(key=lambda r: (-sign * (_value(r, metric) or 0.0), r.get("index", 0)))
    order = {"failed": 1, "skipped": 2, "pending": 3}
    rest = sorted((r for r in rows if r not in scored),
                  key=lambda r: (order.get(r.get("status", ""), 4), r.get("index", 0)))
    best = run.get("winner") or (scored[0]["hash"] if scored else None)
    out = []
    for i, r in enumerate(scored):
        out.append({**r, "rank": i + 1, "best": r["hash"] == best, "metric": metric,
                    "value": _value(r, metric)})
    out += [{**r, "rank": None, "best": False, "metric": metric, "value": None} for r in rest]
    return out


def run_summary(run: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    rows = ranked_trials(run, trials)
    leader = next((r for r in rows if r["best"]), None)
    counts = {s: sum(1 for r in rows if r.get("status") == s)
              for s in ("ok", "failed", "skipped", "pending")}
    return {
        "model": run["model"], "run": run["run"], "version": run.get("version"),
        "status": run["status"], "strategy": run.get("strategy"), "engine": run.get("engine"),
        "metric": run["metric"], "higher_is_better": run.get("higher_is_better", True),
        "cv": run.get("cv"), "trials": run.get("total", len(rows)), **counts,
        "best": None if leader is None else {
            "hash": leader["hash"], "kind": leader.get("kind"), "params": leader.get("params"),
            "cv": leader["value"], "holdout": leader.get("holdout")},
        "dataset_key": run.get("dataset_key"), "spec_hash": run.get("spec_hash"),
        "version_status": run.get("version_status"), "promoted": run.get("promoted"),
        "started_at": run.get("started_at"), "finished_at": run.get("finished_at"),
        "seconds": _seconds(run), "reason": run.get("reason"),
        "tracking": run.get("tracking"),
    }


def _seconds(run: dict[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(run["started_at"])
        end = datetime.fromisoformat(run["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return round((end - start).total_seconds(), 3)


def compare_runs(a: tuple[dict, list[dict]], b: tuple[dict, list[dict]]) -> dict[str, Any]:
    """Two runs side by side on the first run's metric: their best trials, and every candidate
    both tried (same kind and params) with its score in each."""
    (run_a, trials_a), (run_b, trials_b) = a, b
    metric = run_a["metric"]
    sign = 1 if run_a.get("higher_is_better", True) else -1
    sa, sb = run_summary(run_a, trials_a), run_summary(run_b, trials_b)
    ta = {t["hash"]: t for t in trials_a}
    tb = {t["hash"]: t for t in trials_b}
    common = []
    for h in sorted(set(ta) & set(tb), key=lambda h: ta[h].get("index", 0)):
        va, vb = _value(ta[h], metric), _value(tb[h], metric)
        common.append({"hash": h, "kind": ta[h].get("kind"), "params": ta[h].get("params"),
                       "a": va, "b": vb,
                       "delta": None if va is None or vb is None else vb - va})
    best_a = (sa["best"] or {}).get("cv")
    best_b = (sb["best"] or {}).get("cv") if run_b["metric"] == metric else _best_on(
        run_b, trials_b, metric, sign)
    delta = None if best_a is None or best_b is None else best_b - best_a
    return {
        "metric": metric, "a": sa, "b": sb, "best_delta": delta,
        "better": None if delta is None or delta == 0 else ("b" if sign * delta > 0 else "a"),
        "common": common,
        "only_a": sorted(set(ta) - set(tb)), "only_b": sorted(set(tb) - set(ta)),
    }


def _best_on(run: dict, trials: list[dict], metric: str, sign: int) -> float | None:
    values = [v for t in trials if t.get("status") == "ok" and (v := _value(t, metric)) is not None]
    if not values:
        return None
    return max(values) if sign > 0 else min(values)
