"""JSON-lines logging as the original service did, and the prediction-logging decorator."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter

ENVIRONMENT_FIELDS = ("NODE_IP", "POD_NAME", "NODE_NAME", "APP_NAME")
PREDICTION_LOGGER = "insurance_pipeline.serving.predictions"


class EnvironmentFilter(logging.Filter):
    """Adds the pod's identity (downward API variables) to every record."""

    def __init__(self, defaults: dict[str, str] | None = None):
        super().__init__()
        defaults = defaults or {}
        self.values = {n: os.environ.get(n, defaults.get(n, "")) for n in ENVIRONMENT_FIELDS}

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self.values.items():
            setattr(record, name, value)
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI duplicate of the message
        return True


def configure_logging(level: str = "INFO", stream=None, app_name: str = "") -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        JsonFormatter("{asctime}{levelname}{name}{message}", style="{", timestamp=False)
    )
    handler.addFilter(EnvironmentFilter({"APP_NAME": app_name}))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One JSON line per prediction replaces uvicorn's access line.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def logged_prediction(
    model_name: str, model_version: str, action: str = "predict"
) -> Callable[[Callable], Callable]:
    """Wrap a predict function `f(inputs: list[dict]) -> list[float]` so that each input gets a
    JSON line: action, model, version, status, error_info, the input fields and the output."""
    logger = logging.getLogger(PREDICTION_LOGGER)

    def decorate(predict: Callable[[list[dict]], list[float]]):
        @functools.wraps(predict)
        def wrapper(inputs: list[dict]) -> list[float]:
            base = {
                "action": action,
                "model_qualified_name": model_name,
                "model_version": model_version,
            }
            try:
                outputs = predict(inputs)
            except Exception as error:
                for item in inputs:
                    logger.error(
                        "prediction failed",
                        extra={
                            **base,
                            **item,
                            "status": "error",
                            "error_info": repr(error),
                            "charges": None,
                        },
                    )
                raise
            for item, charges in zip(inputs, outputs, strict=True):
                logger.info(
                    "prediction",
                    extra={
                        **base,
                        **item,
                        "status": "success",
                        "error_info": None,
                        "charges": charges,
                    },
                )
            return outputs

        return wrapper

    return decorate
