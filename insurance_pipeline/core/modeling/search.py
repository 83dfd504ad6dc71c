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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from insurance_pipeline.domain.schema import SEGMENT_COLUMNS

SEARCH_SPACES = ("insurance", "boosted", "baseline", "linear-light", "linear", "graph-light")
SCORERS = ("r2_mae", "neg_mean_squared_error", "neg_mean_absolute_error")

# One unit of r2 is worth $100,000 of MAE: 0.001 r2 trades against $100 of mean error. On
# this data that steers the search to models that are good on both (see docs/model.md).
MAE_PER_R2 = 100_000.0


def r2_minus_scaled_mae(y_true, y_pred) -> float:
    from sklearn.metrics import mean_absolute_error, r2_score

    return float(r2_score(y_true, y_pred) - mean_absolute_error(y_true, y_pred) / MAE_PER_R2)


def build_scorer(name: str):
    if name == "r2_mae":
        from sklearn.metrics import make_scorer

        return make_scorer(r2_minus_scaled_mae)
    return name


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
    scorer: str = "r2_mae"
    scheduler_address: str | None = None

    def __post_init__(self):
        if self.search_space not in SEARCH_SPACES:
            raise ValueError(
                f"search_space {self.search_space!r} is not one of {', '.join(SEARCH_SPACES)}"
            )
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer {self.scorer!r} is not one of {', '.join(SCORERS)}")
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
    cv_score: float  # best mean CV score of the budget's scorer (higher is better)
    description: str
    evaluated: int
    seconds: float
    log: list[str]
    searched_on: str = "a local Dask cluster"  # or the standing cluster's scheduler address
    timed_out: int = 0  # candidates stopped at max_eval_time_mins (no score)
    invalid: int = 0  # candidates that failed to fit
    rows_searched: int = 0  # the rows TPOT's cross-validation saw
    rows_fitted: int = 0  # the rows the chosen pipeline is fitted on (all training rows)
    budget: dict[str, Any] = field(default_factory=dict)  # the SearchBudget that ran

    def budget_params(self) -> dict[str, Any]:
        """The budget as MLflow run parameters (`tpot.*`): what reproduces the search."""
        return {f"tpot.{key}": value for key, value in self.budget.items()}


# Above this many training rows the search runs on a stratified sample of this size, and the
# pipeline it chooses is then refitted on every row. A candidate's cost grows with the rows:
# the default budget takes 230 s at the real table's 1,070 training rows, and at 100,000 rows
# one generation took 799 s with a fifth of the candidates stopped at the per-candidate cap
# (the search then chooses among the fits that happened to finish). 2,000 rows keeps the search
# about as long as on the real table, whatever the table's size.
MAX_SEARCH_ROWS = 2_000


# The segments a search sample keeps in proportion (smoker x region: charges differ most
# between them).
STRATA = SEGMENT_COLUMNS[:2]


def search_strata(frame: pd.DataFrame) -> np.ndarray:
    """One label a row: its smoker x region segment."""
    labels = frame[STRATA[0]].astype(str)
    for column in STRATA[1:]:
        labels = labels + "/" + frame[column].astype(str)
    return labels.to_numpy()


def search_sample(strata: np.ndarray, limit: int, seed: int) -> np.ndarray | None:
    """Row positions of a seeded sample of `limit` rows stratified by `strata` (one label a
    row: smoker x region), or None when there are no more rows than that."""
    if len(strata) <= limit:
        return None
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(strata))
    sample, _ = train_test_split(positions, train_size=limit, stratify=strata, random_state=seed)
    return np.sort(sample)


def refit_on_every_row(result: SearchResult, X: np.ndarray, y: np.ndarray) -> SearchResult:
    """The chosen pipeline (its spec: a fresh clone) fitted on all of (X, y)."""
    from sklearn.base import clone

    result.pipeline = clone(result.pipeline).fit(X, y)
    result.rows_fitted = len(y)
    return result


