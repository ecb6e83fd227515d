"""Multi-process training on localhost: 2 processes x 4 CPU devices against 1 x 8.

Each run goes through launch/local.sh and main.py, with JAX's distributed runtime and gloo
collectives, exactly as a user would run it.
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest

from configs import tiny_ns
from fno.training import loop
from tests.helpers import assert_same, params_of, tiny_config, tiny_config_2d, with_overrides

ROOT = Path(__file__).resolve().parents[1]
# One mesh and one pmap mode (the resume test below compares with the mesh run); mesh_scan
# runs multi-process in test_two_processes_match_one_with_fno2d.
MODES = ("mesh", "pmap_scan")


def launch(workdir, dataset, *args, env=None, wait=True, config="tiny.py"):
    full_env = dict(os.environ, NUM_PROCESSES="2", DEVICES_PER_PROCESS="4",
                    GRACE_SECONDS="20", **(env or {}))
    full_env.pop("XLA_FLAGS", None)
    cmd = ["bash", str(ROOT / "launch/local.sh"), f"--config={ROOT}/configs/{config}",
           f"--workdir={workdir}", f"--config.data.dir={dataset}", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    result = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def two_process_runs(dataset, tmp_path_factory):
    """One 2-process run per mode (shared by the tests below)."""
    runs = {}
    for mode in MODES:
        workdir = tmp_path_factory.mktemp(f"mp_{mode}")
        launch(workdir, dataset, f"--config.mode={mode}")
        runs[mode] = workdir
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_two_processes_match_one(mode, dataset, two_process_runs, tmp_path):
    assert jax.device_count() == 8
    loop.train_and_evaluate(tiny_config(dataset, mode=mode), str(tmp_path))
    multi = two_process_runs[mode]
    assert_same(params_of(multi), params_of(tmp_path), rtol=1e-5)
    single = json.loads((tmp_path / "results.json").read_text())
    both = json.loads((multi / "results.json").read_text())
    assert both["processes"] == 2 and both["devices"] == 8
    for key in ("test_rel_l2", "test_mse", "test_rel_l2_s128"):
        assert both[key] == pytest.approx(single[key], rel=1e-5)
    # Both processes saved their data-iterator state into the one checkpoint.
    data_dir = multi / "checkpoints" / "12" / "data"
    assert sorted(p.name for p in data_dir.iterdir() if p.suffix == ".json") == [
        "process_0-of-2.json", "process_1-of-2.json"]



@pytest.mark.slow
def test_two_processes_match_one_with_fno2d(darcy_dataset, tmp_path):
    """FNO-2D on Darcy data with its normaliser, model-sharded on a (data, model) mesh:
    2 processes x 4 devices give the parameters and test error of 1 x 8. (Spatial sharding
    needs grids the mesh axis divides; vertex grids such as 17 or 85 are odd. It is tested
    on one process, tests/test_fno2d.py.)"""
    layout = ["--config.mode=mesh_scan", "--config.mesh_shape=(4, 2)",
              "--config.mesh_axes=('data', 'model')", "--config.model_sharding=model"]
    launch(tmp_path / "multi", darcy_dataset, *layout, config="tiny2d.py")
    config = tiny_config_2d(**{"data.dir": darcy_dataset, "mode": "mesh_scan",
                               "mesh_shape": (4, 2), "mesh_axes": ("data", "model"),
                               "model_sharding": "model"})
    single = loop.train_and_evaluate(config, str(tmp_path / "single"))
    assert_same(params_of(tmp_path / "multi"), params_of(tmp_path / "single"), rtol=1e-5)
    multi = json.loads((tmp_path / "multi" / "results.json").read_text())
    assert multi["processes"] == 2
    assert multi["test_rel_l2"] == pytest.approx(single["test_rel_l2"], rel=1e-4)

@pytest.mark.slow
def test_two_processes_match_one_with_a_rollout(navier_stokes_dataset, tmp_path):
    """FNO-2D rolled out in time on Navier-Stokes trajectories, data- and x-sharded on a
    (data, x) mesh: 2 processes x 4 devices give the parameters and per-step test errors of
    1 x 8."""
    layout = ["--config.mode=mesh_scan", "--config.mesh_shape=(4, 2)",
              "--config.mesh_axes=('data', 'x')", "--config.spatial_sharding=x",
              "--config.model.spectral_impl=dft"]
    launch(tmp_path / "multi", navier_stokes_dataset, *layout, config="tiny_ns.py")
    config = with_overrides(tiny_ns.get_config(), {
        "data.dir": navier_stokes_dataset, "mode": "mesh_scan", "mesh_shape": (4, 2),
        "mesh_axes": ("data", "x"), "spatial_sharding": "x", "model.spectral_impl": "dft"})
    single = loop.train_and_evaluate(config, str(tmp_path / "single"))
    assert_same(params_of(tmp_path / "multi"), params_of(tmp_path / "single"), rtol=1e-5)
    multi = json.loads((tmp_path / "multi" / "results.json").read_text())
    assert multi["processes"] == 2
    for key in ("test_rel_l2", "test_rel_l2_step01", "test_rel_l2_step03",
                "test_rel_l2_s32_step02"):
        assert multi[key] == pytest.approx(single[key], rel=1e-4)


@pytest.mark.slow
def test_two_process_checkpoint_resumes_exactly(dataset, two_process_runs, tmp_path, caplog):
    stopped = tmp_path / "stopped"
    launch(stopped, dataset, "--config.mode=mesh", "--config.num_train_steps=7")
    copy = tmp_path / "copy"
    shutil.copytree(stopped, copy)
    # Same process count: exact.
    launch(stopped, dataset, "--config.mode=mesh")
    assert json.loads((stopped / "results.json").read_text())["steps_this_run"] == 5
    assert_same(params_of(stopped), params_of(two_process_runs["mesh"]))
    # One process (8 devices): model and optimizer resharded, data position from the step.
    with caplog.at_level(logging.WARNING):
        results = loop.train_and_evaluate(tiny_config(dataset, mode="mesh"), str(copy))
    assert results["steps_this_run"] == 5
    assert "different number of processes" in caplog.text
    assert_same(params_of(copy), params_of(two_process_runs["mesh"]), rtol=1e-5)


def _process_pid(workdir, process_id: int) -> int | None:
    """The pid of the trainer with FNO_PROCESS_ID=process_id working in ``workdir``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (f"--workdir={workdir}".encode() in cmdline
                and f"FNO_PROCESS_ID={process_id}".encode() in environ):
            return int(entry.name)
    return None


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sigterm_to_one_process_checkpoints_all_and_resumes_exactly(dataset, tmp_path):
    steps = ["--config.mode=mesh", "--config.num_train_steps=150",
             "--config.checkpoint_every_steps=1000", "--config.eval_every_steps=0",
             "--config.log_every_steps=10", "--config.num_plot_samples=0"]
    straight = tmp_path / "straight"
    launch(straight, dataset, *steps)

    preempted = tmp_path / "preempted"
    proc = launch(preempted, dataset, *steps, wait=False)
    metrics = preempted / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and metrics.read_text().count("train_loss") >= 1,
              120, "training to start")
    os.kill(_process_pid(preempted, 1), signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-4000:]
    assert "Preempted at step" in out
    saved = [int(d.name) for d in (preempted / "checkpoints").iterdir() if d.name.isdigit()]
    assert len(saved) == 1 and 0 < saved[0] < 150, saved
    data_dir = preempted / "checkpoints" / str(saved[0]) / "data"
    assert len(list(data_dir.glob("process_*-of-2.json"))) == 2

    launch(preempted, dataset, *steps)
    assert_same(params_of(preempted), params_of(straight))


