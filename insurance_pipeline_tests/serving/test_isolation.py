"""Serving needs neither the training stack nor TPOT's classes."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline.data.split import split_rows
from insurance_pipeline.features.transformer import fit_feature_transformer
from insurance_pipeline.modeling.model import assemble_model
from insurance_pipeline.modeling.search import SearchBudget, run_search
from insurance_pipeline.serving.artifact import write_artifact
from insurance_pipeline.serving.plain import to_serving_pipeline
from insurance_pipeline.settings import DEFAULT_ROOT

BLOCKED = ("dagster", "tpot", "featuretools", "woodwork", "mlflow")
BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"{{name}} is blocked in the serving process")
    sys.meta_path.insert(0, Blocker())
    """
)


def _tpot_classes(obj, seen=None) -> set[str]:
    """Names of TPOT classes anywhere in a fitted object graph."""
    seen = seen if seen is not None else set()
    found = set()
    if id(obj) in seen:
        return found
    seen.add(id(obj))
    if type(obj).__module__.startswith("tpot"):
        found.add(type(obj).__name__)
    children = []
    if isinstance(obj, (list, tuple)):
        children = list(obj)
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in (
        "sklearn",
        "tpot",
        "insurance_pipeline",
    ):
        children = list(vars(obj).values())
    for child in children:
        found |= _tpot_classes(child, seen)
    return found


@pytest.fixture(scope="module")
def tpot_artifact(insurance_frame, tmp_path_factory):
    """A real TPOT search over a space whose pipelines hold TPOT classes, converted."""
    split = split_rows(insurance_frame, seed=42, test_fraction=0.2)
    features = fit_feature_transformer(split.train[list(FEATURE_COLUMNS)])
    X = features.transform(split.train[list(FEATURE_COLUMNS)])
    budget = SearchBudget(
        generations=1,
        population_size=4,
        cv=2,
        n_jobs=1,
        search_space="linear-light",
        random_state=3,
    )
    found = run_search(X, split.train[TARGET_COLUMN].to_numpy(), budget, progress=lambda _: None)
    trained = assemble_model(features, found.pipeline)
    assert _tpot_classes(trained), "the search space should produce TPOT classes to convert"
    served = to_serving_pipeline(trained)
    assert not _tpot_classes(served)
    folder = tmp_path_factory.mktemp("tpot_artifact")
    write_artifact(served, folder, model_name="insurance_charges_model", version=1)
    test = split.test[list(FEATURE_COLUMNS)]
    return folder, test, trained.predict(test)


def test_artifact_loads_and_predicts_with_the_training_stack_blocked(tpot_artifact, tmp_path):
    folder, test, expected = tpot_artifact
    test.to_csv(tmp_path / "rows.csv", index=False)
    script = BLOCKER + textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from insurance_pipeline.serving.artifact import load_artifact
        model, manifest = load_artifact({str(folder)!r})
        predictions = model.predict(pd.read_csv({str(tmp_path / "rows.csv")!r}))
        np.save({str(tmp_path / "out.npy")!r}, predictions)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=DEFAULT_ROOT)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=0, atol=1e-9)


def test_the_service_process_never_imports_the_training_stack(artifact_dir):
    script = BLOCKER + textwrap.dedent(
        f"""
        import asyncio, sys
        from insurance_pipeline.serving.app import create_app
        app = create_app({str(artifact_dir)!r})
        async def main():
            async with app.router.lifespan_context(app):
                assert app.state.model.ready, app.state.model.error
        asyncio.run(main())
        loaded = {{m.split(".")[0] for m in sys.modules}} & {set(BLOCKED)!r}
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=DEFAULT_ROOT)
