"""One correction to moto's server mode, so that `mlops-kit emulate --enforce-iam` checks the
signatures real S3 checks.

moto's server rebuilds the request it verifies from werkzeug's `request.url`, which is an IRI:
`uri_to_iri` decodes `%2F` to `/`. botocore signs the query exactly as sent
(`prefix=specs%2Fchurn.yaml`), so every signed request with an encoded `/` (or space, `+`, ...)
in its query string fails with `SignatureDoesNotMatch` against moto's server — a ListObjectsV2
with any folder prefix, i.e. the adapters' one-key existence probe and every listing. Real S3
computes the canonical request from the query as sent, and so does moto in-process (the tests'
`mock_aws`), which is why only the emulator's server mode needs this.

The correction gives moto's signature check the raw query the client sent (werkzeug's dev server
keeps it in `RAW_URI`); everything else moto parses is untouched.
tests/emulate/test_moto_server.py pins the behaviour this corrects: when moto fixes it upstream,
that test says so and this module can go.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

_INSTALLED = False


def sign_against_the_raw_query() -> None:
    """Install the correction (idempotent; process-wide, as moto's server is)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.responses import BaseResponse

    setup = BaseResponse.setup_class
    authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def setup_class(self: Any, request: Any, full_url: str, headers: Any, *args: Any,
                    **kwargs: Any) -> Any:
        result = setup(self, request, full_url, headers, *args, **kwargs)
        environ = getattr(request, "environ", None)
        raw = environ.get("RAW_URI") if isinstance(environ, dict) else None
        self._mlopskit_raw_query = urlsplit(raw).query if raw else None
        return result

    def authenticate_raw(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        raw_query = getattr(self, "_mlopskit_raw_query", None)
        if not raw_query:
            return authenticate(self, iam_request_cls, resource)
        decoded = self.uri
        self.uri = urlunsplit(urlsplit(decoded)._replace(query=raw_query))
        try:
            return authenticate(self, iam_request_cls, resource)
        finally:
            self.uri = decoded

    BaseResponse.setup_class = setup_class  # type: ignore[method-assign]
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_raw  # type: ignore[method-assign]
    _INSTALLED = True
