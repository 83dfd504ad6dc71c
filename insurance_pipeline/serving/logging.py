"""JSON-lines logging as the original service did, formatted off the request path.

Every record is one JSON object a line: `asctime`, `name`, `levelname`, `message`, the pod's
identity as lower-case `node_ip`, `pod_name`, `node_name`, `app_name` (from the environment
variables NODE_IP, POD_NAME, NODE_NAME, APP_NAME; "N/A" where one is unset, as the original's
filter wrote), then the record's extra fields.

That is the default. As in the original, a YAML file can configure logging instead: REST_CONFIG
names it, and its `logging` section is handed to `logging.config.dictConfig`
(`configure_from_file`). `JsonFormatter` and `EnvironmentInfoFilter` below are what such a file
names for the original's JSON lines and environment fields.

A request only puts its records on a bounded queue (the standard library's `QueueHandler`);
a `QueueListener` thread formats and writes them, flushing the stream whenever the queue runs
empty, so that under load one write serves many requests. When the queue is full a record is
dropped rather than held in memory, and the listener reports how many were dropped, at most
once a second. `flush_logs()` (at shutdown) writes what is left.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ENVIRONMENT_FIELDS = ("NODE_IP", "POD_NAME", "NODE_NAME", "APP_NAME")
UNSET = "N/A"  # an environment field whose variable is not set (the original's value)
PREDICTION_LOGGER = "insurance_charges_model_logger"
SERVICE_LOGGER = "insurance_pipeline.serving"
QUEUE_RECORDS = 10_000  # records waiting to be written; beyond this they are dropped
LINGER_SECONDS = 0.02  # how long the writer waits, once woken, for more records
# ... and values waiting, counting each item of a list field (a batch's inputs, its charges):
# the memory the queue may hold is bounded by values, not by records of any size.
QUEUE_VALUES = 200_000
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_WEIGHT = "_queued_values"
_SKIPPED = {"color_message", _WEIGHT}  # uvicorn's ANSI duplicate of the message; ours


class JsonLineFormatter(logging.Formatter):
    def __init__(self, identity: Mapping[str, str]):
        super().__init__()
        self.identity = dict(identity)
        self._cached = (-1, "")
        self._encode = json.JSONEncoder(default=str).encode
        self._heads: dict[tuple[str, str, str], str] = {}

    def formatTime(self, record: logging.LogRecord, datefmt=None) -> str:  # noqa: N802
        """logging's default "2026-11-24 01:10:13,979", the seconds formatted once."""
        return self._stamp_of(record.created)

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

    def line(self, name: str, levelname: str, message: str, fields: dict, created: float) -> str:
        """The line `format` writes for a record with these fields, made without a LogRecord
        (the prediction records' hot path): the same keys, order and encoding."""
        stamp = self._stamp_of(created)
        head = self._heads.get((name, levelname, message))
        if head is None:
            fixed = {"name": name, "levelname": levelname, "message": message, **self.identity}
            head = self._heads[(name, levelname, message)] = self._encode(fixed)[1:-1]
        return f'{{"asctime": "{stamp}", {head}, {self._encode(fields)[1:]}'

    def _stamp_of(self, created: float) -> str:
        second = int(created)
        cached_second, stamp = self._cached  # one tuple: request threads share it
        if second != cached_second:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created))
            self._cached = (second, stamp)
        return f"{stamp},{int((created - second) * 1000):03d}"


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """Puts records on the queue as they are (the listener formats them), never blocking:
    a record that finds the queue full is counted in `dropped` instead."""

    def __init__(self, records: queue.Queue, max_values: int = QUEUE_VALUES):
        super().__init__(records)
        self.dropped, self.values, self.max_values = 0, 0, max_values
        self._count = threading.Lock()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # same process: no need to pre-format for pickling

    def enqueue(self, record: logging.LogRecord) -> None:
        weight = 1 + sum(len(v) for v in record.__dict__.values() if type(v) is list)
        setattr(record, _WEIGHT, weight)
        self._put(record, weight)

    def enqueue_line(self, text: str, weight: int) -> None:
        """A line already formatted (`JsonLineFormatter.line`), under the same bounds."""
        self._put(Line(text, weight), weight)

    def _put(self, item, weight: int) -> None:
        """Onto the queue when its values fit, else counted as dropped."""
        with self._count:
            if self.values + weight > self.max_values:
                self.dropped += 1
                return
            self.values += weight
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.written(item)
            with self._count:
                self.dropped += 1

    def written(self, record: logging.LogRecord) -> None:
        """A queued record left the queue: its values no longer count."""
        with self._count:
            self.values -= getattr(record, _WEIGHT, 0)

    def take_dropped(self) -> int:
        with self._count:
            dropped, self.dropped = self.dropped, 0
        return dropped


