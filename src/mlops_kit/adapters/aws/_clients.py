"""boto3 clients: created lazily and cached per (service, region, endpoint, identity).

Lazy so that moto can be started before any client exists; cached so that a warm Lambda
container reuses its connections. Tests call `clear_clients()` after starting a mock.

On Lambda a function's clients take its role's credentials from the environment. An emulator
runs several functions in one process, each under its own role: `acting_as(identity)` makes
every client created inside the block (in this thread or task) use that identity's keys, the
way each function's own process would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_cache: dict[tuple[str, str | None, str | None, str | None], Any] = {}
_lock = threading.Lock()
# One boto3 session for every client: a session loads botocore's service models once (a new
# session per client re-reads them: ~0.3 s a client, measured; ~13 ms with a shared one).
# clear_clients() drops the session (it caches the credentials it resolved) but keeps botocore's
# data loader, a cache of parsed JSON (models, endpoints) that no credential touches.
_session: Any = None
_loader: Any = None


@dataclass(frozen=True)
class Identity:
    """Who the clients act as (an IAM user's or a role session's keys)."""

    name: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    # called once per client made for this identity (the emulator adds the checks moto lacks)
    instrument: Callable[[str, Any], None] | None = field(default=None, compare=False,
                                                           repr=False)


_identity: ContextVar[Identity | None] = ContextVar("mlops_kit_aws_identity", default=None)


@contextmanager
def acting_as(identity: Identity | None) -> Iterator[Identity | None]:
    """Clients created in this block use `identity` (None: the environment's credentials)."""
    token = _identity.set(identity)
    try:
        yield identity
    finally:
        _identity.reset(token)


def current_identity() -> Identity | None:
    return _identity.get()


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None) -> Any:
    global _session
    who = _identity.get()
    key = (service, region, endpoint_url, who.access_key_id if who else None)
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(key)
        if found is None:
            import boto3  # imported here: the local backend never pays for boto3
            from botocore.config import Config

            # "standard" retries: botocore backs off on throttling and 5xx before we see them.
            config = Config(retries={"mode": "standard", "max_attempts": 5},
                            connect_timeout=5, read_timeout=60)
            if _session is None:
                _session = _new_session(boto3)
            keys = {} if who is None else {
                "aws_access_key_id": who.access_key_id,
                "aws_secret_access_key": who.secret_access_key,
                "aws_session_token": who.session_token}
            found = _session.client(service, region_name=region, endpoint_url=endpoint_url,
                                    config=config, **keys)
            if who is not None and who.instrument is not None:
                who.instrument(service, found)
            _cache[key] = found
    return found


def _new_session(boto3: Any) -> Any:
    global _loader
    import botocore.session

    core = botocore.session.get_session()
    if _loader is None:
        _loader = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


def clear_clients() -> None:
    """Forget every client and the session (it holds the credentials it resolved)."""
    global _session
    with _lock:
        _cache.clear()
        _session = None
