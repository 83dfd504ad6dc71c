"""JSON-lines logging as the original service did, formatted off the request path.

Every record is one JSON object a line: `asctime`, `name`, `levelname`, `message`, the pod's
identity as lower-case `node_ip`, `pod_name`, `node_name`, `app_name` (from the environment
variables NODE_IP, POD_NAME, NODE_NAME, APP_NAME), then the record's extra fields.

A request only appends its records to a queue; a writer thread formats them and writes
whatever has accumulated in one call. `flush_logs()` (at shutdown) writes what is left.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Mapping, Sequence

ENVIRONMENT_FIELDS = ("NODE_IP", "POD_NAME", "NODE_NAME", "APP_NAME")
PREDICTION_LOGGER = "insurance_charges_model_logger"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_SKIPPED = {"color_message"}  # uvicorn's ANSI duplicate of the message


class JsonLineFormatter(logging.Formatter):
    def __init__(self, identity: Mapping[str, str]):
        super().__init__()
        self.identity = dict(identity)
        self._second, self._stamp = -1, ""
        self._encode = json.JSONEncoder(default=str).encode

    def formatTime(self, record: logging.LogRecord, datefmt=None) -> str:  # noqa: N802
        """logging's default "2026-11-24 01:10:13,979", the seconds formatted once."""
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "asctime": self.formatTime(record),
            "name": record.name,
            "levelname": record.levelname,
            "message": record.getMessage(),
            **self.identity,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _SKIPPED:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return self._encode(line)


class QueuedJsonHandler(logging.Handler):
    """Enqueues records; a daemon thread formats and writes them in batches: woken by a
    record, it waits `linger` seconds for more, so that under load one wake-up and one write
    serve many requests."""

    def __init__(self, stream, formatter: JsonLineFormatter, linger: float = 0.02):
        super().__init__()
        self.linger = linger
        self.stream, self.formatter = stream, formatter
        self.records: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="json-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put(record)

    def _run(self) -> None:
        while True:
            first = self.records.get()
            time.sleep(self.linger)
            self._write([first])

    def _write(self, batch: list) -> None:
        with self._lock:
            while True:
                try:
                    record = self.records.get_nowait()
                except queue.Empty:
                    break
                batch.append(record)
            try:
                self.stream.write("".join(self.formatter.format(r) + "\n" for r in batch))
                self.stream.flush()
            except Exception:  # noqa: BLE001 - logging must never break a request
                for record in batch:
                    self.handleError(record)

    def flush(self) -> None:
        self._write([])

    def close(self) -> None:
        self.flush()
        super().close()


def identity_fields(app_name: str = "") -> dict[str, str]:
    defaults = {"APP_NAME": app_name}
    return {n.lower(): os.environ.get(n, defaults.get(n, "")) for n in ENVIRONMENT_FIELDS}


def configure_logging(level: str = "INFO", stream=None, app_name: str = "") -> None:
    # Records need no caller, thread or process lookups: each would cost every request.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = QueuedJsonHandler(stream or sys.stdout, JsonLineFormatter(identity_fields(app_name)))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The prediction records replace uvicorn's access line.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    atexit.register(flush_logs)


def flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


class PredictionLog:
    """The original service's prediction records on `insurance_charges_model_logger`:
    "Prediction requested." (the inputs as flat fields, unless `log_inputs` is off: they are
    health data), then "Prediction created." (`charges`), or "Prediction exception."
    (`error_info`). A batch writes one pair, its inputs and charges as lists."""

    def __init__(self, model_name: str, model_version: str, log_inputs: bool = True):
        self.logger = logging.getLogger(PREDICTION_LOGGER)
        self.base = {
            "action": "predict",
            "model_qualified_name": model_name,
            "model_version": model_version,
        }
        self.log_inputs = log_inputs

    def requested(self, inputs: Mapping | Sequence[Mapping]) -> None:
        fields = dict(self.base)
        if self.log_inputs:
            if isinstance(inputs, Mapping):
                fields.update(inputs)
            else:
                fields.update({k: [row[k] for row in inputs] for k in inputs[0]} if inputs else {})
        self.logger.info("Prediction requested.", extra=fields)

    def created(self, charges: float | list[float]) -> None:
        self.logger.info(
            "Prediction created.", extra={**self.base, "status": "success", "charges": charges}
        )

    def failed(self, error: BaseException) -> None:
        self.logger.error(
            "Prediction exception.",
            extra={
                **self.base,
                "status": "error",
                "error_info": f"{type(error).__name__}: {error}",
            },
        )
