"""Inputs and outputs with several channels, ``[N, *grid, C]``, end to end with no channel
flags: files and directories, the model against single-channel references, the normaliser
against NumPy, batch shardings, the real loop in basic and model- and grid-sharded mesh
modes, FNO-2D with a two-channel input, and a contradicting ``model.in_channels`` as one
line through main.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from fno import configuration
from fno.data import dataset_dir, datasets, normalizer
from fno.data.checks import DataError
from fno.data.sources import open_dataset
from fno.errors import FnoError
from fno.models.fno1d import FNO1d
from fno.models.fno2d import FNO2d
from fno.parallel import sharding
from fno.training import checkpoint as checkpoint_lib
from fno.training import loop
from tests.helpers import InMemorySource, assert_same, params_of, tiny_config, with_overrides

ROOT = Path(__file__).resolve().parents[1]
N, S = 48, 128  # configs/tiny.py: 32 train + 12 test samples, trained at 64, tested at 128


def band_limited(rng, num: int, resolution: int, channels: int) -> np.ndarray:
    """Random smooth periodic fields ``[num, resolution, channels]`` (modes 1..5)."""
    grid = np.arange(resolution) / resolution
    k = np.arange(1, 6)
    cos, sin = np.cos(2 * np.pi * np.outer(k, grid)), np.sin(2 * np.pi * np.outer(k, grid))
    coeffs = rng.normal(size=(num, channels, 5, 2)) / k[:, None] ** 2
    return np.moveaxis(coeffs[..., 0] @ cos + coeffs[..., 1] @ sin, 1, -1)


def linear_operators(a: np.ndarray) -> np.ndarray:
    """Two outputs that are smooth linear operators of the two input channels: a shift of
    channel 0 plus half of channel 1, and a heat-kernel smoothing of channel 1 minus a third
    of channel 0 (diagonal in Fourier space: what an FNO learns easily)."""
    s = a.shape[1]
    k = np.fft.rfftfreq(s, 1.0 / s)
    smooth = np.fft.irfft(np.fft.rfft(a[..., 1], axis=1) * np.exp(-0.02 * k**2), n=s, axis=1)
    return np.stack([np.roll(a[..., 0], s // 8, axis=1) + 0.5 * a[..., 1],
                     smooth - a[..., 0] / 3], axis=-1)


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory) -> str:
    """A periodic 1D .npz: inputs [N, S, 2], outputs [N, S, 2]."""
    a = band_limited(np.random.default_rng(0), N, S, 2)
    path = tmp_path_factory.mktemp("channels") / "two_by_two.npz"
    np.savez(path, a=a.astype(np.float32), u=linear_operators(a).astype(np.float32))
    return str(path)


def own_data(path: str, **overrides):
    """configs/tiny.py on a user's file, with no channel flags."""
    return tiny_config(path, **{"data.name": "file", **overrides})


# ------------------------------------------------------------------------------- sources
def test_file_layouts_with_channels_subsample_grid_axes_only(tmp_path):
    """[N, S, C] inputs and [N, S] outputs in .npz, .h5 and MATLAB v7.3 files: the grid axis
    is subsampled, the channel axis kept whole; a trailing axis of size 1 is one channel."""
    from tests.test_sources import write_h5, write_mat73

    rng = np.random.default_rng(1)
    a, u = rng.standard_normal((6, 16, 3)), rng.standard_normal((6, 16))
    np.savez(tmp_path / "d.npz", a=a, u=u)
    write_h5(tmp_path / "d.h5", a=a, u=u)
    write_mat73(tmp_path / "d.mat", a=a, u=u)
    for name in ("d.npz", "d.h5", "d.mat"):
        source = open_dataset(tmp_path / name, 8)
        assert (source.in_channels, source.out_channels, source.grid_rank) == (3, 1, 1)
        x, y = source.get_batch(np.array([4, 1]))
        np.testing.assert_array_equal(x, a[[4, 1], ::2].astype(np.float32), err_msg=name)
        np.testing.assert_array_equal(y, u[[4, 1], ::2].astype(np.float32))
        assert source[0]["x"].shape == (8, 3) and source[0]["y"].shape == (8,)
        assert source.subset(1, 3).in_channels == 3
        assert source.on_stored_grid().get_batch(np.array([0]))[0].shape == (1, 16, 3)
    np.savez(tmp_path / "one.npz", a=a[..., :1], u=u[..., None])
    source = open_dataset(tmp_path / "one.npz", 16)
    assert (source.in_channels, source.out_channels) == (1, 1)
    x, y = source.get_batch(np.array([0, 5]))
    assert x.shape == y.shape == (2, 16)  # one channel is [b, *grid], as ever


