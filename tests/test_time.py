"""Time-dependent problems: trajectory windows, the three time schemes against their plain
definitions, every execution mode and sharding through the loop's set-up, bad input as one
line, and the run a user starts (main.py generating Navier-Stokes data on first use)."""

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import tiny_ns
from fno import configuration
from fno.data import checks, datasets, sources
from fno.errors import FnoError
from fno.models import rollout
from fno.models.fno2d import FNO2d
from fno.models.fno3d import FNO3d
from fno.training import metrics, steps
from tests import helpers
from tests.helpers import with_overrides
from tests.test_parallel import run_mode
from tests.test_sharding import flat, train_steps

ROOT = Path(__file__).resolve().parents[1]


def travelling_waves(num: int, resolution: int, snapshots: int, channels: int = 1,
                     seed: int = 0) -> np.ndarray:
    """``[num, s, s, T, C]`` smooth periodic fields carried along at random velocities:
    trajectories a small rollout can learn."""
    rng = np.random.default_rng(seed)
    x = np.arange(resolution) / resolution
    diagonal = x[:, None] + x[None, :]  # [s, s]
    t = np.arange(snapshots) * 0.05
    out = np.zeros((num, resolution, resolution, snapshots, channels))
    for k in (1, 2):
        amp = rng.normal(size=(num, channels)) / k
        vel = rng.normal(size=num)
        phase = k * diagonal[None, :, :, None] - vel[:, None, None, None] * t  # [n, s, s, T]
        out += amp[:, None, None, None, :] * np.cos(2 * np.pi * phase)[..., None]
    return out.astype(np.float32)


def config_ns(mode: str = "basic", **overrides):
    """configs/tiny_ns.py (read from a source the test passes, or from data.dir)."""
    return with_overrides(tiny_ns.get_config(), {"mode": mode, **overrides})


# --- windows ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("axis", ["last", "first"])
def test_windows_are_the_stored_snapshots_as_time_major_channels(tmp_path, axis, channels):
    traj = travelling_waves(6, 16, 9, channels)
    stored = traj if axis == "last" else np.moveaxis(traj, 3, 1)
    if channels == 1:
        stored = stored[..., 0]
    np.savez(tmp_path / "own.npz", u=stored)
    window = sources.TimeWindow(steps_in=3, steps_out=4, first=1, axis=axis)
    source = sources.open_dataset(tmp_path / "own.npz", 8, output_key="u", grid_rank=2,
                                  time=window)
    rows = np.array([4, 1])
    expect_x = traj[rows, ::2, ::2, 1:4].reshape(2, 8, 8, 3 * channels)
    expect_y = traj[rows, ::2, ::2, 4:8].reshape(2, 8, 8, 4 * channels)
    x, y = source.get_batch(rows)
    np.testing.assert_array_equal(x, expect_x)
    np.testing.assert_array_equal(y, expect_y)
    np.testing.assert_array_equal(source[1]["y"], expect_y[1])
    assert (source.in_channels, source.out_channels, source.channels_per_step) == (
        3 * channels, 4 * channels, channels)
    assert source.resolution == 8 and source.stored_resolution == 16


def test_too_few_snapshots_is_one_line(tmp_path):
    np.savez(tmp_path / "short.npz", u=travelling_waves(4, 8, 5)[..., 0])
    window = sources.TimeWindow(steps_in=3, steps_out=4, first=1)
    with pytest.raises(checks.DataError, match=r"has 5 snapshots per trajectory, fewer than "
                       r"config.data.first_step \+ input_steps \+ output_steps = 1 \+ 3 \+ 4"):
        sources.open_dataset(tmp_path / "short.npz", 8, output_key="u", grid_rank=2,
                             time=window)


def test_a_time_axis_in_the_other_place_is_named(tmp_path):
    traj = np.moveaxis(travelling_waves(4, 8, 12)[..., 0], 3, 1)  # [N, T, S, S]
    np.savez(tmp_path / "first.npz", u=traj)
    window = sources.TimeWindow(steps_in=2, steps_out=3)
    with pytest.raises(checks.DataError, match="set config.data.time_axis='first'"):
        sources.open_dataset(tmp_path / "first.npz", 8, output_key="u", grid_rank=2,
                             time=window)


