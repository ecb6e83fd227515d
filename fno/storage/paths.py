"""One path abstraction for every file fno reads or writes: local disks and ``gs://`` alike.

Why: TPU-pod users keep the workdir in a GCS bucket, SLURM users on NFS or Lustre. Every
path in fno (workdir, checkpoints, metrics, events, figures, results, datasets) goes through
:func:`resolve` and is an ``etils.epath.Path``, the abstraction orbax itself uses, so one code
path serves both. What differs between the storages is made explicit here:

* **Atomic files.** A local file is written to a temporary name and renamed over the target.
  A GCS object becomes visible only once its upload completes, so it is written in place.
* **Moving a directory aside.** Local: one ``rename``. GCS has no directories and no rename:
  every object is copied under the new prefix and then the originals are removed, so the
  data survive under the new name even if the copy is interrupted half way.
* **Append.** GCS objects cannot be appended to; :class:`StagedDir` keeps such files in a
  local staging directory and uploads whole copies on every sync.

``gs://`` paths need ``gcsfs`` (``pip install 'fno[gcs]'``); ``etils.epath`` uses it when
TensorFlow is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from etils import epath

from fno.errors import FnoError

Path = epath.Path


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL (``gs://...``), not a local file."""
    return "://" in os.fspath(path)


def resolve(path: str | os.PathLike, what: str = "path") -> epath.Path:
    """``path`` as an epath: local paths made absolute (``~`` expanded), URLs kept.

    A URL whose scheme has no installed backend is a one-line :class:`FnoError` naming the
    package to install, instead of a failure deep inside orbax or tensorstore.
    """
    text = os.fspath(path)
    if not text:
        raise FnoError(f"{what} is empty")
    if not is_remote(text):
        return epath.Path(os.path.abspath(os.path.expanduser(text)))
    scheme = text.split("://", 1)[0].lower()
    if scheme == "gs":
        try:
            import gcsfs  # noqa: F401
        except ImportError:
            raise FnoError(f"{what} {text} is on GCS, which needs gcsfs: "
                           f"pip install 'fno[gcs]' (or gcsfs)") from None
    else:
        raise FnoError(f"{what} {text}: unsupported storage scheme {scheme}:// "
                       f"(use a local path or gs://)")
    return epath.Path(text)


def storage_error(error: BaseException, limit: int = 300) -> str:
    """A storage client's error in one line of at most ``limit`` characters: GCS errors carry
    JSON bodies and newlines, tensorstore's span dozens of lines. Anything but an OSError
    (whose text names the errno) is prefixed with its type."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return text if isinstance(error, OSError) else f"{type(error).__name__}: {text}"


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the new one, never a part."""
    path = epath.Path(path)
    if is_remote(path):
        path.write_bytes(data)  # an object appears only when its upload is complete
        return
    with tempfile.NamedTemporaryFile("wb", dir=os.fspath(path.parent), delete=False,
                                     prefix=f".{path.name}.", suffix=".tmp") as f:
        f.write(data)
        tmp = f.name
    os.replace(tmp, os.fspath(path))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """JSON with sorted keys, written atomically (see :func:`write_bytes_atomic`): readers
    never see a half-written file, local or ``gs://``."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    write_bytes_atomic(path, text.encode())


def move_aside(source: epath.Path, target: epath.Path) -> None:
    """Move directory ``source`` to ``target``; never deletes data that was not copied.

    Local: an atomic rename. Object stores: copy every file, then remove the originals.
    """
    source, target = epath.Path(source), epath.Path(target)
    if not is_remote(source):
        os.rename(os.fspath(source), os.fspath(target))
        return
    files = files_under(source)
    for file in files:
        destination = target / file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        file.copy(destination, overwrite=True)
    for file in files:
        file.unlink(missing_ok=True)
    if source.exists():
        source.rmtree(missing_ok=True)


def forget_listings(path: str | os.PathLike) -> None:
    """Drop cached directory listings of object-store clients after another process changed
    ``path``'s contents (gcsfs caches listings per process: a checkpoint moved aside by
    process 0 would still be listed, and refused as existing, by process 1)."""
    if not is_remote(path):
        return
    try:
        import gcsfs
    except ImportError:
        return
    for instance in list(getattr(gcsfs.GCSFileSystem, "_cache", {}).values()):
        instance.invalidate_cache()


def files_under(root: epath.Path) -> list[epath.Path]:
    """Every file below ``root``, recursively (GCS's epath refuses ``rglob``: one listing per
    directory level instead)."""
    found, pending = [], [epath.Path(root)]
    while pending:
        for child in pending.pop().iterdir():
            if child.is_dir():
                pending.append(child)
            else:
                found.append(child)
    return sorted(found)


class StagedDir:
    """A local mirror of a remote directory for files that are appended to or written by
    libraries that only know local files (metrics.jsonl, TensorBoard events).

    For a local ``remote`` it is the directory itself and :meth:`sync` does nothing. For a
    remote one, the files named in ``download`` are fetched first (a resumed run continues
    them), writers work in a local temporary directory, and :meth:`sync` uploads every file
    that changed since the last sync as a whole object.
    """

    def __init__(self, remote: epath.Path, *, download: tuple[str, ...] = ()):
        self.remote = epath.Path(remote)
        self._staged = is_remote(self.remote)
        self._uploaded: dict[str, tuple[int, int]] = {}
        if not self._staged:
            self.local = os.fspath(self.remote)
            os.makedirs(self.local, exist_ok=True)
            return
        self.local = tempfile.mkdtemp(prefix="fno-staged-")
        self.remote.mkdir(parents=True, exist_ok=True)
        for name in download:
            source = self.remote / name
            if source.exists():
                with open(os.path.join(self.local, name), "wb") as f:
                    f.write(source.read_bytes())
                self._uploaded[name] = self._stamp(name)

    def _stamp(self, name: str) -> tuple[int, int]:
        info = os.stat(os.path.join(self.local, name))
        return info.st_size, info.st_mtime_ns

    def sync(self) -> None:
        """Upload what changed locally (no-op for a local directory)."""
        if not self._staged:
            return
        for name in sorted(os.listdir(self.local)):
            local = os.path.join(self.local, name)
            if not os.path.isfile(local):
                continue
            stamp = self._stamp(name)
            if self._uploaded.get(name) != stamp:
                with open(local, "rb") as f:
                    (self.remote / name).write_bytes(f.read())
                self._uploaded[name] = stamp

    def close(self) -> None:
        """Final upload; the local staging copy is removed."""
        self.sync()
        if self._staged:
            shutil.rmtree(self.local, ignore_errors=True)
