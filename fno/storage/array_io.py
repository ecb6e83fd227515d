"""One array in, one array out, in the formats users keep fields in: ``.npy``, ``.npz``,
MATLAB ``.mat`` (v5, and v7.3, which is HDF5) and ``.h5``/``.hdf5``.

Used by ``python -m fno.inference.predict``; the training data sources (fno.data.sources)
read paired arrays lazily, which is a different job. Every problem is an :class:`FnoError`
naming the file, and writes are atomic: a failed write never leaves a partial output, and an
existing output is replaced only when asked.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import zipfile

import h5py
import numpy as np
import scipy.io

from fno.errors import FnoError

FORMATS = (".npy", ".npz", ".mat", ".h5", ".hdf5")


def _suffix(path: pathlib.Path, formats: tuple[str, ...] = FORMATS) -> str:
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise FnoError(f"{path}: unsupported format {suffix or '(none)'!r}; use one of "
                       f"{', '.join(formats)}")
    return suffix


def _pick(path: pathlib.Path, names: list[str], key: str | None) -> str:
    """``key`` if given, else "a" (fno's and the released data's input name), else the only
    array of the file."""
    if key is not None:
        if key not in names:
            raise FnoError(f"{path}: no array {key!r} (found {', '.join(sorted(names))})")
        return key
    if "a" in names:
        return "a"
    if len(names) == 1:
        return names[0]
    raise FnoError(f"{path}: holds {', '.join(sorted(names))}; name the input with --input_key")


def read_array(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, str]:
    """``(array, key)`` from ``path``; ``key`` names the array in files that hold several
    (``.npy`` holds one and ignores it)."""
    path = pathlib.Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise FnoError(f"{path}: no such file")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), key or "a"
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                key = _pick(path, list(data.files), key)
                return data[key], key
        if suffix in (".h5", ".hdf5") or h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                names = [k for k in f if isinstance(f[k], h5py.Dataset)]
                key = _pick(path, names, key)
                array = f[key][()]
            # MATLAB v7.3 stores arrays with every dimension reversed.
            return (array.transpose() if suffix == ".mat" else array), key
        names = [name for name, *_ in scipy.io.whosmat(path)]
        key = _pick(path, names, key)
        return scipy.io.loadmat(path, variable_names=[key])[key], key
    except FnoError:
        raise
    except (OSError, ValueError, TypeError, KeyError, NotImplementedError,
            zipfile.BadZipFile, EOFError, scipy.io.matlab.MatReadError) as e:
        raise FnoError(f"{path}: not a readable {suffix} file "
                       f"({' '.join(str(e).split())[:200]})") from e


def check_writable(path: str | os.PathLike, overwrite: bool,
                   formats: tuple[str, ...] = FORMATS) -> pathlib.Path:
    """Fail before any work when ``path`` cannot be written: a suffix not in ``formats``, an
    existing file without ``overwrite``, or a directory that is missing or not writable.
    Every command's output goes through this check (predict, evaluate, export)."""
    path = pathlib.Path(path)
    _suffix(path, formats)
    if path.exists() and not overwrite:
        raise FnoError(f"{path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise FnoError(f"{path} is a directory")
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise FnoError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FnoError(f"{path}: directory {parent} is not writable")
    return path


def write_array(path: str | os.PathLike, array: np.ndarray, key: str = "u",
                overwrite: bool = False) -> None:
    """Write ``array`` to ``path`` (format from the suffix; ``key`` names it inside
    ``.npz``/``.mat``/``.h5``), through a temporary file renamed into place."""
    path = check_writable(path, overwrite)
    suffix = _suffix(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        if suffix == ".npy":
            np.save(tmp, array)
        elif suffix == ".npz":
            np.savez(tmp, **{key: array})
        elif suffix == ".mat":
            scipy.io.savemat(tmp, {key: array})
        else:
            with h5py.File(tmp, "w") as f:
                f.create_dataset(key, data=array)
        os.replace(tmp, path)
    except OSError as e:
        raise FnoError(f"{path}: cannot write ({e.strerror or e})") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
