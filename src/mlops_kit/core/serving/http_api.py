"""The HTTP inference API as a pure function: (method, path, headers, body) -> response.

The local server and the cloud `serve` function are both thin shells around `handle`, so the
contract (KServe V1 `:predict`, Open Inference Protocol V2, JSON errors) is identical everywhere.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mlops_kit import __version__
from mlops_kit.core.layout import NAME_PATTERN
from mlops_kit.core.serving import v2_binary
from mlops_kit.core.serving.service import ModelService
from mlops_kit.errors import MlopsKitError, NotFound, PayloadTooLarge, ValidationError

log = logging.getLogger("mlops_kit.http")
MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
MAX_JSON_DEPTH = 32
# V1 bodies take the champion's compiled decoder first (decoder.V1Decoder): 1,000 records
# 0.78 vs 1.42 ms; one record ~2 µs vs ~5.9 µs (orjson + RecordValidator). It is asked only
# once the champion's routing is cached, so a cold start's first request never imports msgspec.
DECODE_MIN_BYTES = 2  # "{}"

_V1_PREDICT = re.compile(rf"^/v1/models/({NAME_PATTERN})(?:/versions/(\d{{1,9}}))?:predict$")
_V1_MODEL = re.compile(rf"^/v1/models/({NAME_PATTERN})$")
_V2_MODEL = re.compile(rf"^/v2/models/({NAME_PATTERN})(?:/versions/(\d{{1,9}}))?$")
_V2_INFER = re.compile(rf"^/v2/models/({NAME_PATTERN})(?:/versions/(\d{{1,9}}))?/infer$")
_V2_READY = re.compile(rf"^/v2/models/({NAME_PATTERN})(?:/versions/(\d{{1,9}}))?/ready$")
_PUBLIC = ("/v2/health/live", "/v2/health/ready", "/healthz", "/v2", "/openapi.json")
_READ, _WRITE = ("GET", "HEAD", "OPTIONS"), ("POST", "OPTIONS")
_V2_DTYPES = v2_binary.DATATYPES
# What GET /v2/models/{m} declares per feature type (Open Inference Protocol tensor datatypes):
# booleans are BOOL (true/false in JSON, one byte each in binary), text, datetimes and
# categories BYTES. Requests may still send a boolean as FP32/INT 0/1 or as BYTES "yes".
V2_INPUT_DATATYPES = {"numeric": "FP32", "boolean": "BOOL"}
_HOT_PATHS = 256


@dataclass(slots=True)  # built per request: no instance dict
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    raw: bytes | None = None  # a non-JSON payload (console HTML/CSS, V2 binary tensors)

    def json_bytes(self) -> bytes:
        if self.status == 204:  # No Content: no body at all
            return b""
        # orjson: ~5x faster than json.dumps; NaN/inf become null instead of raising
        return orjson.dumps(self.body, option=orjson.OPT_SERIALIZE_NUMPY)

    def payload(self) -> bytes:
        return self.raw if self.raw is not None else self.json_bytes()


def _error(exc: MlopsKitError) -> Response:
    return Response(exc.status, exc.to_dict())


def _depth_ok(obj: Any) -> bool:
    """No value nested deeper than MAX_JSON_DEPTH. Level by level over containers only (no
    recursion, no call per scalar): 1.3 ms -> 0.78 ms for a 1,000-record request."""
    level, depth = [obj] if isinstance(obj, (dict, list)) else [], 0
    while level:
        deeper = []
        for o in level:
            children = o.values() if isinstance(o, dict) else o
            if depth >= MAX_JSON_DEPTH and children:
                return False  # a child would sit deeper than the limit
            deeper += [c for c in children if isinstance(c, (dict, list))]
        level, depth = deeper, depth + 1
    return True


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _stdlib_loads(body: bytes | str) -> Any:
    """The json module's reading (and error messages): numbers out of double or 64-bit range
    parse, so validation names the field; NaN / Infinity literals are refused."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValidationError("body: JSON nested too deeply", field="body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"body: not valid JSON ({str(exc)[:80]})", field="body") from None


