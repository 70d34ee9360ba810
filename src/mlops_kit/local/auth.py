"""Local server auth: a bearer token generated on first start, shown once, stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from mlops_kit.errors import Unauthorized

TOKEN_FILE = "auth.json"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_token(workspace: Path) -> str | None:
    """Create a token if none exists; returns it once (None when one already existed)."""
    path = Path(workspace) / TOKEN_FILE
    if path.exists():
        return None
    token = "mk_" + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"sha256": _hash(token), "scheme": "bearer"}, f)
    return token


def rotate_token(workspace: Path) -> str:
    (Path(workspace) / TOKEN_FILE).unlink(missing_ok=True)
    token = ensure_token(workspace)
    assert token is not None
    return token


class BearerAuth:
    def __init__(self, workspace: Path) -> None:
        data = json.loads((Path(workspace) / TOKEN_FILE).read_text())
        self._digest = data["sha256"]

    def __call__(self, headers: Mapping[str, str]) -> None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("authorization: a bearer token is required", field="authorization")
        if not hmac.compare_digest(_hash(token.strip()), self._digest):
            raise Unauthorized("authorization: the token is not valid", field="authorization")