def test_generated_directory_with_channels(tmp_path):
    """A directory of the generators' layout (meta.json, .npy arrays) with [N, S, S, 2]
    inputs, read with the model's two grid axes on vertex subgrids."""
    rng = np.random.default_rng(2)
    a, u = rng.standard_normal((4, 9, 9, 2)), rng.standard_normal((4, 9, 9))
    out = tmp_path / "dir"
    with dataset_dir.staging(out, overwrite=False) as tmp:
        np.save(tmp / "a.npy", a.astype(np.float32))
        np.save(tmp / "u.npy", u.astype(np.float32))
        dataset_dir.write_meta(tmp, {"pde": "darcy", "num_samples": 4, "resolution": 9,
                                     "files": {"input": "a.npy", "output": "u.npy"}},
                               files=("a.npy", "u.npy"))
    source = open_dataset(out, 5, grid_rank=2, grid="vertex")  # the grid of darcy's registration
    assert (source.in_channels, source.out_channels, source.grid) == (2, 1, "vertex")
    x, y = source.get_batch(np.array([3]))
    np.testing.assert_array_equal(x, a[[3], ::2, ::2].astype(np.float32))
    np.testing.assert_array_equal(y, u[[3], ::2, ::2].astype(np.float32))
    with pytest.raises(DataError, match="does not match meta.json"):
        open_dataset(out, 9, grid_rank=1)  # [4, 9, 9, 2] is not [4, 9] (+ channels)


@pytest.mark.parametrize("a_shape, u_shape, message", [
    ((6, 16, 2, 2), (6, 16), "must have rank 2 [samples, points] or rank 3 [samples, "
                             "points, channels], got shape (6, 16, 2, 2)"),
    ((6, 16, 2), (6, 8, 2), "has (16,) points per sample but 'u' has (8,)"),
    ((6, 16, 16), (6, 16), "16 channels as many as its points per grid axis"),
])
def test_bad_channel_shapes_are_one_line(tmp_path, a_shape, u_shape, message):
    np.savez(tmp_path / "bad.npz", a=np.zeros(a_shape), u=np.zeros(u_shape))
    with pytest.raises(DataError) as info:
        open_dataset(tmp_path / "bad.npz", 8)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith(str(tmp_path))


# --------------------------------------------------------------------------------- model
def tiny_model(cls, seed: int = 0, **kw):
    return cls(width=8, modes=4, num_layers=2, projection_width=16, rngs=nnx.Rngs(params=seed),
               **kw)


def copy_params(source: nnx.Module, target: nnx.Module, **replace: dict) -> None:
    """``target``'s parameters set to ``source``'s, the leaves of the ``replace``d modules
    (``lift={"kernel": ..., "bias": ...}``) to the values given."""
    state = nnx.to_pure_dict(nnx.state(source, nnx.Param))
    for module, leaves in replace.items():
        state[module] = {**state[module], **leaves}
    nnx.update(target, nnx.State(state))


