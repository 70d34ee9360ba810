"""The console's cookie key in SSM Parameter Store (a SecureString), never in an environment
variable: the functions get the parameter's *name* and read the value with their role.

Read: `SsmCookieKey.current()` caches the key for `ttl_s` seconds per container (one
GetParameter per minute, not per request), so `rotate()` ends every session everywhere within
that time. A missing parameter, or the placeholder the stack creates, is "no key": everyone
is refused (fail closed). Rotate: a new random key (32 bytes from `secrets`) overwrites the
parameter (under the same KMS key); the stack ignores the value after creating it, so
`pulumi up` never reverts it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from mlops_kit.adapters.aws._errors import error_code, mapped

__all__ = ["PLACEHOLDER", "SsmCookieKey"]

PLACEHOLDER = "unset: run mlops-kit token --rotate"
KEY_BYTES = 32


class SsmCookieKey:
    def __init__(self, name: str, client: Callable[[], Any], *, ttl_s: float = 60.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.name, self._client, self.ttl_s, self._now = name, client, ttl_s, now
        self._value: bytes | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> bytes | None:
        with self._lock:
            if self._now() - self._read_at >= self.ttl_s:
                self._value = self._read()
                self._read_at = self._now()
            return self._value

    def _read(self) -> bytes | None:
        from botocore.exceptions import ClientError

        with mapped(f"ssm parameter {self.name}"):
            try:
                value = self._client().get_parameter(Name=self.name, WithDecryption=True)
            except ClientError as exc:
                if error_code(exc) == "ParameterNotFound":
                    return None
                raise
        text = value["Parameter"]["Value"]
        return None if text == PLACEHOLDER else text.encode()

    def rotate(self) -> None:
        """A new key: every session signed with the old one ends (within `ttl_s` everywhere)."""
        with mapped(f"ssm parameter {self.name}"):
            ssm = self._client()
            # an overwrite without KeyId would move the value to the aws/ssm key: keep the
            # stack's own KMS key (the functions may decrypt with that one only)
            found = ssm.describe_parameters(ParameterFilters=[
                {"Key": "Name", "Option": "Equals", "Values": [self.name]}])["Parameters"]
            key_id = {"KeyId": found[0]["KeyId"]} if found and found[0].get("KeyId") else {}
            ssm.put_parameter(Name=self.name, Value=secrets.token_urlsafe(KEY_BYTES),
                              Type="SecureString", Overwrite=True, **key_id)
        with self._lock:
            self._read_at = float("-inf")