def test_dead_peer_stops_the_survivor_within_the_timeout(dataset, tmp_path):
    """kill -9 of one process: the other exits with an error instead of hanging."""
    port = subprocess.run([sys.executable, "-c", "import socket; s = socket.socket(); "
                           "s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"],
                          capture_output=True, text=True).stdout.strip()
    procs = []
    for pid in range(2):
        env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
                   JAX_PLATFORMS="cpu", FNO_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   FNO_NUM_PROCESSES="2", FNO_PROCESS_ID=str(pid),
                   FNO_HEARTBEAT_TIMEOUT="10", PYTHONPATH=str(ROOT))
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), f"--config={ROOT}/configs/tiny.py",
             f"--workdir={tmp_path}", f"--config.data.dir={dataset}", "--config.mode=mesh",
             "--config.num_train_steps=100000", "--config.eval_every_steps=0",
             "--config.log_every_steps=10", "--config.num_plot_samples=0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        metrics = tmp_path / "metrics.jsonl"
        _wait_for(lambda: metrics.exists() and "train_loss" in metrics.read_text(), 120,
                  "training to start")
        procs[1].kill()
        start = time.monotonic()
        out, _ = procs[0].communicate(timeout=90)
        elapsed = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode != 0
    assert elapsed < 60, elapsed
    tail = out[-3000:]
    assert any(word in tail for word in ("heartbeat", "Terminating", "UNAVAILABLE",
                                         "failed", "error")), tail


@pytest.mark.parametrize("mode", ["basic", "scan"])
def test_single_device_modes_refuse_multiple_processes(mode, dataset, tmp_path):
    full_env = dict(os.environ, NUM_PROCESSES="2", DEVICES_PER_PROCESS="1")
    full_env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        ["bash", str(ROOT / "launch/local.sh"), f"--config={ROOT}/configs/tiny.py",
         f"--workdir={tmp_path}", f"--config.data.dir={dataset}", f"--config.mode={mode}"],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"config.mode='{mode}' runs on one device" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
