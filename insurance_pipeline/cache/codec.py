"""How a step's value is written to the cache: in a format that cannot run code wherever the
value is data, and as a pickle only where it holds a fitted estimator.

- `parquet`: a pandas DataFrame (exact, typed).
- `json`: a tree of dataclasses from `DATA_TYPES`, with strings, numbers (NaN and infinities
  included), booleans, None, lists, tuples, dicts, bytes, numpy arrays (`.npy`, no pickle)
  and DataFrames (parquet) inside. Reading it builds only those dataclasses.
- `pickle`: a fitted estimator, or one of the listed values that hold one
  (`ESTIMATOR_TYPES`), loaded only after the entry's signature verified (see `store`).

Any other value is refused with an error naming its type: a new dataclass is never silently
stored as a pickle; it goes into `DATA_TYPES` (data) or `ESTIMATOR_TYPES` (holds a model).
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import io
import json
from typing import Any

import joblib
import numpy as np
import pandas as pd

# The dataclasses a `json` entry may hold, by "module:name".
DATA_TYPES = frozenset(
    {
        "insurance_pipeline.core.data.split:Split",
        "insurance_pipeline.core.data.profile:DataProfile",
        "insurance_pipeline.core.modeling.metrics:HoldoutEvaluation",
        "insurance_pipeline.core.modeling.metrics:RegressionMetrics",
        "insurance_pipeline.core.modeling.metrics:SegmentMetrics",
        "insurance_pipeline.core.modeling.metrics:Estimate",
        "insurance_pipeline.core.modeling.metrics:IntervalEvaluation",
        "insurance_pipeline.core.modeling.challenger:ChampionComparison",
        "insurance_pipeline.core.modeling.challenger:PairedDifferences",
        "insurance_pipeline.core.modeling.report:ValidationReport",
    }
)
# The values that hold fitted estimators (stored as pickles), by "module:name"; a fitted
# scikit-learn estimator itself (`BaseEstimator`: a pipeline, a transformer) is one too.
ESTIMATOR_TYPES = frozenset(
    {
        "insurance_pipeline.core.modeling.search:SearchResult",
        "insurance_pipeline.core.modeling.intervals:ConformalInterval",
        "insurance_pipeline.core.modeling.model:TrainedModel",
    }
)
FORMATS = ("parquet", "json", "pickle")


class NotData(TypeError):
    """The value holds something that is not data (it is pickled instead)."""


class UnknownValue(TypeError):
    """A value of a type the codec does not know: neither data nor a listed estimator."""


def type_name(value: Any) -> str:
    return f"{type(value).__module__}:{type(value).__qualname__}"


def holds_estimator(value: Any) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(value, BaseEstimator) or type_name(value) in ESTIMATOR_TYPES


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=True)
    return buffer.getvalue()


def _to_tree(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_to_tree(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_to_tree(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _to_tree(v) for k, v in value.items()}}
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, np.generic):
        return _to_tree(value.item())
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"__ndarray__": base64.b64encode(buffer.getvalue()).decode()}
    if isinstance(value, pd.DataFrame):
        return {"__frame__": base64.b64encode(_frame_bytes(value)).decode()}
    name = type_name(value)
    if dataclasses.is_dataclass(value) and name in DATA_TYPES:
        fields = {f.name: _to_tree(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": name, "fields": fields}
    raise NotData(f"{name} is not data")


def _from_tree(node: Any) -> Any:
    if isinstance(node, list):
        return [_from_tree(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tuple__" in node:
        return tuple(_from_tree(v) for v in node["__tuple__"])
    if "__dict__" in node:
        return {k: _from_tree(v) for k, v in node["__dict__"].items()}
    if "__bytes__" in node:
        return base64.b64decode(node["__bytes__"])
    if "__ndarray__" in node:
        return np.load(io.BytesIO(base64.b64decode(node["__ndarray__"])), allow_pickle=False)
    if "__frame__" in node:
        return pd.read_parquet(io.BytesIO(base64.b64decode(node["__frame__"])), engine="pyarrow")
    name = node["__type__"]
    if name not in DATA_TYPES:
        raise ValueError(f"{name} is not a data type this cache reads")
    module, _, qualname = name.partition(":")
    cls = getattr(importlib.import_module(module), qualname)
    return cls(**{k: _from_tree(v) for k, v in node["fields"].items()})


def encode(value: Any) -> tuple[str, bytes]:
    """(format, bytes) of `value`."""
    if isinstance(value, pd.DataFrame):
        return "parquet", _frame_bytes(value)
    try:
        return "json", json.dumps(_to_tree(value)).encode()
    except NotData as not_data:
        if not holds_estimator(value):
            raise UnknownValue(
                f"the step cache cannot store a {type_name(value)} ({not_data}): list it in "
                "cache/codec.py, DATA_TYPES if it is data or ESTIMATOR_TYPES if it holds a "
                "fitted estimator"
            ) from None
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return "pickle", buffer.getvalue()


def decode(fmt: str, data: bytes) -> Any:
    """The value of verified bytes in `fmt`."""
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    if fmt == "json":
        return _from_tree(json.loads(data))
    if fmt == "pickle":
        return joblib.load(io.BytesIO(data))
    raise ValueError(f"unknown cache value format {fmt!r}")
