"""fno.parallel.distributed: the environment -> jax.distributed.initialize decision, and real runs.

``plan`` is tested on environment dicts without JAX. Two subprocess tests then start real
processes on localhost: two processes that look like one SLURM step (JAX's own SLURM
detection finds the coordinator from SLURM_STEP_NODELIST and JAX_COORDINATOR_PORT) and
exchange data with a cross-process collective; and one process waiting for a peer that never
comes, which must fail after FNO_INITIALIZATION_TIMEOUT instead of hanging.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fno.errors import FnoError
from fno.parallel import distributed

ROOT = Path(__file__).resolve().parents[1]

EXPLICIT = {"FNO_COORDINATOR_ADDRESS": "10.0.0.1:1234", "FNO_NUM_PROCESSES": "4",
            "FNO_PROCESS_ID": "3"}


def slurm_env(ntasks: int, nnodes: int, procid: int = 0, localid: int = 0,
              **extra: str) -> dict[str, str]:
    """What srun exports to one task of a step (the subset that matters here)."""
    env = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": str(ntasks), "SLURM_PROCID": str(procid),
           "SLURM_LOCALID": str(localid), "SLURM_STEP_NODELIST": "gpu[001-002]",
           "SLURM_NODELIST": "gpu[001-002]", "SLURM_STEP_NUM_NODES": str(nnodes),
           "SLURM_NNODES": str(nnodes)}
    env.update(extra)
    return env


def test_empty_environment_is_single_process():
    assert distributed.plan({}) is None
    assert distributed.plan({"HOME": "/root", "CUDA_VISIBLE_DEVICES": "0,1"}) is None


def test_explicit_settings_become_kwargs():
    kwargs = distributed.plan({**EXPLICIT, "FNO_LOCAL_DEVICE_IDS": "0, 2",
                               "FNO_INITIALIZATION_TIMEOUT": "30",
                               "FNO_HEARTBEAT_TIMEOUT": "20", "FNO_SHUTDOWN_TIMEOUT": "10"})
    assert kwargs == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                      "process_id": 3, "cluster_detection_method": "deactivate",
                      "local_device_ids": [0, 2], "initialization_timeout": 30,
                      "heartbeat_timeout_seconds": 20, "shutdown_timeout_seconds": 10}


def test_explicit_settings_win_over_an_ambient_cluster():
    kwargs = distributed.plan({**slurm_env(8, 2), **EXPLICIT})
    assert kwargs["coordinator_address"] == "10.0.0.1:1234"
    assert kwargs["cluster_detection_method"] == "deactivate"
    assert "local_device_ids" not in kwargs  # JAX must not pick [SLURM_LOCALID] either


def test_kwargs_match_jax_signature():
    """Every key plan() can produce is a parameter of the installed jax.distributed.initialize."""
    import inspect

    import jax

    params = inspect.signature(jax.distributed.initialize).parameters
    kwargs = distributed.plan({**EXPLICIT, "FNO_LOCAL_DEVICE_IDS": "0",
                               "FNO_INITIALIZATION_TIMEOUT": "1", "FNO_HEARTBEAT_TIMEOUT": "1",
                               "FNO_SHUTDOWN_TIMEOUT": "1"})
    assert set(kwargs) <= set(params)


@pytest.mark.parametrize("env, message", [
    ({**EXPLICIT, "FNO_NUM_PROCESSES": "two"}, "FNO_NUM_PROCESSES='two' is not an integer"),
    ({**EXPLICIT, "FNO_NUM_PROCESSES": "0"}, "FNO_NUM_PROCESSES=0 must be >= 1"),
    ({**EXPLICIT, "FNO_PROCESS_ID": "4"}, "FNO_PROCESS_ID=4 out of range"),
    ({**EXPLICIT, "FNO_PROCESS_ID": "-1"}, "FNO_PROCESS_ID=-1 must be >= 0"),
    ({"FNO_COORDINATOR_ADDRESS": "h:1"}, "FNO_NUM_PROCESSES, FNO_PROCESS_ID missing"),
    ({"FNO_PROCESS_ID": "0"}, "FNO_COORDINATOR_ADDRESS, FNO_NUM_PROCESSES missing"),
    ({**EXPLICIT, "FNO_COORDINATOR_ADDRESS": "10.0.0.1"}, "is not host:port"),
    ({**EXPLICIT, "FNO_COORDINATOR_ADDRESS": "h:99999"}, "is not host:port"),
    ({**EXPLICIT, "FNO_LOCAL_DEVICE_IDS": "0,a"}, "not a comma-separated list"),
    ({**EXPLICIT, "FNO_LOCAL_DEVICE_IDS": "1,1"}, "distinct non-negative"),
    ({**EXPLICIT, "FNO_INITIALIZATION_TIMEOUT": "5m"}, "FNO_INITIALIZATION_TIMEOUT='5m'"),
    ({**EXPLICIT, "FNO_HEARTBEAT_TIMEOUT": "0"}, "FNO_HEARTBEAT_TIMEOUT=0 must be >= 1"),
    ({"FNO_DISTRIBUTED": "yes"}, "must be 'auto' or 'off'"),
    ({**EXPLICIT, "FNO_DISTRIBUTED": "off"}, "contradicts"),
    ({**EXPLICIT, "FNO_DISTRIBUTED": "auto"}, "contradicts"),
    (slurm_env(2, 1, SLURM_NTASKS="x"), "SLURM_NTASKS='x' is not an integer"),
])
def test_bad_settings_raise_one_line_fno_error(env, message):
    with pytest.raises(FnoError, match=message.replace("[", r"\[")) as info:
        distributed.plan(env)
    assert "\n" not in str(info.value)


def test_off_and_auto_modes():
    assert distributed.plan({**slurm_env(8, 2), "FNO_DISTRIBUTED": "off"}) is None
    assert distributed.plan({"FNO_DISTRIBUTED": "auto"}) == {}
    assert distributed.plan({"FNO_DISTRIBUTED": "AUTO", "FNO_LOCAL_DEVICE_IDS": "0,1",
                             "FNO_INITIALIZATION_TIMEOUT": "60"}) == {
        "local_device_ids": [0, 1], "initialization_timeout": 60}


def test_slurm_one_task_per_gpu_leaves_device_choice_to_jax():
    env = slurm_env(8, 2, procid=5, localid=1, CUDA_VISIBLE_DEVICES="0,1,2,3",
                    SLURM_NTASKS_PER_NODE="4", SLURM_GPUS_ON_NODE="4")
    assert distributed.plan(env) == {"cluster_detection_method": "slurm"}


@pytest.mark.parametrize("extra, expected", [
    ({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, [0, 1, 2, 3]),
    # Ordinals count after CUDA_VISIBLE_DEVICES remapping: GPUs 4-7 are devices 0-3 to JAX.
    ({"CUDA_VISIBLE_DEVICES": "4,5,6,7", "SLURM_GPUS_ON_NODE": "8"}, [0, 1, 2, 3]),
    ({"SLURM_GPUS_ON_NODE": "8"}, list(range(8))),
    ({"SLURM_GPUS_PER_NODE": "a100:2"}, [0, 1]),
    ({"SLURM_GPUS_PER_NODE": "gpu:h100:4(S:0-1)"}, [0, 1, 2, 3]),
])
def test_slurm_one_task_per_node_drives_all_local_gpus(extra, expected):
    env = slurm_env(2, 2, procid=1, localid=0, **extra)
    assert distributed.plan(env) == {"cluster_detection_method": "slurm",
                                     "local_device_ids": expected}
    # Recognised from SLURM_NTASKS_PER_NODE too, when the node count is not exported.
    env = {k: v for k, v in env.items() if "NODES" not in k and "NNODES" not in k}
    env["SLURM_NTASKS_PER_NODE"] = "1"
    assert distributed.plan(env)["local_device_ids"] == expected


def test_slurm_one_task_per_node_without_gpu_count_falls_back_to_jax(caplog):
    assert distributed.plan(slurm_env(2, 2)) == {"cluster_detection_method": "slurm"}
    assert "GPU count is unknown" in caplog.text


def test_slurm_task_bound_to_its_own_gpu_uses_what_it_sees():
    # --gpus-per-task=1: task 3 of the node sees one GPU, device 0, not device 3.
    env = slurm_env(8, 2, procid=3, localid=3, CUDA_VISIBLE_DEVICES="3")
    assert distributed.plan(env)["local_device_ids"] == [0]


def step_env(localid: int, tasks_per_node: int, **extra: str) -> dict[str, str]:
    """One task of a 2-node step with ``tasks_per_node`` tasks on each node, as srun sets it."""
    return slurm_env(2 * tasks_per_node, 2, procid=tasks_per_node + localid, localid=localid,
                     SLURM_STEP_TASKS_PER_NODE=f"{tasks_per_node}(x2)",
                     SLURM_NTASKS_PER_NODE=str(tasks_per_node), **extra)


@pytest.mark.parametrize("extra", [
    # sbatch --ntasks-per-node=4 --gpus-per-task=2: SLURM shows each task its own two GPUs.
    {"SLURM_GPUS_PER_TASK": "2", "SLURM_GPUS_ON_NODE": "8"},
    {"SLURM_GPUS_PER_TASK": "a100:2"},
    # --gpus-per-node=8 --gpu-bind=per_task:2: no per-task count, but fewer GPUs than the node.
    {"SLURM_GPUS_ON_NODE": "8"},
], ids=["gpus-per-task", "typed-gpus-per-task", "gpu-bind"])
def test_slurm_tasks_bound_to_several_gpus_all_drive_what_they_see(extra):
    """Every task gets both of its GPUs, whatever its SLURM_LOCALID (the reported bug gave
    tasks 0 and 1 one GPU each, as JAX would, and tasks 2 and 3 two)."""
    for localid in range(4):
        env = step_env(localid, 4, CUDA_VISIBLE_DEVICES="0,1", **extra)
        assert distributed.plan(env) == {"cluster_detection_method": "slurm",
                                         "local_device_ids": [0, 1]}, localid


@pytest.mark.parametrize("extra", [{"CUDA_VISIBLE_DEVICES": "0,1,2,3"},
                                   {"SLURM_GPUS_ON_NODE": "4"},
                                   {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "SLURM_GPUS_ON_NODE": "4"}])
def test_slurm_one_task_per_gpu_each_gets_its_local_id(extra):
    # JAX's SLURM detection gives the process GPU number SLURM_LOCALID when plan() says nothing.
    for localid in range(4):
        assert distributed.plan(step_env(localid, 4, **extra)) == {
            "cluster_detection_method": "slurm"}


def test_slurm_one_task_per_node_from_the_step_layout():
    env = slurm_env(2, 2, localid=0, SLURM_STEP_TASKS_PER_NODE="1(x2)", SLURM_GPUS_ON_NODE="4")
    env.pop("SLURM_STEP_NUM_NODES")
    env.pop("SLURM_NNODES")
    assert distributed.plan(env)["local_device_ids"] == [0, 1, 2, 3]


@pytest.mark.parametrize("extra", [{"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"},
                                   {"SLURM_GPUS_ON_NODE": "8"},
                                   # --gpus-per-task=2 --gpu-bind=none: all eight visible.
                                   {"SLURM_GPUS_PER_TASK": "2", "SLURM_GPUS_ON_NODE": "8",
                                    "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}])
def test_slurm_tasks_that_see_all_gpus_get_equal_shares(extra):
    shares = [distributed.plan(step_env(localid, 4, **extra))["local_device_ids"]
              for localid in range(4)]
    assert shares == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_slurm_uneven_step_uses_this_nodes_task_count():
    # SLURM_STEP_TASKS_PER_NODE=2(x3),1: nodes 0-2 run two tasks, node 3 runs one.
    layout = {"SLURM_STEP_TASKS_PER_NODE": "2(x3),1", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert distributed.plan(slurm_env(7, 4, localid=0, SLURM_NODEID="3", **layout))[
        "local_device_ids"] == [0, 1, 2, 3]
    assert distributed.plan(slurm_env(7, 4, localid=1, SLURM_NODEID="0", **layout))[
        "local_device_ids"] == [2, 3]


@pytest.mark.parametrize("env, message", [
    (step_env(0, 3, CUDA_VISIBLE_DEVICES="0,1,2,3"), "3 tasks on a node with 4 GPUs"),
    (step_env(5, 8, SLURM_GPUS_ON_NODE="4"), "8 tasks on a node with 4 GPUs"),
    (step_env(0, 4, SLURM_GPUS_PER_TASK="2", CUDA_VISIBLE_DEVICES="0,1,2,3"),
     "4 tasks on a node with 4 GPUs and --gpus-per-task=2"),
    # --gpu-bind=closest: each task sees its socket's four GPUs, shared with another task.
    (step_env(2, 4, SLURM_GPUS_ON_NODE="8", CUDA_VISIBLE_DEVICES="4,5,6,7"),
     "tasks would share GPUs"),
    (slurm_env(8, 2, localid=5, SLURM_STEP_TASKS_PER_NODE="4(x2",
               CUDA_VISIBLE_DEVICES="0"), "SLURM_STEP_TASKS_PER_NODE='4(x2'"),
    (slurm_env(7, 3, localid=5, CUDA_VISIBLE_DEVICES="0,1,2,3"),
     "number of tasks per node is unknown"),
])
def test_slurm_inconsistent_layouts_raise_one_line_fno_error(env, message):
    with pytest.raises(FnoError, match=re.escape(message)) as info:
        distributed.plan(env)
    assert "\n" not in str(info.value)
    # The way out named in the message works: FNO_LOCAL_DEVICE_IDS replaces the rules.
    if "FNO_LOCAL_DEVICE_IDS" in str(info.value):
        assert distributed.plan({**env, "FNO_LOCAL_DEVICE_IDS": "0"})["local_device_ids"] == [0]


def test_gres_counts():
    assert distributed._gres_count("4") == 4
    assert distributed._gres_count("gpu:h100:4(S:0-1)") == 4
    assert distributed._gres_count("volta:3,kepler:1") == 4
    assert distributed._gres_count("") is None


def test_slurm_fno_local_device_ids_override():
    env = slurm_env(2, 2, CUDA_VISIBLE_DEVICES="0,1,2,3", FNO_LOCAL_DEVICE_IDS="1,2")
    assert distributed.plan(env)["local_device_ids"] == [1, 2]


def test_slurm_single_task_or_outside_srun_is_single_process():
    assert distributed.plan(slurm_env(1, 1)) is None
    batch_script = {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8", "SLURM_NNODES": "2"}
    assert distributed.plan(batch_script) is None


@pytest.mark.parametrize("env", [
    {"TPU_WORKER_HOSTNAMES": "t1k-0,t1k-1,t1k-2,t1k-3", "TPU_WORKER_ID": "2"},
    {"TPU_PROCESS_ADDRESSES": "10.0.0.1:8476,10.0.0.2:8476"},
    {"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.1", "MEGASCALE_NUM_SLICES": "2"},
    {"MEGASCALE_NUM_SLICES": "2"},
    {"CLOUD_TPU_TASK_ID": "1"},
])
def test_tpu_pod_uses_jax_auto_detection(env):
    assert distributed.plan(env) == {}
    assert distributed.plan({**env, "FNO_HEARTBEAT_TIMEOUT": "600"}) == {
        "heartbeat_timeout_seconds": 600}


@pytest.mark.parametrize("env, on_tpu", [
    ({"TPU_WORKER_HOSTNAMES": "t1k-0,t1k-1", "TPU_WORKER_ID": "1"}, False),
    ({"FNO_DISTRIBUTED": "auto", "TPU_ACCELERATOR_TYPE": "v4-32"}, False),
    ({"FNO_DISTRIBUTED": "auto", "JAX_PLATFORMS": "tpu"}, False),
    ({"TPU_WORKER_ID": "0"}, False),  # a single TPU host would ignore it as well
    # A stock Cloud TPU VM under launch/tpu_pod.sh: no TPU variables, chips on the PCI bus.
    ({"FNO_DISTRIBUTED": "auto"}, True),
    ({**EXPLICIT}, True),
])
def test_fno_local_device_ids_is_an_error_on_tpu(env, on_tpu):
    with pytest.raises(FnoError, match="no effect on TPU.*TPU_VISIBLE_CHIPS") as info:
        distributed.plan({**env, "FNO_LOCAL_DEVICE_IDS": "0,1"}, on_tpu=on_tpu)
    assert "\n" not in str(info.value)
    distributed.plan(env, on_tpu=on_tpu)  # fine without it


def test_initialize_probes_for_tpu_chips(monkeypatch):
    import jax

    assert distributed._tpu_chips_present() is False  # the probe works here (no TPU)
    monkeypatch.setattr(distributed, "_tpu_chips_present", lambda: True)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: pytest.fail("called"))
    monkeypatch.setattr(distributed.os, "environ",
                        {"FNO_DISTRIBUTED": "auto", "FNO_LOCAL_DEVICE_IDS": "0"})
    with pytest.raises(FnoError, match="no effect on TPU"):
        distributed.initialize()


def test_local_device_ids_ignored_by_a_single_process_warns(caplog):
    assert distributed.plan({"FNO_LOCAL_DEVICE_IDS": "1"}) is None
    assert "FNO_LOCAL_DEVICE_IDS is ignored by a single process" in caplog.text


def test_single_tpu_host_is_single_process():
    assert distributed.plan({"TPU_WORKER_HOSTNAMES": "localhost", "TPU_WORKER_ID": "0",
                             "MEGASCALE_NUM_SLICES": "1"}) is None


def test_initialize_is_a_no_op_for_a_single_process(monkeypatch):
    import jax

    for name in list(os.environ):
        if name.startswith(("FNO_", "SLURM_", "TPU_", "MEGASCALE_", "CLOUD_TPU")):
            monkeypatch.delenv(name)

    def fail(**kwargs):
        raise AssertionError(f"jax.distributed.initialize called with {kwargs}")

    monkeypatch.setattr(jax.distributed, "initialize", fail)
    distributed.initialize()
    monkeypatch.setenv("FNO_NUM_PROCESSES", "2")
    with pytest.raises(FnoError, match="missing"):
        distributed.initialize()


def test_device_count_error_names_the_processes():
    assert distributed.device_count_error([]) is None
    assert distributed.device_count_error([2, 2, 2]) is None
    message = distributed.device_count_error([1, 1, 2, 2])
    assert message.startswith("processes drive different numbers of devices "
                              "(1 on processes 0,1; 2 on processes 2,3)")
    assert "\n" not in message
    many = distributed.device_count_error([4] * 20 + [3])
    assert "3 on process 20; 4 on processes 0,1,2,3,4,5,6,7,... (20 processes)" in many


def test_check_local_device_counts_reads_the_global_device_list(monkeypatch):
    import jax

    distributed.check_local_device_counts()  # one process: nothing to compare

    class Device:
        def __init__(self, process_index: int):
            self.process_index = process_index

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "devices", lambda: [Device(0), Device(1), Device(1)])
    with pytest.raises(FnoError, match=r"\(1 on process 0; 2 on process 1\)"):
        distributed.check_local_device_counts()
    monkeypatch.setattr(jax, "devices", lambda: [Device(0), Device(1)])
    distributed.check_local_device_counts()


# --- real processes on localhost -----------------------------------------------------------

SNIPPET = textwrap.dedent("""
    from fno.parallel import distributed
    distributed.initialize()  # before any other JAX call
    distributed.check_local_device_counts()
    import jax
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    gathered = multihost_utils.process_allgather(jnp.array([10 + jax.process_index()]))
    print("RESULT", jax.process_count(), jax.process_index(), jax.local_device_count(),
          jax.device_count(), gathered.ravel().tolist(), flush=True)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus any cluster variables of the machine running the tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FNO_", "SLURM_", "TPU_", "MEGASCALE_", "CLOUD_TPU", "JAX_",
                                "XLA_FLAGS"))}
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
               XLA_FLAGS="--xla_force_host_platform_device_count=2", **extra)
    return env


