"""Azure role assignment conditions (version 2.0) evaluated the way Azure Storage does, for the
subset the program writes: `!`, NOT, AND, OR, parentheses, ActionMatches{...},
SubOperationMatches{...}, and @Resource/@Request attributes compared with StringEquals,
StringStartsWith and StringLike.

The rule that matters (learn.microsoft.com/azure/role-based-access-control/conditions-format,
learn.microsoft.com/azure/storage/blobs/storage-auth-abac-attributes): an operation carries only
some attributes. List Blobs (blobs/read, suboperation Blob.List) carries the request's `prefix`
and no blob `path`; a read or write of one blob carries its `path` and no `prefix`. A comparison
on an attribute the operation does not carry is false, so a condition on `blobs:path` that does
not exclude Blob.List denies every listing."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
# The data actions of the built-in roles the program assigns
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage).
ROLE_DATA_ACTIONS = {
    "blob_reader": {f"{BLOBS}/read"},
    "blob_contributor": {f"{BLOBS}/read", f"{BLOBS}/write", f"{BLOBS}/delete",
                         f"{BLOBS}/add/action", f"{BLOBS}/move/action"},
}

_TOKEN = re.compile(r"""\s*(?:
    (?P<lp>\()|(?P<rp>\))|(?P<bang>!)|(?P<kw>AND|OR|NOT)\b|
    (?P<fn>ActionMatches|SubOperationMatches)\{'(?P<arg>[^']*)'\}|
    (?P<attr>@(?:Resource|Request)\[[^\]]+\])\s+(?P<op>StringEquals|StringStartsWith|StringLike)
        \s+'(?P<val>[^']*)'
    )""", re.X)


@dataclass(frozen=True)
class Operation:
    action: str
    suboperation: str | None = None
    path: str | None = None  # @Resource[...blobs:path]
    prefix: str | None = None  # @Request[...blobs:prefix]

    def attribute(self, name: str) -> str | None:
        return {f"@Resource[{BLOBS}:path]": self.path,
                f"@Request[{BLOBS}:prefix]": self.prefix}.get(name)


def read(path: str) -> Operation:
    return Operation(f"{BLOBS}/read", path=path)


def list_blobs(prefix: str | None) -> Operation:
    return Operation(f"{BLOBS}/read", "Blob.List", prefix=prefix)


def write(path: str) -> Operation:
    return Operation(f"{BLOBS}/write", path=path)


def delete(path: str) -> Operation:
    return Operation(f"{BLOBS}/delete", path=path)


def _tokens(text: str) -> list[re.Match]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"condition syntax at {pos}: {text[pos:pos + 60]!r}")
        out.append(m)
        pos = m.end()
    return out


def evaluate(condition: str, op: Operation) -> bool:
    toks, i = _tokens(condition), 0

    def peek() -> re.Match | None:
        return toks[i] if i < len(toks) else None

    def take() -> re.Match:
        nonlocal i
        if i >= len(toks):
            raise ValueError(f"condition ends early: {condition!r}")
        i += 1
        return toks[i - 1]

    def expr() -> bool:
        value = term()
        while (t := peek()) is not None and t["kw"] == "OR":
            take()
            value = term() or value
        return value

    def term() -> bool:
        value = factor()
        while (t := peek()) is not None and t["kw"] == "AND":
            take()
            value = factor() and value
        return value

    def factor() -> bool:
        t = take()
        if t["bang"] or t["kw"] == "NOT":
            return not factor()
        if t["lp"]:
            value = expr()
            if not take()["rp"]:
                raise ValueError("unbalanced parentheses")
            return value
        if t["fn"] == "ActionMatches":
            return op.action == t["arg"]
        if t["fn"] == "SubOperationMatches":
            return op.suboperation == t["arg"]
        if t["attr"]:
            have = op.attribute(t["attr"])
            if have is None:  # the operation does not carry it: the comparison fails
                return False
            want = t["val"]
            return {"StringEquals": have == want, "StringStartsWith": have.startswith(want),
                    "StringLike": fnmatch.fnmatchcase(have, want)}[t["op"]]
        raise ValueError(f"unexpected token {t.group(0)!r}")

    value = expr()
    if i != len(toks):
        raise ValueError(f"trailing tokens in condition: {condition!r}")
    return value


def allowed(role: str, condition: str | None, op: Operation) -> bool:
    """Does a role assignment (built-in role + condition) allow the operation?"""
    if op.action not in ROLE_DATA_ACTIONS[role]:
        return False
    return condition is None or evaluate(condition, op)
