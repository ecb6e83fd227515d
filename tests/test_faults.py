"""Fault injection: what a run does when it is killed, its checkpoints are damaged, the disk
fills up while saving, or its dataset is not the one the config asks for.

Every recovery is checked the strict way: the run that went through the fault ends with
bitwise the parameters of a run that never saw it. kill -9 needs a real process, so those runs
go through main.py in a subprocess; the rest run in-process to keep the file fast.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from fno.errors import FnoError
from fno.training import checkpoint as checkpoint_lib
from fno.training import loop
from tests.helpers import assert_same, params_of, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TMP_MARKER = ".orbax-checkpoint-tmp"

# 60 short steps with a checkpoint every 3: 20 saves per run, many moments to kill at.
KILL_OVERRIDES = {"num_train_steps": 60, "checkpoint_every_steps": 3, "eval_every_steps": 0,
                  "num_plot_samples": 0, "log_every_steps": 3}


# --- helpers ---------------------------------------------------------------------------------
def main_command(workdir: Path, dataset: str, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), f"--workdir={workdir}",
            f"--config={ROOT}/configs/tiny.py", f"--config.data.dir={dataset}", *extra]


def main_env() -> dict[str, str]:
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
                JAX_PLATFORMS="cpu")


def complete_steps(checkpoints: Path) -> set[int]:
    """Steps with a finished checkpoint (orbax renames a write to its step number last)."""
    if not checkpoints.is_dir():
        return set()
    return {int(name) for name in os.listdir(checkpoints) if name.isdigit()}


def unfinished_writes(checkpoints: Path) -> list[str]:
    if not checkpoints.is_dir():
        return []
    return [name for name in os.listdir(checkpoints) if TMP_MARKER in name]


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, log: Path,
             timeout: float = 120.0, poll: float = 0.002) -> None:
    """Poll until ``condition`` holds; fail if the run ends or hangs first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"run ended (status {proc.returncode}) before the kill point:\n"
                        f"{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the kill point")
        time.sleep(poll)


def kill_9(proc: subprocess.Popen) -> None:
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def cut_array_data(step_dir: Path) -> dict[Path, int]:
    """Truncate every array-data file of a checkpoint to half, as a copy cut short would;
    return the new sizes. (Cutting one file is not always damage: OCDBT data files can hold
    bytes no longer referenced, and losing those restores the same values.)"""
    files = [*step_dir.glob("state/d/*"), *step_dir.glob("state/ocdbt.process_*/d/*")]
    assert files
    sizes = {}
    for file in files:
        sizes[file] = file.stat().st_size // 2
        os.truncate(file, sizes[file])
    return sizes


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> list[np.ndarray]:
    """Final parameters of an uninterrupted configs/tiny.py run (12 steps)."""
    workdir = tmp_path_factory.mktemp("reference")
    loop.train_and_evaluate(tiny_config(dataset), str(workdir))
    return params_of(workdir)


