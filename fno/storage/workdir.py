"""The run directory: creation and a single-owner lock.

The workdir may be local (a disk, NFS, Lustre) or a ``gs://`` URL (:mod:`fno.storage.paths`);
JSON files in it are written with :func:`fno.storage.paths.write_json_atomic`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from absl import logging
from etils import epath

from fno.errors import FnoError
from fno.storage import locking, paths


def prepare(workdir: str | os.PathLike) -> epath.Path:
    """Create ``workdir`` if needed and make sure it is writable; return it as a path."""
    if not os.fspath(workdir):
        raise FnoError("--workdir is required")
    path = paths.resolve(workdir, "workdir")
    probe = path / f".write_test.{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise FnoError(f"workdir {path} is not writable: {e.strerror or e}") from e
    except Exception as e:  # noqa: BLE001 - object-store clients raise their own types
        raise FnoError(f"workdir {path} is not writable: {paths.storage_error(e)}") from e
    return path


def _warn_unlocked(workdir: epath.Path, why: str) -> None:
    logging.warning("workdir %s cannot be locked (%s): make sure no other run uses it at "
                    "the same time.", workdir, why)


@contextlib.contextmanager
def exclusive(workdir: epath.Path, process_index: int = 0) -> Iterator[None]:
    """Refuse a second run on the same workdir while this one is alive.

    An ``flock`` on ``workdir/.lock.p{i}``: the kernel releases it when the owner exits, even
    by ``kill -9``, so a dead owner never blocks a restart. Each process of a multi-process
    run takes its own file, so the processes of one job do not block each other.

    Where locking is impossible the run goes on with a warning: object stores (``gs://``)
    have no locks, and Lustre mounted without ``-o flock`` answers ENOSYS.
    """
    if paths.is_remote(workdir):
        _warn_unlocked(workdir, "object stores have no file locks")
        yield
        return
    path = os.path.join(os.fspath(workdir), f".lock.p{process_index}")
    with contextlib.ExitStack() as stack:
        try:
            f, unlocked = stack.enter_context(locking.exclusive(path, wait=False))
        except BlockingIOError:
            with open(path) as held:
                owner = held.read().strip() or "another process"
            raise FnoError(f"workdir {workdir} is in use by {owner}; wait for it to finish or "
                           f"use another --workdir") from None
        except OSError as e:
            raise FnoError(f"workdir {workdir}: cannot lock {path}: "
                           f"{e.strerror or e}") from e
        if unlocked:
            _warn_unlocked(workdir, unlocked)
        else:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}")
            f.flush()
        yield
