"""skl2onnx's tree-ensemble attributes, computed per tree in numpy instead of per node in Python.

skl2onnx builds a TreeEnsemble node by calling `add_node` once per tree node (list appends,
a float32 threshold adjustment, leaf weights): a 100-tree forest grown on 80k rows has ~2.5M
nodes and spent most of its 42 s export there. `fast_tree_attributes()` swaps in
`add_tree_to_attribute_pairs`, below, for the converters that call it (random forest, extra
trees, gradient boosting, decision tree) while one conversion runs. It appends exactly the
values skl2onnx would, in the same order (tests/unit/training/test_tree_attrs.py compares
them), so the graph is the same; float64 inputs (whose threshold search is iterative) keep
skl2onnx's own code."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from skl2onnx.common import tree_ensemble
from skl2onnx.operator_converters import decision_tree, gradient_boosting, random_forest

_ORIGINAL = tree_ensemble.add_tree_to_attribute_pairs
_MODULES = (random_forest, gradient_boosting, decision_tree)
_LOCK = threading.Lock()


def tree_arrays(is_classifier: bool, tree: Any, tree_id: int, tree_weight: float,
                weight_id_bias: int, leaf_weights_are_counts: bool,
                adjust_threshold_for_sklearn: bool, optional: bool = True
                ) -> dict[str, np.ndarray]:
    """One tree's attribute values as arrays (float32 thresholds adjusted as skl2onnx does).
    nodes_modes comes as a leaf mask (True: "LEAF", False: "BRANCH_LEQ"); optional=False
    leaves out nodes_missing_value_tracks_true (all 0) and nodes_hitrates (all 1.0)."""
    n = int(tree.node_count)
    index = np.arange(n)
    left = np.asarray(tree.children_left[:n])
    right = np.asarray(tree.children_right[:n])
    branch = (left > index) | (right > index)
    threshold = np.where(branch, np.asarray(tree.threshold[:n], dtype=np.float64), 0.0)
    if adjust_threshold_for_sklearn:
        # skl2onnx's sklearn_threshold for float32: sklearn tests (float)x <= double threshold;
        # the float threshold that keeps that test is the threshold rounded to float if that
        # is not above it, else the next float down.
        fy = threshold.astype(np.float32)
        down = np.nextafter(fy, np.float32(-np.inf))
        adjusted = np.where(fy.astype(np.float64) <= threshold, fy, down).astype(np.float64)
        threshold = np.where(branch, adjusted, threshold)
    leaves = np.flatnonzero(~branch)
    weights = np.asarray(tree.value[:n])[leaves].reshape(leaves.size, -1)
    factor = np.full(leaves.size, tree_weight, dtype=np.float64)
    if leaf_weights_are_counts:  # summed left to right, as Python's sum() does
        sums = weights[:, 0].copy()
        for j in range(1, weights.shape[1]):
            sums += weights[:, j]
        factor = factor / np.where(sums != 0.0, sums, 1.0)
    weights = weights * factor[:, None]
    if weights.shape[1] == 2 and is_classifier:
        weights = weights[:, 1:]
    k = weights.shape[1]
    prefix = "class" if is_classifier else "target"
    out = {
        "nodes_treeids": np.full(n, tree_id, dtype=np.int64),
        "nodes_nodeids": index,
        "nodes_featureids": np.where(branch, tree.feature[:n], 0),
        "nodes_modes": ~branch,
        "nodes_values": threshold,
        "nodes_truenodeids": np.where(branch, left, 0),
        "nodes_falsenodeids": np.where(branch, right, 0),
    }
    if optional:
        out["nodes_missing_value_tracks_true"] = np.zeros(n, dtype=np.int64)
        out["nodes_hitrates"] = np.ones(n)
    return out | {
        f"{prefix}_treeids": np.full(leaves.size * k, tree_id, dtype=np.int64),
        f"{prefix}_nodeids": np.repeat(leaves, k),
        f"{prefix}_ids": np.tile(np.arange(k) + weight_id_bias, leaves.size),
        f"{prefix}_weights": weights.ravel(),
    }


def add_tree_to_attribute_pairs(attr_pairs: dict[str, Any], is_classifier: bool, tree: Any,
                                tree_id: int, tree_weight: float, weight_id_bias: int,
                                leaf_weights_are_counts: bool,
                                adjust_threshold_for_sklearn: bool = False,
                                dtype: Any = None) -> None:
    """Same signature and effect as skl2onnx.common.tree_ensemble.add_tree_to_attribute_pairs."""
    if adjust_threshold_for_sklearn and dtype != np.float32:
        _ORIGINAL(attr_pairs, is_classifier, tree, tree_id, tree_weight, weight_id_bias,
                  leaf_weights_are_counts, adjust_threshold_for_sklearn, dtype=dtype)
        return
    arrays = tree_arrays(is_classifier, tree, tree_id, tree_weight, weight_id_bias,
                         leaf_weights_are_counts, adjust_threshold_for_sklearn)
    modes = ("BRANCH_LEQ", "LEAF")
    for key, values in arrays.items():
        out = values.tolist()
        attr_pairs[key].extend(out if key != "nodes_modes" else [modes[m] for m in out])


@contextmanager
def fast_tree_attributes() -> Iterator[None]:
    """Use the vectorised attributes in skl2onnx's tree converters for one conversion."""
    with _LOCK:
        saved = [(m, m.add_tree_to_attribute_pairs) for m in _MODULES]
        try:
            for m in _MODULES:
                m.add_tree_to_attribute_pairs = add_tree_to_attribute_pairs
            yield
        finally:
            for m, fn in saved:
                m.add_tree_to_attribute_pairs = fn