@pytest.mark.parametrize("overrides, message", [
    ({"data.normalize": True}, "autoregressive rollout feeds its outputs back"),
    ({"data.output_steps": None}, "set both input_steps and output_steps"),
    ({"model.name": "fno1d"}, "has 1 grid axis/axes but config.data.name='navier_stokes' "
                              "has 2"),
    ({"model.time_scheme": "space_time"}, "with model.time_scheme='space_time'"),
    ({"model.name": "fno3d", "model.time_padding": 0}, "less than 2 \\* model.modes"),
    ({"data.time_axis": "middle"}, "config.data.time_axis: unknown 'middle'"),
    ({"model.rollout": "python"}, "config.model.rollout: unknown 'python'"),
])
def test_bad_time_settings_are_one_line(overrides, message):
    with pytest.raises(FnoError, match=message):
        configuration.validate(config_ns(**overrides))


def test_a_time_scheme_for_steady_data_is_refused():
    config = config_ns(**{"data.input_steps": None, "data.output_steps": None,
                          "model.time_scheme": "direct"})
    with pytest.raises(FnoError, match="model.time_scheme is for time-dependent data"):
        configuration.validate(config)


# --- the schemes against their plain definitions ---------------------------------------
def _split(model):
    graphdef, params = nnx.split(model, nnx.Param)
    return steps.make_apply(graphdef), nnx.to_pure_dict(params)


@pytest.mark.parametrize("channels", [1, 2])
def test_scan_rollout_is_the_python_loop_of_one_step_predictions(channels):
    model = FNO2d(width=8, modes=4, in_channels=3 * channels, out_channels=channels,
                  num_layers=2, projection_width=16, rngs=nnx.Rngs(params=0))
    apply, params = _split(model)
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3 * channels))
    window, expected = x, []
    for _ in range(5):
        out = model(window).reshape(2, 16, 16, channels)
        expected.append(out)
        window = jnp.concatenate([window[..., channels:], out], -1)
    expected = jnp.concatenate(expected, -1)
    got = {how: rollout.autoregressive(apply, params, x, 5, 2, channels, how)
           for how in rollout.ROLLOUTS}
    for how, value in got.items():
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5, err_msg=how)

    def loss(p, how):
        return jnp.sum(rollout.autoregressive(apply, p, x, 5, 2, channels, how) ** 2)

    grads = [flat(jax.grad(loss)(params, how)) for how in rollout.ROLLOUTS]
    assert np.linalg.norm(grads[0] - grads[1]) / np.linalg.norm(grads[1]) < 1e-5


def test_space_time_is_the_model_on_the_input_repeated_along_time():
    model = FNO3d(width=8, modes=2, in_channels=2, out_channels=1, num_layers=2,
                  projection_width=16, time_padding=2, rngs=nnx.Rngs(params=0))
    apply, params = _split(model)
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 2))
    got = rollout.space_time(apply, params, x, 5, 2, 1)
    expected = model(jnp.repeat(x[:, :, :, None, :], 5, axis=3))
    assert got.shape == (2, 8, 8, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_space_time_rolls_a_longer_horizon_out_window_by_window():
    """A space-time model that trained on 3 steps asked for 7: three windows of 3, each from
    the last 2 snapshots before it (never the 3-step time axis stretched to 7); asked for 2:
    the first 2 of one window."""
    model = FNO3d(width=8, modes=2, in_channels=2, out_channels=1, num_layers=2,
                  projection_width=16, time_padding=2, rngs=nnx.Rngs(params=0))
    apply, params = _split(model)
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 2))
    window, expected = x, []
    for _ in range(3):
        out = model(jnp.repeat(window[:, :, :, None, :], 3, axis=3))  # [b, 8, 8, 3]
        expected.append(out)
        window = jnp.concatenate([window, out], -1)[..., -2:]
    expected = jnp.concatenate(expected, -1)
    one_window = rollout.time_apply(apply, "space_time", 3, 2, 1)
    for horizon in (7, 2):
        got = rollout.by_windows(one_window, horizon, 3, 2, 1)(params, x)
        assert got.shape == (2, 8, 8, horizon)
        np.testing.assert_allclose(got, expected[..., :horizon], rtol=1e-5, atol=1e-5)


def test_per_step_error_is_each_snapshots_relative_l2():
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(2, 3, 8, 8, 4, 2)).astype(np.float32)
    got = metrics.per_step_relative_l2(pred.reshape(3, 8, 8, 8), y.reshape(3, 8, 8, 8), 4)
    expected = (np.linalg.norm((pred - y).transpose(0, 3, 1, 2, 4).reshape(3, 4, -1), axis=-1)
                / np.linalg.norm(y.transpose(0, 3, 1, 2, 4).reshape(3, 4, -1), axis=-1))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --- every mode and sharding through the loop's set-up ---------------------------------
@pytest.fixture(scope="module")
def ns_splits(navier_stokes_dataset):
    return datasets.load(config_ns(**{"data.dir": navier_stokes_dataset}))


