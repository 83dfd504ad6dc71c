"""The service process needs no training library: not the training stack (dagster, tpot,
featuretools, mlflow) and not scikit-learn, LightGBM, XGBoost, SciPy, pandas or pyarrow."""

import subprocess
import sys
import textwrap

import pytest

from insurance_pipeline.domain.layout import CHECKOUT
from insurance_pipeline_tests.helpers import SERVING_VENV_PYTHON
from insurance_pipeline_tests.helpers import TRAINING_LIBRARIES as BLOCKED

pytestmark = pytest.mark.pure

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


def test_the_service_loads_and_predicts_with_training_libraries_blocked(artifact_dir):
    script = BLOCKER + textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from insurance_pipeline.serving.app import create_app
        from insurance_pipeline.serving.schemas import EXAMPLE_INPUT
        app = create_app({str(artifact_dir)!r})
        with TestClient(app) as client:
            assert app.state.service.ready, app.state.service.error
            for path in ("/prediction", "/predictions"):
                body = EXAMPLE_INPUT if path == "/prediction" else [EXAMPLE_INPUT]
                response = client.post("/api/models/insurance_charges_model" + path, json=body)
                assert response.status_code == 200, response.text
        loaded = {{m.split(".")[0] for m in sys.modules}} & {set(BLOCKED)!r}
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=CHECKOUT)


@pytest.mark.skipif(not SERVING_VENV_PYTHON.exists(), reason="`make install` makes .venv-serving")
def test_the_serving_install_has_no_training_library():
    script = textwrap.dedent(
        f"""
        import importlib.util
        present = [m for m in {BLOCKED!r} if importlib.util.find_spec(m)]
        assert not present, present
        import insurance_pipeline.serving.app
        """
    )
    subprocess.run([str(SERVING_VENV_PYTHON), "-c", script], check=True, cwd=CHECKOUT)


@pytest.mark.skipif(not SERVING_VENV_PYTHON.exists(), reason="`make install` makes .venv-serving")
def test_the_guard_runs_on_exactly_the_uvicorn_it_was_tested_against():
    """serving/protocol.py extends uvicorn's httptools protocol: the service's distribution
    pins uvicorn and httptools exactly, and the install the service tests run is that."""
    import re
    import tomllib

    project = tomllib.loads((CHECKOUT / "deploy" / "service" / "pyproject.toml").read_text())
    pins = dict(
        re.match(r"([a-z-]+)==([\w.]+)", d).groups()
        for d in project["project"]["dependencies"]
        if "==" in d
    )
    assert set(pins) >= {"uvicorn", "httptools"}
    script = "import importlib.metadata as m; print(m.version('uvicorn'), m.version('httptools'))"
    installed = subprocess.run(
        [str(SERVING_VENV_PYTHON), "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert installed == [pins["uvicorn"], pins["httptools"]]
