"""Exclusive ``flock`` locks on local files, and what to do where a filesystem has none.

The kernel releases an ``flock`` when its owner exits, even by ``kill -9``, so a dead owner
never blocks anyone. Some filesystems do not implement it (Lustre mounted without
``-o flock``, some FUSE and SMB mounts): there the caller is told why and goes on unlocked.
Used for the run directory (fno.storage.workdir) and for the per-host dataset cache
(fno.data.datasets).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from typing import IO

# errno values of filesystems that do not implement flock.
_NO_LOCKING = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK, errno.EINVAL}


@contextlib.contextmanager
def exclusive(path: str, *, wait: bool = True) -> Iterator[tuple[IO[str], str | None]]:
    """Hold an exclusive flock on ``path`` (created, with its directory, if missing).

    Yields the open file (``a+``) and None, or, where the filesystem cannot lock, the reason
    why not (the block then runs unlocked). ``wait=False``: a lock held elsewhere raises
    ``BlockingIOError`` instead of waiting. Other OS errors propagate.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            unlocked = None
        except OSError as e:
            if e.errno not in _NO_LOCKING:
                raise
            unlocked = f"flock: {e.strerror or errno.errorcode.get(e.errno)}"
        try:
            yield f, unlocked
        finally:
            if unlocked is None:
                with contextlib.suppress(OSError):
                    fcntl.flock(f, fcntl.LOCK_UN)
