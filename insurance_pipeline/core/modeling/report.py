"""The validation report: yellowbrick plots + metrics table + pipeline text, one HTML file."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ValidationReport:
    html: str
    plots_png: dict[str, bytes]  # plot name -> PNG bytes, also used for UI previews


def _render(visualizer_cls, model, X_train, y_train, X_test, y_test) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One figure per visualizer, closed after saving, or plots draw onto each other.
    # DejaVu Sans ships with matplotlib; yellowbrick's style asks for fonts a server lacks.
    with plt.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        return _draw(plt, visualizer_cls, model, X_train, y_train, X_test, y_test)


def _scored(model):
    """`model` as yellowbrick needs it: a regressor with `score`. A Pipeline whose last step
    cannot score (TPOT's GraphPipeline) is wrapped: r² of its predictions, scikit-learn's."""
    from sklearn.base import BaseEstimator, RegressorMixin

    last = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(last, "score"):
        return model

    class Scored(RegressorMixin, BaseEstimator):
        def __init__(self, fitted=None):
            self.fitted = fitted

        def __sklearn_is_fitted__(self) -> bool:
            return True

        def fit(self, X, y=None):
            return self

        def predict(self, X):
            return self.fitted.predict(X)

    Scored.__name__ = type(last).__name__  # the plots' titles name the chosen pipeline
    return Scored(model)


def _draw(plt, visualizer_cls, model, X_train, y_train, X_test, y_test) -> bytes:
    model = _scored(model)
    fig, ax = plt.subplots(figsize=(7, 5))
    try:
        # force_model: yellowbrick 1.5 does not recognise a fitted Pipeline as a regressor
        visualizer = visualizer_cls(model, ax=ax, is_fitted=True, force_model=True)
        if X_train is not None:
            visualizer.fit(X_train, y_train)  # with is_fitted: draws train residuals, no refit
        visualizer.score(X_test, y_test)
        visualizer.finalize()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def interval_plot_png(
    y: np.ndarray, point: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> bytes:
    """Held-out rows sorted by prediction: the interval as a band, the truth as dots (red
    outside the interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(point)
    x = np.arange(len(order))
    inside = (lower <= y) & (y <= upper)
    with plt.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        fig, ax = plt.subplots(figsize=(7, 5))
        try:
            ax.fill_between(x, lower[order], upper[order], alpha=0.3, label="interval")
            ax.plot(x, point[order], linewidth=1, label="prediction")
            ok = inside[order]
            ax.scatter(x[ok], y[order][ok], s=6, label="actual, inside")
            ax.scatter(x[~ok], y[order][~ok], s=10, color="red", label="actual, outside")
            ax.set_xlabel("held-out rows, by predicted charges")
            ax.set_ylabel("charges ($)")
            ax.set_title(f"Prediction interval: {inside.mean():.1%} of rows inside")
            ax.legend(loc="upper left")
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
            return buffer.getvalue()
        finally:
            plt.close(fig)


def interval_section_html(png: bytes, coverage_by_segment: dict[str, float]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>"
        for k, v in coverage_by_segment.items()
    )
    image = base64.b64encode(png).decode()
    return (
        f'<figure><img alt="interval" src="data:image/png;base64,{image}"></figure>'
        f"<table><tr><th>segment</th><th>coverage</th></tr>{rows}</table>"
    )


def render_validation_report(
    model,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    metrics: dict,
    pipeline_description: str,
    title: str = "Insurance charges model — validation report",
    extra_sections: dict[str, str] | None = None,
) -> ValidationReport:
    from yellowbrick.regressor import PredictionError, ResidualsPlot

    y_train = np.asarray(y_train, dtype=float)
    y_test = np.asarray(y_test, dtype=float)
    plots = {
        "residuals": _render(ResidualsPlot, model, X_train, y_train, X_test, y_test),
        "prediction_error": _render(PredictionError, model, None, None, X_test, y_test),
    }
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in metrics.items()
    )
    images = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{name.replace('_', ' ')}</figcaption></figure>"
        for name, png in plots.items()
    )
    extras = "".join(
        f"<h2>{html.escape(h)}</h2>{body}" for h, body in (extra_sections or {}).items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}
table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
figure{{display:inline-block;margin:1rem}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:1rem}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Holdout metrics</h2><table>{rows}</table>
<h2>Plots</h2>{images}
<h2>Pipeline</h2><pre>{html.escape(pipeline_description)}</pre>
{extras}
</body></html>
"""
    return ValidationReport(html=page, plots_png=plots)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return html.escape(str(value))


def validation_report(model, split, evaluation) -> ValidationReport:
    """The report of a `TrainedModel` on its `Split`, with the segment table and, where the
    model has one, the interval's plot and coverage per segment (`evaluation`: its
    `HoldoutEvaluation`)."""
    from insurance_pipeline.core.modeling.pipeline import FEATURES_STEP
    from insurance_pipeline.core.modeling.segments import segment_table_html
    from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN

    train, test = split.train, split.test
    features = list(FEATURE_COLUMNS)
    sections = {"Metrics per segment": segment_table_html(evaluation.segments)}
    if model.interval is not None and evaluation.interval is not None:
        point = model.pipeline.predict(test[features])
        X = model.pipeline.named_steps[FEATURES_STEP].transform(test[features])
        lower, upper = model.interval.bounds(point, X)
        y = test[TARGET_COLUMN].to_numpy(dtype=float)
        png = interval_plot_png(y, point, lower, upper)
        sections["Prediction interval"] = interval_section_html(
            png, evaluation.interval.coverage_by_segment
        )
    return render_validation_report(
        model.pipeline,
        train[features],
        train[TARGET_COLUMN],
        test[features],
        test[TARGET_COLUMN],
        metrics=evaluation.metrics.as_dict(),
        pipeline_description=model.description,
        extra_sections=sections,
    )
