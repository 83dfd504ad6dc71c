"""Which form should the service run? The champion's regressor compiled to numpy arrays (ours)
against ONNX (skl2onnx + onnxmltools to convert, onnxruntime to run), measured in one run.

Both take the same feature rows (our numpy encoder: featuretools' DFS has no ONNX form), so
the comparison is the regressor's runtime: exactness against the training pipeline on every
row of the data, single-row latency, and the memory a fresh process needs to import the
runtime and load the model. `make bench` installs the `bench` extra for the ONNX side.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _docs import update_docs_section  # noqa: E402


def champion_pipeline():
    """The champion's trained pipeline, unpickled once its signed approval verified."""
    from insurance_pipeline.release import Release
    from insurance_pipeline.resources import MlflowResource, TrustResource

    release = Release.of(MlflowResource.from_settings(), TrustResource.from_settings())
    champion = release.champion()
    if champion is None:
        raise SystemExit("no champion: run `make run` first")
    pipeline, _ = release.load_model(champion.version, release.approval(champion.version))
    return champion.record.version, pipeline


def to_onnx(regressor, n_features: int):
    """The regressor as an ONNX model, with the LightGBM and XGBoost converters registered."""
    from lightgbm import LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import convert_sklearn, update_registered_converter
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes
    from xgboost import XGBRegressor

    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
    )
    update_registered_converter(
        XGBRegressor,
        "XGBoostXGBRegressor",
        calculate_linear_regressor_output_shapes,
        convert_xgboost,
    )
    if isinstance(getattr(regressor, "weights", None), list):  # skl2onnx wants an array
        regressor = copy.copy(regressor)
        regressor.weights = np.asarray(regressor.weights, dtype=float)
    return convert_sklearn(
        regressor,
        initial_types=[("X", FloatTensorType([None, n_features]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def latency_us(predict, x, n: int = 3000) -> tuple[float, float]:
    for _ in range(200):
        predict(x)
    timings = []
    for _ in range(n):
        started = time.perf_counter_ns()
        predict(x)
        timings.append((time.perf_counter_ns() - started) / 1e3)
    timings.sort()
    return timings[n // 2], timings[int(n * 0.99)]


def process_rss_mib(script: str) -> float:
    """RSS of a fresh interpreter after running `script` (import the runtime, load, predict)."""
    code = script + textwrap.dedent(
        """
        from pathlib import Path
        status = Path("/proc/self/status").read_text().splitlines()
        print(next(line.split()[1] for line in status if line.startswith("VmRSS:")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return int(out.stdout.split()[-1]) / 1024


def measure_onnx(pipeline, X, expected) -> dict:
    import onnxruntime

    from insurance_pipeline.core.modeling.pipeline import REGRESSOR_STEP

    onnx_model = to_onnx(pipeline.named_steps[REGRESSOR_STEP], X.shape[1])
    session = onnxruntime.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    predicted = session.run(None, {name: X.astype(np.float32)})[0].ravel()
    p50, p99 = latency_us(lambda x: session.run(None, {name: x.astype(np.float32)}), X[:1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_model.SerializeToString())
        rss = process_rss_mib(
            "import numpy as np, onnxruntime as rt\n"
            f"s = rt.InferenceSession({str(path)!r}, providers=['CPUExecutionProvider'])\n"
            f"s.run(None, {{s.get_inputs()[0].name: np.zeros((1, {X.shape[1]}), np.float32)}})\n"
        )
        size = path.stat().st_size / 1024
    error = float(np.abs(predicted - expected).max())
    return {"error": error, "p50": p50, "p99": p99, "rss": rss, "size": size}


def measure_ours(export, version: int, X, expected) -> dict:
    from insurance_pipeline.compiled.artifact import write_artifact

    regressor = export.model.regressor
    p50, p99 = latency_us(lambda x: regressor.predict_row(x[0]), X[:1])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ours"
        write_artifact(
            export.model,
            export.references,
            folder,
            model_name="insurance_charges_model",
            version=version,
        )
        rss = process_rss_mib(
            "import numpy as np\n"
            "from insurance_pipeline.compiled.artifact import load_artifact\n"
            f"m = load_artifact({str(folder)!r}).model\n"
            f"m.regressor.predict_row(np.zeros({X.shape[1]}))\n"
        )
        size = (folder / "model.npz").stat().st_size / 1024
    error = float(np.abs(regressor.predict(X) - expected).max())
    return {"error": error, "p50": p50, "p99": p99, "rss": rss, "size": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    args = parser.parse_args()

    import onnxruntime

    from insurance_pipeline.core.data.contract import read_insurance_csv, to_typed_frame
    from insurance_pipeline.core.export import export_pipeline
    from insurance_pipeline.domain.schema import FEATURE_COLUMNS
    from insurance_pipeline.settings import StateSettings

    version, pipeline = champion_pipeline()
    frame = to_typed_frame(read_insurance_csv(StateSettings().data_path))[list(FEATURE_COLUMNS)]
    rows = [{**r, "smoker": r["smoker"] == "yes"} for r in frame.to_dict("records")]
    expected = pipeline.predict(frame)
    export = export_pipeline(pipeline)
    X = export.model.encoder.encode(rows)
    ours, onnx = measure_ours(export, version, X, expected), measure_onnx(pipeline, X, expected)
    baseline_rss = process_rss_mib("import numpy\n")
    compiled = export.model
    table = f"""Measured {dt.date.today()} on {os.cpu_count()} cores: champion v{version} \
({compiled.n_trees} trees, depth ≤ {compiled.depth}); onnxruntime {onnxruntime.__version__}. \
Regressor only, on the same feature rows; RSS of a fresh process that imports the runtime and \
loads the model (numpy alone: {baseline_rss:.0f} MiB).

| measure | numpy arrays (ours) | ONNX + onnxruntime |
| --- | --- | --- |
| largest difference from the training pipeline, all 1,338 rows | ${ours["error"]:.1e} | ${onnx["error"]:.2f} |
| one row, p50 / p99 | {ours["p50"]:.0f} µs / {ours["p99"]:.0f} µs | {onnx["p50"]:.0f} µs / {onnx["p99"]:.0f} µs |
| process RSS with the model loaded | {ours["rss"]:.0f} MiB | {onnx["rss"]:.0f} MiB |
| model file | {ours["size"]:.0f} KiB | {onnx["size"]:.0f} KiB |
"""
    print(table)
    if args.update_docs:
        update_docs_section("runtime", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
