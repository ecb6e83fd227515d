"""From ``config.data`` to train and test sources: find or generate the dataset, split it,
and open the test split at every evaluation resolution.

Where the data live, per process (hosts need not share a disk):

* ``data.dir`` empty: the generated dataset in this host's cache (``FNO_DATA_DIR``, default
  ``~/.cache/fno``). Generation is deterministic, so every host that lacks it generates its
  own copy; processes of one host take turns through a file lock, so only one generates.
* ``data.dir`` local (a disk, NFS, Lustre): read where it is. A missing directory is
  generated there, as above.
* ``data.dir`` on ``gs://``: every host downloads it once into its cache (verified against
  its meta.json checksums for a generated directory) and reads the local copy.

Before any collective training call, all processes agree that every one of them opened its
data (:func:`fno.parallel.collective.agree`) and that the copies are identical (a fingerprint of the
checksums in meta.json, or of a file's size and first MiB): a mismatch is one line on the
process that has it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import jax
import ml_collections
from absl import logging
from etils import epath

from fno import registry
from fno.data import checks, dataset_dir, normalizer, sources
from fno.errors import FnoError
from fno.parallel import collective
from fno.storage import locking, paths

_FILE_SUFFIXES = (".mat", ".npz", ".h5", ".hdf5")


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a dataset is read: its grid kind and rank, and the input and output arrays of a
    generated directory whose meta.json does not name them. A run takes it from its problem's
    registration (:func:`registered_layout`), a trained model from its checkpoint
    (fno.inference.trained), so inference needs no registered problem."""

    grid: str  # periodic | vertex | auto (fno.data.checks.subsample_step)
    grid_rank: int
    files: tuple[str, str] | None = None


def registered_layout(config: ml_collections.ConfigDict) -> Layout:
    problem = registry.problem(config)
    return Layout(grid=problem.grid, grid_rank=registry.grid_rank(config), files=problem.files)


@dataclasses.dataclass
class Splits:
    train: sources.ArraySource
    test: dict[int, sources.ArraySource]  # resolution -> source; training resolution first
    fingerprint: str = ""  # identifies the data (identical on every process)
    normalizer: dict | None = None  # point-wise fields on the stored grid (fno.data.normalizer)

    @property
    def grid(self) -> str:
        """How the stored grid subsamples ("periodic" or "vertex")."""
        return self.train.grid

    @property
    def in_channels(self) -> int:
        """Input channels per grid point (1: samples are ``[*grid]``, else ``[*grid, C]``)."""
        return self.train.in_channels

    @property
    def out_channels(self) -> int:
        """Output channels per grid point (1: samples are ``[*grid]``, else ``[*grid, C]``)."""
        return self.train.out_channels

    @property
    def channels_per_step(self) -> int:
        """Channels of one snapshot (time-dependent data; 1 for steady data)."""
        return self.train.channels_per_step

    def describe(self) -> dict:
        """What a trained model's card says about its training data (JSON-ready)."""
        train = self.train
        return {"path": train.path, "fingerprint": self.fingerprint, "grid": self.grid,
                "grid_rank": train.grid_rank, "arrays": list(train.arrays),
                "stored_resolution": train.stored_resolution,
                "resolution": train.resolution, "num_train": len(train),
                "num_test": len(next(iter(self.test.values()))),
                "test_resolutions": list(self.test), "normalized": self.normalizer is not None,
                "time": dataclasses.asdict(train.time) if train.time else None,
                "channels_per_step": train.channels_per_step}


def time_window(config: ml_collections.ConfigDict) -> sources.TimeWindow | None:
    """The trajectory windows of a time-dependent problem (``data.input_steps`` set; validated
    by fno.configuration), None for a steady one."""
    data = config.data
    if data.get("input_steps") is None:
        return None
    return sources.TimeWindow(steps_in=data.input_steps, steps_out=data.output_steps,
                              first=data.get("first_step", 0),
                              axis=data.get("time_axis", "last"))


def cache_root() -> str:
    """This host's dataset cache: ``FNO_DATA_DIR`` or ``~/.cache/fno``."""
    return os.environ.get("FNO_DATA_DIR", os.path.join(os.path.expanduser("~"), ".cache", "fno"))