@pytest.mark.slow
# --- 1. kill -9 ------------------------------------------------------------------------------
def test_kill_9_at_random_moments_then_rerun_ends_exactly_as_uninterrupted(dataset, tmp_path):
    """Kill at seeded random moments (a random checkpoint reached, then a random delay that
    lands in a step or in a save), once more the instant a checkpoint write is in progress;
    each rerun resumes from the newest complete checkpoint, and the last one finishes with
    bitwise the parameters of a run that was never killed."""
    straight = tmp_path / "straight"
    loop.train_and_evaluate(tiny_config(dataset, **KILL_OVERRIDES), str(straight))

    workdir = tmp_path / "killed"
    checkpoints = workdir / "checkpoints"
    args = [f"--config.{key}={value}" for key, value in KILL_OVERRIDES.items()]
    rng = np.random.default_rng(0)
    # Kill points: after checkpoint k (random, increasing), then a random 0-100 ms more.
    targets = np.sort(rng.choice(np.arange(3, 46, 3), size=3, replace=False))
    delays = rng.uniform(0.0, 0.1, size=3)
    expected_start = 0
    for run, (target, delay) in enumerate(zip(targets, delays, strict=True)):
        log = tmp_path / f"run{run}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(main_command(workdir, dataset, *args), cwd=ROOT,
                                    env=main_env(), stdout=out, stderr=subprocess.STDOUT)
            wait_for(lambda t=target: max(complete_steps(checkpoints), default=0) >= t,
                     proc, log)
            time.sleep(delay)
            kill_9(proc)
        assert f"steps {expected_start} -> 60" in log.read_text()
        expected_start = max(complete_steps(checkpoints))

    # Now the instant a checkpoint write is under way: it is left half-written.
    log = tmp_path / "run_mid_save.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(main_command(workdir, dataset, *args), cwd=ROOT,
                                env=main_env(), stdout=out, stderr=subprocess.STDOUT)
        started = complete_steps(checkpoints)
        wait_for(lambda: complete_steps(checkpoints) != started
                 and bool(unfinished_writes(checkpoints)), proc, log, poll=0.0005)
        kill_9(proc)
    assert f"steps {expected_start} -> 60" in log.read_text()
    left_behind = unfinished_writes(checkpoints)
    assert left_behind, "the kill did not land in a checkpoint write"
    expected_start = max(complete_steps(checkpoints))

    result = subprocess.run(main_command(workdir, dataset, *args), cwd=ROOT, env=main_env(),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"steps {expected_start} -> 60" in result.stderr
    assert "unfinished checkpoint write" in result.stderr
    assert all(name in result.stderr for name in left_behind)
    assert not unfinished_writes(checkpoints)
    assert max(complete_steps(checkpoints)) == 60
    assert_same(params_of(workdir), params_of(straight))


# --- 2. damaged checkpoints ------------------------------------------------------------------
def warnings_of(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_damaged_checkpoints_are_moved_aside_and_training_falls_back(dataset, tmp_path,
                                                                     caplog, reference):
    """The newest checkpoint's data cut short, the one before it missing a file: both go to
    ``<step>.corrupt`` (kept, with the damage intact), the run resumes from the oldest one,
    saves those steps again, and ends exactly where an undamaged run ends."""
    loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))  # checkpoints 5, 10, 12
    checkpoints = tmp_path / "checkpoints"
    assert complete_steps(checkpoints) == {5, 10, 12}
    # Step 12: its array data cut short.
    cut = cut_array_data(checkpoints / "12")
    # Step 10: its array chunks deleted (shapes still readable: fails only when restoring).
    chunks = list((checkpoints / "10").glob("state/ocdbt.process_*/d/*"))
    assert chunks
    for chunk in chunks:
        chunk.unlink()

    with caplog.at_level(logging.WARNING):
        result = loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))
    assert result["steps_this_run"] == 7  # from step 5
    warnings = warnings_of(caplog)
    for step in (12, 10):
        moved = checkpoints / f"{step}{checkpoint_lib.CORRUPT_SUFFIX}"
        assert moved.is_dir() and f"moved it aside to {moved}" in warnings
    assert "Resuming from step 5" in warnings
    # Nothing was deleted: the damage is still there to inspect.
    for file, size in cut.items():
        assert (checkpoints / "12.corrupt" / file.relative_to(checkpoints / "12")
                ).stat().st_size == size
    assert not list((checkpoints / "10.corrupt").glob("state/ocdbt.process_*/d/*"))
    assert complete_steps(checkpoints) >= {10, 12}  # saved again beside the .corrupt copies
    assert_same(params_of(tmp_path), reference)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_no_valid_checkpoint_left_starts_from_scratch(dataset, tmp_path, caplog, reference):
    """Three more kinds of damage, one per checkpoint, and none left to resume from: the run
    starts again from step 0 with a warning (rather than an error: the damaged checkpoints are
    kept aside, and the rerun that an error would ask for could only start from 0 too)."""
    config = tiny_config(dataset, num_train_steps=5, checkpoint_every_steps=2)
    loop.train_and_evaluate(config, str(tmp_path))
    checkpoints = tmp_path / "checkpoints"
    assert complete_steps(checkpoints) == {2, 4, 5}
    metadata = checkpoints / "5" / "state" / "_METADATA"  # the tree's metadata cut short
    os.truncate(metadata, metadata.stat().st_size // 3)
    (checkpoints / "4" / "state" / "manifest.ocdbt").unlink()  # the array index removed
    position = checkpoints / "2" / "data" / "process_0-of-1.json"  # the data position cut
    os.truncate(position, position.stat().st_size // 2)

    with caplog.at_level(logging.WARNING):
        result = loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))
    assert result["steps_this_run"] == 12
    warnings = warnings_of(caplog)
    assert "No valid checkpoint left" in warnings and "training starts from step 0" in warnings
    for step in (2, 4, 5):
        assert (checkpoints / f"{step}.corrupt").is_dir()
    assert_same(params_of(tmp_path), reference)


