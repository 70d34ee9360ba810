"""Fast ONNX export of large random forests / extra trees (classifier or regressor).

skl2onnx builds the TreeEnsemble node attribute by attribute through onnx.helper (a Python
call and type check per element: 3.6M nodes for 100 trees grown on 80k rows) and then copies
the huge node several times while it assembles and optimises the graph. Here skl2onnx converts
the pipeline with the forest cut to its first tree (all the graph around it: imputers,
encoders, the outputs, the options), and the tree node's attributes are then refilled in place
for the whole forest from numpy arrays (tree_attrs.tree_arrays: skl2onnx's values, computed
per tree), serialized in numpy and parsed once by protobuf. Same operator, same opset, same
values as skl2onnx would write (tests compare the attributes and the predictions bit for bit;
the parity gate checks every export)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from mlops_kit.core.training.tree_attrs import fast_tree_attributes, tree_arrays

FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier,
           ExtraTreesRegressor)
MIN_TREES = 2  # one tree: nothing to gain
_OPS = {"TreeEnsembleClassifier": True, "TreeEnsembleRegressor": False}
_FLOATS = ("nodes_values", "class_weights", "target_weights")
_STRINGS = ("nodes_modes",)
_FLOATS_FIELD, _INTS_FIELD, _STRINGS_FIELD = 7, 8, 9  # AttributeProto field numbers


def applies(pipeline: Any) -> bool:
    est = pipeline.steps[-1][1]
    return (isinstance(est, FORESTS) and getattr(est, "n_outputs_", 1) == 1
            and len(getattr(est, "estimators_", [])) >= MIN_TREES)


def convert(pipeline: Any, convert_stub: Callable[[Any, Any], onnx.ModelProto]
            ) -> tuple[onnx.ModelProto, Callable[[], None]]:
    """(the graph with the forest's node holding one tree, a function that fills the node
    for the whole forest). convert_stub(pipeline, estimator) runs skl2onnx (options keyed by
    the estimator). Check the graph before filling: the checker serialises the whole model."""
    name, forest = pipeline.steps[-1]
    stub = copy.copy(forest)
    stub.estimators_ = forest.estimators_[:1]
    stub.n_estimators = 1
    stub_pipeline = copy.copy(pipeline)
    stub_pipeline.steps = [*pipeline.steps[:-1], (name, stub)]
    with fast_tree_attributes():
        model = convert_stub(stub_pipeline, stub)
    nodes = [n for n in model.graph.node if n.domain == "ai.onnx.ml" and n.op_type in _OPS]
    if len(nodes) != 1:
        raise ValueError(f"expected one tree-ensemble node, found {len(nodes)}")
    node = nodes[0]
    return model, lambda: fill(node, forest, classifier=_OPS[node.op_type])


def fill(node: onnx.NodeProto, forest: Any, *, classifier: bool) -> None:
    """Rewrite the tree attributes of `node` for every tree of `forest` (weights 1/n_trees,
    as skl2onnx's converter uses), keeping the node's other attributes. The optional
    nodes_hitrates (all 1.0, unused) and nodes_missing_value_tracks_true (all 0, the default)
    are left out: ~25% of the node."""
    weight = 1.0 / len(forest.estimators_)
    parts = [tree_arrays(classifier, est.tree_, i, weight, 0, classifier, True, optional=False)
             for i, est in enumerate(forest.estimators_)]
    keep = [a for a in node.attribute if a.name not in parts[0]]
    del node.attribute[:]
    node.attribute.extend(keep)
    for key in list(parts[0]):
        values = np.concatenate([p[key] for p in parts])
        for p in parts:
            del p[key]  # hold one attribute's worth of arrays at a time
        node.attribute.add().MergeFromString(encode_attribute(key, values))


def encode_attribute(name: str, values: np.ndarray) -> bytes:
    """A serialized AttributeProto for a large repeated attribute, encoded in numpy (the
    protobuf API converts element by element: ~0.3 s per million). Floats and ints use the
    packed encoding, which every protobuf parser accepts for repeated scalars."""
    head = onnx.AttributeProto(name=name)
    if name in _STRINGS:  # the node modes, as a leaf mask
        head.type = onnx.AttributeProto.STRINGS
        body = _strings(values.astype(bool), (b"BRANCH_LEQ", b"LEAF"))
    elif name in _FLOATS:
        head.type = onnx.AttributeProto.FLOATS
        raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
        body = _tag(_FLOATS_FIELD, 2) + _varints(np.array([len(raw)])) + raw
    else:
        head.type = onnx.AttributeProto.INTS
        if values.size and values.min() < 0:
            raise ValueError(f"{name}: negative values need the zig-zag-free int64 encoding")
        raw = _varints(values)
        body = _tag(_INTS_FIELD, 2) + _varints(np.array([len(raw)])) + raw
    return head.SerializeToString() + body


def _tag(field: int, wire: int) -> bytes:
    return _varints(np.array([(field << 3) | wire]))


def _varints(values: np.ndarray) -> bytes:
    """Base-128 varints of non-negative integers, concatenated."""
    v = np.asarray(values).reshape(-1)
    if not v.size:
        return b""
    top = int(v.max())
    v = v.astype(np.uint32 if top < 2**32 else np.uint64)
    width = max(1, (top.bit_length() + 6) // 7)
    if width == 1:
        return v.astype(np.uint8).tobytes()
    one = v.dtype.type(1)
    size = np.ones(v.size, dtype=np.int8)
    for k in range(1, width):
        size += v >= (one << v.dtype.type(7 * k))
    out = np.empty((v.size, width), dtype=np.uint8)
    for k in range(width):
        out[:, k] = ((v >> v.dtype.type(7 * k)) & v.dtype.type(0x7F)).astype(np.uint8) \
            | ((size > k + 1).astype(np.uint8) << 7)
    return out[np.arange(width) < size[:, None]].tobytes()


def _strings(which: np.ndarray, choices: tuple[bytes, bytes]) -> bytes:
    """Repeated `strings` field entries: choices[1] where `which`, else choices[0]."""
    chunks = [np.frombuffer(_tag(_STRINGS_FIELD, 2) + _varints(np.array([len(c)])) + c,
                            dtype=np.uint8) for c in choices]
    width = max(c.size for c in chunks)
    padded = np.zeros((2, width), dtype=np.uint8)
    for i, c in enumerate(chunks):
        padded[i, :c.size] = c
    rows = padded[which.astype(np.intp)]  # one padded entry per element
    sizes = np.where(which, chunks[1].size, chunks[0].size)
    return rows[np.arange(width) < sizes[:, None]].tobytes()
