"""FNO-2D through the same set-up, step-runner and loop as FNO-1D: every mode, model and
spatial sharding (one grid axis and both), checkpoints across modes with the normaliser, and
Darcy flow generated on first use by main.py."""

import functools
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest

from fno.errors import FnoError
from fno.parallel import strategies
from fno.training import checkpoint as checkpoint_lib
from fno.training import loop, steps
from tests import helpers
from tests.helpers import assert_same, params_of, smooth_fields_2d, tiny_config_2d
from tests.test_parallel import run_mode
from tests.test_sharding import checked_strategy, flat, train_steps

ROOT = Path(__file__).resolve().parents[1]


def config_2d(mode: str, **overrides):
    """A small FNO-2D on 16 x 16 in-memory fields (the source is passed to the runner; the
    config's generated grid, of which 16 is a subgrid, is never made)."""
    return tiny_config_2d(**{"mode": mode, "batch_size": 8, "steps_per_call": 3,
                             "data.resolution": 16, "data.generate.resolution": 31,
                             "data.eval_resolutions": (),
                             "log_every_steps": 100, "eval_every_steps": 100,
                             "checkpoint_every_steps": 100, **overrides})


@pytest.fixture(scope="module")
def fields():
    return smooth_fields_2d(32, 16)


@pytest.fixture(scope="module")
def reference(fields):
    return run_mode("basic", fields, config=config_2d("basic"))


@pytest.mark.parametrize("mode", ["scan", "pmap", "pmap_scan", "mesh", "mesh_scan"])
def test_fno2d_modes_match_basic(mode, fields, reference):
    params, losses = run_mode(mode, fields, config=config_2d(mode))
    ref_params, ref_losses = reference
    a, b = flat(params), flat(ref_params)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5
    assert np.mean(losses) == pytest.approx(np.mean(ref_losses), rel=1e-5) or (
        len(losses) != len(ref_losses))


def test_fno2d_trains(fields, reference):
    _, losses = run_mode("basic", fields, num_steps=30,
                         config=config_2d("basic", learning_rate=5e-3))
    assert losses[-1] < 0.7 * losses[0]


LAYOUTS = {
    "model": dict(mesh_shape=(4, 2), mesh_axes=("data", "model"), model_sharding="model"),
    "grid x": dict(mesh_shape=(4, 2), mesh_axes=("data", "x"), spatial_sharding="x"),
    "grid y": dict(mesh_shape=(2, 4), mesh_axes=("data", "y"), spatial_sharding=",y"),
    "grid x and y": dict(mesh_shape=(2, 2, 2), mesh_axes=("data", "x", "y"),
                         spatial_sharding="x,y"),
    "model and grid x": dict(mesh_shape=(2, 2, 2), mesh_axes=("data", "model", "x"),
                             model_sharding="model", spatial_sharding="x"),
}


@pytest.fixture(scope="module")
def one_device(fields):
    """The unsharded mesh_scan run per spectral path, computed once."""
    runs = {}

    def run(impl):
        if impl not in runs:
            config = config_2d("mesh_scan", **{"model.spectral_impl": impl, "steps_per_call": 2})
            runs[impl] = train_steps(config, fields)[1]
        return runs[impl]

    return run


# Every layout on the DFT path (the one spatial sharding is for), the FFT path for each
# layout alone (model plus x on FFT adds nothing the two single layouts do not cover).
CASES = [(layout, impl) for layout in sorted(LAYOUTS) for impl in ("dft", "fft")
         if (layout, impl) != ("model and grid x", "fft")]


@pytest.mark.parametrize("layout, impl", CASES)
def test_fno2d_sharded_training_matches_one_device(layout, impl, fields, one_device):
    overrides = {"model.spectral_impl": impl, "steps_per_call": 2}
    if impl == "fft" and "y" in LAYOUTS[layout].get("spatial_sharding", ""):
        # XLA:CPU's FFT thunk rejects the layout a sharded last axis gives its operand
        # (RET_CHECK IsMonotonicWithDim0Major): refused up front, in one line.
        with pytest.raises(FnoError, match="XLA:CPU's FFT"):
            checked_strategy(config_2d("mesh_scan", **overrides, **LAYOUTS[layout]))
        return
    one = one_device(impl)
    strategy, state = train_steps(config_2d("mesh_scan", **overrides, **LAYOUTS[layout]),
                                  fields)
    a, b = flat(state["params"]), flat(one["params"])
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5
    spectral = state["params"]["spectral"][0]["weight_real"]
    if "model" in layout:  # input channels split over the model axis, Adam moments too
        assert spectral.addressable_shards[0].data.shape[0] == spectral.shape[0] // 2
    else:
        assert spectral.addressable_shards[0].data.shape == spectral.shape


run_main = functools.partial(helpers.run_main, config="tiny2d.py")


@pytest.mark.slow
def test_darcy_generated_on_first_use_trains_and_resumes_in_other_modes(tmp_path):
    """main.py on configs/tiny2d.py: the Darcy dataset is generated into the cache, FNO-2D
    trains with the normaliser, evaluates at both resolutions and writes the usual outputs;
    its checkpoint (normaliser included) restores in every mode and a resumed run in
    another mode continues from it."""
    cache = tmp_path / "cache"
    result = run_main(tmp_path / "w", "--config.mode=mesh_scan",
                      env={"FNO_DATA_DIR": str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    (generated,) = [name for name in os.listdir(cache) if not name.startswith(".")]
    assert generated.startswith("darcy_n48_s33")
    meta = json.loads((cache / generated / "meta.json").read_text())
    assert meta["pde"] == "darcy" and meta["resolution"] == 33
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    assert results["step"] == 12
    assert 0 < results["test_rel_l2"] < 1 and 0 < results["test_rel_l2_s33"] < 1
    assert sorted(os.listdir(tmp_path / "w" / "figures")) == ["predictions_00000006.png",
                                                             "predictions_00000012.png"]

    config = tiny_config_2d(**{"data.dir": str(cache / generated)})
    saved = params_of(tmp_path / "w")
    checkpointer = checkpoint_lib.Checkpointer(str(tmp_path / "w" / "checkpoints"))
    stored = checkpointer.restore(12, abstract_state=None)
    norm = stored["normalizer"]
    a = np.load(cache / generated / "a.npy")[:config.data.num_train]
    np.testing.assert_allclose(norm["x_mean"], a.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm["x_std"], a.std(0, ddof=1), rtol=1e-4)
    tx = steps.create_optimizer(config, 4)
    for mode in strategies.MODES:
        strategy = strategies.make_strategy(mode)
        _, logical = steps.create_state(config, tx, strategy.state_shardings,
                                        normalizer=jax.tree.map(np.asarray, norm))
        abstract = checkpoint_lib.abstract_like(logical, strategy.state_shardings(logical))
        back = strategy.logical_state(strategy.place_state(checkpointer.restore(12, abstract)))
        assert_same(jax.tree.leaves(jax.tree.map(np.asarray, back["params"])), saved)
        assert_same(jax.tree.leaves(back["normalizer"]), jax.tree.leaves(norm))
    checkpointer.close()

    resumed = loop.train_and_evaluate(
        tiny_config_2d(**{"data.dir": str(cache / generated), "mode": "pmap",
                          "num_train_steps": 15}), str(tmp_path / "w"))
    assert resumed["steps_this_run"] == 3 and resumed["step"] == 15
