"""File locks that serialize runs and registrations on one machine (the OS releases them if
the process dies)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path, *, announce: bool = False):
    """Hold an exclusive lock on `path` for the block; with `announce`, say who holds it
    while waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if announce:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                print(
                    f"another run holds the lock {path} ({holder}); waiting for it to finish",
                    file=sys.stderr,
                    flush=True,
                )
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