def _python_values(params: dict) -> dict:
    """ConfigSpace hands numpy scalars; estimators (and their reprs) want Python values."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


def _plain_params(params: dict) -> dict:
    """Python values, without the loss-specific knobs the chosen loss ignores."""
    plain = _python_values(params)
    objective = plain.get("objective")
    if "huber_slope" in plain and objective != "reg:pseudohubererror":
        del plain["huber_slope"]
    if objective is not None and objective != "huber":
        plain.pop("alpha", None)
    if plain.get("loss") not in (None, "huber", "quantile"):
        plain.pop("alpha", None)
    return plain


def boosted_search_space(random_state: int):
    """Single boosted-tree regressors with squared, absolute or Huber loss."""
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


def _huber_blend(params: dict) -> dict:
    """VotingRegressor parameters from the flat blend hyperparameters."""
    from lightgbm import LGBMRegressor
    from sklearn.ensemble import GradientBoostingRegressor

    p = _python_values(params)
    gbr = GradientBoostingRegressor(
        loss="huber",
        alpha=p["gbr_alpha"],
        learning_rate=p["gbr_learning_rate"],
        n_estimators=p["gbr_n_estimators"],
        max_depth=p["gbr_max_depth"],
        min_samples_leaf=p["gbr_min_samples_leaf"],
        subsample=p["gbr_subsample"],
        random_state=p["random_state"],
    )

    def lightgbm(**loss) -> LGBMRegressor:
        return LGBMRegressor(
            **loss,
            learning_rate=p["lgbm_learning_rate"],
            n_estimators=p["lgbm_n_estimators"],
            num_leaves=p["lgbm_num_leaves"],
            max_depth=p["lgbm_max_depth"],
            min_child_samples=p["lgbm_min_child_samples"],
            subsample=p["lgbm_subsample"],
            subsample_freq=1,
            colsample_bytree=p["lgbm_colsample_bytree"],
            random_state=p["random_state"],
            n_jobs=1,
            verbose=-1,
        )

    lgbm = lightgbm(objective="huber", alpha=p["lgbm_alpha"])
    # A small squared-loss member pulls predictions toward the conditional mean (r2) without
    # giving up the Huber members' low absolute error.
    mean_model = lightgbm(objective="regression")
    huber_share = 1 - p["squared_weight"]
    return {
        "estimators": [("gbr", gbr), ("lgbm", lgbm), ("mean", mean_model)],
        "weights": [
            p["gbr_weight"] * huber_share,
            (1 - p["gbr_weight"]) * huber_share,
            p["squared_weight"],
        ],
    }


def insurance_search_space(random_state: int):
    """What suits this data (measured, docs/model.md): Huber losses, which ignore part of the
    long right tail of charges and so keep MAE low, and an average of a scikit-learn and a
    LightGBM Huber booster, which recovers the r2 either loses alone. TPOT tunes both members
    and the weight; the single boosters stay in the space as alternatives."""
    from ConfigSpace import ConfigurationSpace, Float, Integer
    from sklearn.ensemble import VotingRegressor
    from tpot.search_spaces.nodes import EstimatorNode
    from tpot.search_spaces.pipelines import ChoicePipeline

    blend = EstimatorNode(
        VotingRegressor,
        ConfigurationSpace(
            {
                "gbr_alpha": Float("gbr_alpha", (0.8, 0.95)),
                "gbr_learning_rate": Float("gbr_learning_rate", (0.02, 0.1), log=True),
                "gbr_n_estimators": Integer("gbr_n_estimators", (100, 300)),
                "gbr_max_depth": Integer("gbr_max_depth", (2, 4)),
                "gbr_min_samples_leaf": Integer("gbr_min_samples_leaf", (5, 30)),
                "gbr_subsample": Float("gbr_subsample", (0.6, 1.0)),
                "lgbm_alpha": Float("lgbm_alpha", (3000.0, 10000.0), log=True),
                "lgbm_learning_rate": Float("lgbm_learning_rate", (0.01, 0.08), log=True),
                "lgbm_n_estimators": Integer("lgbm_n_estimators", (200, 600)),
                "lgbm_num_leaves": Integer("lgbm_num_leaves", (4, 16)),
                "lgbm_max_depth": Integer("lgbm_max_depth", (2, 4)),
                "lgbm_min_child_samples": Integer("lgbm_min_child_samples", (10, 50)),
                "lgbm_subsample": Float("lgbm_subsample", (0.6, 1.0)),
                "lgbm_colsample_bytree": Float("lgbm_colsample_bytree", (0.5, 1.0)),
                "gbr_weight": Float("gbr_weight", (0.3, 0.7)),
                "squared_weight": Float("squared_weight", (0.0, 0.2)),
                "random_state": random_state,
            }
        ),
        hyperparameter_parser=_huber_blend,
    )
    return ChoicePipeline([blend, boosted_search_space(random_state)])


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

    builders = {
        "insurance": insurance_search_space,
        "boosted": boosted_search_space,
        "baseline": baseline_search_space,
    }
    builder = builders.get(budget.search_space)
    space = builder(budget.random_state) if builder else budget.search_space
    return TPOTRegressor(
        search_space=space,
        scorers=[build_scorer(budget.scorer)],
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
    """Stands in for stdout while TPOT runs: each printed line goes to `sink`, which itself
    sees the real stdout (so a sink that prints does not loop back here)."""

    def __init__(self, sink: Callable[[str], None], lines: list[str]):
        self._sink, self._lines, self._buffer = sink, lines, ""
        self._stdout = sys.stdout

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line.strip():
                self._lines.append(line.strip())
                with contextlib.redirect_stdout(self._stdout):
                    self._sink(line.strip())
        return len(text)


class _SchedulerWorkers:
    """What TPOT and the client's heartbeat read of `client.cluster`, for a standing cluster."""

    def __init__(self, client):
        from distributed.core import Status

        self._client = client
        self.status = Status.running

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
    scores = pd.to_numeric(evaluated[score_column], errors="coerce")
    errors = evaluated.get("Eval Error", pd.Series(dtype=object))
    return SearchResult(
        pipeline=pipeline,
        cv_score=float(scores.replace([np.inf, -np.inf], np.nan).max()),
        description=describe_pipeline(pipeline),
        evaluated=int(scores.notna().sum()),
        seconds=time.perf_counter() - started,
        log=lines,
        searched_on=budget.scheduler_address or SearchResult.searched_on,
        timed_out=int((errors == "TIMEOUT").sum()),
        invalid=int((errors == "INVALID").sum()),
        rows_searched=len(y),
        rows_fitted=len(y),
        budget={k: v for k, v in budget.as_dict().items() if k != "scheduler_address"},
    )


def search_training_rows(
    train: pd.DataFrame,
    X: np.ndarray,
    budget: SearchBudget,
    max_rows: int = MAX_SEARCH_ROWS,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """The search over the training rows `train` (features `X`): on every row while they are
    at most `max_rows`, else on a stratified sample of that size, the chosen pipeline then
    refitted on every row."""
    from insurance_pipeline.domain.schema import TARGET_COLUMN

    y = train[TARGET_COLUMN].to_numpy()
    sample = search_sample(search_strata(train), max_rows, budget.random_state)
    if sample is None:
        return run_search(X, y, budget, progress=progress)
    if progress is not None:
        progress(f"searching a stratified sample of {len(sample):,} of {len(y):,} training rows")
    return refit_on_every_row(run_search(X[sample], y[sample], budget, progress=progress), X, y)


def describe_pipeline(estimator) -> str:
    """One readable line for metadata and reports: the estimator repr without line breaks."""
    try:
        text = estimator.__repr__(N_CHAR_MAX=100_000)  # scikit-learn elides long reprs
    except TypeError:
        text = repr(estimator)
    return " ".join(text.split())