def test_damaged_is_not_confused_with_incompatible(dataset, tmp_path):
    """A checkpoint of another model is a hard error naming the first differing leaf, even
    when it is also damaged (in a part read after the shapes); nothing is moved aside."""
    loop.train_and_evaluate(tiny_config(dataset, num_train_steps=5), str(tmp_path))
    checkpoints = tmp_path / "checkpoints"
    position = checkpoints / "5" / "data" / "process_0-of-1.json"
    os.truncate(position, position.stat().st_size // 2)
    before = sorted(os.listdir(checkpoints))
    with pytest.raises(FnoError, match=r"does not match .*\(params\..*: checkpoint float32"):
        loop.train_and_evaluate(tiny_config(dataset, **{"model.width": 12}), str(tmp_path))
    assert sorted(os.listdir(checkpoints)) == before


# --- 3. full disk at save time ---------------------------------------------------------------
def mount_tmpfs(path: Path, size: str) -> bool:
    """A tiny tmpfs at ``path`` (root only); False where mounting is not allowed."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True)
    return result.returncode == 0


def fill(directory: Path) -> Path:
    """Write one file until the file system is full."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    try:  # small writes to use up the last partial block
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)
    return filler


def test_disk_full_at_save_is_a_clear_error_and_the_previous_checkpoint_resumes(
        dataset, tmp_path, monkeypatch, reference):
    """checkpoints/ on a real 1 MiB tmpfs that is then filled up; where mounting is not
    allowed (not root), the data-iterator write raises ENOSPC instead, as on a full disk."""
    checkpoints = tmp_path / "checkpoints"
    how = "tmpfs" if mount_tmpfs(checkpoints, "1m") else "patched"
    try:
        loop.train_and_evaluate(tiny_config(dataset, num_train_steps=5), str(tmp_path))
        if how == "tmpfs":
            filler = fill(checkpoints)
        else:
            def no_space(self, directory, *args, **kwargs):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))

            monkeypatch.setattr(grain.checkpoint.CheckpointHandler, "save", no_space)
        with pytest.raises(FnoError) as failure:
            loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))
        message = str(failure.value)
        assert "\n" not in message
        assert message.startswith(f"could not save the checkpoint at step 10 in {checkpoints}")
        assert "No space left on device" in message
        assert "the previous checkpoint (step 5) is intact" in message
        assert complete_steps(checkpoints) == {5}

        if how == "tmpfs":
            filler.unlink()
        else:
            monkeypatch.undo()
        result = loop.train_and_evaluate(tiny_config(dataset), str(tmp_path))
        assert result["steps_this_run"] == 7
        assert not unfinished_writes(checkpoints)
        assert_same(params_of(tmp_path), reference)
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(checkpoints)], check=False)


