"""Azure pieces that need no emulator: error mapping, connection-string guard, missing SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import CredentialUnavailableError
from azure.storage.queue import StorageErrorCode

from mlops_kit.adapters.azure._errors import translate
from mlops_kit.errors import ConditionFailed, MlopsKitError, NotFound, StorageError, TransientError


def _http(cls, status, code):
    exc = cls(message="x")
    exc.status_code, exc.error_code = status, code
    return exc


@pytest.mark.parametrize(("exc", "expected"), [
    (_http(HttpResponseError, 503, "ServerBusy"), TransientError),
    (_http(HttpResponseError, 500, "InternalError"), TransientError),
    (_http(HttpResponseError, 429, None), TransientError),
    (_http(HttpResponseError, 409, "QueueBeingDeleted"), TransientError),
    (_http(ResourceModifiedError, 412, "UpdateConditionNotSatisfied"), ConditionFailed),
    (_http(HttpResponseError, 409, "EntityAlreadyExists"), ConditionFailed),
    (_http(HttpResponseError, 409, "BlobAlreadyExists"), ConditionFailed),
    (_http(ResourceNotFoundError, 404, "BlobNotFound"), NotFound),
    (_http(HttpResponseError, 403, "AuthorizationPermissionMismatch"), StorageError),
    (_http(HttpResponseError, 400, "InvalidInput"), StorageError),
    (_http(HttpResponseError, 400, StorageErrorCode.POP_RECEIPT_MISMATCH), NotFound),
    (ServiceRequestError("connection refused"), TransientError),
])
def test_azure_errors_are_mapped(exc, expected):
    got = translate(exc, "put 'x'")
    assert type(got) is expected
    assert "Traceback" not in got.message and got.message.startswith("put 'x'")


def test_missing_credential_says_what_to_do():
    got = translate(CredentialUnavailableError(message="no identity"), "get P/S")
    assert type(got) is StorageError and "managed identity" in got.message


@pytest.mark.parametrize("conn", [
    "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=abc;EndpointSuffix=core.windows.net",
    "AccountName=a;AccountKey=k;BlobEndpoint=https://a.blob.core.windows.net;"
    "QueueEndpoint=http://127.0.0.1:10001/a",
])
def test_connection_strings_are_for_the_emulator_only(conn):
    from mlops_kit.adapters.azure.factory import build
    from mlops_kit.settings import Settings

    with pytest.raises(MlopsKitError) as info:
        build(Settings(backend="azure", azure_connection_string=conn))
    assert info.value.field == "azure_connection_string" and "managed identity" in info.value.message
    assert "abc" not in info.value.message


def test_cloud_path_needs_an_account_name_and_never_a_key():
    from mlops_kit.adapters.azure.factory import build
    from mlops_kit.settings import Settings

    with pytest.raises(MlopsKitError) as info:
        build(Settings(backend="azure"))
    assert info.value.field == "azure_storage_account"
    parts = build(Settings(backend="azure", azure_storage_account="acct"))  # no request made yet
    client = parts.table._service()
    assert client.url.startswith("https://acct.table.core.windows.net")
    assert type(client.credential).__name__ == "DefaultAzureCredential"
    assert "azure_connection_string" not in repr(Settings(azure_connection_string="x=y"))


def test_missing_sdk_is_a_friendly_error_naming_the_extra():
    code = ("import sys; sys.modules['azure.storage.blob'] = None\n"
            "from mlops_kit.errors import MlopsKitError\n"
            "try:\n    import mlops_kit.adapters.azure.factory\n"
            "except MlopsKitError as e:\n    print(e.message); sys.exit(0)\n"
            "sys.exit(1)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "pip install 'mlops-kit[azure]'" in r.stdout and "azure.storage.blob" in r.stdout


def test_local_backend_never_imports_azure(tmp_path):
    code = ("import sys\nfrom mlops_kit.settings import Settings\nfrom mlops_kit.bootstrap import "
            f"build_backend\nbuild_backend(Settings(workspace={str(tmp_path)!r}))\n"
            "print([m for m in sys.modules if m == 'azure' or m.startswith('azure.')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
