"""Real-cluster conditions on one machine: a gs:// workdir (GCS emulator on loopback), hosts
that share no disk, and failures that only one process sees.

Each process is started here directly (not through launch/local.sh, whose fail-fast would
hide how long the processes themselves take to stop) with its own environment, so that two
processes can have their own HOME, data cache and working directory, as two hosts would.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from etils import epath

from fno import registry
from fno.errors import FnoError
from fno.training import loop, steps
from tests.gcs_emulator import gcs_emulator
from tests.helpers import assert_same, params_of, tiny_config

ROOT = Path(__file__).resolve().parents[1]
# Extra time over the heartbeat for a process that waits in a collective to be stopped.
HEARTBEAT_S = 10
BOUND_S = 75


def _free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def start(workdir, *args, env=None, per_process=None, num=2, program=None):
    """Start ``num`` trainer processes (4 CPU devices each) on localhost; return Popens.

    ``per_process(i)`` gives extra environment variables and the working directory of
    process ``i`` (default: the repository root)."""
    port = _free_port()
    procs = []
    for i in range(num):
        extra, cwd = per_process(i) if per_process else ({}, ROOT)
        full = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
                    JAX_PLATFORMS="cpu", FNO_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                    FNO_NUM_PROCESSES=str(num), FNO_PROCESS_ID=str(i),
                    FNO_HEARTBEAT_TIMEOUT=str(HEARTBEAT_S), FNO_BARRIER_TIMEOUT="60",
                    PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **(env or {}), **extra)
        command = program or [str(ROOT / "main.py")]
        procs.append(subprocess.Popen(
            [sys.executable, *command, f"--config={ROOT}/configs/tiny.py",
             f"--workdir={workdir}", "--config.mode=mesh", *args],
            cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True))
    return procs


def finish(procs, timeout=240):
    """Wait for every process; return (return codes, outputs, seconds taken)."""
    started = time.monotonic()
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=max(1, timeout - (time.monotonic()
                                                                   - started)))[0])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return [p.returncode for p in procs], outputs, time.monotonic() - started


def run_ok(workdir, *args, **kwargs):
    codes, outputs, _ = finish(start(workdir, *args, **kwargs))
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outputs)
    return outputs


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


# --- gs:// workdir --------------------------------------------------------------------------
LONG = ("--config.num_train_steps=60", "--config.checkpoint_every_steps=10",
        "--config.eval_every_steps=30", "--config.log_every_steps=10")


@pytest.mark.slow
def test_gcs_workdir_two_processes_kill_9_and_damage(dataset, tmp_path):
    """A 2-process run on gs:// writes everything there. A run that reads its dataset from
    the bucket too, killed with -9 mid-way, resumes to the uninterrupted run's parameters
    bitwise; its newest checkpoint, then damaged in the bucket (process 1's part deleted), is
    set aside and the rerun falls back to the older one, exactly."""
    with gcs_emulator() as (bucket, env):
        data = f"--config.data.dir={dataset}"
        straight = epath.Path(f"gs://{bucket}/straight")
        run_ok(straight, data, *LONG, env=env)
        names = {p.name for p in straight.iterdir()}
        assert {"checkpoints", "metrics.jsonl", "results.json", "figures",
                "hparams.json"} <= names, names
        assert any(n.startswith("events.out.tfevents") for n in names), names
        steps = sorted(int(p.name) for p in (straight / "checkpoints").iterdir())
        assert steps == [40, 50, 60], steps  # keep_checkpoints=3 deletes on GCS too
        assert (straight / "checkpoints/60/commit_success.txt").exists()
        assert (straight / "checkpoints/60/data/process_1-of-2.json").exists()
        assert (straight / "checkpoints/60/fno_manifest.json").exists()
        results = json.loads((straight / "results.json").read_text())
        assert results["processes"] == 2 and results["step"] == 60
        logged = [json.loads(x)["step"] for x in
                  (straight / "metrics.jsonl").read_text().splitlines() if "train_loss" in x]
        assert logged == [10, 20, 30, 40, 50, 60], logged

        # The rest reads the dataset from the bucket: each process copies it into its own
        # cache (as hosts without a shared disk do) and it is the same data.
        remote_data = epath.Path(f"gs://{bucket}/data/burgers_tiny")
        for file in Path(dataset).iterdir():
            (remote_data / file.name).write_bytes(file.read_bytes())
        data = f"--config.data.dir={remote_data}"

        def host(i):
            return {"FNO_DATA_DIR": str(tmp_path / f"cache{i}")}, ROOT

        env = {**env}
        killed = epath.Path(f"gs://{bucket}/killed")
        procs = start(killed, data, *LONG, env=env, per_process=host)
        committed = killed / "checkpoints/20/commit_success.txt"
        deadline = time.monotonic() + 180
        while not committed.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        finish(procs)
        assert committed.exists() and not (killed / "results.json").exists()
        assert all(list((tmp_path / f"cache{i}" / "remote").iterdir()) for i in range(2))
        run_ok(killed, data, *LONG, env=env, per_process=host)
        assert_same(params_of(killed), params_of(straight))

        # Damage the newest checkpoint in the bucket: delete process 1's part (its data
        # iterator state; the replicated arrays are written by process 0 alone).
        checkpoints = killed / "checkpoints"
        (checkpoints / "60/data/process_1-of-2.json").unlink()
        outputs = run_ok(killed, data, *LONG, env=env, per_process=host)
        assert "moved it aside" in outputs[0], outputs[0][-3000:]
        assert "60.corrupt" in {p.name for p in checkpoints.iterdir()}
        assert (checkpoints / "60.corrupt/commit_success.txt").exists()
        assert json.loads((killed / "results.json").read_text())["steps_this_run"] == 10
        assert_same(params_of(killed), params_of(straight))


@pytest.mark.slow
# --- hosts without a shared disk ------------------------------------------------------------
def test_hosts_without_a_shared_disk_train_from_nothing(dataset, tmp_path):
    """Each process has its own HOME, data cache and working directory (as TPU-VM hosts do)
    and data.dir is empty: each generates its own copy, all agree it is the same data, and
    the run equals the 1-process run on the same data."""
    def host(i):
        home = tmp_path / f"host{i}"
        (home / "cwd").mkdir(parents=True)
        return {"HOME": str(home), "FNO_DATA_DIR": str(home / "cache")}, home / "cwd"

    workdir = tmp_path / "shared_workdir"
    outputs = run_ok(workdir, "--config.data.dir=", per_process=host)
    for i in range(2):
        cache = tmp_path / f"host{i}" / "cache"
        assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [
            "burgers_n48_s128_nu0.1_t1_seed0"]
    assert "opened identical datasets" in outputs[0]
    single = tmp_path / "single"
    loop.train_and_evaluate(tiny_config(dataset, mode="mesh"), str(single))
    assert_same(params_of(workdir), params_of(single), rtol=1e-5)


# --- failures that one process sees -----------------------------------------------------------
def _assert_all_stopped_with(codes, outputs, elapsed, own_error: str):
    text = "\n".join(outputs)
    assert all(code != 0 for code in codes), (codes, text[-4000:])
    assert elapsed < BOUND_S, (elapsed, text[-4000:])
    failing = [i for i, out in enumerate(outputs)
               if any(own_error in line and "process 1 failed" not in line
                      for line in error_lines(out))]
    assert failing == [1], text[-4000:]
    assert len(error_lines(outputs[1])) == 1, outputs[1][-3000:]


def test_dataset_that_one_process_cannot_create_stops_all_with_one_line(dataset, tmp_path):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")

    def host(i):
        cache = blocker / "cache" if i == 1 else tmp_path / "cache0"
        return {"FNO_DATA_DIR": str(cache)}, ROOT

    codes, outputs, elapsed = finish(start(tmp_path / "w", "--config.data.dir=",
                                           per_process=host))
    _assert_all_stopped_with(codes, outputs, elapsed, "Not a directory")
    assert codes == [1, 1]
    assert any("process 1 failed (dataset)" in line for line in error_lines(outputs[0]))
    assert "Traceback" not in "".join(outputs)


INJECT = """
import os, runpy, sys
if os.environ["FNO_PROCESS_ID"] == "1":
    import fno.training.loop
    def fail(*args, **kwargs):
        raise RuntimeError("injected failure on process 1")
    fno.training.loop.evaluate = fail
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_exception_on_one_process_ends_every_process_within_the_bound(dataset, tmp_path):
    """Process 1 raises while process 0 goes on into the evaluation's collectives: process 1
    exits at once with its one-line error (no 300 s shutdown barrier), process 0 is stopped
    by the heartbeat timeout; both exit non-zero well within the bound."""
    program = ["-c", INJECT, str(ROOT / "main.py")]
    codes, outputs, elapsed = finish(start(tmp_path, f"--config.data.dir={dataset}",
                                           program=program))
    _assert_all_stopped_with(codes, outputs, elapsed, "injected failure on process 1")


# --- locks and resumes ------------------------------------------------------------------------
def test_workdir_lock_degrades_where_the_filesystem_cannot_lock(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl
    import logging

    from fno.storage import workdir as workdir_lib

    def no_flock(*args):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with caplog.at_level(logging.WARNING), workdir_lib.exclusive(epath.Path(tmp_path)):
        pass
    assert "cannot be locked" in caplog.text and "Function not implemented" in caplog.text


def test_resume_with_another_batch_size_or_seed_is_refused(dataset, tmp_path):
    loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))
    for key, value in (("batch_size", 4), ("seed", 7)):
        config = tiny_config(dataset, **{key: value, "num_train_steps": 20})
        with pytest.raises(FnoError, match=f"config.{key} = "):
            loop.train_and_evaluate(config, str(tmp_path))
    # What does not change the data order resumes: a longer schedule.
    results = loop.train_and_evaluate(tiny_config(dataset, num_train_steps=14), str(tmp_path))
    assert results["steps_this_run"] == 2


