"""The Azure Functions app (functions/azure/function_app.py) without the host: the functions'
bindings as the worker indexes them, host.json against the topology, and func.QueueMessage /
func.HttpRequest / func.TimerRequest objects into the decorated functions, on Azurite."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import yaml

func = pytest.importorskip("azure.functions")

from mlops_kit.topology import default_topology  # noqa: E402
from tests.support import FAST_SPEC  # noqa: E402

PRINCIPAL = {"x-ms-client-principal-id": "0000-caller", "x-ms-client-principal-idp": "aad"}


@pytest.fixture(scope="module")
def app(azurite):
    """The app indexed against fresh resources on the session's Azurite."""
    from mlops_kit.adapters.azure import clear_clients
    from mlops_kit.adapters.azure.factory import build, provision
    from mlops_kit.emulate.azure_emulator import azure_env
    from mlops_kit.emulate.azure_functions import FunctionsApp
    from mlops_kit.settings import Settings, get_settings

    suffix = uuid.uuid4().hex[:8]
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**azure_env(azurite.connection_string, suffix),
                     "MLOPSKIT_REFRESH_SECONDS": "0"}.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        clear_clients()
        names = provision(Settings())
        loaded = FunctionsApp.load()
        adapters = build(Settings())
        yield loaded, names, adapters
        get_settings.cache_clear()
        clear_clients()


def functions(app):
    return app[0].functions  # indexed once, as the worker does


def user(app, name):
    return functions(app)[name].get_user_function()


def message(body, dequeue_count=1):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    from azure.functions.queue import QueueMessage

    return QueueMessage(id=uuid.uuid4().hex, body=raw, dequeue_count=dequeue_count)


def alerts(app, since=0):
    return [m["message"] for m in app[2].notifier.messages()][since:]


def test_bindings_are_the_topologys(app):
    topo, names = default_topology(), app[1]
    fns = functions(app)
    assert names.queues["validate"].startswith("validate") and names.queues["validate"] != "validate"
    for fn, queue in (("validate", "validate"), ("train", "train")):
        trigger = json.loads(fns[fn].get_function_json())["bindings"][0]
        assert trigger == {"type": "queueTrigger", "direction": "IN", "name": "msg",
                           "queueName": names.queues[queue], "connection": "MLOPSKIT_QUEUES"}
    timer = json.loads(fns["monitor"].get_function_json())["bindings"][0]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "0 0 * * * *"  # rate(1 hour)
    http = {(b["methods"][0], b["route"]): b["authLevel"] for f in fns.values()
            for b in json.loads(f.get_function_json())["bindings"] if b["type"] == "httpTrigger"}
    assert http == {(m, app[0].module.azure_route(p)): "ANONYMOUS" for m, p in topo.http.routes}
    assert ("POST", "v1/models/{model}:predict") in http
    assert ("GET", "ui/{*proxy}") in http  # API Gateway's {proxy+} as a catch-all


@pytest.mark.parametrize("only, expected", [
    ("train", {"train"}), ("monitor", {"monitor"}),
    ("serve", {f"serve_{m}" for m in ("post_v1_models_model_predict", "get_v1_models_model",
                                       "post_v2_models_model_infer", "get_v2_models_model",
                                       "get_v2_models_model_ready", "get_v2_health_ready",
                                       "get_v2_health_live", "get_ui", "get_ui_proxy",
                                       "post_v1_models_model_versions_version_predict",
                                       "post_v2_models_model_versions_version_infer",
                                       "get_v2_models_model_versions_version",
                                       "get_v2_models_model_versions_version_ready")}),
])
def test_one_app_per_function_registers_only_its_triggers(app, monkeypatch, only, expected):
    from mlops_kit.emulate.azure_functions import FunctionsApp
    from mlops_kit.settings import get_settings

    monkeypatch.setenv("MLOPSKIT_FUNCTION", only)
    get_settings.cache_clear()
    try:
        assert set(FunctionsApp.load().functions) == expected
        monkeypatch.setenv("MLOPSKIT_FUNCTION", "predict")
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="MLOPSKIT_FUNCTION='predict': not one of validate"):
            FunctionsApp.load()
    finally:
        monkeypatch.delenv("MLOPSKIT_FUNCTION")
        get_settings.cache_clear()


def test_parameters_are_annotated_with_the_binding_types_the_worker_checks(app):
    import inspect

    expected = {"queueTrigger": func.QueueMessage, "httpTrigger": func.HttpRequest,
                "timerTrigger": func.TimerRequest}
    for name, f in functions(app).items():
        trigger = f.get_trigger()
        sig = inspect.signature(f.get_user_function())
        annotation = sig.parameters[trigger.name].annotation  # a class, never a string
        assert isinstance(annotation, type), name
        assert issubclass(annotation, expected[trigger.get_binding_name()]), name
        if trigger.get_binding_name() == "httpTrigger":
            assert sig.return_annotation is func.HttpResponse, name


