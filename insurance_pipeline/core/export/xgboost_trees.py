"""Adapter: XGBoost's XGBRegressor, read through `Booster.save_config()` (objective, base
score) and `Booster.get_dump(dump_format="json")` (the trees)."""

from __future__ import annotations

import json

import numpy as np

from insurance_pipeline.core.export.trees import Member, Tree, UnsupportedForServing

KINDS = ("XGBRegressor",)
OBJECTIVES = (
    "reg:squarederror",
    "reg:absoluteerror",
    "reg:pseudohubererror",
    "reg:quantileerror",
)


def _tree(text: str, column: dict[str, int] | None) -> Tree:
    by_id: dict[int, dict] = {}
    stack = [json.loads(text)]
    while stack:
        node = stack.pop()
        by_id[node["nodeid"]] = node
        stack.extend(node.get("children", ()))
    order = sorted(by_id)
    position = {node_id: i for i, node_id in enumerate(order)}
    nodes = [by_id[i] for i in order]

    def split_column(node: dict) -> int:
        name = node["split"]
        return column[name] if column else int(str(name).lstrip("f"))

    def threshold(node: dict) -> float:
        # XGBoost goes left when x < t (float32); as "right when x > t'" with t' the float32
        # just below t, so both rules agree on every float32 x.
        if "leaf" in node:
            return np.inf
        return float(np.nextafter(np.float32(node["split_condition"]), np.float32(-np.inf)))

    return Tree(
        feature=np.array([split_column(n) if "leaf" not in n else 0 for n in nodes]),
        threshold=np.array([threshold(n) for n in nodes]),
        left=np.array([position[n["yes"]] if "leaf" not in n else -1 for n in nodes]),
        right=np.array([position[n["no"]] if "leaf" not in n else -1 for n in nodes]),
        value=np.array([n.get("leaf", 0.0) for n in nodes], dtype=float),
        float32=True,
    )


def compile_member(model, weight: float) -> Member:
    """XGBoost sums its trees in float32 from its base score; the weight applies after."""
    booster = model.get_booster()
    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    if objective not in OBJECTIVES or config["learner"]["gradient_booster"]["name"] != "gbtree":
        raise UnsupportedForServing(f"XGBoost objective {objective!r}")
    base = float(str(config["learner"]["learner_model_param"]["base_score"]).strip("[]"))
    names = booster.feature_names
    column = {n: i for i, n in enumerate(names)} if names else None
    trees = [_tree(text, column) for text in booster.get_dump(dump_format="json")]
    return Member(trees=trees, float32_sum=True, base=base, weight=weight)
