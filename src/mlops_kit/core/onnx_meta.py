"""What serving needs to know about an exported ONNX model. numpy + onnxruntime only (no sklearn).

Exported graphs (core/export.py) have one input per feature, shape [N, 1] (numeric:
tensor(float), categorical: tensor(string)), named as the feature where ONNX allows it: the
converter turns a name ONNX cannot carry ("mean radius", "a.b", "c-d") into a safe one
("mean_radius", ...). The map feature -> input name is stored in the model's metadata
(INPUTS_KEY); every API, report and capture keeps the user's feature names, and only the last
step before onnxruntime (`feed`) uses the input names. And these outputs:
- classifiers: "label" (tensor(int64) or tensor(string), shape [N]) and "probabilities"
  (tensor(float), shape [N, n_classes], columns in the order of `classes`)
- regressors: "variable" (tensor(float), shape [N, 1])
The class labels and feature names are also stored in the model's metadata_props.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "CLASSES_KEY",
    "FEATURES_KEY",
    "INPUTS_KEY",
    "LABEL_OUTPUT",
    "PROBABILITIES_OUTPUT",
    "VALUE_OUTPUT",
    "classes",
    "feed",
    "input_map",
    "output_names",
    "session",
    "session_options",
]

LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
VALUE_OUTPUT = "variable"
CLASSES_KEY = "mlops_kit.classes"
FEATURES_KEY = "mlops_kit.features"
INPUTS_KEY = "mlops_kit.inputs"  # {feature name: ONNX input name}


def output_names(session: Any) -> tuple[str, str | None]:
    """(label-or-value output, probabilities output or None) of an onnxruntime InferenceSession.

    Prefers the conventional names; otherwise a 2-D float output next to another output is the
    probabilities and the other one the label.
    """
    outputs = list(session.get_outputs())
    if not outputs:
        raise ValueError("the ONNX model has no outputs")
    names = [o.name for o in outputs]
    if LABEL_OUTPUT in names and PROBABILITIES_OUTPUT in names:
        return LABEL_OUTPUT, PROBABILITIES_OUTPUT
    if len(outputs) == 1:
        return outputs[0].name, None
    probas = [o for o in outputs if o.type == "tensor(float)" and len(o.shape or []) == 2]
    if len(outputs) == 2 and len(probas) >= 1:
        proba = probas[-1]
        label = next(o for o in outputs if o is not proba)
        return label.name, proba.name
    raise ValueError(f"cannot tell label and probability outputs apart among {names}")


# Graph passes that compare or hash every node's attributes: on a big forest's tree node
# (~100 MB of attributes) they cost ~2 s of the session load and find nothing to share in these
# graphs (the 1-record run time is unchanged: 24 us on the demo model either way).
DISABLED_OPTIMIZERS = ("CommonSubexpressionElimination", "ConstantSharing")


def session_options(ort: Any, threads: int = 1) -> Any:
    """The onnxruntime session options serving uses, and the parity gate with it. Basic graph
    optimisations (constant folding, redundant nodes) keep the 1-record run fast (29 µs vs
    47 µs without, the demo model); the extended ones gain nothing for these graphs and cost
    seconds on a big forest's session load (they copy its tree node)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return opts


def session(ort: Any, model_bytes: bytes, threads: int = 1, *, optimized: bool = False,
            save_optimized: str | None = None) -> Any:
    """An onnxruntime InferenceSession as serving opens one (CPU, session_options).

    optimized: `model_bytes` is the ORT-format graph `optimized_model` saved: loaded with graph
    optimisations off (they ran when it was saved) and its bytes used in place, not copied
    (onnxruntime's session.use_ort_model_bytes_directly; the caller keeps `model_bytes` alive
    as long as the session). save_optimized: a path ending in .ort where onnxruntime writes the
    graph after its optimisations (SessionOptions.optimized_model_filepath; export's
    optimized_model)."""
    opts = session_options(ort, threads)
    if optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.add_session_config_entry("session.load_model_format", "ORT")
        opts.add_session_config_entry("session.use_ort_model_bytes_directly", "1")
        # not session.use_ort_model_bytes_for_initializers: onnxruntime 1.32 refuses it for a
        # node's tensor attributes (opset-5 TreeEnsemble's splits and weights: "should be
        # stored in _ORT_MEM_ADDR_"), and these graphs have no large initializers to share
    if save_optimized is not None:
        opts.optimized_model_filepath = save_optimized
        opts.add_session_config_entry("session.save_model_format", "ORT")
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))


def classes(session: Any) -> list | None:
    """Class labels in the order of the probability columns (None for regressors)."""
    meta = session.get_modelmeta().custom_metadata_map
    raw = meta.get(CLASSES_KEY)
    return None if raw is None else json.loads(raw)


def feature_names(session: Any) -> list[str]:
    meta = session.get_modelmeta().custom_metadata_map
    raw = meta.get(FEATURES_KEY)
    return json.loads(raw) if raw is not None else [i.name for i in session.get_inputs()]


def input_map(session: Any) -> dict[str, str]:
    """Feature name -> ONNX input name. From the metadata; a model exported before the map
    existed has inputs named as its features (it could not pass the parity gate otherwise)."""
    meta = session.get_modelmeta().custom_metadata_map
    raw = meta.get(INPUTS_KEY)
    if raw is not None:
        return dict(json.loads(raw))
    return {name: name for name in (i.name for i in session.get_inputs())}


def feed(inputs: dict[str, str], columns: dict[str, Any]) -> dict[str, Any]:
    """The onnxruntime feed: arrays keyed by feature name, renamed to the graph's inputs."""
    return {inputs[name]: columns[name] for name in inputs}