def default_data_dir(config: ml_collections.ConfigDict) -> str:
    """Where the dataset of ``config.data`` lives when ``data.dir`` is empty: a name made of
    its problem's ``data.generate`` settings."""
    settings = ml_collections.ConfigDict(registry.generate_settings(config))
    return os.path.join(cache_root(), registry.problem(config).cache_name(settings))


def _generated_meta(config: ml_collections.ConfigDict) -> dict | None:
    """The meta.json entries a generated directory of ``config.data`` must have."""
    problem = registry.problem(config)
    if problem.generate is None:
        return None
    settings = registry.generate_settings(config)
    return {key: settings[key] for key in problem.meta_keys}


@contextlib.contextmanager
def _host_lock(path: str) -> Iterator[None]:
    """An exclusive flock on ``path`` (blocking): the processes of one host take turns.
    Filesystems without flock fall back to no lock (fno.storage.locking): generation then
    races harmlessly (the writer commits atomically and an existing complete copy is kept)."""
    with locking.exclusive(path):
        yield


def _generate_if_missing(path: str, config: ml_collections.ConfigDict) -> None:
    """Generate the dataset of ``config.data`` at ``path`` (one process per host; the others
    wait and find it). It is generated beside ``path`` and moved there only once it reads
    back as its problem is registered (:func:`_check_generated`): a generator's mistakes leave
    nothing in the cache."""
    problem = registry.problem(config)
    if problem.generate is None:
        raise FnoError(f"config.data.dir: {path} does not exist (config.data.name="
                       f"{config.data.name!r} reads existing data only)")
    settings = registry.generate_settings(config)
    parent, name = os.path.split(path)
    with _host_lock(os.path.join(parent, f".{name}.lock")):
        if os.path.exists(path):
            return
        logging.info("Dataset %s not found on this host: generating %s data (%d samples at "
                     "s = %d).", path, config.data.name, settings["num_samples"],
                     settings["resolution"])
        staging = None
        try:
            staging = tempfile.mkdtemp(prefix=f".{name}.generating-", dir=parent)
            staged = os.path.join(staging, name)
            try:
                problem.generate(staged, **settings)
            except (ValueError, TypeError) as e:
                # The generators check their settings before they write anything.
                raise FnoError(f"config.data.generate: {e}") from e
            _check_generated(staged, config, settings["resolution"])
            dataset_dir.commit(pathlib.Path(staged), pathlib.Path(path), overwrite=False)
        except OSError as e:
            # Without a working lock another host may have committed the same (deterministic)
            # dataset first: its complete copy is as good as ours.
            if os.path.exists(os.path.join(path, "meta.json")):
                return
            raise FnoError(f"cannot generate the dataset in {path}: {e.strerror or e}") from e
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)


def _check_generated(path: str, config: ml_collections.ConfigDict, resolution: int) -> None:
    """A one-line FnoError unless the freshly generated ``path`` reads back as its problem is
    registered: meta.json with the ``meta_keys`` (equal to the settings), its array names,
    arrays of the grid rank and resolution, checksums that match."""
    where = f"fno.registry.PROBLEMS[{config.data.name!r}]"
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(pathlib.Path(path, "meta.json").read_text())
        missing = [k for k in registry.problem(config).meta_keys
                   if isinstance(meta, dict) and k not in meta]
        if missing:
            raise FnoError(f"{where}.meta_keys names {', '.join(missing)}, which its generator "
                           f"does not write to meta.json (nothing was cached)")
    try:
        _open_source(path, resolution, config, registered_layout(config),
                     _generated_meta(config))
    except checks.DataError as e:
        raise FnoError(f"{where}: the dataset its generator wrote does not read back (nothing "
                       f"was cached): {e}") from e


