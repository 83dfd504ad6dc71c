"""The service's log queue is bounded by records and by values (a batch's lists count item by
item): under overload it drops records, and says how many, instead of holding them."""

from __future__ import annotations

import io
import json
import logging
import queue
import sys
from pathlib import Path

import pytest

from insurance_pipeline.serving.logging import (
    BatchingListener,
    DroppingQueueHandler,
    JsonLineFormatter,
)
from insurance_pipeline.serving.schemas import EXAMPLE_INPUT

pytestmark = pytest.mark.servers


def record(message: str, **fields) -> logging.LogRecord:
    made = logging.LogRecord("prediction", logging.INFO, __file__, 0, message, (), None)
    made.__dict__.update(fields)
    return made


def test_a_full_queue_drops_records_and_reports_how_many():
    records: queue.Queue = queue.Queue(maxsize=10)
    handler = DroppingQueueHandler(records, max_values=50)
    for i in range(30):
        handler.handle(record(f"single {i}"))  # 10 fit: the queue holds 10 records
    handler.handle(record("a batch", age=list(range(1000))))  # 1,001 values: over the budget
    assert records.qsize() == 10 and handler.dropped == 21

    stream = io.StringIO()
    writer = logging.StreamHandler(stream)
    writer.setFormatter(JsonLineFormatter({}))
    listener = BatchingListener(records, writer, handler)
    listener.start()
    listener.drain()
    listener.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["message"] for r in lines[:10]] == [f"single {i}" for i in range(10)]
    assert lines[-1]["levelname"] == "WARNING"
    assert lines[-1]["message"] == "log queue full: dropped 21 record(s)"
    assert lines[-1]["dropped_records"] == 21
    assert all("_queued_values" not in r for r in lines)
    assert handler.values == 0  # what was written no longer counts


def test_values_are_released_as_records_are_written():
    records: queue.Queue = queue.Queue(maxsize=100)
    handler = DroppingQueueHandler(records, max_values=2_500)
    handler.handle(record("batch 1", charges=list(range(1000))))
    handler.handle(record("batch 2", charges=list(range(1000))))
    handler.handle(record("batch 3", charges=list(range(1000))))  # would hold 3,003 values
    assert records.qsize() == 2 and handler.dropped == 1
    writer = logging.StreamHandler(io.StringIO())
    listener = BatchingListener(records, writer, handler)
    listener.start()
    listener.drain()
    listener.stop()
    handler.handle(record("batch 4", charges=list(range(1000))))
    assert records.qsize() == 1 and handler.values == 1001  # room again: it was queued


def test_the_fast_prediction_records_are_the_records_logging_writes():
    """The prediction records skip LogRecords on the default configuration: the same lines,
    key for key and value for value, as the formatter writes for the records themselves."""
    from insurance_pipeline.serving import logging as service_logging

    stream = io.StringIO()
    service_logging.configure_logging("INFO", stream=stream)
    try:
        log = service_logging.PredictionLog("insurance_charges_model", "7")
        row = dict(EXAMPLE_INPUT)
        log.requested(row)
        log.created(1234.5)
        log.requested([row, row])
        log.created([1.0, 2.0])
        service_logging.flush_logs()
        fast = [json.loads(line) for line in stream.getvalue().splitlines()]
        formatter = JsonLineFormatter(service_logging.identity_fields())
        expected = []
        for message, fields in [
            ("Prediction requested.", row),
            ("Prediction created.", {"status": "success", "charges": 1234.5}),
            ("Prediction requested.", {k: [v, v] for k, v in row.items()}),
            ("Prediction created.", {"status": "success", "charges": [1.0, 2.0]}),
        ]:
            made = record(message, **log.base, **fields)
            made.name = service_logging.PREDICTION_LOGGER
            expected.append(json.loads(formatter.format(made)))
        for got, want in zip(fast, expected, strict=True):
            assert list(got)[1:] == list(want)[1:]  # the same keys in the same order
            assert {k: v for k, v in got.items() if k != "asctime"} == {
                k: v for k, v in want.items() if k != "asctime"
            }
        # any other configuration gets LogRecords, through its own handlers
        seen = []
        handler = logging.Handler()
        handler.emit = seen.append
        logging.getLogger(service_logging.PREDICTION_LOGGER).addHandler(handler)
        try:
            log.created(3.0)
        finally:
            logging.getLogger(service_logging.PREDICTION_LOGGER).removeHandler(handler)
        assert [r.getMessage() for r in seen] == ["Prediction created."]
    finally:
        service_logging.flush_logs()


REST_CONFIG_FILE = Path(__file__).resolve().parents[2] / "deploy" / "service" / "rest_config.yaml"


def test_logging_from_the_originals_yaml_file_keeps_its_fields_and_order(tmp_path, monkeypatch):
    """REST_CONFIG: the `logging` section goes to dictConfig; the format string picks the
    keys and their order, the filter the environment fields ("N/A" where unset)."""
    import logging

    from insurance_pipeline.serving import logging as service_logging

    for name in ("NODE_IP", "POD_NAME", "NODE_NAME"):
        monkeypatch.setenv(name, name.lower() + "-value")
    monkeypatch.delenv("APP_NAME", raising=False)  # outside Kubernetes: unset, as the original
    text = REST_CONFIG_FILE.read_text().replace("ext://sys.stdout", "ext://sys.stderr")
    config = tmp_path / "rest_config.yaml"
    config.write_text(text)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        document = service_logging.configure_from_file(config)
        assert document["service_title"] == "Insurance Charges Model Service"
        logging.getLogger("insurance_charges_model_logger").info(
            "Prediction created.", extra={"charges": 1.5}
        )
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert list(line)[:8] == [
        "asctime",
        "node_ip",
        "pod_name",
        "node_name",
        "app_name",
        "name",
        "levelname",
        "message",
    ]
    assert line["node_ip"] == "node_ip-value" and line["app_name"] == "N/A"
    assert line["message"] == "Prediction created." and line["charges"] == 1.5


@pytest.mark.parametrize(
    "content, complaint",
    [
        ("logging: [1, 2]", "'logging' is not a mapping"),
        ("logging: {version: 1, handlers: {h: {class: no.such.Handler}}}", "is refused"),
        ("[unclosed", "cannot be read"),
        ("service_title: [1, 2]", "'service_title' is not a string"),
    ],
)
def test_a_bad_logging_file_is_refused_naming_it(tmp_path, content, complaint):
    from insurance_pipeline.serving.logging import LoggingConfigError, configure_from_file

    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(LoggingConfigError, match=complaint) as refused:
        configure_from_file(path)
    assert str(path) in str(refused.value)


def test_the_default_records_say_na_for_an_unset_environment_field(monkeypatch):
    from insurance_pipeline.serving.logging import identity_fields

    monkeypatch.delenv("APP_NAME", raising=False)
    monkeypatch.setenv("POD_NAME", "pod-z")
    fields = identity_fields()
    assert fields["app_name"] == "N/A" and fields["pod_name"] == "pod-z"


def test_a_file_without_a_logging_section_keeps_the_default_json_lines(tmp_path, monkeypatch):
    """REST_CONFIG with only `service_title`: the records still go out, as the default."""
    import logging

    from insurance_pipeline.serving import logging as service_logging

    path = tmp_path / "rest_config.yaml"
    path.write_text("service_title: Charges\n")
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        assert service_logging.configure_from_file(path)["service_title"] == "Charges"
        logging.getLogger("insurance_charges_model_logger").info("Prediction created.")
        service_logging.flush_logs()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "Prediction created." and "app_name" in line