def run_all(envs: list[dict[str, str]], timeout: float = 60,
            code: str = SNIPPET) -> list[tuple[int, str]]:
    """Start one ``python -c code`` per env; kill them all if any outlives ``timeout``."""
    # stdout and stderr stay separate: gloo's C++ log lines on stderr would otherwise be
    # interleaved into the middle of the snippet's RESULT line.
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for env in envs]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append((proc.returncode, f"{out}\n--- stderr ---\n{err}"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_slurm_step_on_localhost_runs_a_collective():
    """Two processes with the variables srun would set for a 2-task, 1-node step."""
    port = str(free_port())
    envs = [clean_env(SLURM_JOB_ID="777", SLURM_NTASKS="2", SLURM_PROCID=str(i),
                      SLURM_LOCALID=str(i), SLURM_STEP_NODELIST="localhost",
                      SLURM_NODELIST="localhost", SLURM_STEP_NUM_NODES="1", SLURM_NNODES="1",
                      SLURM_NTASKS_PER_NODE="2", JAX_COORDINATOR_PORT=port,
                      FNO_INITIALIZATION_TIMEOUT="30")
            for i in range(2)]
    for i, (rc, out) in enumerate(run_all(envs)):
        assert rc == 0, out
        assert f"RESULT 2 {i} 2 4 [10, 11]" in out, out


def test_missing_peer_fails_after_initialization_timeout():
    """Process 1 of 2 alone: initialize must give up (not hang) once the timeout passes."""
    env = clean_env(FNO_COORDINATOR_ADDRESS=f"127.0.0.1:{free_port()}",
                    FNO_NUM_PROCESSES="2", FNO_PROCESS_ID="1", FNO_INITIALIZATION_TIMEOUT="2")
    start = time.monotonic()
    [(rc, out)] = run_all([env], timeout=60)
    assert rc != 0 and "RESULT" not in out
    assert "DEADLINE_EXCEEDED" in out or "Deadline Exceeded" in out, out[-2000:]
    assert time.monotonic() - start < 30


def test_unequal_device_counts_stop_every_process():
    """One process with 1 device, one with 2: both raise the same FnoError, none hangs."""
    address = f"127.0.0.1:{free_port()}"
    code = textwrap.dedent("""
        from fno.parallel import distributed
        from fno.errors import FnoError
        distributed.initialize()
        try:
            distributed.check_local_device_counts()
        except FnoError as error:
            print("ERROR", error, flush=True)
    """)
    envs = [{**clean_env(FNO_COORDINATOR_ADDRESS=address, FNO_NUM_PROCESSES="2",
                         FNO_PROCESS_ID=str(i), FNO_INITIALIZATION_TIMEOUT="30"),
             "XLA_FLAGS": f"--xla_force_host_platform_device_count={i + 1}"}
            for i in range(2)]
    for rc, out in run_all(envs, code=code):
        assert rc == 0, out
        assert ("ERROR processes drive different numbers of devices "
                "(1 on process 0; 2 on process 1)") in out, out