# --- scale hazards ----------------------------------------------------------------------------
def test_state_is_created_in_its_shardings_without_transfers(dataset):
    """Initialisation runs under jit into the final (here model-sharded) shardings: no
    array is made on one device and then copied (a transfer guard would stop that)."""
    import jax

    from fno.parallel import strategies

    config = tiny_config(dataset, mode="mesh", mesh_shape=(2, 4), mesh_axes=("data", "model"),
                         model_sharding="model")
    strategy = strategies.make_strategy(config.mode, config, registry.model_class(config),
                                        registry.grid_rank(config))
    tx = steps.create_optimizer(config, 4)
    with jax.transfer_guard("disallow"):
        _, state = steps.create_state(config, tx, strategy.state_shardings)
    wanted = strategy.state_shardings(state)
    for leaf, sharding in zip(jax.tree.leaves(state), jax.tree.leaves(wanted), strict=True):
        assert leaf.sharding == sharding
    lift = state["params"]["lift"]["kernel"]
    assert lift.addressable_shards[0].data.shape[1] == lift.shape[1] // 4  # channels split
    # Same values as the eager initialisation.
    _, eager = steps.init_state(registry.create_model(config, config.seed), tx)
    assert_same(jax.tree.leaves(jax.device_get(state)), jax.tree.leaves(eager))


