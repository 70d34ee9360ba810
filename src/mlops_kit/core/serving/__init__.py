"""Serving: the onnxruntime predictor, the model service (champion / canary / shadow routing,
hot reload when an alias moves), the HTTP API (KServe V1 and Open Inference Protocol V2
codecs), request capture and the OpenAPI document. Imports numpy, onnxruntime and pydantic
only: no scikit-learn, scipy, skl2onnx or pyarrow (an import-linter contract enforces it).

Names are imported lazily: capture and the codecs do not pull in onnxruntime."""

from typing import Any

_EXPORTS = {
    "Predictor": "mlops_kit.core.serving.predictor",
    "ModelService": "mlops_kit.core.serving.service",
    "HttpApi": "mlops_kit.core.serving.http_api",
    "Response": "mlops_kit.core.serving.http_api",
    "CaptureBuffer": "mlops_kit.core.capture.buffer",
    "openapi_document": "mlops_kit.core.serving.openapi",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
