"""The served graph of a tree ensemble with ai.onnx.ml's opset-5 TreeEnsemble operator.

skl2onnx writes TreeEnsembleClassifier / TreeEnsembleRegressor (ai.onnx.ml opset 3): every
node, leaves included, carries a tree id, a node id and its mode as a string ("BRANCH_LEQ",
"LEAF"). onnxruntime parses those strings and hashes every (tree, node) pair each time it
builds the session: for the 100-tree benchmark forest (155k nodes) ~95 ms of the serve cold
start's ~100 ms session. TreeEnsemble (opset 5, https://onnx.ai/onnx/operators/onnx_aionnxml_TreeEnsemble.html)
says the same trees with interior nodes only, children as indices, modes as a uint8 tensor
and the leaves as two arrays: the same session opens in ~70 ms (measured in fresh processes,
onnxruntime 1.32; bench/cold_start.py).

Only model.ort (what serving loads) is written from the rewritten graph; model.onnx stays
skl2onnx's graph, the portable artifact. The rewrite is exact for the cases it accepts (same
thresholds, same leaf weights, same tree order, so the same float sums; onnxruntime's own
label rule for these classifiers): a single-target regressor, and a binary classifier whose
leaves hold one weight each (skl2onnx's forests and trees). Anything else (multiclass leaves
with a weight per class, post transforms, base values, missing-value tracks) returns None and
the graph is left as it is. The parity gate runs model.ort against model.onnx on the holdout
whatever the graph, and ships no model.ort on any difference."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mlops_kit.core.training.forest_export import encode_attribute

ML = "ai.onnx.ml"
ML_OPSET = 5
MIN_IR_VERSION = 10  # ai.onnx.ml opset 5 came with ONNX 1.16 (IR version 10)
# TreeEnsemble's node modes (the operator's enum, in its order)
_MODES = {b"BRANCH_LEQ": 0, b"BRANCH_LT": 1, b"BRANCH_GTE": 2, b"BRANCH_GT": 3,
          b"BRANCH_EQ": 4, b"BRANCH_NEQ": 5}
_AGGREGATE = {b"SUM": 1, b"AVERAGE": 0}  # MIN / MAX are left alone


def rewrite(model_bytes: bytes) -> bytes | None:
    """The model with its tree-ensemble node in opset-5 form, or None when it has none or
    its node is not one of the cases this rewrites exactly."""
    model = onnx.load_from_string(model_bytes)
    nodes = [n for n in model.graph.node if n.domain == ML
             and n.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor")]
    if len(nodes) != 1:
        return None
    node = nodes[0]
    attrs = {a.name: a for a in node.attribute}
    replacement = (_classifier(node, attrs) if node.op_type == "TreeEnsembleClassifier"
                   else _regressor(node, attrs))
    if replacement is None:
        return None
    at = list(model.graph.node).index(node)
    del model.graph.node[at]
    for i, new in enumerate(replacement):
        model.graph.node.insert(at + i, new)
    for opset in model.opset_import:
        if opset.domain == ML:
            opset.version = max(opset.version, ML_OPSET)
    model.ir_version = max(model.ir_version, MIN_IR_VERSION)
    return model.SerializeToString()


def _ints(attrs: dict[str, onnx.AttributeProto], name: str) -> np.ndarray:
    a = attrs.get(name)
    return np.array(a.ints, dtype=np.int64) if a is not None else np.zeros(0, np.int64)


def _floats(attrs: dict[str, onnx.AttributeProto], name: str) -> np.ndarray:
    a = attrs.get(name)
    return np.array(a.floats, dtype=np.float32) if a is not None else np.zeros(0, np.float32)


def _string(attrs: dict[str, onnx.AttributeProto], name: str, default: bytes) -> bytes:
    a = attrs.get(name)
    return a.s if a is not None else default


def _plain(attrs: dict[str, onnx.AttributeProto]) -> bool:
    """No attribute this rewrite does not carry over (the *_as_tensor doubles, base values,
    a post transform, missing-value tracks)."""
    if any(name.endswith("_as_tensor") for name in attrs):
        return False
    if np.any(_floats(attrs, "base_values") != 0):
        return False
    if np.any(_ints(attrs, "nodes_missing_value_tracks_true") != 0):
        return False
    return _string(attrs, "post_transform", b"NONE") == b"NONE"


def _trees(attrs: dict[str, onnx.AttributeProto], prefix: str
           ) -> tuple[list[onnx.AttributeProto], np.ndarray] | None:
    """TreeEnsemble's node and leaf attributes (without the node's weights) and, per leaf
    weight entry, the leaf index it belongs to; None when the trees do not fit."""
    tree = _ints(attrs, "nodes_treeids")
    node = _ints(attrs, "nodes_nodeids")
    n = tree.size
    names = np.array(attrs["nodes_modes"].strings if "nodes_modes" in attrs else [], dtype="S")
    if n == 0 or names.size != n or tree.min() < 0 or node.min() < 0:
        return None
    leaf = names == b"LEAF"
    codes = np.full(n, 255, dtype=np.uint8)
    for mode, code in _MODES.items():
        codes[names == mode] = code
    if np.any(codes[~leaf] == 255):
        return None  # a mode TreeEnsemble does not have
    # onnxruntime's tree order: a tree starts where the tree id changes; each tree listed once
    starts = np.flatnonzero(np.r_[True, tree[1:] != tree[:-1]])
    if len(np.unique(tree[starts])) != starts.size or leaf[starts].any():
        return None  # a tree split in two runs, or a tree that is a single leaf
    width = int(node.max()) + 1
    key = tree * width + node
    order = np.argsort(key, kind="stable")
    if np.any(np.diff(key[order]) == 0):
        return None  # a (tree, node) pair listed twice

    def position(t: np.ndarray, nid: np.ndarray) -> np.ndarray | None:
        k = t * width + nid
        at = np.searchsorted(key[order], k)
        at = np.minimum(at, n - 1)
        if (nid < 0).any() or (nid >= width).any() or np.any(key[order][at] != k):
            return None
        return order[at]

    inner = ~leaf
    inner_index = np.cumsum(inner) - 1
    leaf_index = np.cumsum(leaf) - 1
    out = []
    for side in ("true", "false"):
        child = position(tree[inner], _ints(attrs, f"nodes_{side}nodeids")[inner])
        if child is None:
            return None
        out.append((f"nodes_{side}nodeids",
                    np.where(leaf[child], leaf_index[child], inner_index[child])))
        out.append((f"nodes_{side}leafs", leaf[child].astype(np.int64)))
    featureids = _ints(attrs, "nodes_featureids")[inner]
    if featureids.size and featureids.min() < 0:
        return None
    splits = _floats(attrs, "nodes_values")[inner]
    modes = codes[inner]
    # the leaves' weights: exactly one per leaf
    weights_tree = _ints(attrs, f"{prefix}_treeids")
    where = position(weights_tree, _ints(attrs, f"{prefix}_nodeids"))
    if where is None or not leaf[where].all() or where.size != leaf.sum() \
            or np.unique(where).size != where.size:
        return None
    built = [
        *(_attr(name, values) for name, values in out),
        _attr("nodes_featureids", featureids),
        helper.make_attribute("nodes_splits", numpy_helper.from_array(splits)),
        helper.make_attribute("nodes_modes", numpy_helper.from_array(modes)),
        _attr("tree_roots", inner_index[starts]),
    ]
    return built, leaf_index[where]


def _attr(name: str, values: np.ndarray) -> onnx.AttributeProto:
    a = onnx.AttributeProto()
    a.MergeFromString(encode_attribute(name, np.asarray(values, dtype=np.int64)))
    return a


def _ensemble(inputs: list[str], output: str, trees: list[onnx.AttributeProto],
              leaves: np.ndarray, weights: np.ndarray, aggregate: int,
              name: str) -> onnx.NodeProto:
    order = np.argsort(leaves, kind="stable")  # leaf_weights in leaf index order
    node = helper.make_node("TreeEnsemble", inputs, [output], domain=ML, name=name,
                            n_targets=1, aggregate_function=aggregate, post_transform=0)
    node.attribute.extend(trees)
    node.attribute.append(_attr("leaf_targetids", np.zeros(leaves.size, np.int64)))
    node.attribute.append(helper.make_attribute(
        "leaf_weights", numpy_helper.from_array(weights[order].astype(np.float32))))
    return node


def _regressor(node: onnx.NodeProto, attrs: dict[str, Any]) -> list[onnx.NodeProto] | None:
    aggregate = _AGGREGATE.get(_string(attrs, "aggregate_function", b"SUM"))
    if aggregate is None or attrs.get("n_targets") is None or attrs["n_targets"].i != 1 \
            or not _plain(attrs) or len(node.output) != 1:
        return None
    if np.any(_ints(attrs, "target_ids") != 0):
        return None
    trees = _trees(attrs, "target")
    if trees is None:
        return None
    return [_ensemble(list(node.input), node.output[0], trees[0], trees[1],
                      _floats(attrs, "target_weights"), aggregate, node.name or "trees")]


def _classifier(node: onnx.NodeProto, attrs: dict[str, Any]) -> list[onnx.NodeProto] | None:
    """A binary classifier whose leaves each hold one weight for class id 0, all >= 0 (the
    probability of the second class: skl2onnx's trees and forests): onnxruntime answers
    probabilities [1 - s, s] and the second label when s > 0.5 (its TreeEnsembleClassifier,
    binary case, weights all positive); the same in graph form after the opset-5 sum s."""
    if "classlabels_int64s" in attrs:
        labels: np.ndarray = np.array(attrs["classlabels_int64s"].ints, dtype=np.int64)
    elif "classlabels_strings" in attrs:
        labels = np.array(list(attrs["classlabels_strings"].strings), dtype=object)
    else:
        return None
    weights = _floats(attrs, "class_weights")
    if labels.size != 2 or not _plain(attrs) or len(node.output) != 2 \
            or np.any(_ints(attrs, "class_ids") != 0) or not weights.size or weights.min() < 0:
        return None
    trees = _trees(attrs, "class")
    if trees is None:
        return None
    label_out, proba_out = node.output
    p = (node.name or "trees") + "_v5"
    names = {k: f"{p}_{k}" for k in ("s", "flat", "one", "neg", "half", "shape", "c0", "c1",
                                     "pos")}
    c0, c1 = (numpy_helper.from_array(np.array(v, dtype=labels.dtype)) for v in labels)
    return [
        _ensemble(list(node.input), names["s"], trees[0], trees[1], weights, 1, p),
        helper.make_node("Constant", [], [names["one"]],
                         value=numpy_helper.from_array(np.array(1.0, np.float32))),
        helper.make_node("Sub", [names["one"], names["s"]], [names["neg"]]),
        helper.make_node("Concat", [names["neg"], names["s"]], [proba_out], axis=1),
        helper.make_node("Constant", [], [names["shape"]],
                         value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Reshape", [names["s"], names["shape"]], [names["flat"]]),
        helper.make_node("Constant", [], [names["half"]],
                         value=numpy_helper.from_array(np.array(0.5, np.float32))),
        helper.make_node("Greater", [names["flat"], names["half"]], [names["pos"]]),
        helper.make_node("Constant", [], [names["c1"]], value=c1),
        helper.make_node("Constant", [], [names["c0"]], value=c0),
        helper.make_node("Where", [names["pos"], names["c1"], names["c0"]], [label_out]),
    ]