class Line:
    """A formatted record waiting to be written, and how many values it holds."""

    __slots__ = ("text", _WEIGHT)

    def __init__(self, text: str, weight: int):
        self.text = text
        setattr(self, _WEIGHT, weight)


class _UnflushedStreamHandler(logging.StreamHandler):
    """Writes without flushing: the listener flushes once the queue runs empty."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - logging must never break the service
            self.handleError(record)


class BatchingListener(logging.handlers.QueueListener):
    """Flushes the stream when the queue is empty and reports dropped records (at most once a
    second) as a WARNING of its own. Woken from an empty queue, it waits `linger` seconds for
    more records before it writes: under load one wake-up serves many requests, instead of the
    writer and the event loop handing the interpreter to each other at every record (that
    hand-off cost 38 % of single-row throughput: docs/benchmarks.md, "Which commit cost
    what")."""

    def __init__(
        self,
        records: queue.Queue,
        writer: logging.Handler,
        source: DroppingQueueHandler,
        linger: float = LINGER_SECONDS,
    ):
        super().__init__(records, writer)
        self.writer, self.source, self._reported = writer, source, 0.0
        self.linger = linger

    def dequeue(self, block: bool):
        try:
            record = self.queue.get_nowait()
        except queue.Empty:
            self.report_drops()
            self.writer.flush()
            record = self.queue.get(block)
            time.sleep(self.linger)  # let the records of the next few requests arrive
        if isinstance(record, logging.LogRecord | Line):
            self.source.written(record)
        return record

    def handle(self, record) -> None:
        if isinstance(record, Line):
            try:
                self.writer.stream.write(record.text + "\n")
            except Exception:  # noqa: BLE001 - logging must never break the service
                pass
            return
        super().handle(record)

    def report_drops(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._reported < 1.0:
            return
        dropped = self.source.take_dropped()
        if dropped:
            self._reported = now
            record = logging.LogRecord(
                SERVICE_LOGGER,
                logging.WARNING,
                __file__,
                0,
                "log queue full: dropped %d record(s)",
                (dropped,),
                None,
            )
            record.dropped_records = dropped
            self.writer.handle(record)

    def drain(self) -> None:
        """Write every record queued so far."""
        if self._thread is not None:
            self.queue.join()
        self.report_drops(force=True)
        self.writer.flush()


_listener: BatchingListener | None = None


def fast_sink() -> tuple[DroppingQueueHandler, JsonLineFormatter] | None:
    """Where the prediction records go without LogRecords: the queue and the formatter of
    `configure_logging`, while the root logger still writes only through them."""
    listener = _listener
    if listener is None or logging.getLogger().handlers != [listener.source]:
        return None
    return listener.source, listener.writer.formatter


def identity_fields(names: Sequence[str] = ENVIRONMENT_FIELDS) -> dict[str, str]:
    """The environment fields of every record: each variable's value under its lower-case
    name, "N/A" where it is unset."""
    return {name.lower(): os.environ.get(name, UNSET) for name in names}


class EnvironmentInfoFilter(logging.Filter):
    """Adds environment variables to every record, each under its lower-case name ("N/A"
    where unset): the original's filter, for logging configured from a file."""

    def __init__(self, env_variables: Sequence[str] = ENVIRONMENT_FIELDS):
        super().__init__()
        self.fields = identity_fields(env_variables)

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.update(self.fields)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: the attributes the `format` string names, in its order
    ("%(asctime)s %(name)s %(levelname)s %(message)s", as python-json-logger reads it), then
    the record's extra fields. For logging configured from a file."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%"):
        super().__init__(fmt, datefmt, style)
        self.keys = re.findall(r"%\((\w+)\)", fmt or "%(message)s")
        self._encode = json.JSONEncoder(default=str).encode

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if "asctime" in self.keys:
            record.asctime = self.formatTime(record, self.datefmt)
        line = {key: getattr(record, key, None) for key in self.keys}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _SKIPPED and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return self._encode(line)


class LoggingConfigError(ValueError):
    """The logging file cannot be used; the message names the file and why."""


def configure_from_file(path: str | os.PathLike, default_level: str = "INFO") -> dict:
    """Configure logging from the YAML file at `path` (REST_CONFIG): its `logging` section (or
    the whole file, when it is a dictConfig itself) through `logging.config.dictConfig`; a
    file without one gets the default configuration at `default_level`. Returns the file's
    contents (the service reads `service_title` from it)."""
    import logging.config

    import yaml

    try:
        text = Path(path).read_text()
        document = yaml.safe_load(text) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LoggingConfigError(f"REST_CONFIG {path}: cannot be read: {error}") from error
    if not isinstance(document, dict):
        raise LoggingConfigError(f"REST_CONFIG {path}: not a mapping of settings")
    if not isinstance(document.get("service_title", ""), str):
        raise LoggingConfigError(f"REST_CONFIG {path}: 'service_title' is not a string")
    section = document if "version" in document else document.get("logging")
    if section is None:
        configure_logging(default_level)
        return document
    if not isinstance(section, dict):
        raise LoggingConfigError(f"REST_CONFIG {path}: 'logging' is not a mapping")
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
    try:
        logging.config.dictConfig(section)
    except (ValueError, TypeError, AttributeError, ImportError) as error:
        raise LoggingConfigError(f"REST_CONFIG {path}: 'logging' is refused: {error}") from error
    _quiet_uvicorn()
    atexit.register(flush_logs)
    return document


def _quiet_uvicorn() -> None:
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The prediction records replace uvicorn's access line.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def configure_logging(level: str = "INFO", stream=None) -> None:
    """The default configuration: every record through the bounded queue, written as JSON
    lines by one thread."""
    global _listener
    # Records need no thread or process lookups: each would cost every request.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    records: queue.Queue = queue.Queue(maxsize=QUEUE_RECORDS)
    handler = DroppingQueueHandler(records)
    writer = _UnflushedStreamHandler(stream or sys.stdout)
    writer.setFormatter(JsonLineFormatter(identity_fields()))
    if _listener is not None:
        _listener.stop()
    _listener = BatchingListener(records, writer, handler)
    _listener.start()
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _quiet_uvicorn()
    atexit.register(flush_logs)


def flush_logs() -> None:
    if _listener is not None:
        _listener.drain()
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
        weight = 1
        if self.log_inputs:
            if isinstance(inputs, Mapping):
                fields.update(inputs)
            elif inputs:
                fields.update({k: [row[k] for row in inputs] for k in inputs[0]})
                weight += len(inputs) * len(inputs[0])
        self._info("Prediction requested.", fields, weight)

    def created(self, charges: float | list[float]) -> None:
        weight = 1 + (len(charges) if type(charges) is list else 0)
        self._info(
            "Prediction created.", {**self.base, "status": "success", "charges": charges}, weight
        )

    def _info(self, message: str, fields: dict, weight: int) -> None:
        """Straight onto the writer's queue as a formatted line when the default logging
        runs (no LogRecord, no handler chain: the request pays a few microseconds); through
        `logging` otherwise, so any other configuration sees every record."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        sink = fast_sink() if not self.logger.handlers and self.logger.propagate else None
        if sink is None:
            self.logger.info(message, extra=fields)
            return
        queue_, formatter = sink
        queue_.enqueue_line(
            formatter.line(PREDICTION_LOGGER, "INFO", message, fields, time.time()), weight
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
