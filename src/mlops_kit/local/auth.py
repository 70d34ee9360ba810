"""Local server auth: a bearer token generated on first start, shown once, stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
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
    """A new token replaces the old one at once: written beside, then renamed over it (running
    servers never see a missing or half-written file, and notice the change within
    BearerAuth.RECHECK_S)."""
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
    """Checks the bearer token against the hashed one on disk. The file is re-read when it
    changes (stat at most every RECHECK_S), so `mlops-kit token --rotate` reaches a running
    server within about half a second: the old token stops working, the new one works."""

    RECHECK_S = 0.5

    def __init__(self, workspace: Path, *, monotonic=time.monotonic) -> None:
        self._path = Path(workspace) / TOKEN_FILE
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._digest = ""
        self._reload()
        self._checked = monotonic()

    def _reload(self) -> None:
        st = self._path.stat()
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp != self._stamp:
            self._digest = json.loads(self._path.read_text())["sha256"]
            self._stamp = stamp

    def _current(self) -> str:
        now = self._monotonic()
        if now - self._checked >= self.RECHECK_S:
            with self._lock:
                if now - self._checked >= self.RECHECK_S:
                    try:
                        self._reload()
                    except FileNotFoundError:
                        self._digest, self._stamp = "", None  # token removed: fail closed
                    except (OSError, ValueError, KeyError):
                        pass  # being written by a non-atomic writer: keep the last digest
                    self._checked = now
        return self._digest

    def __call__(self, headers: Mapping[str, str]) -> None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("authorization: a bearer token is required", field="authorization")
        if not hmac.compare_digest(_hash(token.strip()), self._current()):
            raise Unauthorized("authorization: the token is not valid", field="authorization")