def test_host_json_carries_the_topologys_retry_semantics(app):
    topo, host = default_topology(), app[0].host
    assert {q.max_receives for q in topo.queues} == {host.max_dequeue_count}
    assert host.batch_size == min(q.batch_size for q in topo.queues)
    assert host.visibility_timeout_s > 0  # a transient fault gets time to clear
    assert host.function_timeout_s >= max(topo.function(q.consumer).timeout_s for q in topo.queues)
    assert host.route_prefix == app[0].module.ROUTE_PREFIX == ""
    assert host.message_encoding == "base64"  # what Event Grid writes to a storage queue


def test_routes_match_kserve_paths_with_the_colon(app):
    found = app[0].match("POST", "/v1/models/churn:predict")
    assert found and found[0].route == "v1/models/{model}:predict" and found[1] == {"model": "churn"}
    # the GET route's {model} would swallow ":predict": the same function answers 405 then
    assert app[0].match("GET", "/v1/models/churn:predict")[1] == {"model": "churn:predict"}
    assert app[0].match("PUT", "/v1/models/churn:predict") is None  # the host's 404
    assert app[0].match("GET", "/v2/models/churn/ready")[0].route == "v2/models/{model}/ready"
    assert app[0].match("GET", "/api/v2/health/ready") is None  # no route prefix
    found = app[0].match("GET", "/ui/models/churn/versions/1")
    assert found[0].route == "ui/{*proxy}" and found[1] == {"proxy": "models/churn/versions/1"}
    assert app[0].match("GET", "/ui/")[1] == {"proxy": ""}  # a catch-all may be empty
    assert app[0].match("GET", "/v2/health/ready/")[0].route == "v2/health/ready"


def request(method, path, body=None, headers=None):
    return func.HttpRequest(method, f"https://app.azurewebsites.net{path}",
                            headers={"content-type": "application/json", **(headers or {})},
                            body=json.dumps(body).encode() if body is not None else b"")


def test_serve_needs_the_platforms_principal_and_answers_json(app):
    serve = user(app, "serve_post_v1_models_model_predict")
    resp = serve(request("POST", "/v1/models/churn:predict", {"instances": [{}]}))
    assert resp.status_code == 401 and resp.mimetype == "application/json"
    assert json.loads(resp.get_body())["code"] == "unauthorized"
    # a client cannot forge the principal at the function: the platform strips and sets it;
    # here it is present as the platform would set it
    resp = serve(request("POST", "/v1/models/churn:predict", {"instances": [{}]}, PRINCIPAL))
    assert resp.status_code == 404
    assert json.loads(resp.get_body()) == {"error": "model 'churn' has no champion to serve",
                                          "code": "not_found", "field": "model"}
    resp = serve(request("POST", "/v1/models/churn:predict", None, PRINCIPAL))
    assert resp.status_code == 400 and json.loads(resp.get_body())["field"] == "body"
    ui = user(app, "serve_get_ui_proxy")(request("GET", "/ui/models/churn"))
    assert ui.status_code == 401 and json.loads(ui.get_body())["code"] == "unauthorized"
    health = user(app, "serve_get_v2_health_ready")(request("GET", "/v2/health/ready"))
    assert health.status_code == 200 and json.loads(health.get_body())["ready"] is True


def grid_message(names, key, kind="Microsoft.Storage.BlobCreated"):
    return message({"subject": f"/blobServices/default/containers/{names.containers['data']}"
                               f"/blobs/{key}", "eventType": kind, "id": uuid.uuid4().hex,
                    "data": {"eTag": "0x8D", "api": "PutBlob"}, "dataVersion": "",
                    "metadataVersion": "1", "eventTime": "2026-01-01T00:00:00Z",
                    "topic": "/subscriptions/x"})


def test_validate_acknowledges_final_failures_after_reporting_them(app):
    validate = user(app, "validate")
    store, names = app[2].store, app[1]
    before = len(alerts(app))
    store.put("datasets/nospec/a.csv", b"x\n1\n")
    assert validate(grid_message(names, "datasets/nospec/a.csv")) is None  # returns: acked
    assert validate(message(b"{not json")) is None
    assert validate(grid_message(names, "datasets/nospec/a.csv",
                                 kind="Microsoft.Storage.BlobDeleted")) is None
    nospec, malformed = alerts(app, before)
    # no spec: reported as a failed job (or quarantined with the reason, issue 12's use case)
    assert nospec["event"] in ("job_failed", "quarantined") and nospec["model"] == "nospec"
    assert "datasets/nospec/a.csv" in (nospec.get("key"), nospec.get("dataset_key"))
    assert (malformed["event"], malformed["error_type"]) == ("job_failed", "ValidationError")