@pytest.fixture(scope="module")
def ns_source(ns_splits):
    return ns_splits.train


@pytest.fixture(scope="module")
def resolved(ns_splits):
    """``config`` with the model's channels from the data, as the loop resolves them."""
    return lambda config: datasets.resolve_channels(config, ns_splits)


@pytest.fixture(scope="module")
def ns_reference(ns_source, resolved):
    return run_mode("basic", ns_source, config=resolved(config_ns()))


@pytest.mark.parametrize("mode", ["scan", "pmap", "pmap_scan", "mesh", "mesh_scan"])
def test_rollout_modes_match_basic(mode, ns_source, ns_reference, resolved):
    params, losses = run_mode(mode, ns_source, config=resolved(config_ns(mode)))
    ref_params, ref_losses = ns_reference
    a, b = flat(params), flat(ref_params)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5
    if len(losses) == len(ref_losses):
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)


SHARDED = {
    "model": dict(mesh_shape=(4, 2), mesh_axes=("data", "model"), model_sharding="model"),
    "grid x": dict(mesh_shape=(4, 2), mesh_axes=("data", "x"), spatial_sharding="x"),
    "grid x and y": dict(mesh_shape=(2, 2, 2), mesh_axes=("data", "x", "y"),
                         spatial_sharding="x,y"),
}


@pytest.mark.parametrize("model", ["fno2d", "fno3d"])
@pytest.mark.parametrize("layout", sorted(SHARDED))
def test_sharded_time_models_match_one_device(model, layout, ns_source, resolved):
    base = {"model.name": model, "model.spectral_impl": "dft", "steps_per_call": 2}
    one = train_steps(resolved(config_ns("mesh_scan", **base)), ns_source)[1]
    sharded = resolved(config_ns("mesh_scan", **base, **SHARDED[layout]))
    state = train_steps(sharded, ns_source)[1]
    a, b = flat(state["params"]), flat(one["params"])
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5


def test_the_summed_step_loss_trains_the_rollout(ns_source, resolved):
    """The rollout's loss is the released one, summed over steps: it falls in training."""
    _, losses = run_mode("scan", ns_source, num_steps=30,
                         config=resolved(config_ns("scan", learning_rate=5e-3)))
    assert losses[-1] < 0.7 * losses[0]


# --- the run a user starts ---------------------------------------------------------------
run_main = functools.partial(helpers.run_main, config="tiny_ns.py")


