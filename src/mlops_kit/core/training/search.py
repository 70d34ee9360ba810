"""A spec's `search` block -> the list of trials of one run (deterministic), and the check of
every candidate's parameter names and values against scikit-learn before anything trains.

A trial is {"hash", "index", "kind", "params"}; its hash (kind + params) makes a trial
idempotent within a run: a redelivered trial message finds the trial already recorded.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from mlops_kit.core.spec import Estimator, ModelSpec
from mlops_kit.core.spec_search import Candidate, Range, Search
from mlops_kit.errors import SpecError

__all__ = ["SearchPlan", "candidate_hash", "candidate_spec", "check_search", "plan_search",
           "search_metric"]

MAX_DRAW_FACTOR = 20  # random search: give up finding new points after this many draws each


@dataclass(frozen=True)
class SearchPlan:
    trials: list[dict[str, Any]]
    space: int | None  # grid: the number of grid points before the budget; random: None
    notes: list[str] = field(default_factory=list)


def candidate_hash(kind: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def search_metric(spec: ModelSpec) -> str:
    assert spec.search is not None
    return spec.search.metric or spec.promotion.metric


def candidate_spec(spec: ModelSpec, trial: dict[str, Any]) -> ModelSpec:
    """The spec a trial trains: the same data settings, this candidate as the estimator."""
    estimator = Estimator(kind=trial["kind"], params=dict(trial["params"]))
    return spec.model_copy(update={"estimator": estimator, "search": None})


def _candidates(spec: ModelSpec) -> list[Candidate]:
    search = spec.search
    assert search is not None
    out = list(search.candidates)
    if search.include_estimator:
        out.insert(0, Candidate(kind=spec.estimator.kind, params=dict(spec.estimator.params)))
    return out


def plan_search(spec: ModelSpec) -> SearchPlan:
    """Expand the search into at most max_candidates distinct trials, seeded by spec.seed."""
    search = spec.search
    if search is None:
        raise SpecError("the spec has no search block", field="search")
    candidates = _candidates(spec)
    if search.strategy == "grid":
        points = [p for c in candidates for p in _grid(c)]
        space, notes = len(points), []
        points = _dedupe(points)
        if len(points) > search.max_candidates:
            keep = sorted(random.Random(spec.seed).sample(range(len(points)),
                                                          search.max_candidates))
            notes.append(f"the grid has {len(points)} distinct points; {search.max_candidates} "
                         "sampled (seeded) to fit max_candidates")
            points = [points[i] for i in keep]
    else:
        points, space, notes = _random(candidates, search, spec.seed), None, []
    trials = [{"index": i, "hash": candidate_hash(kind, params), "kind": kind, "params": params}
              for i, (kind, params) in enumerate(points)]
    return SearchPlan(trials, space, notes)


def _grid(c: Candidate) -> list[tuple[str, dict[str, Any]]]:
    names = sorted(c.grid)
    return [(c.kind, {**c.params, **dict(zip(names, values, strict=True))})
            for values in itertools.product(*(c.grid[n] for n in names))]


def _dedupe(points: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    seen: set[str] = set()
    out = []
    for kind, params in points:
        h = candidate_hash(kind, params)
        if h not in seen:
            seen.add(h)
            out.append((kind, params))
    return out


def _random(candidates: list[Candidate], search: Search, seed: int) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    out: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for _ in range(search.max_candidates * MAX_DRAW_FACTOR):
        if len(out) == search.max_candidates:
            break
        c = candidates[rng.randrange(len(candidates))]
        params = dict(c.params)
        for name in sorted(c.grid):
            params[name] = rng.choice(c.grid[name])
        for name in sorted(c.ranges):
            params[name] = _draw(rng, c.ranges[name])
        h = candidate_hash(c.kind, params)
        if h not in seen:
            seen.add(h)
            out.append((c.kind, params))
    return out


def _draw(rng: random.Random, r: Range) -> float | int:
    value = (math.exp(rng.uniform(math.log(r.low), math.log(r.high))) if r.log
             else rng.uniform(r.low, r.high))
    if r.integer:
        return int(round(value))
    return float(f"{value:.6g}")  # readable, and stable in the candidate hash


def check_search(spec: ModelSpec) -> SearchPlan | None:
    """Name the first unknown or invalid parameter of any candidate (SpecError), without
    fitting anything. Returns the plan (None for a spec without a search)."""
    if spec.search is None:
        return None
    plan = plan_search(spec)
    if not plan.trials:
        raise SpecError("search: no candidate to try", field="search.candidates")
    for i, c in enumerate(spec.search.candidates):
        where = f"search.candidates.{i}"
        names = {**c.params, **{k: v[0] for k, v in c.grid.items()}, **c.ranges}
        _check_names(c.kind, sorted(names), where)
        for name, values in c.grid.items():
            for value in values:
                _check_value(c.kind, {**c.params, name: value}, f"{where}.grid.{name}")
        for name, r in c.ranges.items():
            for end in (r.low, r.high):
                value = int(round(end)) if r.integer else end
                _check_value(c.kind, {**c.params, name: value}, f"{where}.ranges.{name}")
        _check_value(c.kind, dict(c.params), f"{where}.params")
    if spec.search.include_estimator:
        _check_names(spec.estimator.kind, sorted(spec.estimator.params), "estimator.params")
        _check_value(spec.estimator.kind, dict(spec.estimator.params), "estimator.params")
    return plan


def _check_names(kind: str, names: list[str], where: str) -> None:
    from mlops_kit.core.training.fit import ESTIMATORS

    accepted = set(ESTIMATORS[kind]().get_params())
    unknown = [n for n in names if n not in accepted]
    if unknown:
        raise SpecError(f"{where}: {unknown[0]!r} is not a parameter of {kind} "
                        f"({ESTIMATORS[kind].__name__}); accepted: {sorted(accepted)}",
                        field=f"{where}.{unknown[0]}")


def _check_value(kind: str, params: dict[str, Any], where: str) -> None:
    """scikit-learn's own parameter constraints (types, ranges, options), checked before fit."""
    from mlops_kit.core.training.fit import ESTIMATORS

    estimator = ESTIMATORS[kind](**params)
    validate = getattr(estimator, "_validate_params", None)  # sklearn >= 1.2
    if validate is None:
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{where}: {str(exc).splitlines()[0]}", field=where) from None