def test_validate_quarantines_a_bad_upload_from_an_event_grid_message(app):
    from mlops_kit.core.synthetic import broken_churn_csv

    store, names = app[2].store, app[1]
    store.put("specs/churn.yaml", yaml.safe_dump(FAST_SPEC).encode())
    store.put("datasets/churn/broken.csv", broken_churn_csv())
    body = grid_message(names, "datasets/churn/broken.csv")
    user(app, "validate")(body)
    assert store.exists("quarantine/churn/broken.csv")
    report = json.loads(store.get("quarantine/churn/broken.csv.report.json"))
    assert report["dataset_key"] == "datasets/churn/broken.csv"
    assert app[2].train_queue.depth() == 0


def test_retryable_failures_raise_so_the_host_retries(app, monkeypatch):
    from mlops_kit.errors import TransientError

    runtime = app[0].module.runtime
    ctx = runtime.backend().ctx

    class Throttled:
        """The store as Azure answers under throttling (503 ServerBusy -> TransientError)."""

        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise TransientError(f"{name}: service unavailable (ServerBusy)")
            return fail

    monkeypatch.setattr(ctx, "store", Throttled())
    before = len(alerts(app))
    with pytest.raises(TransientError):
        user(app, "validate")(grid_message(app[1], "datasets/churn/any.csv"))
    job = {"type": "train", "model": "churn", "dataset_key": "datasets/churn/any.csv",
           "sha256": "0" * 64}
    with pytest.raises(TransientError):
        user(app, "train")(message(base64.b64decode(base64.b64encode(json.dumps(job).encode()))))
    assert alerts(app, before) == []  # retried, not reported yet
    # the last attempt (the host poisons the message next) says so, then still raises
    last = app[0].host.max_dequeue_count
    with pytest.raises(TransientError):
        user(app, "train")(message(json.dumps(job).encode(), dequeue_count=last))
    [dead] = alerts(app, before)
    assert dead["event"] == "dead_letter" and dead["queue"] == app[1].queues["train"]
    assert dead["model"] == "churn" and dead["key"] == "datasets/churn/any.csv"
    assert dead["receive_count"] == last and "ServerBusy" in dead["error"]


def test_train_acknowledges_a_message_that_is_no_job(app):
    before = len(alerts(app))
    assert user(app, "train")(message({"model": "churn"})) is None
    [note] = alerts(app, before)
    assert note["stage"] == "train" and note["error_type"] == "ValidationError"


def test_monitor_timer_runs_every_model(app):
    from azure.functions.timer import TimerRequest

    # churn has no champion here: skipped, not failed
    assert user(app, "monitor")(TimerRequest(past_due=True)) is None


def test_a_big_scoring_upload_fans_out_over_the_validate_queue_on_azurite(app):
    """Batch scoring scale-out on Azure: validate plans the chunks from an Event Grid message,
    sends one message per chunk to its own storage queue; each chunk, delivered twice, counts
    once in the Table (ETag-conditional transaction) and the last writes the manifest."""
    from mlops_kit.core.synthetic import churn_csv

    store, names = app[2].store, app[1]
    ctx = app[0].module.runtime.backend().ctx
    store.put("specs/churn.yaml", yaml.safe_dump(FAST_SPEC).encode())
    store.put("datasets/churn/train.csv", churn_csv(600, seed=7))
    user(app, "validate")(grid_message(names, "datasets/churn/train.csv"))
    [job] = app[2].train_queue.receive(1)
    app[2].train_queue.ack(job)
    user(app, "train")(message(job.body))
    assert ctx.registry.get_alias("churn", "champion")
    validate_queue = app[2].validate_queue
    while old := validate_queue.receive(10):  # anything earlier tests left
        for m in old:
            validate_queue.ack(m)
    ctx.scoring_chunk_bytes = 20_000
    try:
        store.put("scoring/churn/big.csv", churn_csv(1000, seed=12))
        user(app, "validate")(grid_message(names, "scoring/churn/big.csv"))
        chunks = []
        while msgs := validate_queue.receive(10):
            for m in msgs:
                chunks.append(m.body)
                validate_queue.ack(m)
        assert len(chunks) >= 3 and all("score_chunk" in c for c in chunks)
        for body in chunks * 2:  # every chunk delivered twice
            assert user(app, "validate")(message(body)) is None
    finally:
        ctx.scoring_chunk_bytes = 64 << 20
    manifest = json.loads(store.get("predictions/churn/big/_manifest.json"))
    assert manifest["rows_in"] == manifest["rows_scored"] == 1000
    assert manifest["chunked"] is True and len(manifest["chunks"]) == len(chunks)
    assert validate_queue.depth() == 0
