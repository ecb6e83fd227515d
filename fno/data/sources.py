"""Random-access (grain) data sources over PDE datasets, validated on open.

:func:`open_dataset` reads three layouts and returns an :class:`ArraySource` of ``[N, *grid]``
pairs (one grid axis for Burgers, two for Darcy); inputs and outputs may each have a trailing
channel axis instead, ``[N, *grid, C]`` (the grid rank is the model's):

* a directory written by a generator (:func:`fno.data.dataset_dir.write_dataset`;
  ``meta.json`` and two ``.npy`` arrays, named by its ``"files"``): memory-mapped, with the
  sha256 checksums of meta.json verified (once per process and file version) and the array
  shapes checked against it;
* the original FNO files (``burgers_data_R10.mat``: keys ``a`` and ``u``, [N, S];
  ``piececonst_r421_N1024_smooth*.mat``: ``coeff`` and ``sol``, [N, 421, 421]), MATLAB v5
  via scipy.io and v7.3 (HDF5) via h5py, where MATLAB's column-major storage makes the
  arrays appear with every dimension reversed;
* a generic ``.npz`` or ``.h5``/``.hdf5`` file with [N, *grid] or [N, *grid, C] arrays under
  named keys.

Lower resolutions are the stored samples subsampled along every grid axis (never the channel
axis), by the grid rules of :mod:`fno.data.checks`; files are read by :mod:`fno.data.formats`.
A time-dependent problem (a :class:`TimeWindow`) reads one trajectory array instead of a pair:
each sample is a window of its snapshots, the first ones in and the next ones out.
Which grid, and the array names of a directory whose meta.json predates ``"files"``, are the
caller's (a problem's registration, fno.registry, or a trained model's checkpoint): nothing
here knows a PDE. Every problem with the data raises :class:`DataError` with a one-line
message that starts with the file name. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from fno.data import dataset_dir, formats
from fno.data.checks import (
    check_finite,
    check_pair,
    check_shape_meta,
    check_trajectory,
    fail,
    subsample_step,
    values_match,
)

# (path, size, mtime_ns, inode) -> sha256 of files already verified in this process.
_VERIFIED: dict[tuple[str, int, int, int], str] = {}
TIME_AXES = ("last", "first")


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """Samples of a time-dependent problem: windows of one stored trajectory array.

    The trajectory is ``[N, *grid, T]`` (``axis`` "last") or ``[N, T, *grid]`` ("first"),
    either with a trailing channel axis ``C``. A sample's input is the ``steps_in`` snapshots
    from ``first`` on, its output the ``steps_out`` after them; both are served as channels,
    time-major (``[*grid, steps * C]``), so every model, normaliser and sharding rule that
    reads channels reads them unchanged.
    """

    steps_in: int
    steps_out: int
    first: int = 0
    axis: str = "last"

    @property
    def needed(self) -> int:
        return self.first + self.steps_in + self.steps_out

    def span(self, part: int) -> slice:
        """The snapshots of the input (``part`` 0) or the output (1)."""
        start = self.first + (self.steps_in if part else 0)
        return slice(start, start + (self.steps_out if part else self.steps_in))


class ArraySource:
    """Samples ``[start, stop)`` of paired arrays ``[N, *grid]`` or ``[N, *grid, C]`` (one
    grid axis for Burgers, two for Darcy; ``grid_rank`` of them), served with every
    ``sub``-th point along each grid axis.

    Samples come as ``[*grid]`` with one channel (a stored trailing axis of size 1 is dropped)
    and ``[*grid, C]`` with several (:attr:`in_channels`, :attr:`out_channels`), the model's
    convention (fno.models.base.FNO). ``inputs`` and ``outputs`` may be memory maps; they are read
    lazily and pickled by file reference (grain worker processes re-open them instead of
    copying the data).

    With ``time`` (a :class:`TimeWindow`), ``outputs`` is a trajectory array (``inputs`` the
    same array) and samples are its windows, as time-major channels.
    """

    def __init__(self, inputs: np.ndarray, outputs: np.ndarray, *, path: str, sub: int = 1,
                 start: int = 0, stop: int | None = None, grid: str = "periodic",
                 grid_rank: int | None = None, arrays: tuple[str, str] = ("x", "y"),
                 time: TimeWindow | None = None):
        self._inputs, self._outputs = inputs, outputs
        # Time-dependent samples: windows of the trajectory array ``outputs``.
        self.time = time
        self._path, self._sub = str(path), int(sub)
        self.grid = grid  # "periodic" (points j / S) or "vertex" (i / (S - 1))
        self.arrays = tuple(arrays)  # the input's and output's file names or keys
        # None: every axis after the samples is a grid axis (one channel).
        self.grid_rank = int(inputs.ndim - 1 if grid_rank is None else grid_rank)
        self._start = int(start)
        self._stop = len(inputs) if stop is None else int(stop)

    @property
    def path(self) -> str:
        return self._path

    @property
    def _first_grid_axis(self) -> int:
        return 2 if self.time is not None and self.time.axis == "first" else 1

    @property
    def stored_resolution(self) -> int:
        """Points per grid axis in the file (before subsampling)."""
        return int(self._inputs.shape[self._first_grid_axis])

    @property
    def resolution(self) -> int:
        return len(range(0, self.stored_resolution, self._sub))  # per grid axis

    @property
    def channels_per_step(self) -> int:
        """Channels of one snapshot of a time-dependent problem (1 for steady data)."""
        if self.time is None:
            return 1
        return int(self._outputs.shape[-1]) if self._outputs.ndim > 2 + self.grid_rank else 1

    def _channels(self, array: np.ndarray) -> int:
        return int(array.shape[-1]) if array.ndim > 1 + self.grid_rank else 1

    @property
    def in_channels(self) -> int:
        """Input channels per grid point (1: samples are ``[*grid]``)."""
        if self.time is not None:
            return self.time.steps_in * self.channels_per_step
        return self._channels(self._inputs)

    @property
    def out_channels(self) -> int:
        """Output channels per grid point (1: samples are ``[*grid]``)."""
        if self.time is not None:
            return self.time.steps_out * self.channels_per_step
        return self._channels(self._outputs)

    def _index(self, array: np.ndarray) -> tuple[slice | int, ...]:
        """The subsampling index of every grid axis of ``array``; a stored channel axis is
        kept whole, or dropped when it holds one channel."""
        grid = (slice(None, None, self._sub),) * self.grid_rank
        if array.ndim == 1 + self.grid_rank:
            return grid
        return (*grid, 0) if array.shape[-1] == 1 else (*grid, slice(None))

    @property
    def num_samples(self) -> int:
        return self._stop - self._start

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"ArraySource(path={self._path!r}, resolution={self.resolution}, "
                f"samples=[{self._start}:{self._stop}])")

    def _rows(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
            raise TypeError(f"indices must be a 1-D integer array, got {indices.dtype} "
                            f"{indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"{self!r}: indices must lie in [0, {len(self)})")
        return indices.astype(np.int64) + self._start

    def _read(self, part: int, rows: Any) -> np.ndarray:
        """The input (``part`` 0) or output (1) of file rows ``rows`` (an int or an array)."""
        array = (self._inputs, self._outputs)[part]
        if self.time is None:
            return np.asarray(array[(rows, *self._index(array))], dtype=np.float32)
        grid = (slice(None, None, self._sub),) * self.grid_rank
        span = self.time.span(part)
        first = self.time.axis == "first"
        block = np.asarray(array[(rows, span, *grid) if first else (rows, *grid, span)],
                           dtype=np.float32)
        lead = int(np.ndim(rows))  # 1 for a batch of rows, 0 for one
        if first:
            block = np.moveaxis(block, lead, lead + self.grid_rank)
        block = block.reshape(*block.shape[:lead + self.grid_rank], -1)
        return block[..., 0] if block.shape[-1] == 1 else block

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not isinstance(index, int | np.integer):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        if index < 0:
            index += len(self)
        (row,) = self._rows(np.array([index]))
        return {"x": self._read(0, row), "y": self._read(1, row)}

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y), float32 ``[len(indices), *grid]`` each (``[..., C]`` with several
        channels), in the order of ``indices``.

        Rows are read in ascending file order (sequential for memory maps), then put back in
        the requested order.
        """
        rows = self._rows(indices)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        result = []
        for part in (0, 1):
            block = self._read(part, sorted_rows)
            out = np.empty_like(block)
            out[order] = block
            result.append(out)
        return result[0], result[1]

    def subset(self, start: int | None = None, stop: int | None = None) -> ArraySource:
        """Samples ``[start, stop)`` of this source (slice semantics; negatives count from
        the end) as a new source over the same arrays."""
        n = len(self)
        first = 0 if start is None else start + n if start < 0 else start
        last = n if stop is None else stop + n if stop < 0 else stop
        if not 0 <= first <= last <= n:
            raise fail(self._path, f"cannot take samples [{start}:{stop}] of {n}")
        return self._view(start=self._start + first, stop=self._start + last)

    def on_stored_grid(self) -> ArraySource:
        """The same samples on the file's own grid (no subsampling)."""
        return self._view(sub=1)

    def _view(self, **changes: Any) -> ArraySource:
        """A source over the same arrays with some of ``sub``, ``start``, ``stop`` changed."""
        kept = {"sub": self._sub, "start": self._start, "stop": self._stop}
        return ArraySource(self._inputs, self._outputs, path=self._path, grid=self.grid,
                           grid_rank=self.grid_rank, arrays=self.arrays, time=self.time,
                           **{**kept, **changes})

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_inputs", "_outputs"):
            array = state[key]
            if isinstance(array, np.memmap) and array.filename is not None:
                state[key] = ("memmap", array.filename, array.dtype.str, array.shape,
                              array.offset, bool(array.flags.f_contiguous and array.ndim > 1
                                                 and not array.flags.c_contiguous))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in ("_inputs", "_outputs"):
            if isinstance(state[key], tuple):
                _, filename, dtype, shape, offset, fortran = state[key]
                state[key] = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=shape,
                                       offset=offset, order="F" if fortran else "C")
        self.__dict__.update(state)



