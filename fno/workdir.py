"""The run directory: creation, a single-owner lock, and atomic JSON files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from fno.errors import FnoError


def prepare(workdir: str) -> str:
    """Create ``workdir`` if needed and make sure it is writable; return its absolute path."""
    if not workdir:
        raise FnoError("--workdir is required")
    workdir = os.path.abspath(os.path.expanduser(workdir))
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):
            pass
    except OSError as e:
        raise FnoError(f"workdir {workdir} is not writable: {e.strerror or e}") from e
    return workdir


@contextlib.contextmanager
def exclusive(workdir: str, process_index: int = 0) -> Iterator[None]:
    """Refuse a second run on the same workdir while this one is alive.

    An ``flock`` on ``workdir/.lock.p{i}``: the kernel releases it when the owner exits, even
    by ``kill -9``, so a dead owner never blocks a restart. Each process of a multi-process
    run takes its own file, so the processes of one job do not block each other.
    """
    path = os.path.join(workdir, f".lock.p{process_index}")
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "another process"
            raise FnoError(f"workdir {workdir} is in use by {owner}; wait for it to finish or "
                           f"use another --workdir") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_json_atomic(path: str, obj: Any) -> None:
    """Write JSON to a temporary file and rename it over ``path``: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        tmp = f.name
    os.replace(tmp, path)
