"""From ``config.data`` to train and test sources: find or generate the dataset, split it,
and open the test split at every evaluation resolution."""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections
from absl import logging

from fno.data import burgers, sources
from fno.errors import FnoError


@dataclasses.dataclass
class Splits:
    train: sources.ArraySource
    test: dict[int, sources.ArraySource]  # resolution -> source; training resolution first


def default_data_dir(gen: ml_collections.ConfigDict) -> str:
    """Where a dataset generated with ``gen`` lives when ``data.dir`` is empty."""
    root = os.environ.get("FNO_DATA_DIR", os.path.join(os.path.expanduser("~"), ".cache", "fno"))
    name = (f"burgers_n{gen.num_samples}_s{gen.resolution}_nu{gen.nu:g}_t{gen.t_final:g}"
            f"_seed{gen.seed}")
    return os.path.join(root, name)


def _generated_meta(gen: ml_collections.ConfigDict) -> dict:
    return {"num_samples": gen.num_samples, "resolution": gen.resolution, "seed": gen.seed,
            "nu": gen.nu, "t_final": gen.t_final}


def resolve(config: ml_collections.ConfigDict) -> tuple[str, dict | None]:
    """The dataset path, generating it first (on process 0) when it is a missing directory.

    Returns the path and the metadata a generated directory must match (None for files).
    """
    data, gen = config.data, config.data.generate
    path = os.path.abspath(os.path.expanduser(data.dir)) if data.dir else default_data_dir(gen)
    is_file = os.path.splitext(path)[1].lower() in (".mat", ".npz", ".h5", ".hdf5")
    if is_file:
        if not os.path.exists(path):
            raise FnoError(f"config.data.dir: dataset file {path} does not exist")
        return path, None
    if not os.path.exists(path):
        if jax.process_index() == 0:
            logging.info("Dataset %s not found: generating it (%d samples at s = %d).",
                         path, gen.num_samples, gen.resolution)
            burgers.generate_dataset(path, num_samples=gen.num_samples,
                                     resolution=gen.resolution, seed=gen.seed, nu=gen.nu,
                                     t_final=gen.t_final)
        _wait_for_other_processes("dataset generation")
    return path, _generated_meta(gen)


def _wait_for_other_processes(what: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(what)


def load(config: ml_collections.ConfigDict) -> Splits:
    """Open the dataset; the train split at ``data.resolution``, test at every resolution."""
    data = config.data
    path, expected = resolve(config)
    try:
        resolutions = [data.resolution] + [r for r in data.eval_resolutions
                                           if r != data.resolution]
        full = {r: sources.open_dataset(path, r, input_key=data.input_key,
                                        output_key=data.output_key, expected_meta=expected)
                for r in dict.fromkeys(resolutions)}
    except sources.DataError as e:
        raise FnoError(str(e)) from e
    num = full[data.resolution].num_samples
    if data.num_train + data.num_test > num:
        raise FnoError(f"config.data.num_train + num_test = {data.num_train + data.num_test} "
                       f"exceeds the {num} samples in {path}")
    train = full[data.resolution].subset(0, data.num_train)
    test = {r: source.subset(num - data.num_test, num) for r, source in full.items()}
    return Splits(train=train, test=test)
