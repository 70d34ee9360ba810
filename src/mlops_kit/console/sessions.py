"""Browser sessions for the console: the bearer token is checked once, at sign-in, by the
same authorizer the API uses; the browser then holds only a random session id in an HttpOnly,
SameSite=Strict cookie (Secure over https). The token never reaches a URL, a page or script-
readable storage.

Sessions live in server memory, keyed by the sha256 of their id: a restart signs everyone out,
logout deletes the session, and a session remembers the authorizer's `generation()` (the
token's digest) so rotating the token ends every session made with the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["COOKIE", "Sessions", "cookie_header", "read_cookie"]

COOKIE = "mk_console"
IDLE_SECONDS = 2 * 3600
MAX_AGE_SECONDS = 12 * 3600
MAX_SESSIONS = 1000


@dataclass
class _Session:
    generation: str | None
    created: float
    seen: float


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class Sessions:
    def __init__(self, *, now: Callable[[], float] = time.monotonic, idle: float = IDLE_SECONDS,
                 max_age: float = MAX_AGE_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self._now, self.idle, self.max_age, self.limit = now, idle, max_age, limit
        self._items: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, generation: str | None) -> str:
        sid = secrets.token_urlsafe(32)
        t = self._now()
        with self._lock:
            self._items[_key(sid)] = _Session(generation, t, t)
            while len(self._items) > self.limit:  # the oldest session makes room
                self._items.popitem(last=False)
        return sid

    def valid(self, sid: str | None, generation: str | None) -> bool:
        if not sid or len(sid) > 128:
            return False
        key, t = _key(sid), self._now()
        with self._lock:
            s = self._items.get(key)
            if s is None:
                return False
            expired = t - s.seen > self.idle or t - s.created > self.max_age
            rotated = not hmac.compare_digest(s.generation or "", generation or "")
            if expired or rotated:
                del self._items[key]
                return False
            s.seen = t
            return True

    def drop(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._items.pop(_key(sid), None)

    def __len__(self) -> int:
        return len(self._items)


def read_cookie(headers: Mapping[str, str], name: str = COOKIE) -> str | None:
    """The value of one cookie (headers are lower-cased). No SimpleCookie: it is lenient with
    malformed input in ways that differ between Python versions."""
    for part in headers.get("cookie", "").split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == name:
            return v.strip().strip('"') or None
    return None


def cookie_header(value: str, *, secure: bool, clear: bool = False) -> str:
    """No Path attribute: the default is the directory of the sign-in URL (<mount>/ui), so the
    cookie goes to the console wherever it is mounted (an API Gateway stage prefix too) and
    never to the inference API."""
    attrs = [f"{COOKIE}={'' if clear else value}", "HttpOnly", "SameSite=Strict",
             f"Max-Age={0 if clear else MAX_AGE_SECONDS}"]
    if secure:
        attrs.append("Secure")
    return "; ".join(attrs)
