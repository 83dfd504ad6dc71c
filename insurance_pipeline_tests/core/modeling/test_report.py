"""The validation report draws every model the search can choose."""

import networkx as nx
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tpot.graphsklearn import GraphPipeline

from insurance_pipeline.core.modeling.report import render_validation_report

pytestmark = pytest.mark.pure


def test_a_graph_pipeline_without_score_is_drawn():
    """TPOT's GraphPipeline (the `graph-light` space's choice) has no `score`, which the
    plots ask for: the report scores it by its predictions."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [3.0, -2.0, 0.5] + rng.normal(size=200)
    graph = nx.DiGraph()
    graph.add_node("ridge", instance=Ridge())
    graph.add_node("scale", instance=StandardScaler())
    graph.add_edge("ridge", "scale")  # TPOT's graphs point from the root to its inputs
    model = Pipeline([("identity", "passthrough"), ("graph", GraphPipeline(graph).fit(X, y))])
    assert not hasattr(model.steps[-1][1], "score")
    report = render_validation_report(
        model, X, y, X, y, metrics={"r2": 0.9}, pipeline_description="graph"
    )
    assert set(report.plots_png) == {"residuals", "prediction_error"}
    assert all(png.startswith(b"\x89PNG") for png in report.plots_png.values())
