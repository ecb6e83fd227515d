"""Model (channel) and spatial (grid) sharding on 2D meshes: same training as one device,
sharded state and checkpoints, and one-line errors for impossible layouts."""

import jax
import numpy as np
import pytest

from configs import default
from fno.data import pipeline
from fno.errors import FnoError
from fno.training import checkpoint as checkpoint_lib
from fno.training import loop, setup
from tests.helpers import assert_same, smooth_pairs, tiny_config

NUM_STEPS = 4  # two scan calls of K = 2: one compilation per run
MESHES = [(8, 1), (4, 2), (2, 4), (1, 8)]


def small_config(mode: str, mesh=(-1,), axes=("data",), model="", spatial=""):
    config = default.get_config()
    config.mode = mode
    config.batch_size = 8
    config.steps_per_call = 2
    config.data.resolution = 64
    config.data.eval_resolutions = ()
    config.model.width = 16
    config.model.modes = 8
    config.model.num_layers = 2
    config.model.projection_width = 32
    config.mesh_shape, config.mesh_axes = mesh, axes
    config.model_sharding, config.spatial_sharding = model, spatial
    return config


# What train_and_evaluate does before any work: validate, build, validate for devices.
checked_strategy = setup.checked_strategy


def train_steps(config, source, num_steps: int = NUM_STEPS):
    """``num_steps`` training steps through the loop's set-up and step-runner (fno.training.setup);
    the strategy and the final logical state.

    Asserts that calls after the first compile nothing: the new state comes back with the
    shardings it went in with (else donation fails and every call recompiles).
    """
    run = setup.build(config, steps_per_epoch=4, strategy=checked_strategy(config))
    batches = pipeline.TrainBatches(source, config.batch_size, seed=0)
    it = pipeline.train_iterator(batches, num_steps, prefetch=0)
    calls, compiles = [0], []

    def listener(event, duration, **kwargs):
        if calls[0] > 0 and event == "/jax/core/compile/backend_compile_duration":
            compiles.append(calls[0])

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for _, _, state, _ in setup.train_calls(run, run.placed_state(), it, 0, num_steps):  # noqa: B007
            calls[0] += 1
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    return run.strategy, run.strategy.logical_state(state)


def flat(params) -> np.ndarray:
    return np.concatenate([np.asarray(p).ravel() for p in jax.tree.leaves(params)])


@pytest.fixture(scope="module")
def source():
    return smooth_pairs(32, 64)


@pytest.fixture(scope="module")
def reference(source):
    return flat(train_steps(small_config("basic"), source)[1]["params"])


@pytest.mark.parametrize("kind", ["model", "spatial"])
@pytest.mark.parametrize("mesh", MESHES, ids=lambda m: f"{m[0]}x{m[1]}")
@pytest.mark.parametrize("mode", ["mesh", "mesh_scan"])
def test_sharded_training_matches_one_device(mode, mesh, kind, source, reference):
    config = small_config(mode, mesh, ("data", "x"), **{kind: "x"})
    strategy, state = train_steps(config, source)
    got = flat(state["params"])
    assert np.linalg.norm(got - reference) / np.linalg.norm(reference) < 1e-5
    n = mesh[1]
    weight = state["params"]["spectral"][0]["weight_real"]
    mu = state["opt_state"][1][0].mu["spectral"][0]["weight_real"]
    if kind == "model":
        # Input channels split n ways; Adam's moments follow; scalars stay replicated.
        assert weight.sharding.shard_shape(weight.shape) == (16 // n, 16, 8)
        assert mu.sharding.spec == weight.sharding.spec
        assert state["params"]["lift"]["kernel"].sharding.shard_shape((2, 16)) == (2, 16 // n)
        assert state["opt_state"][1][0].count.sharding.is_fully_replicated
    else:
        assert weight.sharding.is_fully_replicated
        x = strategy.put_batch({"x": np.zeros((8, 64), np.float32)}, stacked=False)["x"]
        assert x.sharding.shard_shape(x.shape) == (8 // mesh[0], 64 // n)


def test_model_and_spatial_on_a_3d_mesh(source, reference):
    config = small_config("mesh", (2, 2, 2), ("data", "model", "space"), model="model",
                          spatial="space")
    _, state = train_steps(config, source)
    got = flat(state["params"])
    assert np.linalg.norm(got - reference) / np.linalg.norm(reference) < 1e-5


def test_checkpoint_from_model_sharded_mesh_restores_on_another_mesh(source, tmp_path):
    config = small_config("mesh", (4, 2), ("data", "model"), model="model")
    strategy, state = train_steps(config, source, num_steps=2)
    assert not state["params"]["pointwise"][0]["kernel"].sharding.is_fully_replicated
    it = pipeline.train_iterator(
        pipeline.TrainBatches(source, config.batch_size, seed=0), 2, prefetch=0)
    checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), asynchronous=False)
    checkpointer.save(2, state, it)
    checkpointer.close()
    saved = [np.asarray(x) for x in jax.tree.leaves(state)]

    for target in (small_config("mesh", (8, 1), ("data", "model")),
                   small_config("mesh_scan", (2, 4), ("data", "model"), model="model")):
        strategy = checked_strategy(target)
        shardings = strategy.state_shardings(state)
        checkpointer = checkpoint_lib.Checkpointer(str(tmp_path))
        restored = checkpointer.restore(2, checkpoint_lib.abstract_like(state, shardings))
        checkpointer.close()
        assert_same([np.asarray(x) for x in jax.tree.leaves(restored)], saved)
        for leaf, sharding in zip(jax.tree.leaves(restored), jax.tree.leaves(shardings),
                                  strict=True):
            assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)