@pytest.mark.parametrize("cls, grid", [(FNO1d, (32,)), (FNO2d, (16, 16))])
def test_a_zeroed_input_channel_is_the_single_channel_model(cls, grid):
    """The two-channel model whose second channel's lift row is zero equals the one-channel
    model with the same other weights, whatever the second channel holds; the lift kernel is
    [in_channels + grid_rank, width] with the input channels' rows first."""
    one, two = tiny_model(cls, seed=3), tiny_model(cls, seed=4, in_channels=2)
    kernel = np.asarray(one.lift.kernel[...])  # [1 + grid_rank, width]
    assert two.lift.kernel.shape == (2 + cls.grid_rank, 8)
    widened = np.concatenate([kernel[:1], np.zeros_like(kernel[:1]), kernel[1:]])
    copy_params(one, two, lift={"kernel": jnp.asarray(widened)})
    rng = np.random.default_rng(5)
    u = jnp.asarray(rng.normal(size=(3, *grid)), jnp.float32)
    noise = jnp.asarray(rng.normal(size=(3, *grid)) * 10, jnp.float32)
    expected = np.asarray(one(u))
    got = np.asarray(two(jnp.stack([u, noise], axis=-1)))
    assert got.shape == expected.shape == (3, *grid)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_output_channels_are_single_channel_projections():
    """Channel k of an out_channels=2 model is the one-channel model whose project_out is
    column k, and the output is [b, *grid, 2]."""
    two = tiny_model(FNO1d, seed=6, out_channels=2)
    assert two.project_out.kernel.shape == (16, 2)
    u = jnp.asarray(np.random.default_rng(7).normal(size=(3, 32)), jnp.float32)
    out = np.asarray(two(u))
    assert out.shape == (3, 32, 2)
    for k in range(2):
        one = tiny_model(FNO1d)
        column = {"kernel": two.project_out.kernel[...][:, k:k + 1],
                  "bias": two.project_out.bias[...][k:k + 1]}
        copy_params(two, one, project_out=column)
        np.testing.assert_allclose(np.asarray(one(u)), out[..., k], rtol=1e-6, atol=1e-6)


def test_single_channel_parameters_are_unchanged_and_shapes_are_checked():
    """in_channels = out_channels = 1 is the model as it was: the same shapes and, from one
    seed, the same numbers (sum of all parameters recorded before channels existed)."""
    model = FNO1d(width=64, modes=16, rngs=nnx.Rngs(params=0))
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert sum(float(np.asarray(x, np.float64).sum()) for x in leaves) == pytest.approx(
        70.9768731516, abs=1e-9)
    assert model.lift.kernel.shape == (2, 64) and model.project_out.kernel.shape == (128, 1)
    model = FNO2d(width=32, modes=12, rngs=nnx.Rngs(params=0))
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert sum(float(np.asarray(x, np.float64).sum()) for x in leaves) == pytest.approx(
        1178.0919189611, abs=1e-9)
    two = tiny_model(FNO1d, in_channels=2)
    with pytest.raises(ValueError, match=r"2 input channels takes \[batch, 1 grid axes, 2\]"):
        two(jnp.zeros((2, 32, 3)))
    with pytest.raises(ValueError, match="1 input channel takes"):
        tiny_model(FNO1d)(jnp.zeros((2, 32, 2)))
    with pytest.raises(ValueError, match="model.in_channels must be a positive integer"):
        tiny_model(FNO1d, in_channels=0)


