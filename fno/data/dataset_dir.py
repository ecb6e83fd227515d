"""Atomic dataset directories: the one implementation every generator writes through.

A dataset directory is complete exactly when it exists under its final name. Generators write
their arrays into a hidden temporary directory next to the target (``.NAME.tmp-*``), record a
sha256 per array in ``meta.json``, fsync every file, and only then rename the directory into
place; an old copy is first moved aside (``.NAME.old-*``) and deleted after the rename. So a
reader never sees a half-written dataset under the final name, and a crash leaves at most a
hidden temporary directory (an exception inside :func:`staging` removes it).

A generator writes its (input, output) pairs through :func:`write_dataset`, which also records
in meta.json what the readers (:mod:`fno.data.sources`) take from it: the array names
(``"files": {"input": ..., "output": ...}``) and their sha256 checksums:

    dataset_dir.write_dataset(output_dir, files=("a.npy", "u.npy"), shape=(n, s),
                              solve=solve, meta={"num_samples": n, "resolution": s, ...},
                              chunk_size=64, overwrite=False)

``solve(start, stop)`` returns the inputs and outputs of samples ``[start, stop)``; ``meta``
holds ``num_samples``, ``resolution`` and every setting the problem's ``meta_keys`` name
(fno.registry). Lower-level pieces (:func:`staging`, :func:`write_meta`) serve other layouts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from absl import logging

META = "meta.json"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_counts(num_samples: int, chunk_size: int, seed: int) -> None:
    """The arguments every generator shares: at least one sample and one per chunk, a seed
    that ``numpy.random.default_rng([seed, i])`` takes."""
    if num_samples < 1 or chunk_size < 1 or seed < 0:
        raise ValueError(f"num_samples and chunk_size must be positive and seed non-negative, "
                         f"got {num_samples}, {chunk_size}, {seed}")


def check_target(out: pathlib.Path, overwrite: bool) -> None:
    """Refuse to replace anything but an empty directory unless ``overwrite``."""
    if not os.path.lexists(out) or overwrite:
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    if (out / META).exists():
        raise FileExistsError(f"{out} already holds a generated dataset; pass overwrite "
                              "(--overwrite) to replace it")
    raise FileExistsError(f"{out} exists and is not an empty directory; refusing to replace it")


def resolve_target(output_dir: str | os.PathLike, overwrite: bool) -> pathlib.Path:
    """The absolute target path, checked with :func:`check_target` before any work is done."""
    out = pathlib.Path(output_dir).expanduser().absolute()
    check_target(out, overwrite)
    return out


def fsync(path: str | os.PathLike) -> None:
    """fsync a file or a directory (the latter makes renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: pathlib.Path, out: pathlib.Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``out``; an old ``out`` is moved aside first."""
    check_target(out, overwrite)
    if os.path.lexists(out) and not (out.is_dir() and not any(out.iterdir())):
        trash = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, trash / out.name)
        os.rename(tmp, out)
        shutil.rmtree(trash)
    else:
        os.rename(tmp, out)  # rename(2) replaces an empty directory atomically
    fsync(out.parent)


def write_meta(tmp: pathlib.Path, meta: Mapping[str, Any], files: Iterable[str]) -> dict:
    """Write ``meta`` plus the sha256 of each of ``files`` (in ``tmp``) to ``tmp/meta.json``."""
    full = {**meta, "sha256": {name: file_sha256(tmp / name) for name in files}}
    (tmp / META).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return full


def write_pairs(tmp: pathlib.Path, names: tuple[str, str], shape: tuple[int, ...],
                solve: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
                chunk_size: int, output_shape: tuple[int, ...] | None = None) -> None:
    """Fill ``tmp/names[0]`` (float32 ``shape``, samples first) and ``tmp/names[1]``
    (``output_shape``, by default the same) chunk by chunk from
    ``solve(start, stop) -> (inputs, outputs)``, logging progress with an ETA. A non-finite
    output stops generation (nothing is committed)."""
    files = [np.lib.format.open_memmap(tmp / name, mode="w+", dtype=np.float32, shape=size)
             for name, size in zip(names, (shape, output_shape or shape), strict=True)]
    num_samples = shape[0]
    t0 = time.perf_counter()
    for start in range(0, num_samples, chunk_size):
        stop = min(start + chunk_size, num_samples)
        inputs, outputs = solve(start, stop)
        if not np.isfinite(outputs).all():
            raise FloatingPointError(f"non-finite solution in samples [{start}:{stop}]")
        files[0][start:stop] = inputs
        files[1][start:stop] = outputs
        rate = stop / (time.perf_counter() - t0)
        logging.info("generated %d/%d samples (%.0f%%), %.2f samples/s, ETA %.1f s", stop,
                     num_samples, 100.0 * stop / num_samples, rate, (num_samples - stop) / rate)
    for array in files:
        array.flush()
    del files


def write_dataset(output_dir: str | os.PathLike, *, files: tuple[str, str],
                  shape: tuple[int, ...],
                  solve: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
                  meta: Mapping[str, Any], chunk_size: int,
                  overwrite: bool = False) -> pathlib.Path:
    """Write a complete dataset directory atomically: the float32 arrays ``files`` (input,
    output; ``shape`` each, samples first) from ``solve`` (:func:`write_pairs`) and meta.json,
    ``meta`` plus the array names under ``"files"`` and their checksums. An existing dataset
    is refused unless ``overwrite`` (checked before any work). Returns the absolute path."""
    out = resolve_target(output_dir, overwrite)
    with staging(out, overwrite=overwrite) as tmp:
        write_pairs(tmp, files, shape, solve, chunk_size)
        write_meta(tmp, {**meta, "files": {"input": files[0], "output": files[1]}}, files)
    logging.info("wrote %s", out)
    return out


@contextlib.contextmanager
def staging(out: pathlib.Path, *, overwrite: bool) -> Iterator[pathlib.Path]:
    """A hidden temporary directory next to ``out``, committed to ``out`` on normal exit.

    On exit every regular file in it is fsynced and the directory is renamed into place with
    :func:`commit`; on any exception (KeyboardInterrupt included) it is removed instead.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        for file in sorted(tmp.iterdir()):
            if file.is_file():
                fsync(file)
        commit(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