@pytest.mark.slow
def test_end_to_end_model_and_spatial_sharded_run(dataset, tmp_path):
    """The whole loop (1-D eval masks, eval at another resolution, figures, checkpoints) on
    a 2x2x2 mesh with channels and grid sharded."""
    config = tiny_config(dataset, mode="mesh_scan", mesh_shape=(-1, 2, 2),
                         mesh_axes=("data", "model", "space"), model_sharding="model",
                         spatial_sharding="space")
    results = loop.train_and_evaluate(config, str(tmp_path))
    assert results["step"] == 12
    eval_values = [v for k, v in results.items() if k.startswith("test_")]
    assert len(eval_values) >= 2 and np.all(np.isfinite(eval_values))
    assert np.isfinite(flat(loop.final_params(str(tmp_path)))).all()


# (expected message, config overrides); every one must stop before any work starts.
BAD = [
    ("differ in length", dict(mesh_shape=(4, 2), mesh_axes=("data",))),
    ("has 16 devices, but 8 are available", dict(mesh_shape=(4, 4),
                                                 mesh_axes=("data", "model"))),
    ("at most one -1", dict(mesh_shape=(-1, -1), mesh_axes=("data", "model"))),
    ("8 devices are not divisible by 3", dict(mesh_shape=(-1, 3), mesh_axes=("data", "model"))),
    ("'tensor' is not one of config.mesh_axes", dict(
        mesh_shape=(4, 2), mesh_axes=("data", "model"), model_sharding="tensor")),
    ("including 'data'", dict(mesh_shape=(4, 2), mesh_axes=("batch", "model"))),
    ("spatial_sharding cannot be 'data'", dict(spatial_sharding="data")),
    ("both name 'x'", dict(mesh_shape=(4, 2), mesh_axes=("data", "x"), model_sharding="x",
                           spatial_sharding="x")),
    ("width=12 is not divisible by the 8 devices of mesh axis 'model'", dict(
        mesh_shape=(1, 8), mesh_axes=("data", "model"), model_sharding="model",
        **{"model.width": 12})),
    ("resolution 60 is not divisible by the 8 devices of mesh axis 'space'", dict(
        mesh_shape=(1, 8), mesh_axes=("data", "space"), spatial_sharding="space",
        **{"data.resolution": 60, "data.generate.resolution": 1920})),
    ("resolution 66 is not divisible by the 4", dict(
        mesh_shape=(2, 4), mesh_axes=("data", "space"), spatial_sharding="space",
        **{"data.eval_resolutions": (66,), "data.resolution": 132,
           "data.generate.resolution": 264})),
    ("batch_size=12 is not divisible by the 8", dict(
        mesh_shape=(-1, 1), mesh_axes=("data", "x"), batch_size=12)),
    ("mode='pmap' has no device mesh", dict(mode="pmap", mesh_shape=(4, 2),
                                            mesh_axes=("data", "model"),
                                            model_sharding="model")),
    ("mode='basic' has no device mesh", dict(mode="basic", mesh_shape=(-1, 2),
                                             mesh_axes=("data", "model"))),
    ("mode='scan' has no device mesh", dict(mode="scan", spatial_sharding="space")),
]


@pytest.mark.parametrize("expected,overrides", BAD, ids=[e for e, _ in BAD])
def test_impossible_layouts_are_one_line_errors(expected, overrides):
    config = small_config("mesh")
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = config
        for part in parents:
            target = target[part]
        target[leaf] = value
    with pytest.raises(FnoError, match=expected) as info:
        checked_strategy(config)
    assert "\n" not in str(info.value)