def parse_json_body(body: bytes | str | None) -> dict[str, Any]:
    if body is None or body == b"" or body == "":
        raise ValidationError("body: a JSON object is required", field="body")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body: larger than {MAX_BODY_BYTES} bytes", field="body")
    try:
        data = orjson.loads(body)  # ~3x faster than json.loads on a 1-record request
    except orjson.JSONDecodeError:
        data = _stdlib_loads(body)  # what orjson refuses beyond JSON's grammar (1e999, 2**70)
    if not isinstance(data, dict):
        raise ValidationError("body: must be a JSON object", field="body")
    # Nesting depth needs that many '{' or '['; a small request cannot be too deep.
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH \
            and not _depth_ok(data):
        raise ValidationError(f"body: JSON nested deeper than {MAX_JSON_DEPTH}", field="body")
    return data


def v2_to_records(data: dict[str, Any], feature_names: list[str], *,
                  nullable: frozenset[str] = frozenset(), ignore_unknown: bool = False,
                  tail: memoryview | None = None,
                  ignore: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Open Inference Protocol request -> records. One input tensor per feature, shape [N] or
    [N, 1], flat `data` (row-major) or binary data after the JSON header (v2_binary). As for
    V1, an unknown tensor is a 400 unless the spec ignores unknown fields, and a missing one
    is a 400 unless its feature is nullable."""
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValidationError("inputs: must be a non-empty list of tensors", field="inputs")
    raw = v2_binary.take_binary(inputs, tail)
    columns: dict[str, list] = {}
    n_rows: int | None = None
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise ValidationError(f"inputs[{i}]: must be an object", field="inputs")
        name = tensor.get("name")
        if isinstance(name, str) and name not in feature_names \
                and (ignore_unknown or name in ignore):
            continue
        if name not in feature_names:
            raise ValidationError(
                f"inputs[{i}].name: {str(name)[:40]!r} is not a feature of this model "
                f"({feature_names})", field="inputs",
            )
        shape, dtype, values = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
        if not isinstance(shape, list) or not shape or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise ValidationError(f"inputs[{i}].shape: must be a list of sizes", field=name)
        if not isinstance(dtype, str) or dtype not in _V2_DTYPES:
            raise ValidationError(f"inputs[{i}].datatype: {str(dtype)[:20]!r} is unknown", field=name)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ValidationError(f"inputs[{i}].shape: must be [N] or [N, 1]", field=name)
        if raw[i] is not None:
            if values is not None:
                raise ValidationError(f"inputs[{i}]: both data and binary_data_size", field=name)
            decoded = v2_binary.decode_tensor(raw[i], dtype, shape[0], f"inputs[{i}]")
            flat = decoded.tolist() if isinstance(decoded, np.ndarray) else decoded
        elif not isinstance(values, list):
            raise ValidationError(f"inputs[{i}].data: must be a list", field=name)
        else:
            flat = values[0] if len(values) == 1 and isinstance(values[0], list) else values
            flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in flat]
        if len(flat) != shape[0]:
            raise ValidationError(
                f"inputs[{i}].data: has {len(flat)} values but shape says {shape[0]}", field=name
            )
        if n_rows is not None and shape[0] != n_rows:
            raise ValidationError(f"inputs[{i}].shape: all inputs need the same N", field=name)
        n_rows = shape[0]
        columns[name] = flat
    missing = [n for n in feature_names if n not in columns and n not in nullable]
    if missing:
        raise ValidationError(f"inputs: missing tensor for feature {missing[0]!r}", field=missing[0])
    if n_rows is None:
        raise ValidationError("inputs: no tensor for a feature of this model", field="inputs")
    present = [n for n in feature_names if n in columns]
    return [{n: columns[n][r] for n in present} for r in range(n_rows)]


def _pinned(m: re.Match) -> int | None:
    """The version a /versions/{v}/ path pins, or None."""
    return int(m.group(2)) if m.lastindex and m.lastindex >= 2 and m.group(2) else None


class HttpApi:
    def __init__(
        self,
        service: ModelService,
        *,
        authorize: Callable[[Mapping[str, str]], None] | None = None,
        openapi: Callable[[], dict] | None = None,
        ui: Callable[[str, str, Mapping[str, str], bytes | None], Response] | None = None,
    ) -> None:
        self.service = service
        self.authorize = authorize
        self.openapi = openapi
        self.ui = ui  # the read-only console (mlops_kit.console), mounted under /ui/
        # inference paths already matched (path -> its match): the warm path skips the route
        # checks and both regexes; bounded, so made-up model names cannot grow it
        # (its match, model, pinned version): the path's groups read once
        self._hot: dict[str, tuple[re.Match, str, int | None]] = {}

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
        request_id: str | None = None, *, authorized: bool = False,
    ) -> Response:
        """authorized: the shell already checked `authorize` on these headers (the local
        server does, from the head, before it reads a body): not checked twice."""
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        request_id = headers.get("x-request-id") or request_id
        if request_id is not None and (len(request_id) > 128 or not request_id.isprintable()):
            request_id = None
        try:
            return self._route(method.upper(), path.split("?", 1)[0] if "?" in path else path,
                               headers, body, request_id, authorized)
        except MlopsKitError as exc:
            if exc.status >= 500:
                log.error("request failed: %s", exc.message)
                return Response(exc.status, {"error": "internal error", "code": exc.code})
            return _error(exc)
        except Exception:  # noqa: BLE001 - never leak internals to clients
            log.exception("unhandled error serving %s %s", method, path[:100])
            return Response(500, {"error": "internal error", "code": "internal_error"})

    @staticmethod
    def allowed_methods(path: str) -> tuple[str, ...] | None:
        """The methods a path answers (the Allow header); None for a path that does not exist."""
        if _V1_PREDICT.fullmatch(path) or _V2_INFER.fullmatch(path):  # the hot paths first
            return _WRITE
        if path in _PUBLIC or _V1_MODEL.fullmatch(path) or _V2_MODEL.fullmatch(path) \
                or _V2_READY.fullmatch(path):
            return _READ
        return None

    def _route(self, method, path, headers, body, request_id, authorized=False) -> Response:
        if method == "POST" and (hot := self._hot.get(path)) is not None:
            # an inference path seen before: what the checks below decide for it is known
            # (not the console, POST allowed, not public), so straight to auth and scoring
            if self.authorize is not None and not authorized:
                self.authorize(headers)
            return self._inference(hot, headers, body, request_id)
        if self.ui is not None and (path == "/ui" or path.startswith("/ui/")):
            return self.ui(method, path, headers, body)  # the console applies the same auth
        allowed = self.allowed_methods(path)
        if method == "OPTIONS":  # no auth: it says what a path accepts, nothing more
            if allowed is None and path != "*":
                raise NotFound(f"path {path[:100]!r} not found", field="path")
            return Response(204, {}, {"allow": ", ".join(allowed or ("GET", "HEAD", "POST",
                                                                       "OPTIONS"))})
        if allowed is not None and method not in allowed:
            return Response(405, {"error": f"method {method[:20]} not allowed; use "
                                           f"{' or '.join(m for m in allowed if m != 'OPTIONS')}",
                                  "code": "method_not_allowed"},
                            {"content-type": "application/json", "allow": ", ".join(allowed)})
        if method == "HEAD":
            method = "GET"  # the shells send the headers of the GET answer without its body
        if path in ("/v2/health/live", "/v2/health/ready", "/healthz"):
            return Response(200, {"live": True, "ready": True})
        if path == "/v2":
            return Response(200, {"name": "mlops-kit", "version": __version__,
                                  "extensions": ["binary_tensor_data"]})
        if path == "/openapi.json" and self.openapi is not None:
            return Response(200, self.openapi())
        if self.authorize is not None and not authorized:
            self.authorize(headers)
        if m := (_V1_PREDICT.fullmatch(path) or _V2_INFER.fullmatch(path)):
            hot = (m, m.group(1), _pinned(m))
            if len(self._hot) < _HOT_PATHS:
                self._hot[path] = hot
            return self._inference(hot, headers, body, request_id)
        if m := (_V1_MODEL.fullmatch(path) or _V2_MODEL.fullmatch(path)):
            meta = self._check_version(m) if m.re is _V2_MODEL else self.service.metadata(m.group(1))
            if path.startswith("/v2/"):
                return Response(200, self._v2_metadata(meta))
            return Response(200, meta)
        if m := _V2_READY.fullmatch(path):
            self._check_version(m)
            return Response(200, {"name": m.group(1), "ready": True})
        raise NotFound(f"path {path[:100]!r} not found", field="path")

    def _inference(self, hot: tuple[re.Match, str, int | None], headers: Mapping[str, str],
                   body: bytes | None, request_id: str | None) -> Response:
        m, model, version = hot
        started = time.perf_counter()
        try:
            if m.re is _V1_PREDICT:
                resp = self._v1_predict(model, version, body, request_id)
            else:
                head, tail = v2_binary.split_body(body or b"", headers.get(v2_binary.HEADER))
                resp = self._v2_infer(model, parse_json_body(head), tail, request_id, version)
        except Exception as exc:
            status = exc.status if isinstance(exc, MlopsKitError) else 500
            self._count(model, getattr(exc, "served_version", version), status, started)
            raise
        # counted in the serving health of its model and version (the version that answered;
        # for a refusal, the one whose contract refused it)
        answered = resp.body
        v = answered.get("version")
        if v is None:
            v = answered.get("model_version")
        self._count(model, int(v) if v is not None else version, resp.status, started)
        return resp

    def _v1_predict(self, model: str, version: int | None, body: bytes | None,
                    request_id: str | None) -> Response:
        if version is None and type(body) is bytes \
                and DECODE_MIN_BYTES <= len(body) <= MAX_BODY_BYTES \
                and (decoded := self.service.v1_feed(model, body)) is not None:
            # the champion's compiled decoder took the whole body (V1Decoder): the records
            # are parsed only if another version needs them
            out = self.service.champion_answer(model, decoded, request_id)
            if out is None:
                out = self.service.predict(model, lambda: parse_json_body(body)["instances"],
                                           request_id=request_id, decoded=decoded)
            return Response(200, out, {"content-type": "application/json"})
        data = parse_json_body(body)
        if "instances" not in data:
            raise ValidationError("instances: field required", field="instances")
        return Response(200, self.service.predict(model, data["instances"],
                                                  request_id=request_id, version=version))

    def _count(self, model: str, version: int | None, status: int, started: float) -> None:
        if version is None and status == 404:
            return  # no such model: names from the path are not counted (nor stored)
        try:
            self.service.health.record(model, version, status,
                                       (time.perf_counter() - started) * 1000)
        except Exception:  # noqa: BLE001 - counting never fails a request
            log.exception("serving health: count failed")

    def _check_version(self, m: re.Match) -> dict[str, Any]:
        """/v2/models/{name}[/versions/{v}]/...: the champion, or a pinned registered version."""
        return self.service.metadata(m.group(1), copy_out=False, version=_pinned(m))

    def _v2_metadata(self, meta: dict[str, Any]) -> dict[str, Any]:
        inputs = [
            {"name": f["name"], "datatype": V2_INPUT_DATATYPES.get(f["type"], "BYTES"),
             "shape": [-1, 1]}
            for f in meta["features"]
        ]
        outputs = [{"name": "label", "datatype": "BYTES" if meta["classes"] and isinstance(
            meta["classes"][0], str) else ("INT64" if meta["classes"] else "FP32"),
                    "shape": [-1]}]
        if meta["classes"]:
            outputs.append({"name": "probabilities", "datatype": "FP32",
                            "shape": [-1, len(meta["classes"])]})
        return {"name": meta["name"], "versions": [str(meta["version"])], "platform": "onnxruntime",
                "inputs": inputs, "outputs": outputs}

    def _v2_infer(self, model: str, data: dict[str, Any], tail: memoryview | None,
                  request_id: str | None, version: int | None = None) -> Response:
        meta = self.service.metadata(model, copy_out=False, version=version)
        names = [f["name"] for f in meta["features"]]
        may_miss = frozenset(f["name"] for f in meta["features"]
                             if f["nullable"] or f.get("default") is not None)
        records = v2_to_records(
            data, names, nullable=may_miss, ignore_unknown=meta.get("unknown_fields") == "ignore",
            tail=tail, ignore=frozenset(meta.get("ignored_fields") or ()))
        rid = data.get("id") if isinstance(data.get("id"), str) else request_id
        inf = self.service.infer(model, lambda p, ignore: p.inputs_from_request(records, ignore),
                                 request_id=rid, version=version)
        labels, proba = inf.labels, inf.probabilities
        n = int(labels.shape[0])
        available = {"label": v2_binary.Output("label", v2_binary.label_datatype(labels), [n],
                                               labels)}
        if proba is not None:
            available["probabilities"] = v2_binary.Output(
                "probabilities", "FP32", [n, int(proba.shape[1])], proba, decimals=6)
        outputs, parts = [], []
        for name, binary in v2_binary.wanted_outputs(data, list(available)).items():
            tensor, raw = available[name].tensor(binary)
            outputs.append(tensor)
            if raw is not None:
                parts.append(raw)
        body = {"model_name": model, "model_version": str(inf.predictor.version),
                "outputs": outputs, "id": inf.request_id}
        if not parts:
            return Response(200, body)
        head = orjson.dumps(body)
        return Response(200, body, raw=head + b"".join(parts), headers={
            "content-type": "application/octet-stream",
            v2_binary.HEADER: str(len(head))})