def test_async_save_failure_is_reported_for_its_own_step(tmp_path, monkeypatch):
    """A background write error surfaces at the next save or wait: the message must name the
    step whose write failed, not the step being saved when it surfaced."""
    import jax.numpy as jnp

    checkpointer = checkpoint_lib.Checkpointer(str(tmp_path))
    state = {"w": jnp.ones((4, 4))}
    iterator = iter(grain.MapDataset.range(10).to_iter_dataset())
    checkpointer.save(1, state, iterator)
    checkpointer.wait()
    checkpointer.save(2, state, iterator)
    real_wait = ocp.CheckpointManager.wait_until_finished

    def failing_wait(self):
        real_wait(self)
        raise ValueError('RESOURCE_EXHAUSTED: Error writing local file "x":\n'
                         '[OS error 28: No space left on device]')

    monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", failing_wait)
    with pytest.raises(FnoError, match=r"at step 2 .*RESOURCE_EXHAUSTED.*No space left on "
                                       r"device\]; the previous checkpoint \(step 1\)"):
        checkpointer.save(3, state, iterator)
    checkpointer.close()  # the failure is not raised a second time


# --- 4. datasets -----------------------------------------------------------------------------
def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_dataset_changed_after_generation_is_refused(dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    u1 = data / "u1.npy"
    with open(u1, "r+b") as f:  # one byte of one sample, size unchanged
        f.seek(-7, os.SEEK_END)
        byte = f.read(1)
        f.seek(-7, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0x40]))
    result = subprocess.run(main_command(tmp_path / "w", str(data)), cwd=ROOT, env=main_env(),
                            capture_output=True, text=True, timeout=240)
    line = one_error_line(result)
    assert str(u1) in line and "sha256 does not match meta.json" in line
    assert not (tmp_path / "w" / "checkpoints").exists()  # refused before training


def test_a_mat_file_that_is_not_matlab_is_one_line(tmp_path):
    """A short text file named .mat (scipy's MatReadError, not a ValueError): one line,
    exit status 1, nothing written."""
    data = tmp_path / "notes.mat"
    data.write_text("a,u\n1,2\n")
    result = subprocess.run(main_command(tmp_path / "w", str(data)), cwd=ROOT, env=main_env(),
                            capture_output=True, text=True, timeout=240)
    line = one_error_line(result)
    assert str(data) in line and "not a readable MATLAB file" in line
    assert data.read_text() == "a,u\n1,2\n"
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_own_data_needs_no_extra_flags_and_a_changed_dataset_is_refused_on_resume(
        tmp_path):
    """A directory that exists is described by its own meta.json: generated with other
    settings than data.generate, with fewer samples and a coarser grid than the defaults
    assume, it trains with no data flags (splits and evaluation resolutions come from the
    data). The checkpoint is what protects a run: resuming on changed data is one line."""
    from fno.data import burgers

    own = burgers.generate_dataset(tmp_path / "own", num_samples=30, resolution=128, seed=4,
                                   nu=0.2)
    command = [sys.executable, str(ROOT / "main.py"), f"--workdir={tmp_path / 'w'}",
               f"--config={ROOT}/configs/basic.py", f"--config.data.dir={own}",
               "--config.num_train_steps=3", "--config.data.resolution=64",
               "--config.batch_size=5", "--config.model.width=8", "--config.model.modes=4"]
    result = subprocess.run(command, cwd=ROOT, env=main_env(), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    assert sorted(k for k in results if k.startswith("test_rel_l2")) == [
        "test_rel_l2", "test_rel_l2_s128"]  # every finer power-of-two subgrid of the data

    shutil.rmtree(own)  # the same path, other data
    burgers.generate_dataset(own, num_samples=30, resolution=128, seed=5, nu=0.2)
    command[command.index("--config.num_train_steps=3")] = "--config.num_train_steps=6"
    result = subprocess.run(command, cwd=ROOT, env=main_env(), capture_output=True, text=True,
                            timeout=240)
    line = one_error_line(result)
    assert "was trained with the dataset" in line and "another --workdir" in line
