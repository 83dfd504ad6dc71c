"""The feature specification shared by training (featuretools) and serving (numpy).

A DFS feature here is either an input column or a binary primitive applied to two of them;
the spec is plain tuples so it pickles without featuretools.
"""

from __future__ import annotations

DFS_INPUT_COLUMNS = ("age", "bmi", "children")
# Append only: serving artifacts store a primitive by its position (features.numpy_dfs).
DFS_PRIMITIVES = (
    "add_numeric",
    "subtract_numeric",
    "multiply_numeric",
    "divide_numeric",
    "greater_than",
    "less_than",
)
# featuretools primitive name -> the operator it prints in feature names
PRIMITIVE_SYMBOLS = {
    "add_numeric": "+",
    "subtract_numeric": "-",
    "multiply_numeric": "*",
    "divide_numeric": "/",
    "greater_than": ">",
    "less_than": "<",
}
IDENTITY = "identity"

FeatureSpec = tuple[tuple[str, tuple[str, ...]], ...]


def feature_name(primitive: str, inputs: tuple[str, ...]) -> str:
    if primitive == IDENTITY:
        return inputs[0]
    left, right = inputs
    return f"{left} {PRIMITIVE_SYMBOLS[primitive]} {right}"
