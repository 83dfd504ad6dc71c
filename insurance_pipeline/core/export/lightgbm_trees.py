"""Adapter: LightGBM's LGBMRegressor, read through `Booster.dump_model()`."""

from __future__ import annotations

import numpy as np

from insurance_pipeline.core.export.trees import Member, Tree, UnsupportedForServing

KINDS = ("LGBMRegressor",)
OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile")


def _nodes(root: dict) -> list[dict]:
    """The nested tree as a list: {"node", "left", "right"} with list positions."""
    nodes: list[dict] = []

    def visit(node: dict) -> int:
        index = len(nodes)
        entry = {"node": node, "left": -1, "right": -1}
        nodes.append(entry)
        if "leaf_value" not in node:
            if node.get("decision_type") != "<=" or node.get("missing_type") == "Zero":
                raise UnsupportedForServing(
                    f"LightGBM split {node.get('decision_type')!r} with missing type "
                    f"{node.get('missing_type')!r}"
                )
            entry["left"] = visit(node["left_child"])
            entry["right"] = visit(node["right_child"])
        return index

    visit(root)
    return nodes


def compile_member(model, weight: float) -> Member:
    dump = model.booster_.dump_model()
    objective = str(dump.get("objective", "")).split()[0]
    if objective not in OBJECTIVES or dump.get("average_output"):
        raise UnsupportedForServing(f"LightGBM objective {dump.get('objective')!r}")
    trees = []
    for info in dump["tree_info"]:
        nodes = _nodes(info["tree_structure"])
        trees.append(
            Tree(
                feature=np.array([e["node"].get("split_feature", 0) for e in nodes]),
                threshold=np.array([float(e["node"].get("threshold", np.inf)) for e in nodes]),
                left=np.array([e["left"] for e in nodes]),
                right=np.array([e["right"] for e in nodes]),
                value=np.array([e["node"].get("leaf_value", 0.0) * weight for e in nodes]),
                float32=False,  # LightGBM compares the float64 feature
            )
        )
    return Member(trees=trees)