def _local_copy(remote: epath.Path) -> str:
    """Download a remote dataset (directory or file) into this host's cache, once."""
    key = hashlib.sha256(os.fspath(remote).encode()).hexdigest()[:12]
    local = os.path.join(cache_root(), "remote", f"{remote.name}-{key}")
    with _host_lock(local + ".lock"):
        if os.path.exists(local):
            return local
        if not remote.exists():
            raise FnoError(f"config.data.dir: {remote} does not exist")
        logging.info("Copying dataset %s to this host's cache %s.", remote, local)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(local)}.tmp-",
                               dir=os.path.dirname(local))
        try:
            if remote.is_dir():
                target = os.path.join(tmp, "copy")
                os.makedirs(target)
                for file in remote.iterdir():
                    if file.is_file():
                        with open(os.path.join(target, file.name), "wb") as f:
                            f.write(file.read_bytes())
            else:
                target = os.path.join(tmp, "copy")
                with open(target, "wb") as f:
                    f.write(remote.read_bytes())
            os.rename(target, local)
        except Exception as e:  # noqa: BLE001 - client errors of any type: one line
            raise FnoError(f"cannot copy {remote}: {paths.storage_error(e)}") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return local


def resolve(config: ml_collections.ConfigDict) -> tuple[str, dict | None]:
    """This process's local dataset path, generating or downloading it when needed.

    Returns the path and the metadata a generated directory must match: the ``data.generate``
    settings where fno generates (or has generated, in its cache) the data; None for data a
    user names in ``data.dir``, which its own meta.json (or its arrays) describe. What
    protects a run from data that changed under it is the checkpoint (its dataset
    fingerprint, fno.training.checkpoint.check_run).
    """
    data = config.data
    if data.dir and paths.is_remote(data.dir):
        remote = paths.resolve(data.dir, "config.data.dir")
        is_file = remote.suffix.lower() in _FILE_SUFFIXES
        local = _local_copy(remote)
        if is_file:  # keep the suffix: it selects the reader
            return _with_suffix(local, remote.suffix), None
        return local, None
    path = (os.path.abspath(os.path.expanduser(data.dir)) if data.dir
            else default_data_dir(config))
    if os.path.splitext(path)[1].lower() in _FILE_SUFFIXES:
        if not os.path.exists(path):
            raise FnoError(f"config.data.dir: dataset file {path} does not exist")
        return path, None
    if not os.path.exists(path):
        _generate_if_missing(path, config)
        return path, _generated_meta(config)
    return path, None if data.dir else _generated_meta(config)


def _with_suffix(path: str, suffix: str) -> str:
    """A link named ``<path><suffix>`` to a downloaded file, so its reader is chosen."""
    named = path + suffix.lower()
    if not os.path.exists(named):
        with contextlib.suppress(FileExistsError):
            os.symlink(path, named)
    return named


def fingerprint(path: str) -> str:
    """What identifies the data at ``path`` on any host: the array checksums in a generated
    directory's meta.json, or a file's size and the sha256 of its first MiB."""
    if os.path.isdir(path):
        meta = json.loads(open(os.path.join(path, "meta.json")).read())
        return hashlib.sha256(json.dumps(meta.get("sha256"), sort_keys=True).encode()
                              ).hexdigest()[:16]
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    return f"{os.path.getsize(path)}-{hashlib.sha256(head).hexdigest()[:16]}"


