"""boto3 clients: created lazily and cached per (service, region, endpoint).

Lazy so that moto can be started before any client exists; cached so that a warm Lambda
container reuses its connections. Tests call `clear_clients()` after starting a mock."""

from __future__ import annotations

import threading
from typing import Any

_cache: dict[tuple[str, str | None, str | None], Any] = {}
_lock = threading.Lock()


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None) -> Any:
    key = (service, region, endpoint_url)
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
            found = boto3.session.Session().client(
                service, region_name=region, endpoint_url=endpoint_url, config=config)
            _cache[key] = found
    return found


def clear_clients() -> None:
    with _lock:
        _cache.clear()
