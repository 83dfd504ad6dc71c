"""Giving memory back after a burst of batches.

A 1,000-row batch allocates a few MiB of short-lived arrays and pydantic objects on a model
thread, and its request and response bodies on the event loop. glibc keeps freed heap in
each thread's arena, so after a flood of batches the process holds memory it no longer uses,
and keeps holding it (measured with 32 connections: idle 90 MiB, 137 MiB ten seconds after
the flood). `ModelThreads` asks glibc to give it back (`malloc_trim(0)`, which trims every
arena) once the model threads have been idle for `settle` seconds, so the bodies the event
loop frees after the last answer are returned too. The trim runs on one long-lived trimmer
thread (waiting on a condition, never on the event loop), at most once per quiet period.
Where the C library has no `malloc_trim` (musl, macOS), nothing is trimmed.

Trimming alone is not enough: glibc gives every new thread an arena of its own (up to 8 per
core), and the threads scatter small live objects across them, so their pages cannot be
returned. `limit_arenas` caps them at one per model thread plus one for the
event loop before any thread starts (measured: 117 MiB ten seconds after the flood with
glibc's default, 74 MiB within 2.4 s with the cap; the throughput did not change beyond the
run-to-run noise).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from concurrent.futures import Future, ThreadPoolExecutor

SETTLE_SECONDS = 1.0
M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def limit_arenas(arenas: int) -> bool:
    """Caps glibc's malloc arenas; False where the C library has no `mallopt`."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def _malloc_trim():
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Give freed heap back to the system now (after loading the model: its checks free
    about 20 MiB glibc would otherwise keep). False where there is no `malloc_trim`."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class ModelThreads(ThreadPoolExecutor):
    """The model threads; the heap is trimmed once they have been idle for `settle` s, by one
    long-lived trimmer thread that waits on a condition (no thread per idle period)."""

    def __init__(self, workers: int, settle: float = SETTLE_SECONDS):
        super().__init__(workers, thread_name_prefix="model")
        self._changed = threading.Condition()
        self._in_flight = 0
        self._work = 0  # tasks submitted so far
        self._trimmed_after = 0  # the task count the last trim followed
        self._closing = False
        self._settle = settle
        self._trim = _malloc_trim()
        self._trimmer = None
        if self._trim is not None:
            self._trimmer = threading.Thread(target=self._trim_when_idle, name="heap-trimmer")
            self._trimmer.daemon = True
            self._trimmer.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._changed:
            self._in_flight += 1
            self._work += 1
            self._changed.notify()
        return super().submit(self._run, fn, args, kwargs)

    def _run(self, fn, args, kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify()

    def _settled(self) -> int | None:
        """The task count once work has run since the last trim and no new task came for
        `settle` seconds with nothing in flight; None when closing."""
        with self._changed:
            while True:
                self._changed.wait_for(
                    lambda: (
                        self._closing
                        or (self._in_flight == 0 and self._work != self._trimmed_after)
                    )
                )
                if self._closing:
                    return None
                seen = self._work
                moved = self._changed.wait_for(
                    lambda seen=seen: self._closing or self._work != seen, timeout=self._settle
                )
                if not moved:
                    self._trimmed_after = seen
                    return seen

    def _trim_when_idle(self) -> None:
        while self._settled() is not None:
            self._trim(0)  # outside the lock: a new task never waits on it

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        super().shutdown(wait, cancel_futures=cancel_futures)
        if self._trimmer is not None and wait:
            self._trimmer.join()