def resolve_channels(config: ml_collections.ConfigDict,
                     data: Splits) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``model.in_channels`` and ``model.out_channels`` set to the
    data's (``config`` itself is left as it is; it may be locked).

    None in the config means "from the data"; an explicit value that contradicts the data is
    a one-line FnoError naming both numbers.
    """
    # A model of one step (autoregressive) or of space-time predicts one snapshot's channels.
    per_step = registry.time_scheme(config) in ("autoregressive", "space_time")
    found = {"in_channels": ("input", data.in_channels),
             "out_channels": ("output per step" if per_step else "output",
                              data.channels_per_step if per_step else data.out_channels)}
    for name, (what, count) in found.items():
        given = config.model.get(name)
        if given is not None and given != count:
            raise FnoError(f"config.model.{name}={given}, but the data {data.train.path} have "
                           f"{count} {what} channel(s); leave it unset (None) to take it from "
                           f"the data")
    resolved = config.copy_and_resolve_references()
    with resolved.unlocked():
        for name, (_, count) in found.items():
            resolved.model[name] = count
        if registry.time_scheme(config) is not None:  # recorded, for inference
            resolved.model.time_scheme = registry.time_scheme(config)
    return resolved


def split_sizes(num: int, num_train: int | None, num_test: int | None) -> tuple[int, int]:
    """Training and test split sizes for ``num`` samples; a None size is chosen: the test
    split the last 200 samples or a sixth of them if that is fewer, the training split the
    first 1000 or the rest (the paper's 1000 / 200 on the default 2048 samples)."""
    if num_test is None:
        num_test = min(200, max(1, num // 6))
    if num_train is None:
        num_train = max(1, min(1000, num - num_test))
    return num_train, num_test


def _open_source(path: str, resolution: int, config: ml_collections.ConfigDict, how: Layout,
                 expected: dict | None) -> sources.ArraySource:
    return sources.open_dataset(path, resolution, input_key=config.data.input_key,
                                output_key=config.data.output_key, expected_meta=expected,
                                grid_rank=how.grid_rank, grid=how.grid, files=how.files,
                                time=time_window(config))


def _open(config: ml_collections.ConfigDict, resolution_divisor: int, path: str | None,
          layout: Layout | None) -> Splits:
    data = config.data
    expected = None
    if path is None:
        try:
            path, expected = resolve(config)
        except OSError as e:  # e.g. a cache directory that cannot be created on this host
            where = f" {e.filename}" if e.filename else ""
            raise FnoError(f"dataset{where}: {e.strerror or e} (data.dir {data.dir!r}, "
                           f"cache {cache_root()})") from e
    how = layout or registered_layout(config)

    def open_at(resolution: int) -> sources.ArraySource:
        return _open_source(path, resolution, config, how, expected)

    try:
        full = {data.resolution: open_at(data.resolution)}
        if data.eval_resolutions is None:  # what the data support (checks.finer_resolutions)
            stored = full[data.resolution]
            extra = [r for r in checks.finer_resolutions(stored.stored_resolution,
                                                          data.resolution, stored.grid)
                     if r % resolution_divisor == 0]
        else:
            extra = [r for r in data.eval_resolutions if r != data.resolution]
        full.update({r: open_at(r) for r in dict.fromkeys(extra)})
    except checks.DataError as e:
        raise FnoError(str(e)) from e
    num = full[data.resolution].num_samples
    num_train, num_test = split_sizes(num, data.num_train, data.num_test)
    if num_train + num_test > num:
        raise FnoError(f"config.data.num_train + num_test = {num_train + num_test} "
                       f"exceeds the {num} samples in {path}")
    train = full[data.resolution].subset(0, num_train)
    test = {r: source.subset(num - num_test, num) for r, source in full.items()}
    fields = None
    if data.normalize:
        # Point-wise statistics commute with subsampling: fitted on the stored grid, they
        # are exact at every resolution the data serve (fno.data.normalizer).
        try:
            fields = normalizer.fit(train.on_stored_grid())
        except ValueError as e:
            raise FnoError(f"config.data.normalize: {e}") from e
    return Splits(train=train, test=test, fingerprint=fingerprint(path), normalizer=fields)


def load(config: ml_collections.ConfigDict, resolution_divisor: int = 1, *,
         path: str | None = None, layout: Layout | None = None) -> Splits:
    """Open the dataset; the train split at ``data.resolution``, test at every resolution
    (``data.eval_resolutions``, or when None every finer power-of-two subgrid the data
    have whose size ``resolution_divisor`` divides).

    ``path`` and ``layout`` (a trained model's record of its data) open that dataset as
    recorded, without the problem's registration; by default the config's dataset is
    found or generated (:func:`resolve`) and read as its problem is registered.

    Collective in a multi-process job: every process opens its own copy, then all agree
    that each succeeded and that the copies are identical, before anything else happens.
    """
    splits, error = None, None
    try:
        splits = _open(config, resolution_divisor, path, layout)
    except FnoError as e:
        error = str(e)
    collective.agree("dataset", error)
    assert splits is not None
    collective.same("dataset_fingerprint", splits.fingerprint,
                    f"the dataset {splits.train.path} (fingerprint)")
    if jax.process_count() > 1:
        logging.info("All %d processes opened identical datasets (%s).", jax.process_count(),
                     splits.fingerprint)
    return splits
