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
    """A new token replaces the old one at once: written beside, then renamed over it, so a
    running server never sees a missing or half-written file, and its next request checks
    against the new token."""
    path = Path(workspace) / TOKEN_FILE
    token = "mk_" + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{TOKEN_FILE}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"sha256": _hash(token), "scheme": "bearer"}, f)
    os.replace(tmp, path)
    return token


class BearerAuth:
    """Checks `Authorization: Bearer <token>` against the stored digest. A rotation
    (`mlops-kit token --rotate`) takes effect on a running server: the file is re-read when it
    changes (one stat per request), and generation() changes, which ends console sessions."""

    def __init__(self, workspace: Path) -> None:
        self._path = Path(workspace) / TOKEN_FILE
        self._file = str(self._path)
        self._stamp: tuple[int, int, int] | None = None
        self._digest = ""
        self._load()

    def _load(self) -> None:
        st = os.stat(self._file)
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp != self._stamp:
            self._digest = json.loads(self._path.read_text())["sha256"]
            self._stamp = stamp

    def generation(self) -> str:
        """Changes when the token does (the console binds its sessions to it)."""
        try:
            self._load()
        except (OSError, ValueError, KeyError):
            raise Unauthorized("authorization: no token is configured (mlops-kit token)",
                               field="authorization") from None
        return self._digest

    def __call__(self, headers: Mapping[str, str]) -> None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("authorization: a bearer token is required", field="authorization")
        if not hmac.compare_digest(_hash(token.strip()), self.generation()):
            raise Unauthorized("authorization: the token is not valid", field="authorization")
