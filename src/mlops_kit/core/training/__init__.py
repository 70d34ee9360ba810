"""Training: the scikit-learn pipeline built from the spec, ONNX export (skl2onnx) with the
parity gate (labels and probabilities against sklearn on the holdout), and the train use case
(reserve a version, write artifacts, register last, apply the promotion gates).

Names are imported lazily: importing the package does not import scikit-learn."""

from typing import Any

_EXPORTS = {
    "train": "mlops_kit.core.training.fit",
    "read_frame": "mlops_kit.core.training.fit",
    "TrainResult": "mlops_kit.core.training.fit",
    "to_onnx": "mlops_kit.core.training.export",
    "parity_check": "mlops_kit.core.training.export",
    "ParityResult": "mlops_kit.core.training.export",
    "train_job": "mlops_kit.core.training.usecase",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