@pytest.mark.slow
def test_main_generates_navier_stokes_and_writes_the_rollout_curve_and_animation(tmp_path):
    result = run_main(tmp_path / "run", "--config.mode=mesh_scan",
                      env={"FNO_DATA_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [
        "navier_stokes_n48_s32_nu0.001_t6_rec1_seed0"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for suffix in ("", "_s32"):
        curve = [results[f"test_rel_l2{suffix}_step{k:02d}"] for k in (1, 2, 3)]
        assert all(np.isfinite(curve))
        # The window's error over all steps lies between the best and worst step's.
        assert min(curve) * 0.999 <= results[f"test_rel_l2{suffix}"] <= max(curve) * 1.001
    figures = sorted(p.name for p in (tmp_path / "run" / "figures").iterdir())
    assert "rollout_00000012.gif" in figures and "rollout_00000012.png" in figures
    events = b"".join(p.read_bytes() for p in (tmp_path / "run").glob("events.out.*"))
    assert b"rollout/step01" in events and b"GIF8" in events
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert any("test_rel_l2_step03" in line for line in lines)


@pytest.mark.slow
def test_a_trajectory_file_too_short_for_the_window_is_one_line(tmp_path):
    np.savez(tmp_path / "short.npz", u=travelling_waves(12, 16, 4)[..., 0])
    result = run_main(tmp_path / "run", f"--config.data.dir={tmp_path}/short.npz",
                      "--config.data.name=file", "--config.data.eval_resolutions=()")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "has 4 snapshots per trajectory, fewer than" in lines[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["fno2d", "fno3d"])
def test_trained_time_models_load_roll_out_evaluate_and_export(model_name,
                                                               navier_stokes_dataset,
                                                               tmp_path):
    """fno.load's rollout reproduces the run's test errors; a longer horizon extends the
    trained one; evaluate prints results.json's numbers; the export is the whole rollout."""
    import fno
    from fno.training import loop
    from tests.test_inference import command, ok, one_error_line, run_exported

    # FNO-3D as the released recipe: with the point-wise normaliser of its trained window.
    config = config_ns("mesh", **{"data.dir": navier_stokes_dataset,
                                  "model.name": model_name, "num_plot_samples": 0,
                                  "data.normalize": model_name == "fno3d"})
    workdir = tmp_path / "run"
    results = loop.train_and_evaluate(config, str(workdir))
    model = fno.load(str(workdir))
    assert model.output_steps == 3
    test = datasets.load(config).test[16]
    x, y = test.get_batch(np.arange(len(test)))
    pred = model(x)
    assert pred.shape == y.shape == (len(test), 16, 16, 3)
    errors = np.asarray(metrics.per_step_relative_l2(pred, y, 3)).mean(0)
    np.testing.assert_allclose(errors, [results[f"test_rel_l2_step{k:02d}"] for k in (1, 2, 3)],
                               rtol=1e-4)
    longer = model(x, steps=5)
    assert longer.shape == (len(test), 16, 16, 5)
    np.save(tmp_path / "first.npy", x[:3])
    ok(command("predict", f"--workdir={workdir}", f"--input={tmp_path}/first.npy",
               f"--output={tmp_path}/rolled.npy", "--steps=5"))
    np.testing.assert_allclose(np.load(tmp_path / "rolled.npy"), longer[:3], rtol=1e-5,
                               atol=1e-5)
    # A rollout's first steps do not depend on its length (FNO-3D: window by window).
    np.testing.assert_allclose(longer[..., :3], pred, rtol=1e-4, atol=1e-5)
    report = json.loads(ok(command("evaluate", f"--workdir={workdir}")))
    for key in ("test_rel_l2", "test_rel_l2_step03", "test_rel_l2_s32_step01"):
        assert report[key] == pytest.approx(results[key], rel=1e-4)
    # Past the trained horizon, as far as the data go.
    further = json.loads(ok(command("evaluate", f"--workdir={workdir}", "--steps=4")))
    for k in (1, 2, 3):
        key = f"test_rel_l2_step{k:02d}"
        assert further[key] == pytest.approx(results[key], rel=1e-4)
    assert np.isfinite(further["test_rel_l2_step04"])
    line = one_error_line(command("evaluate", f"--workdir={workdir}", "--steps=5"))
    assert "has 7 snapshots per trajectory, fewer than" in line
    archive = tmp_path / "model.fnox"
    ok(command("export", f"--workdir={workdir}", f"--output={archive}", "--platforms=cpu"))
    exported = run_exported(archive, "s16.jaxexport", x[:2], tmp_path)
    np.testing.assert_allclose(exported, pred[:2], rtol=1e-5, atol=1e-5)


def test_the_released_navier_stokes_mat_layout_reads_as_windows(tmp_path):
    """``NavierStokes_V1e-3_N5000_T50.mat`` is MATLAB v7.3: ``a`` [N, 64, 64] (w0) and ``u``
    [N, 64, 64, T] (t = 1..T), stored column-major. Its windows are the snapshots of ``u``."""
    from tests.test_sources import write_mat73

    traj = travelling_waves(5, 16, 12)[..., 0]
    write_mat73(tmp_path / "ns.mat", a=traj[..., 0], u=traj)
    window = sources.TimeWindow(steps_in=10, steps_out=2)
    source = sources.open_dataset(tmp_path / "ns.mat", 16, grid_rank=2, time=window)
    x, y = source.get_batch(np.arange(5))
    np.testing.assert_array_equal(x, traj[..., :10])
    np.testing.assert_array_equal(y, traj[..., 10:12])


@pytest.mark.slow
def test_a_rollout_checkpoint_resumes_exactly_in_another_mode(navier_stokes_dataset, tmp_path):
    """Stopped after 5 steps in mesh_scan and resumed in pmap to the end, FNO-3D over space
    and time (with its normaliser) ends where a straight run in basic mode does."""
    from fno.training import loop
    from tests.helpers import assert_same, params_of

    base = {"data.dir": navier_stokes_dataset, "model.name": "fno3d", "data.normalize": True,
            "num_plot_samples": 0}
    straight = loop.train_and_evaluate(config_ns("basic", **base), str(tmp_path / "straight"))
    loop.train_and_evaluate(config_ns("mesh_scan", num_train_steps=5, **base),
                            str(tmp_path / "resumed"))
    resumed = loop.train_and_evaluate(config_ns("pmap", **base), str(tmp_path / "resumed"))
    assert resumed["steps_this_run"] == 7
    assert_same(params_of(tmp_path / "resumed"), params_of(tmp_path / "straight"), rtol=1e-5)
    assert resumed["test_rel_l2_step03"] == pytest.approx(straight["test_rel_l2_step03"],
                                                          rel=1e-4)
