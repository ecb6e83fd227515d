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
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

import jax
import ml_collections
from absl import logging
from etils import epath

from fno import registry
from fno.data import normalizer, sources
from fno.errors import FnoError
from fno.parallel import collective
from fno.storage import paths

_FILE_SUFFIXES = (".mat", ".npz", ".h5", ".hdf5")


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

    def describe(self) -> dict:
        """What a trained model's card says about its training data (JSON-ready)."""
        train = self.train
        return {"path": train.path, "fingerprint": self.fingerprint, "grid": self.grid,
                "stored_resolution": train.stored_resolution,
                "resolution": train.resolution, "num_train": len(train),
                "num_test": len(next(iter(self.test.values()))),
                "test_resolutions": list(self.test), "normalized": self.normalizer is not None}


def cache_root() -> str:
    """This host's dataset cache: ``FNO_DATA_DIR`` or ``~/.cache/fno``."""
    return os.environ.get("FNO_DATA_DIR", os.path.join(os.path.expanduser("~"), ".cache", "fno"))


def default_data_dir(config: ml_collections.ConfigDict) -> str:
    """Where the dataset of ``config.data`` lives when ``data.dir`` is empty: a name made of
    its problem's ``data.generate`` settings."""
    return os.path.join(cache_root(), registry.problem(config).cache_name(config.data.generate))


def _generated_meta(config: ml_collections.ConfigDict) -> dict | None:
    """The meta.json entries a generated directory of ``config.data`` must have."""
    problem = registry.problem(config)
    if problem.generate is None:
        return None
    return {key: config.data.generate[key] for key in problem.meta_keys}


@contextlib.contextmanager
def _host_lock(path: str) -> Iterator[None]:
    """An exclusive flock on ``path`` (blocking): the processes of one host take turns.
    Filesystems without flock fall back to no lock: generation then races harmlessly (the
    writer commits atomically and an existing complete copy is kept)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL):
                raise
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(f, fcntl.LOCK_UN)


def _generate_if_missing(path: str, config: ml_collections.ConfigDict) -> None:
    problem, gen = registry.problem(config), config.data.generate
    if problem.generate is None:
        raise FnoError(f"config.data.dir: {path} does not exist (config.data.name="
                       f"{config.data.name!r} reads existing data only)")
    parent, name = os.path.split(path)
    with _host_lock(os.path.join(parent, f".{name}.lock")):
        if os.path.exists(path):
            return
        logging.info("Dataset %s not found on this host: generating %s data (%d samples at "
                     "s = %d).", path, config.data.name, gen.num_samples, gen.resolution)
        try:
            problem.generate(path, **gen.to_dict())
        except (ValueError, TypeError) as e:
            # The generators check their settings before they write anything.
            raise FnoError(f"config.data.generate: {e}") from e
        except OSError as e:
            # Without a working lock another host may have committed the same (deterministic)
            # dataset first: its complete copy is as good as ours.
            if os.path.exists(os.path.join(path, "meta.json")):
                return
            raise FnoError(f"cannot generate the dataset in {path}: {e.strerror or e}") from e


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
    found = {"in_channels": ("input", data.in_channels),
             "out_channels": ("output", data.out_channels)}
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


def _open(config: ml_collections.ConfigDict, resolution_divisor: int) -> Splits:
    data = config.data
    try:
        path, expected = resolve(config)
    except OSError as e:  # e.g. a cache directory that cannot be created on this host
        where = f" {e.filename}" if e.filename else ""
        raise FnoError(f"dataset{where}: {e.strerror or e} (data.dir {data.dir!r}, "
                       f"cache {cache_root()})") from e
    def open_at(resolution: int) -> sources.ArraySource:
        return sources.open_dataset(path, resolution, input_key=data.input_key,
                                    output_key=data.output_key, expected_meta=expected,
                                    grid_rank=registry.grid_rank(config),
                                    grid=registry.problem(config).grid)

    try:
        full = {data.resolution: open_at(data.resolution)}
        if data.eval_resolutions is None:  # what the data support (sources.finer_resolutions)
            stored = full[data.resolution]
            extra = [r for r in sources.finer_resolutions(stored.stored_resolution,
                                                          data.resolution, stored.grid)
                     if r % resolution_divisor == 0]
        else:
            extra = [r for r in data.eval_resolutions if r != data.resolution]
        full.update({r: open_at(r) for r in dict.fromkeys(extra)})
    except sources.DataError as e:
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


def load(config: ml_collections.ConfigDict, resolution_divisor: int = 1) -> Splits:
    """Open the dataset; the train split at ``data.resolution``, test at every resolution
    (``data.eval_resolutions``, or when None every finer power-of-two subgrid the data
    have whose size ``resolution_divisor`` divides).

    Collective in a multi-process job: every process opens its own copy, then all agree
    that each succeeded and that the copies are identical, before anything else happens.
    """
    splits, error = None, None
    try:
        splits = _open(config, resolution_divisor)
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
