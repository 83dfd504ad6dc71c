"""The `model.npz` format, written down in one place.

`KEYS` lists every array the file may hold: its name (a pattern: `{p}` is a regressor prefix,
"" for the model and "scale_" for the interval's scale model; `{i}` a forest number; `{f}` a
coded field), its dtype kind and its number of dimensions. `pack` writes a model and its
reference rows through this table; `unpack` reads them back and refuses any file with an
unknown, missing or mistyped key, or with node, feature or input indices that point outside
their arrays, naming the key. Arrays are read with `allow_pickle=False` by the caller: loading
runs no code from the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from insurance_pipeline.compiled.dfs import OPERATIONS, DfsProgram
from insurance_pipeline.compiled.model import (
    CompiledInterval,
    CompiledModel,
    Encoder,
    Forest,
    Regressor,
)
from insurance_pipeline.domain.schema import FEATURE_COLUMNS

# name pattern -> (dtype kinds allowed, dimensions): the whole format.
KEYS: dict[str, tuple[str, int]] = {
    # the encoder: DFS program, imputer means, category codes
    "dfs_inputs": ("U", 1),  # input column names, in order
    "dfs_ops": ("i", 1),  # operation code per DFS feature (compiled.dfs.OPERATIONS)
    "dfs_left": ("i", 1),  # left input position per DFS feature
    "dfs_right": ("i", 1),  # right input position per DFS feature
    "impute_means": ("f", 1),  # the imputer's mean per DFS feature
    "code_fields": ("U", 1),  # the coded fields, in feature order after the DFS features
    "codes_{f}_keys": ("U", 1),  # a coded field's categories
    "codes_{f}_values": ("f", 1),  # their codes
    # a regressor: offset + forests + linear part
    "{p}offset": ("f", 0),
    "{p}forests": ("i", 0),  # how many forests follow
    "{p}forest{i}_feature": ("i", 1),  # per node; >= n_features: the float32-rounded feature
    "{p}forest{i}_threshold": ("f", 1),
    "{p}forest{i}_children": ("i", 1),  # 2 per node: left, right
    "{p}forest{i}_value": ("f", 1),
    "{p}forest{i}_roots": ("i", 1),
    "{p}forest{i}_depth": ("i", 0),
    "{p}forest{i}_base": ("f", 0),
    "{p}forest{i}_weight": ("f", 0),
    "{p}forest{i}_float32_sum": ("b", 0),
    "{p}linear_coef": ("f", 1),
    # the interval (its scale model is the regressor under prefix "scale_")
    "interval_level": ("f", 0),
    "interval_quantile": ("f", 0),
    "interval_floor": ("f", 0),
    # reference rows: inputs and the training pipeline's outputs on them
    "reference_{c}": ("iufUb", 1),
    "reference_charges": ("f", 1),
    "reference_lower": ("f", 1),
    "reference_upper": ("f", 1),
}
PREFIXES = ("", "scale_")
MAX_DEPTH = 64
_PATTERNS = [
    (
        re.compile(
            "^"
            + re.escape(pattern)
            .replace(r"\{p\}", "(scale_)?")
            .replace(r"\{i\}", "[0-9]+")
            .replace(r"\{f\}", "[a-z_]+")
            .replace(r"\{c\}", "(" + "|".join(FEATURE_COLUMNS) + ")")
            + "$"
        ),
        pattern,
    )
    for pattern in KEYS
]


class FormatError(ValueError):
    """The arrays do not follow `KEYS`; the message names the key."""


@dataclass(frozen=True, eq=False)
class References:
    """Inputs and what the full training pipeline predicted for them at export."""

    rows: list[dict]
    charges: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


def pack(model: CompiledModel, references: References) -> dict[str, np.ndarray]:
    enc = model.encoder
    arrays = {
        "dfs_inputs": np.asarray(enc.dfs.input_columns),
        "dfs_ops": enc.dfs.ops,
        "dfs_left": enc.dfs.left,
        "dfs_right": enc.dfs.right,
        "impute_means": enc.means,
        "code_fields": np.asarray([field for field, _ in enc.codes]),
        **_pack_regressor(model.regressor, ""),
    }
    for field, table in enc.codes:
        arrays[f"codes_{field}_keys"] = np.asarray(list(table))
        arrays[f"codes_{field}_values"] = np.asarray(list(table.values()), dtype=float)
    if model.interval is not None:
        i = model.interval
        arrays |= {
            "interval_level": np.float64(i.level),
            "interval_quantile": np.float64(i.quantile),
            "interval_floor": np.float64(i.floor),
            **_pack_regressor(i.scale, "scale_"),
        }
    for c in FEATURE_COLUMNS:
        arrays[f"reference_{c}"] = np.asarray([r[c] for r in references.rows])
    arrays["reference_charges"] = np.asarray(references.charges, dtype=float)
    for name in ("lower", "upper"):
        if getattr(references, name) is not None:
            arrays[f"reference_{name}"] = np.asarray(getattr(references, name), dtype=float)
    check_keys(arrays)
    return arrays


def _pack_regressor(regressor: Regressor, p: str) -> dict[str, np.ndarray]:
    arrays = {f"{p}offset": np.float64(regressor.offset)}
    arrays[f"{p}forests"] = np.int64(len(regressor.forests))
    for i, f in enumerate(regressor.forests):
        arrays |= {
            f"{p}forest{i}_feature": f.feature,
            f"{p}forest{i}_threshold": f.threshold,
            f"{p}forest{i}_children": f.children,
            f"{p}forest{i}_value": f.value,
            f"{p}forest{i}_roots": f.roots,
            f"{p}forest{i}_depth": np.int64(f.depth),
            f"{p}forest{i}_base": np.float64(f.base),
            f"{p}forest{i}_weight": np.float64(f.weight),
            f"{p}forest{i}_float32_sum": np.bool_(f.float32_sum),
        }
    if regressor.coef is not None:
        arrays[f"{p}linear_coef"] = regressor.coef
    return arrays


def check_keys(arrays: Mapping[str, np.ndarray]) -> None:
    """Every key matches a pattern of `KEYS` with its dtype kind and dimensions."""
    for name, value in arrays.items():
        pattern = next((p for regex, p in _PATTERNS if regex.match(name)), None)
        if pattern is None:
            raise FormatError(f"unknown array {name!r} (not in compiled.npz.KEYS)")
        kinds, ndim = KEYS[pattern]
        value = np.asarray(value)
        if value.dtype.kind not in kinds or value.ndim != ndim:
            raise FormatError(
                f"array {name!r} is {value.dtype} with {value.ndim} dimension(s); "
                f"the format wants kind {kinds!r} with {ndim}"
            )


def unpack(arrays: Mapping[str, np.ndarray]) -> tuple[CompiledModel, References]:
    check_keys(arrays)
    try:
        encoder = _encoder(arrays)
        width = encoder.n_features
        interval = None
        if "interval_quantile" in arrays:
            interval = CompiledInterval(
                level=float(arrays["interval_level"]),
                quantile=float(arrays["interval_quantile"]),
                floor=float(arrays["interval_floor"]),
                scale=_regressor(arrays, "scale_", width),
            )
        model = CompiledModel(encoder, _regressor(arrays, "", width), interval)
        references = References(
            rows=_rows(arrays),
            charges=arrays["reference_charges"],
            lower=arrays.get("reference_lower"),
            upper=arrays.get("reference_upper"),
        )
    except KeyError as error:
        raise FormatError(f"array {error.args[0]!r} is missing") from error
    if model.interval is not None and references.lower is None:
        raise FormatError("the model has an interval but no reference bounds")
    return model, references


def _encoder(a: Mapping[str, np.ndarray]) -> Encoder:
    inputs = tuple(a["dfs_inputs"].tolist())
    ops, left, right = a["dfs_ops"], a["dfs_left"], a["dfs_right"]
    if not len(ops) == len(left) == len(right) == len(a["impute_means"]):
        raise FormatError("dfs_ops, dfs_left, dfs_right and impute_means differ in length")
    _within("dfs_ops", ops, len(OPERATIONS))
    _within("dfs_left", left, len(inputs))
    _within("dfs_right", right, len(inputs))
    codes = []
    for field in a["code_fields"].tolist():
        keys, values = a[f"codes_{field}_keys"], a[f"codes_{field}_values"]
        if len(keys) != len(values):
            raise FormatError(f"codes_{field}_keys and codes_{field}_values differ in length")
        codes.append((field, dict(zip(keys.tolist(), values.tolist(), strict=True))))
    program = DfsProgram(inputs, ops.astype(np.int8), left, right)
    return Encoder(program, a["impute_means"], tuple(codes))


def _regressor(a: Mapping[str, np.ndarray], p: str, width: int) -> Regressor:
    forests = tuple(_forest(a, f"{p}forest{i}_", width) for i in range(int(a[f"{p}forests"])))
    coef = a.get(f"{p}linear_coef")
    if coef is not None and len(coef) != width:
        raise FormatError(f"{p}linear_coef has {len(coef)} entries for {width} features")
    return Regressor(float(a[f"{p}offset"]), forests, coef)


def _forest(a: Mapping[str, np.ndarray], p: str, width: int) -> Forest:
    feature, threshold, value = a[p + "feature"], a[p + "threshold"], a[p + "value"]
    nodes = len(feature)
    if len(threshold) != nodes or len(value) != nodes or len(a[p + "children"]) != 2 * nodes:
        raise FormatError(f"{p}* arrays disagree on the number of nodes ({nodes})")
    _within(p + "feature", feature, 2 * width)
    _within(p + "children", a[p + "children"], nodes)
    _within(p + "roots", a[p + "roots"], nodes)
    depth = int(a[p + "depth"])
    if not 0 <= depth <= MAX_DEPTH:
        raise FormatError(f"{p}depth {depth} is outside [0, {MAX_DEPTH}]")
    return Forest(
        feature,
        threshold,
        a[p + "children"],
        value,
        a[p + "roots"],
        depth,
        float(a[p + "base"]),
        float(a[p + "weight"]),
        bool(a[p + "float32_sum"]),
    )


def _within(name: str, values: np.ndarray, size: int) -> None:
    if len(values) and (values.min() < 0 or values.max() >= size):
        raise FormatError(f"{name} holds indices outside [0, {size})")


def _rows(a: Mapping[str, np.ndarray]) -> list[dict]:
    columns = [a[f"reference_{c}"].tolist() for c in FEATURE_COLUMNS]
    return [
        dict(zip(FEATURE_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)
    ]
