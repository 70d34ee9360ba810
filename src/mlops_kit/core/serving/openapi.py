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


def openapi_document() -> dict:
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
