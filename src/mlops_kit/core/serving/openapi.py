"""The OpenAPI 3.1 document of the inference endpoint (served at /openapi.json)."""

from __future__ import annotations

from mlops_kit import __version__
from mlops_kit.core.layout import NAME_PATTERN

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"}, "code": {"type": "string"},
                         "field": {"type": "string"}}}
_ERR_RESP = {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
_MODEL = {"name": "model", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": f"^{NAME_PATTERN}$"}}


_VERSION = {"name": "version", "in": "path", "required": True,
            "description": "a registered version (pinned: answers whatever the aliases say)",
            "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999}}


def _pinned(operation: dict) -> dict:
    """The same operation on /versions/{version}/: any registered version answers."""
    method, op = next(iter(operation.items()))
    return {method: {**op, "parameters": [*op["parameters"], _VERSION]}}


def openapi_document() -> dict:
    doc = _document()
    paths = doc["paths"]
    paths["/v1/models/{model}/versions/{version}:predict"] = _pinned(
        paths["/v1/models/{model}:predict"])
    paths["/v2/models/{model}/versions/{version}"] = _pinned(paths["/v2/models/{model}"])
    paths["/v2/models/{model}/versions/{version}/infer"] = _pinned(
        paths["/v2/models/{model}/infer"])
    return doc


def _document() -> dict:
    scalar = {"type": ["number", "string", "null"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlops-kit inference", "version": __version__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/v2/health/ready": {"get": {"security": [], "responses": {"200": {
                "description": "ready"}}}},
            "/v1/models/{model}:predict": {"post": {
                "summary": "Predict (KServe V1)",
                "parameters": [_MODEL],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["instances"],
                    "properties": {"instances": {"type": "array", "minItems": 1, "items": {
                        "oneOf": [{"type": "object", "additionalProperties": scalar},
                                  {"type": "array", "items": scalar}]}}}}}}},
                "responses": {
                    "200": {"description": "predictions", "content": {"application/json": {
                        "schema": {"type": "object", "required": ["predictions", "model",
                                                                  "version"],
                                   "properties": {"predictions": {"type": "array"},
                                                  "probabilities": {"type": "array"},
                                                  "model": {"type": "string"},
                                                  "version": {"type": "integer"}}}}}},
                    "400": _ERR_RESP, "401": _ERR_RESP, "404": _ERR_RESP, "413": _ERR_RESP},
            }},
            "/v2/models/{model}": {"get": {"parameters": [_MODEL], "responses": {
                "200": {"description": "model metadata (Open Inference Protocol)"},
                "401": _ERR_RESP, "404": _ERR_RESP}}},
            "/v2/models/{model}/infer": {"post": {
                "summary": "Infer (Open Inference Protocol / KServe V2)",
                "parameters": [_MODEL],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["inputs"], "properties": {
                        "id": {"type": "string"},
                        "inputs": {"type": "array", "items": {
                            "type": "object", "required": ["name", "shape", "datatype", "data"],
                            "properties": {"name": {"type": "string"},
                                           "shape": {"type": "array", "items": {"type": "integer"}},
                                           "datatype": {"type": "string"},
                                           "data": {"type": "array"}}}}}}}}},
                "responses": {"200": {"description": "outputs"}, "400": _ERR_RESP,
                              "401": _ERR_RESP, "404": _ERR_RESP, "413": _ERR_RESP},
            }},
        },
    }
