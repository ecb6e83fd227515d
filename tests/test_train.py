"""End to end through main.py and train_and_evaluate: every mode, outputs, exact resume,
cross-mode restore, and one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fno import registry
from fno.errors import FnoError
from fno.parallel import strategies
from fno.training import checkpoint as checkpoint_lib
from fno.training import loop, steps
from tests.helpers import assert_same, params_of, run_main, tiny_config

ROOT = Path(__file__).resolve().parents[1]


# Through the command line in four modes; all six run the same loop in-process in
# test_modes_reach_the_same_parameters.
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["basic", "scan", "pmap", "mesh_scan"])
def test_every_mode_through_main(mode, dataset, tmp_path):
    result = run_main(tmp_path, f"--config={ROOT}/configs/tiny.py", f"--config.mode={mode}",
                      f"--config.data.dir={dataset}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["step"] == 12 and results["mode"] == mode
    assert np.isfinite(results["test_rel_l2"]) and np.isfinite(results["test_rel_l2_s128"])
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_steps = [line["step"] for line in lines if "train_loss" in line]
    eval_steps = [line["step"] for line in lines if "test_rel_l2" in line]
    assert train_steps == [4, 8, 12] and eval_steps == [6, 12]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
    assert sorted(os.listdir(tmp_path / "figures")) == ["predictions_00000006.png",
                                                        "predictions_00000012.png"]
    steps = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
    assert steps[-1] == 12 and 10 in steps


@pytest.mark.slow
def test_modes_reach_the_same_parameters(dataset, tmp_path):
    """The loop itself (not just the step) is mode independent."""
    reference = None
    for mode in ("basic", "pmap_scan", "mesh_scan"):
        workdir = tmp_path / mode
        loop.train_and_evaluate(tiny_config(dataset, mode=mode), str(workdir))
        params = params_of(workdir)
        if reference is None:
            reference = params
        else:
            # 12 Adam steps: Adam divides each update by that coordinate's own gradient RMS,
            # so where a gradient is near zero (the spectral weights of the tiny model),
            # float32 reassociation of the batch sum (1e-7) grows to ~2e-5 of the largest
            # weight. One step is checked to 1e-5 in test_parallel.
            assert_same(params, reference, rtol=5e-5)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["basic", "mesh_scan"])
def test_resume_is_bitwise_exact(mode, dataset, tmp_path):
    loop.train_and_evaluate(tiny_config(dataset, mode=mode), str(tmp_path / "straight"))
    # The same run stopped after 7 steps (final checkpoint at 7), then resumed to 12.
    resumed = str(tmp_path / "resumed")
    first = loop.train_and_evaluate(tiny_config(dataset, mode=mode, num_train_steps=7),
                                     resumed)
    assert first["step"] == 7
    second = loop.train_and_evaluate(tiny_config(dataset, mode=mode), resumed)
    assert second["step"] == 12 and second["steps_this_run"] == 5
    assert_same(params_of(resumed), params_of(tmp_path / "straight"))


def test_checkpoint_restores_in_every_mode(dataset, tmp_path):
    config = tiny_config(dataset, mode="pmap", num_train_steps=5)
    loop.train_and_evaluate(config, str(tmp_path))
    saved = params_of(tmp_path)
    model = registry.create_model(config, config.seed)
    _, logical = steps.init_state(model, steps.create_optimizer(config, 4))
    for mode in strategies.MODES:
        strategy = strategies.make_strategy(mode)
        checkpointer = checkpoint_lib.Checkpointer(str(tmp_path / "checkpoints"))
        abstract = checkpoint_lib.abstract_like(logical, strategy.state_shardings(logical))
        restored = checkpointer.restore(5, abstract)
        checkpointer.close()
        placed = strategy.place_state(restored)
        back = strategy.logical_state(placed)
        assert_same(jax.tree.leaves(jax.tree.map(np.asarray, back["params"])), saved)
        assert int(back["step"]) == 5


def test_bfloat16_compute_trains_with_float32_state(dataset, tmp_path):
    """model.dtype=bfloat16 is mixed precision: the run trains (loss falls) and the saved
    parameters stay float32."""
    result = loop.train_and_evaluate(
        tiny_config(dataset, **{"model.dtype": "bfloat16", "num_train_steps": 12}),
        str(tmp_path))
    params = params_of(tmp_path)
    assert all(p.dtype == np.float32 for p in params)
    losses = [json.loads(line)["train_loss"] for line in open(tmp_path / "metrics.jsonl")
              if "train_loss" in line]
    assert losses[-1] < losses[0] and np.isfinite(result["test_rel_l2"])


def test_incompatible_checkpoint_is_a_clear_error(dataset, tmp_path):
    loop.train_and_evaluate(tiny_config(dataset, num_train_steps=3), str(tmp_path))
    before = sorted(os.listdir(tmp_path / "checkpoints"))
    with pytest.raises(FnoError, match="does not match"):
        loop.train_and_evaluate(tiny_config(dataset, **{"model.width": 12}), str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before


BAD_INPUTS = {
    "unknown mode": ["--config.mode=turbo"],
    "batch not divisible by devices": ["--config.mode=pmap", "--config.batch_size=12"],
    "modes above s/2": ["--config.model.modes=40"],
    "resolution does not divide the data": ["--config.data.resolution=48"],
    "negative size": ["--config.batch_size=-4"],
    "batch larger than the training set": ["--config.batch_size=5000"],
    "unknown config field": ["--config.not_a_field=3"],
    "unknown compute dtype": ["--config.model.dtype=float8"],
    "unknown spectral init": ["--config.model.spectral_init=xavier"],
    "unknown loss reduction": ["--config.loss_reduction=median"],
    "wrong type": ["--config.batch_size=eight"],
    "unknown model": ["--config.model.name=fno9d"],
    "model and data grid ranks differ": ["--config.model.name=fno2d"],
    "own data without a path": ["--config.data.name=file", "--config.data.dir="],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_error(case, dataset, tmp_path):
    result = run_main(tmp_path / "w", f"--config={ROOT}/configs/tiny.py",
                      f"--config.data.dir={dataset}", *BAD_INPUTS[case], devices=8)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines()
              if line.startswith(("error:", "FATAL Flags parsing error"))]
    assert len(errors) == 1, result.stderr[-3000:]


BAD_GENERATE = {
    "odd solver grid": ["--config.data.generate.grid=7", "--config.data.generate.steps=50"],
    "viscosity below the automatic rule": ["--config.data.generate.nu=0.001"],
}


@pytest.mark.parametrize("case", sorted(BAD_GENERATE))
def test_bad_generator_setting_is_one_line_error(case, tmp_path):
    """Settings reach the generator only when the dataset is missing; its checks become one
    line, and nothing is left in the cache."""
    cache = tmp_path / "cache"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_PLATFORMS="cpu", FNO_DATA_DIR=str(cache))
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), f"--workdir={tmp_path / 'w'}",
                             f"--config={ROOT}/configs/tiny.py", *BAD_GENERATE[case]],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "config.data.generate" in errors[0], result.stderr[-3000:]
    assert [name for name in os.listdir(cache) if not name.startswith(".")] == []


def test_missing_config_file_and_unwritable_workdir(dataset, tmp_path):
    result = run_main(tmp_path, f"--config={tmp_path}/nope.py")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "nope.py" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_main(blocker / "sub", f"--config={ROOT}/configs/tiny.py",
                      f"--config.data.dir={dataset}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: workdir" in result.stderr


def test_nonfinite_step_stops_with_a_clear_error_and_keeps_the_checkpoint(dataset, tmp_path):
    # lr = 1e30: the first update is finite but enormous, the next forward pass overflows.
    config = tiny_config(dataset, learning_rate=1e30, checkpoint_every_steps=1)
    with pytest.raises(FnoError, match=r"non-finite loss or gradient at step 2 .*checkpoint "
                                       r"\(step 1\) is intact"):
        loop.train_and_evaluate(config, str(tmp_path))
    report = json.loads((tmp_path / "nonfinite_batch.json").read_text())
    assert report["step"] == 2 and len(report["sample_indices"]) == config.batch_size
    params = params_of(tmp_path)  # the latest checkpoint is step 1 and finite
    assert all(np.isfinite(p).all() for p in params)


def test_nonfinite_steps_can_be_skipped_and_are_counted(dataset, tmp_path):
    config = tiny_config(dataset, learning_rate=1e30, skip_nonfinite_steps=True)
    loop.train_and_evaluate(config, str(tmp_path))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    counts = [line["nonfinite_steps"] for line in lines if "nonfinite_steps" in line]
    assert counts == [3, 4, 4]  # steps 2-4, 5-8, 9-12: every step after the first
    assert all(np.isfinite(p).all() for p in params_of(tmp_path))


def test_second_run_on_the_same_workdir_is_refused(dataset, tmp_path):
    from fno.storage import workdir as workdir_lib

    with workdir_lib.exclusive(str(tmp_path)):
        with pytest.raises(FnoError, match="in use by pid"):
            loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))
    # Released on exit: the same run now goes through.
    assert loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))["step"] == 12