def test_pmap_logical_state_reuses_the_device_copies():
    import jax
    import jax.numpy as jnp

    from fno.parallel import strategies

    strategy = strategies.make_strategy("pmap")
    placed = strategy.place_state({"w": jnp.arange(6.0).reshape(2, 3)})
    with jax.transfer_guard("disallow"):
        logical = strategy.logical_state(placed)
    assert logical["w"].shape == (2, 3) and logical["w"].sharding == strategy.sharding
    assert (jax.device_get(logical["w"]) == jnp.arange(6.0).reshape(2, 3)).all()


def test_devices_of_several_slices_get_a_hybrid_mesh_with_data_across_slices():
    import dataclasses

    from fno.parallel import sharding

    @dataclasses.dataclass(frozen=True)
    class FakeDevice:
        id: int
        slice_index: int
        process_index: int
        platform: str = "cpu"
        device_kind: str = "cpu"

    devices = [FakeDevice(i, i // 4, i // 2) for i in range(8)]  # 2 slices of 4
    grid = sharding.device_grid((4, 2), ("data", "model"), devices)
    assert grid.shape == (4, 2)
    # Each model group lies inside one slice; the data axis runs across both slices.
    for row in grid:
        assert len({d.slice_index for d in row}) == 1
    assert {d.slice_index for d in grid[:, 0]} == {0, 1}
    with pytest.raises(FnoError, match="divisible by the 2 slices"):
        sharding.device_grid((1, 8), ("data", "model"), devices)