def _verified_sha256(path: pathlib.Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _VERIFIED:
        _VERIFIED[key] = dataset_dir.file_sha256(path)
    return _VERIFIED[key]


def _array_names(meta_path: pathlib.Path, meta: dict,
                 files: tuple[str, str] | None) -> tuple[str, str]:
    """The input and output file names: meta.json's ``"files"``, else the caller's (the
    problem's registration, for directories written before meta.json named them)."""
    if "files" not in meta:
        if files is None:
            raise fail(meta_path, "has no 'files' naming the input and output arrays "
                                   "({\"input\": NAME, \"output\": NAME}, as "
                                   "fno.data.dataset_dir.write_dataset records them)")
        return files[0], files[1]
    try:
        return str(meta["files"]["input"]), str(meta["files"]["output"])
    except (KeyError, TypeError) as e:
        raise fail(meta_path, f"malformed field 'files' ({e!r}): expected "
                               f"{{\"input\": NAME, \"output\": NAME}}") from e


def _open_generated(path: pathlib.Path, resolution: int, expected_meta: Mapping | None,
                    grid_rank: int | None, grid: str, files: tuple[str, str] | None,
                    time: TimeWindow | None) -> ArraySource:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise fail(path, "not a generated dataset (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise fail(meta_path, f"unreadable metadata ({e})") from e
    if not isinstance(meta, dict):
        raise fail(meta_path, "metadata is not a JSON object")
    for key, value in (expected_meta or {}).items():
        if key not in meta:
            raise fail(meta_path, f"has no {key!r}, expected {value!r}")
        if not values_match(meta[key], value):
            raise fail(meta_path, f"{key} is {meta[key]!r}, expected {value!r}")
    names = _array_names(meta_path, meta, files)
    try:
        num, size = int(meta["num_samples"]), int(meta["resolution"])
        checksums = {name: str(meta["sha256"][name]) for name in names}
    except (KeyError, TypeError, ValueError) as e:
        raise fail(meta_path, f"missing or malformed field {e}") from e
    arrays = []
    for name in names:
        file = path / name
        if not file.is_file():
            raise fail(file, "missing")
        if _verified_sha256(file) != checksums[name]:
            raise fail(file, "sha256 does not match meta.json (corrupt or modified)")
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise fail(file, f"not a readable .npy array ({e})") from e
        # None: every axis after the samples is a grid axis (one channel).
        rank = max(1, array.ndim - 1) if grid_rank is None else grid_rank
        shape = (num, *(size,) * rank)
        extra = 2 + rank + (time is not None and name == names[1])
        if array.shape[:1 + rank] != shape or array.ndim > extra:
            raise fail(file, f"shape {array.shape} does not match meta.json {shape} "
                              f"(plus an optional channel axis)")
        arrays.append(array)
    inputs, outputs = arrays
    if grid_rank is None:
        grid_rank = inputs.ndim - 1
    if time is not None:  # windows of the output trajectories (time last, as written)
        if time.axis != "last":
            raise fail(meta_path, "a generated dataset stores time last: set "
                                  "config.data.time_axis='last'")
        check_trajectory(path, names[1], outputs, grid_rank, time)
        inputs, names = outputs, (names[1], names[1])
    else:
        check_pair(path, names, inputs, outputs, grid_rank=grid_rank)
    for name, array in zip(names, arrays, strict=True):
        check_finite(path / name, name, array)
    sub, grid = subsample_step(path, size, resolution, grid)
    return ArraySource(inputs, outputs, path=str(path), sub=sub, grid=grid, grid_rank=grid_rank,
                       arrays=names, time=time)



def open_dataset(path: str | os.PathLike, resolution: int, *, input_key: str = "a",
                 output_key: str = "u", expected_meta: Mapping[str, Any] | None = None,
                 grid_rank: int | None = None, grid: str = "periodic",
                 files: tuple[str, str] | None = None,
                 time: TimeWindow | None = None) -> ArraySource:
    """Open a dataset at ``resolution`` points per grid axis, validating it.

    ``path`` is a generated directory (``input_key``/``output_key`` do not apply: meta.json's
    ``"files"`` names its arrays, or where it predates them ``files``), a ``.mat`` file (v5 or
    v7.3), an
    ``.npz`` or an ``.h5``/``.hdf5`` file with ``[N, *grid]`` or ``[N, *grid, C]`` arrays of
    ``grid_rank`` grid axes (the input's and the output's channels independent), subsampled
    along the grid axes as ``grid`` says (:func:`subsample_step`); e.g. the original Darcy
    files ``piececonst_r421_N1024_smooth*.mat`` with keys ``coeff`` and ``sol`` on a vertex
    grid. ``grid_rank`` None: 1 for a file; for a directory every axis after the samples is
    a grid axis (one channel).
    ``expected_meta`` entries must equal those of a generated directory's meta.json (floats to
    1e-12 relative); for files without metadata only ``num_samples`` and ``resolution`` (the
    file's) can be checked, other keys are named in a warning. Raises DataError on any problem
    with the data.

    ``time`` (a :class:`TimeWindow`): a time-dependent problem, whose samples are windows of
    the trajectories stored under ``output_key`` (a directory: its output array); the input
    array is not read.
    """
    path = pathlib.Path(path).expanduser().absolute()
    keys = (input_key, output_key) if time is None else (output_key, output_key)
    if not path.exists():
        raise fail(path, "no such file or directory")
    if path.is_dir():
        return _open_generated(path, resolution, expected_meta, grid_rank, grid, files, time)
    suffix = path.suffix.lower()
    grid_rank = 1 if grid_rank is None else grid_rank
    # A trajectory is checked as a pair with one more (time) axis, then as a trajectory.
    pair_rank = grid_rank + (time is not None)
    if suffix in (".mat", ".h5", ".hdf5") and (suffix != ".mat" or h5py.is_hdf5(path)):
        a, u = formats.open_hdf5(path, keys, suffix == ".mat", pair_rank)
    elif suffix in (".mat", ".npz"):
        a, u = formats.open_mat_v5(path, keys) if suffix == ".mat" else formats.open_npz(path, keys)
        check_pair(path, keys, a, u, pair_rank)
    else:
        raise fail(path, f"unsupported format {suffix!r} (expected a generated directory, "
                          ".mat, .npz, .h5 or .hdf5)")
    first = 1
    if time is not None:
        check_trajectory(path, output_key, u, grid_rank, time)
        first = 2 if time.axis == "first" else 1
    elif len(set(a.shape[1:1 + grid_rank])) > 1:
        raise fail(path, f"{input_key!r} has grid {a.shape[1:1 + grid_rank]}: every grid axis "
                          f"must have the same number of points")
    sub, grid = subsample_step(path, a.shape[first], resolution, grid)
    check_shape_meta(path, (a.shape[0], a.shape[first]), expected_meta)
    for key, array in zip(keys, (a, u), strict=True):
        check_finite(path, key, array)
    if not isinstance(a, np.memmap):  # in memory: float32, on the stored grid
        a = np.ascontiguousarray(a, dtype=np.float32)
        u = np.ascontiguousarray(u, dtype=np.float32)
    return ArraySource(a, u, path=str(path), sub=sub, grid=grid, grid_rank=grid_rank,
                       arrays=keys, time=time)
