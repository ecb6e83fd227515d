"""Readers for the array files fno trains on besides its own directories: MATLAB v5 (scipy),
MATLAB v7.3 and HDF5 (h5py, memory-mapped where the layout allows; MATLAB's column-major
storage makes its arrays appear with every dimension reversed) and ``.npz``. Nothing is ever
unpickled.
"""

from __future__ import annotations

import pathlib
import zipfile

import h5py
import numpy as np
import scipy.io

from fno.data.checks import DataError, check_pair, fail


class MatlabView:
    """Shape and dtype of an HDF5 dataset as MATLAB sees it: dimensions reversed."""

    def __init__(self, ds: h5py.Dataset):
        self.shape = tuple(reversed(ds.shape))
        self.dtype = ds.dtype


def memmappable(ds: h5py.Dataset) -> bool:
    return (ds.chunks is None and ds.compression is None and ds.dtype.kind in "fiu"
            and ds.id.get_offset() is not None)


def open_hdf5(path: pathlib.Path, keys: tuple[str, str], transposed: bool,
               grid_rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, u) as [N, *grid(, C)] memory maps or, when the layout does not allow it, float32
    arrays in memory.

    MATLAB v7.3 (``transposed``) stores an [N, S] matrix as an HDF5 dataset of shape [S, N]
    (every dimension reversed); samples are then strided on disk, so they are read into
    memory rather than mapped.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise fail(path, f"not a readable HDF5 file ({e})") from e
    with f:
        datasets = []
        for key in keys:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise fail(path, f"no dataset {key!r} (found {sorted(f.keys())})")
            datasets.append(f[key])
        views = [MatlabView(d) if transposed else d for d in datasets]
        check_pair(path, keys, views[0], views[1], grid_rank)
        if not transposed and all(memmappable(d) for d in datasets):
            a, u = (np.memmap(path, dtype=d.dtype, mode="r", offset=d.id.get_offset(),
                              shape=d.shape) for d in datasets)
            return a, u
        arrays = [np.asarray(d[()], dtype=np.float32) for d in datasets]
    if transposed:
        arrays = [np.ascontiguousarray(x.transpose()) for x in arrays]
    return arrays[0], arrays[1]


def open_mat_v5(path: pathlib.Path, keys: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = scipy.io.loadmat(path, variable_names=list(keys))
    except (ValueError, TypeError, OSError, NotImplementedError,
            scipy.io.matlab.MatReadError) as e:  # MatReadError: e.g. a short text file
        raise fail(path, f"not a readable MATLAB file ({e})") from e
    for key in keys:
        if key not in data:
            raise fail(path, f"no variable {key!r}")
    return data[keys[0]], data[keys[1]]


def open_npz(path: pathlib.Path, keys: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in keys:
                if key not in data.files:
                    raise fail(path, f"no array {key!r} (found {sorted(data.files)})")
            return data[keys[0]], data[keys[1]]
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise fail(path, f"not a readable .npz file ({e})") from e

