"""The model threads give the heap back once they fall idle, and only then."""

from __future__ import annotations

import threading
import time

import pytest

from insurance_pipeline.serving import memory
from insurance_pipeline.serving.memory import ModelThreads, limit_arenas

pytestmark = pytest.mark.pure


@pytest.fixture
def counted(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda: calls.append)
    return calls


def test_the_heap_is_trimmed_once_after_the_threads_settle(counted):
    threads = ModelThreads(2, settle=0.2)
    try:
        for _ in range(3):
            assert threads.submit(sum, [1, 2]).result() == 3
        assert counted == []  # not while work may follow
        time.sleep(0.5)
        assert counted == [0]  # malloc_trim(0): every arena, once per quiet period
    finally:
        threads.shutdown()


def test_no_trim_while_work_is_in_flight(counted):
    threads = ModelThreads(2, settle=0.1)
    release = threading.Event()
    try:
        slow = threads.submit(release.wait, 5)
        threads.submit(sum, [1]).result()
        time.sleep(0.3)
        assert counted == []  # one task still runs
        release.set()
        slow.result()
        time.sleep(0.4)
        assert counted == [0]
    finally:
        threads.shutdown()


def test_shutdown_cancels_a_pending_trim(counted):
    threads = ModelThreads(1, settle=0.3)
    threads.submit(sum, [1]).result()
    threads.shutdown()
    time.sleep(0.5)
    assert counted == []


def test_arenas_are_capped_on_glibc():
    assert limit_arenas(3) is (memory._libc() is not None and hasattr(memory._libc(), "mallopt"))
