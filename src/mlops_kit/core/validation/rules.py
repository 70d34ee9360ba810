"""Validation rules: the report entries (counted per batch, with example rows), the header
checks and the whole-file rules (null fraction, class balance), plus the shared constants."""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlops_kit.core.datasets import HEADER_LIMIT, NULL_VALUES  # noqa: F401 - one definition

if TYPE_CHECKING:
    from mlops_kit.core.spec import ModelSpec

TRACKED_CATEGORIES = 10_000  # distinct values counted per column before lumping into __other__
PROFILE_CATEGORIES = 100  # values kept in a categorical profile
PROFILE_SAMPLE = 1000
ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, EOFError)


@dataclass
class Rule:
    rule: str
    column: str | None
    describe: Callable[..., str]  # count -> message (lambdas bind names as defaults)
    count: int = 0
    examples: list[dict] = field(default_factory=list)
    rows_final: bool = False  # example rows are already file row numbers (not ordinals)
    failed: bool | None = None  # None: failed iff count > 0

    def add(self, mask: np.ndarray, values: Callable[..., Any], offset: int, limit: int) -> None:
        hits = int(mask.sum())
        if not hits:
            return
        self.count += hits
        room = limit - len(self.examples)
        for i in np.flatnonzero(mask)[:room] if room > 0 else ():
            self.examples.append({"row": offset + int(i) + 1, "value": values(int(i))})

    def as_dict(self) -> dict:
        failed = self.count > 0 if self.failed is None else self.failed
        return {
            "rule": self.rule,
            "column": self.column,
            "passed": not failed,
            "count": self.count if failed else 0,
            "message": self.describe(self.count),
            "examples": self.examples if failed else [],
        }


def fmt_bound(x: float | None) -> str:
    return "-inf" if x is None else f"{x:g}"


# -- header ---------------------------------------------------------------------------------
DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def missing_hint(name: str, names: list[str]) -> str:
    """Why a spec's column may be absent: a header read as one column that holds another
    delimiter, or a column whose name is close (a typo, a case or spacing difference)."""
    if len(names) == 1:
        for sep, what in DELIMITERS.items():
            if sep in names[0] and name in names[0].split(sep):
                return (f": the header looks {what}-separated ({names[0][:60]!r}); "
                        "save the file comma-separated")
    folded = {n.strip().lower(): n for n in names}
    if name.strip().lower() in folded:
        return f" (did you mean {folded[name.strip().lower()]!r}?)"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def header_rules(spec: ModelSpec, names: list[str]) -> tuple[list[Rule], bool]:
    """Duplicate, missing and unknown columns: the rules, and whether the data can be scanned
    (False when a required column is missing)."""
    out: list[Rule] = []
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        seen.setdefault(n, []).append(i + 1)
    dupes = {n: pos for n, pos in seen.items() if len(pos) > 1}
    for n, pos in dupes.items():
        r = Rule(
            "duplicate_column",
            n,
            lambda c, n=n, pos=pos: (
                f"{n}: header has {len(pos)} columns with this name (positions {pos}); "
                "the first one was validated"
            ),
        )
        r.count = len(pos) - 1
        out.append(r)
    if not dupes:
        out.append(Rule("duplicate_column", None, lambda c: "column names are unique"))
    required = [*spec.feature_names, spec.target]
    missing = [n for n in required if n not in seen]
    for n in missing:
        r = Rule(
            "missing_column",
            n,
            lambda c, n=n: (f"{n}: required column is missing from the header"
                            + (hint if (hint := missing_hint(n, names)).startswith(":")
                               else f"{hint} (found: {names[:50]})")),
        )
        r.count = 1
        out.append(r)
    if not missing:
        out.append(Rule("missing_column", None, lambda c: "all required columns present"))
    unknown = [n for n in seen if n not in spec.known_columns]  # ids, ignored: known
    reject = spec.validation.unknown_columns == "reject"
    for n in unknown if reject else ():
        r = Rule(
            "unknown_column",
            n,
            lambda c, n=n: f"{n}: column is not in the spec (validation.unknown_columns is 'reject')",
        )
        r.count = 1
        out.append(r)
    if not (reject and unknown):
        out.append(
            Rule(
                "unknown_column",
                None,
                lambda c: (
                    f"{len(unknown)} extra columns ignored: {unknown[:20]}"
                    if unknown
                    else "no unknown columns"
                ),
            )
        )
    return out, not missing






def fix_rows(rules: list[Rule], skipped: list[int]) -> None:
    """Batch ordinals skip ragged rows; shift examples back to file row numbers."""
    if not skipped:
        return
    for r in rules:
        if r.rows_final:
            continue
        for ex in r.examples:
            k = a = ex["row"]
            while True:
                nxt = k + bisect.bisect_right(skipped, a)
                if nxt == a:
                    break
                a = nxt
            ex["row"] = a
