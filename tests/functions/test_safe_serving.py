"""Issue 23 items 2 and 2b on the cloud serving paths: the Lambda serve handler under moto
(IAM enforced, serve's own role) and the Azure Functions app on Azurite. Both run the shared
HttpApi; these tests prove the routes reach it, pinned versions load under the function's
permissions, captures carry the pinned version, and shadow/canary never change a status.
The models are churn v1 (champion) and v2 (+ required `contract`), trained locally once."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.safe_change import (
    MODEL,
    build_two_contracts,
    copy_versions,
    mixed_request,
    set_challenger,
    v1_request,
    v2_request,
)
from tests.support import captured_rows

pytestmark = [pytest.mark.filterwarnings("ignore")]
N = 200  # requests per mode on each cloud path (the local test drives 1,000)


@pytest.fixture(scope="module")
def two_contracts(tmp_path_factory, _trained_template):
    from tests.support import make_backend

    return make_backend(build_two_contracts(_trained_template,
                                            tmp_path_factory.mktemp("two") / "ws"))


def check_paths(call, captures, ctx) -> None:
    """The same assertions on every path. `call(method, path, body) -> (status, json)`."""
    status, meta = call("GET", f"/v2/models/{MODEL}/versions/2", None)
    assert status == 200 and meta["versions"] == ["2"], meta
    status, out = call("POST", f"/v1/models/{MODEL}/versions/2:predict",
                       {"instances": [v2_request(1)]})
    assert status == 200 and out["version"] == 2, out
    status, out = call("POST", f"/v2/models/{MODEL}/versions/1/infer", {"inputs": [
        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP32",
         "data": [v]} for k, v in v1_request(2).items() if v is not None]})
    assert status == 200 and out["model_version"] == "1", out
    status, out = call("POST", f"/v1/models/{MODEL}/versions/9:predict",
                       {"instances": [v1_request(1)]})
    assert status == 404 and "no version 9" in out["error"]
    pinned = [r for r in captures() if r["request_id"] and r["version"] == 2]
    assert pinned and {r["role"] for r in pinned} == {"served"}

    differ = 0
    for mode in ("shadow", "canary"):
        set_challenger(ctx, mode, 0.5)
        for i in range(N):
            body = {"instances": [mixed_request(i)]}
            status, _ = call("POST", f"/v1/models/{MODEL}:predict", body)
            alone, _ = call("POST", f"/v1/models/{MODEL}/versions/1:predict", body)
            differ += status != alone
    assert differ == 0


# -- Lambda (moto, IAM enforced) ----------------------------------------------------------
@pytest.mark.iam_enforced
def test_lambda_serve_pins_versions_and_shadow_canary_never_change_a_status(two_contracts):
    from mlops_kit.emulate import context_for
    from mlops_kit.emulate.aws_events import http_api_event
    from tests.moto_support import aws_world

    with aws_world() as w:
        copy_versions(two_contracts, w.backend.ctx)
        serve = w.fns["serve"].handler

        def call(method, path, body):
            event = http_api_event(method, path, {"content-type": "application/json"},
                                   json.dumps(body).encode() if body is not None else b"")
            out = serve(event, context_for(w.topo, "serve"))
            return out["statusCode"], json.loads(out["body"])

        def captures():
            w.fns["serve"].module.drain_captures()  # the flush runs off the response path
            s3 = w.s3
            keys = [o["Key"] for o in s3.list_objects_v2(
                Bucket=w.res.artifact_bucket, Prefix=f"captures/{MODEL}/").get("Contents", [])]
            return [r for k in keys for r in captured_rows(
                s3.get_object(Bucket=w.res.artifact_bucket, Key=k)["Body"].read())]

        check_paths(call, captures, w.backend.ctx)
        # the health counters were written under serve's role, beside the captures
        health = w.s3.list_objects_v2(Bucket=w.res.artifact_bucket,
                                      Prefix=f"captures/_health/{MODEL}/").get("Contents", [])
        assert health
        # the console (same function, same role) reads them: contract, compatibility, health
        page = serve(http_api_event("GET", f"/ui/models/{MODEL}/versions/2", {}, b""),
                     context_for(w.topo, "serve"))
        assert page["statusCode"] == 200, page["body"][:300]
        assert 'id="health"' in page["body"] and "Not readable here" not in page["body"]
        assert "breaks the champion" in page["body"]


# -- Azure Functions app (Azurite) ----------------------------------------------------------
PRINCIPAL = {"x-ms-client-principal-id": "0000-caller", "x-ms-client-principal-idp": "aad"}


def test_azure_serve_pins_versions_and_shadow_canary_never_change_a_status(two_contracts,
                                                                          azurite):
    func = pytest.importorskip("azure.functions")
    from mlops_kit.adapters.azure import clear_clients
    from mlops_kit.adapters.azure.factory import provision
    from mlops_kit.bootstrap import build_backend
    from mlops_kit.emulate.azure_emulator import azure_env
    from mlops_kit.emulate.azure_functions import FunctionsApp
    from mlops_kit.settings import Settings, get_settings

    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**azure_env(azurite.connection_string, uuid.uuid4().hex[:8]),
                     "MLOPSKIT_REFRESH_SECONDS": "0", "MLOPSKIT_CAPTURE_MAX_AGE_S": "0"}.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        clear_clients()
        try:
            provision(Settings())
            app = FunctionsApp.load()
            ops = build_backend(Settings())
            copy_versions(two_contracts, ops.ctx)

            def call(method, path, body):
                found = app.match(method, path)
                assert found, (method, path)
                fn, params = found
                req = func.HttpRequest(method, f"https://app.azurewebsites.net{path}",
                                       headers={"content-type": "application/json",
                                                **PRINCIPAL}, route_params=params,
                                       body=json.dumps(body).encode() if body else b"")
                resp = fn.fn(req)
                return resp.status_code, json.loads(resp.get_body())

            def captures():
                app.module.shell.drain_captures()  # the flush runs off the response path
                store = ops.ctx.store
                return [r for info in store.list(f"captures/{MODEL}/")
                        for r in captured_rows(store.get(info.key))]

            check_paths(call, captures, ops.ctx)
            assert list(ops.ctx.store.list(f"captures/_health/{MODEL}/"))
        finally:
            get_settings.cache_clear()
            clear_clients()