# ---------------------------------------------------------------------------- normaliser
def test_normaliser_with_channels_against_numpy():
    """Fields [*grid, C] per point and channel; resampling moves grid points only (exact on
    a subgrid, linear between points, every channel alike) and never the channel axis."""
    rng = np.random.default_rng(8)
    x = rng.normal(2.0, 3.0, size=(21, 16, 3))
    y = rng.normal(-1.0, 0.5, size=(21, 16))
    fields = normalizer.fit(InMemorySource(x, y), chunk=5)
    np.testing.assert_allclose(fields["x_mean"], x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(fields["x_std"], x.std(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(fields["y_std"], y.std(0, ddof=1), rtol=1e-5)
    assert fields["x_mean"].shape == (16, 3) and fields["y_mean"].shape == (16,)

    field = jnp.asarray(fields["x_mean"])
    np.testing.assert_array_equal(normalizer.resample(field, (4,), "periodic"),
                                  fields["x_mean"][::4])
    fine = np.asarray(normalizer.resample(field, (32,), "periodic"))
    assert fine.shape == (32, 3)
    midpoints = (fields["x_mean"] + np.roll(fields["x_mean"], -1, axis=0)) / 2
    np.testing.assert_allclose(fine[1::2], midpoints, atol=1e-6)
    np.testing.assert_array_equal(fine[::2], fields["x_mean"])

    # apply_normalized at a subgrid against the NumPy formula, with a stand-in model that
    # sums the input channels.
    batch = rng.normal(size=(2, 8, 3)).astype(np.float32)
    pred = np.asarray(normalizer.apply_normalized(
        lambda params, z: jnp.sum(z, axis=-1), None, fields, jnp.asarray(batch), "periodic",
        1))
    f = {k: v[::2] for k, v in fields.items()}
    encoded = (batch - f["x_mean"]) / (f["x_std"] + normalizer.EPS)
    expected = encoded.sum(-1) * (f["y_std"] + normalizer.EPS) + f["y_mean"]
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="do not match the normaliser"):
        normalizer.apply_normalized(lambda p, z: z, None, fields, jnp.zeros((2, 8, 2)),
                                    "periodic", 1)


# ------------------------------------------------------------------------------ sharding
def test_channel_axis_of_batches_is_never_sharded():
    mesh = sharding.make_mesh((2, 2, 2), ("data", "model", "x"))
    layout = sharding.Layout(mesh, rules=sharding.axis_rules("model", "x"), grid_rank=1)
    assert layout.batch_sharding((8, 64, 2), stacked=False).spec == P("data", "x")
    assert layout.batch_sharding((3, 8, 64, 2), stacked=True).spec == P(None, "data", "x")
    assert layout.batch_sharding((8, 64), stacked=False).spec == P("data", "x")
    assert layout.batch_sharding((8,), stacked=False).spec == P("data")
    layout = sharding.Layout(mesh, rules=sharding.axis_rules("", "x,model"), grid_rank=1)
    assert layout.batch_sharding((8, 64, 2), stacked=False).spec == P("data", "x")


# ------------------------------------------------------------------------------- config
def test_channel_fields_are_validated_and_resolved_from_the_data(two_by_two):
    for bad in (0, -2, True):
        with pytest.raises(FnoError, match="config.model.in_channels must be a positive"):
            configuration.validate(own_data(two_by_two, **{"model.in_channels": bad}))
    config = own_data(two_by_two)
    configuration.validate(config)
    config.lock()
    data = datasets.load(config)
    assert (data.in_channels, data.out_channels) == (2, 2)
    resolved = datasets.resolve_channels(config, data)
    assert (resolved.model.in_channels, resolved.model.out_channels) == (2, 2)
    assert config.model.in_channels is None  # the original is left as it was
    explicit = with_overrides(own_data(two_by_two), {"model.out_channels": 2})
    assert datasets.resolve_channels(explicit, data).model.out_channels == 2
    explicit.model.out_channels = 1
    with pytest.raises(FnoError, match=r"config.model.out_channels=1, but the data .* have 2 "
                                       r"output channel"):
        datasets.resolve_channels(explicit, data)


# ---------------------------------------------------------------------------- the loop
def losses(workdir: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in open(workdir / "metrics.jsonl")
            if "train_loss" in line]


@pytest.fixture(scope="module")
def basic_run(two_by_two, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("basic")
    results = loop.train_and_evaluate(own_data(two_by_two, **{"learning_rate": 5e-3}),
                                       str(workdir))
    return workdir, results


def test_two_by_two_channels_train_through_the_loop(basic_run):
    """No channel flags: the counts come from the data into the config that the run saves;
    test metrics are finite at both resolutions and the loss falls."""
    workdir, results = basic_run
    assert results["step"] == 12
    assert np.isfinite(results["test_rel_l2"]) and np.isfinite(results["test_rel_l2_s128"])
    assert results["config"]["model"]["in_channels"] == 2
    assert results["config"]["model"]["out_channels"] == 2
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["config"]["model"]["in_channels"] == 2
    history = losses(workdir)
    assert history[-1] < history[0]
    params = loop.final_params(str(workdir))
    assert params["lift"]["kernel"].shape == (3, 8)
    assert params["project_out"]["kernel"].shape == (16, 2)
    checkpointer = checkpoint_lib.Checkpointer(workdir / "checkpoints")
    facts = checkpointer.run_info(12) or {}
    checkpointer.close()
    if "config" in facts:  # the run facts carry the config the run trained with
        assert facts["config"]["model"]["in_channels"] == 2
        assert facts["config"]["model"]["out_channels"] == 2
    assert sorted(os.listdir(workdir / "figures")) == ["predictions_00000006.png",
                                                       "predictions_00000012.png"]


def test_model_and_grid_sharded_mesh_run_equals_basic(basic_run, two_by_two, tmp_path):
    """Channels next to a model-sharded hidden state and a grid-sharded batch (8 devices:
    data 2 x model 2 x grid 2): the parameters of the basic run, to the tolerance of the
    other mode-equality tests (tests/test_train.py)."""
    workdir, _ = basic_run
    config = own_data(two_by_two, **{"learning_rate": 5e-3, "mode": "mesh",
                                     "mesh_shape": (2, 2, 2),
                                     "mesh_axes": ("data", "model", "x"),
                                     "model_sharding": "model", "spatial_sharding": "x"})
    results = loop.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(results["test_rel_l2"])
    assert_same(params_of(tmp_path), params_of(workdir), rtol=5e-5)
    np.testing.assert_allclose(losses(tmp_path), losses(workdir), rtol=5e-5)


def test_fno2d_file_with_a_two_channel_input(tmp_path):
    """FNO-2D on a vertex-grid file with [N, 17, 17, 2] inputs and [N, 17, 17] outputs,
    normalised point-wise per channel, trained at 9 x 9 and tested at 17 x 17 too."""
    from configs import tiny2d

    rng = np.random.default_rng(9)
    a = rng.normal(size=(N, 17, 17, 2)).cumsum(1).cumsum(2) / 17
    u = np.tanh(a[..., 0]) + 0.5 * a[..., 1]
    path = tmp_path / "two_channel_2d.npz"
    np.savez(path, a=a.astype(np.float32), u=u.astype(np.float32))
    config = with_overrides(tiny2d.get_config(), {
        "data.name": "file", "data.dir": str(path), "data.resolution": 9,
        "data.eval_resolutions": (17,)})
    results = loop.train_and_evaluate(config, str(tmp_path / "w"))
    assert np.isfinite(results["test_rel_l2"]) and np.isfinite(results["test_rel_l2_s17"])
    assert results["config"]["model"]["in_channels"] == 2
    assert results["config"]["model"]["out_channels"] == 1
    history = losses(tmp_path / "w")
    assert history[-1] < history[0]


def test_contradicting_in_channels_is_one_line_through_main(two_by_two, tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    command = [sys.executable, str(ROOT / "main.py"), f"--workdir={tmp_path / 'w'}",
               f"--config={ROOT}/configs/tiny.py", "--config.data.name=file",
               f"--config.data.dir={two_by_two}", "--config.model.in_channels=3"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "config.model.in_channels=3" in errors[0] and "2 input channel" in errors[0]
    assert not (tmp_path / "w" / "checkpoints").exists()
