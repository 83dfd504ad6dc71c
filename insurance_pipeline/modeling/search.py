"""The TPOT search: budget, search space and a progress-reporting fit.

TPOT 1.x starts a dask cluster with spawned workers, so whatever calls `run_search` must be
importable without side effects (a `__main__` guard in scripts). A `scheduler_address` sends
the work to an existing dask cluster instead.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SEARCH_SPACES = ("insurance", "baseline", "linear-light", "linear", "graph-light")


@dataclass(frozen=True)
class SearchBudget:
    generations: int = 5
    population_size: int = 20
    cv: int = 5
    max_time_mins: float | None = None  # None: bounded by generations only (reproducible)
    max_eval_time_mins: float = 2.0
    n_jobs: int = 2
    random_state: int = 42
    search_space: str = "insurance"
    scheduler_address: str | None = None

    def __post_init__(self):
        if self.search_space not in SEARCH_SPACES:
            raise ValueError(
                f"search_space {self.search_space!r} is not one of {', '.join(SEARCH_SPACES)}"
            )
        for name in ("generations", "population_size", "cv", "n_jobs"):
            if getattr(self, name) < (2 if name == "cv" else 1):
                raise ValueError(
                    f"search budget field {name!r} is too small: {getattr(self, name)}"
                )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    pipeline: Any  # fitted estimator chosen by TPOT (may hold TPOT classes)
    cv_score: float  # best mean CV score (neg MSE unless the scorer says otherwise)
    description: str
    evaluated: int
    seconds: float
    log: list[str]


def _plain_params(params: dict) -> dict:
    """ConfigSpace hands numpy scalars; estimators (and their reprs) want Python values.
    Loss-specific knobs are dropped where the chosen loss ignores them."""
    plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
    objective = plain.get("objective")
    if "huber_slope" in plain and objective != "reg:pseudohubererror":
        del plain["huber_slope"]
    if objective is not None and objective != "huber":
        plain.pop("alpha", None)
    if plain.get("loss") not in (None, "huber", "quantile"):
        plain.pop("alpha", None)
    return plain


def insurance_search_space(random_state: int):
    """Regressors that suit this data: boosted trees, with losses that care about absolute
    error as well as squared error (charges have a long right tail)."""
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer
    from lightgbm import LGBMRegressor
    from sklearn.ensemble import GradientBoostingRegressor
    from tpot.search_spaces.nodes import EstimatorNode
    from tpot.search_spaces.pipelines import ChoicePipeline
    from xgboost import XGBRegressor

    gbr = EstimatorNode(
        GradientBoostingRegressor,
        ConfigurationSpace(
            {
                "loss": Categorical("loss", ["huber", "absolute_error", "squared_error"]),
                "alpha": Float("alpha", (0.5, 0.99)),
                "learning_rate": Float("learning_rate", (0.01, 0.3), log=True),
                "n_estimators": Integer("n_estimators", (50, 400)),
                "max_depth": Integer("max_depth", (2, 6)),
                "min_samples_leaf": Integer("min_samples_leaf", (1, 60)),
                "subsample": Float("subsample", (0.5, 1.0)),
                "random_state": random_state,
            }
        ),
        hyperparameter_parser=_plain_params,
    )
    lgbm = EstimatorNode(
        LGBMRegressor,
        ConfigurationSpace(
            {
                "objective": Categorical("objective", ["huber", "l1", "regression"]),
                "alpha": Float("alpha", (500.0, 10000.0), log=True),  # huber delta, in dollars
                "learning_rate": Float("learning_rate", (0.01, 0.3), log=True),
                "n_estimators": Integer("n_estimators", (50, 500)),
                "num_leaves": Integer("num_leaves", (4, 64)),
                "min_child_samples": Integer("min_child_samples", (5, 80)),
                "subsample": Float("subsample", (0.5, 1.0)),
                "subsample_freq": 1,
                "random_state": random_state,
                "n_jobs": 1,
                "verbose": -1,
            }
        ),
        hyperparameter_parser=_plain_params,
    )
    xgb = EstimatorNode(
        XGBRegressor,
        ConfigurationSpace(
            {
                "objective": Categorical(
                    "objective",
                    ["reg:pseudohubererror", "reg:absoluteerror", "reg:squarederror"],
                ),
                "huber_slope": Float("huber_slope", (500.0, 10000.0), log=True),
                "learning_rate": Float("learning_rate", (0.01, 0.3), log=True),
                "n_estimators": Integer("n_estimators", (50, 500)),
                "max_depth": Integer("max_depth", (2, 6)),
                "min_child_weight": Float("min_child_weight", (1.0, 20.0), log=True),
                "subsample": Float("subsample", (0.5, 1.0)),
                "random_state": random_state,
                "n_jobs": 1,
            }
        ),
        hyperparameter_parser=_plain_params,
    )
    return ChoicePipeline([gbr, lgbm, xgb])


def baseline_search_space(random_state: int):
    """Regularised linear models only: a fast, weak reference point."""
    from ConfigSpace import ConfigurationSpace, Float
    from sklearn.linear_model import ElasticNet
    from tpot.search_spaces.nodes import EstimatorNode

    return EstimatorNode(
        ElasticNet,
        ConfigurationSpace(
            {
                "alpha": Float("alpha", (1e-3, 10.0), log=True),
                "l1_ratio": Float("l1_ratio", (0.0, 1.0)),
                "max_iter": 5000,
                "random_state": random_state,
            }
        ),
        hyperparameter_parser=_plain_params,
    )


def build_regressor(budget: SearchBudget, client=None):
    from tpot import TPOTRegressor

    builders = {"insurance": insurance_search_space, "baseline": baseline_search_space}
    builder = builders.get(budget.search_space)
    space = builder(budget.random_state) if builder else budget.search_space
    return TPOTRegressor(
        search_space=space,
        scorers=["neg_mean_squared_error"],
        scorers_weights=[1],
        generations=budget.generations,
        population_size=budget.population_size,
        cv=budget.cv,
        max_time_mins=budget.max_time_mins,
        max_eval_time_mins=budget.max_eval_time_mins,
        n_jobs=budget.n_jobs,
        client=client,
        random_state=budget.random_state,
        verbose=3,  # 3 = a line per generation with the best score; we forward it as progress
    )


class _LineForwarder(io.TextIOBase):
    def __init__(self, sink: Callable[[str], None], lines: list[str]):
        self._sink, self._lines, self._buffer = sink, lines, ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line.strip():
                self._lines.append(line.strip())
                self._sink(line.strip())
        return len(text)


class _SchedulerWorkers:
    def __init__(self, client):
        self._client = client

    @property
    def workers(self) -> dict:
        return self._client.scheduler_info()["workers"]


def run_search(
    X: np.ndarray,
    y: np.ndarray,
    budget: SearchBudget,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Fit TPOT on (X, y) within `budget`, forwarding its per-generation lines to `progress`."""
    started = time.perf_counter()
    if progress is None:
        # stderr, not print: stdout is redirected into `progress` while TPOT runs
        progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    lines: list[str] = []
    client = None
    if budget.scheduler_address:
        from distributed import Client

        client = Client(budget.scheduler_address)
        # TPOT sizes its work queue from `client.cluster.workers`, which a client connected
        # by address does not have; give it a view of the scheduler's workers.
        client.cluster = _SchedulerWorkers(client)
        progress(f"searching on the dask cluster at {budget.scheduler_address}")
    try:
        regressor = build_regressor(budget, client=client)
        progress(
            f"TPOT search: {budget.generations} generation(s) x population "
            f"{budget.population_size}, "
            f"{budget.cv}-fold CV, space {budget.search_space!r}"
        )
        with contextlib.redirect_stdout(_LineForwarder(progress, lines)):
            regressor.fit(X, y)
    finally:
        if client is not None:
            client.cluster = None  # ours was only a view; the cluster is not ours to close
            client.close()
    pipeline = regressor.fitted_pipeline_
    evaluated = regressor.evaluated_individuals
    score_column = evaluated.columns[0]
    best = float(evaluated[score_column].replace([np.inf, -np.inf], np.nan).max())
    return SearchResult(
        pipeline=pipeline,
        cv_score=best,
        description=describe_pipeline(pipeline),
        evaluated=int(evaluated[score_column].notna().sum()),
        seconds=time.perf_counter() - started,
        log=lines,
    )


def describe_pipeline(estimator) -> str:
    """One readable line for metadata and reports: the estimator repr without line breaks."""
    return " ".join(repr(estimator).split())
