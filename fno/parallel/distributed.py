"""Multi-process runtime: decide how to call ``jax.distributed.initialize``, then call it.

``main.py`` calls :func:`initialize` before any other JAX call: JAX refuses to join a
distributed runtime once its backend exists (even ``jax.devices()`` creates it). The decision
itself lives in :func:`plan`, a pure function of the environment (and of whether the host has
TPU chips), so it is unit-testable without starting JAX. After :func:`initialize`, call
:func:`check_local_device_counts`.

Environment variables, highest precedence first:

``FNO_DISTRIBUTED``
    ``off`` (or ``0``/``none``/``false``): never initialise; run as a single process even
    inside a SLURM step or on a TPU pod. ``auto``: call ``jax.distributed.initialize()``
    without coordinates and let JAX detect the cluster (Cloud TPU metadata, SLURM, Open MPI);
    ``launch/tpu_pod.sh`` sets it because on TPU VMs the worker list is only in the metadata
    server, which this module deliberately does not query. Unset or empty: the rules below.
``FNO_COORDINATOR_ADDRESS``, ``FNO_NUM_PROCESSES``, ``FNO_PROCESS_ID``
    Explicit coordinates (``host:port``, process count, this process's id in
    ``[0, FNO_NUM_PROCESSES)``), all three or none; ``launch/local.sh`` sets them. Cluster
    auto-detection is switched off in this mode, so an ambient SLURM/MPI environment cannot
    override (or restrict the devices of) an explicit launch.
``FNO_LOCAL_DEVICE_IDS``
    Optional comma list of GPU ordinals (``0,1,2,3``) this process drives; the ordinals are
    counted after ``CUDA_VISIBLE_DEVICES`` has hidden devices. Applies in every multi-process
    mode and replaces the SLURM layout rules below. JAX applies ``local_device_ids`` to CUDA
    and ROCm devices only, so on a TPU host (TPU environment variables, or TPU chips on the
    PCI bus) it is an error: libtpu chooses chips from ``TPU_VISIBLE_CHIPS`` (with
    ``TPU_CHIPS_PER_PROCESS_BOUNDS`` and ``TPU_PROCESS_BOUNDS``). A single process ignores
    it (with a warning): hide GPUs with ``CUDA_VISIBLE_DEVICES`` there.
``FNO_INITIALIZATION_TIMEOUT``
    Seconds to wait for all processes to join (JAX default 300). Lower it so a missing peer
    fails the job instead of idling a whole allocation.
``FNO_HEARTBEAT_TIMEOUT``
    Seconds without a heartbeat after which a peer is declared dead and every process is
    stopped (JAX default 100).
``FNO_SHUTDOWN_TIMEOUT``
    Seconds a finishing process waits at the exit barrier for the others (JAX default 300).

Auto-detection when none of the above selects a mode:

* **SLURM step** with ``SLURM_NTASKS`` > 1 (``SLURM_JOB_ID``, ``SLURM_STEP_NODELIST``,
  ``SLURM_PROCID`` and ``SLURM_LOCALID`` present, i.e. launched by ``srun``): JAX's SLURM
  detection finds the coordinator (the step's first node; its port comes from the job id
  unless ``JAX_COORDINATOR_PORT`` is set), the process count and id. Left alone, JAX would
  also give every process the single GPU numbered ``SLURM_LOCALID``, which is only right for
  one task per GPU, so this module picks ``local_device_ids`` from the layout, the same way
  on every task (``pmap`` and the meshes need the same number of devices on every process):

  - one task on the node: all the GPUs it sees (``CUDA_VISIBLE_DEVICES``, else
    ``SLURM_GPUS_ON_NODE``/``SLURM_GPUS_PER_NODE``);
  - each task bound to its own GPUs (``--gpus-per-task=N`` or ``--gpu-bind``: SLURM lists
    just the task's GPUs in ``CUDA_VISIBLE_DEVICES``, ``0,1`` on every task under device
    cgroups, else e.g. ``2,3``; JAX numbers them from 0 either way; recognised by
    ``SLURM_GPUS_PER_TASK`` GPUs, or fewer than the step's ``SLURM_GPUS_ON_NODE``): all the
    GPUs the task sees, on every task;
  - every task sees all the node's GPUs: one GPU each (JAX's choice) when there are as many
    tasks as GPUs, else an equal contiguous share, ``SLURM_LOCALID * k`` to
    ``SLURM_LOCALID * k + k - 1`` for ``k`` = ``SLURM_GPUS_PER_TASK`` or GPUs / tasks;
  - anything else (tasks that would share GPUs or get unequal shares, e.g. 3 tasks on 4
    GPUs): a one-line error saying how to fix the job.

  Tasks per node come from ``SLURM_STEP_TASKS_PER_NODE`` (or ``SLURM_NTASKS_PER_NODE``,
  ``SLURM_TASKS_PER_NODE``, tasks / nodes). Without any GPU count JAX decides (with a warning
  for one task per node). A multi-task allocation outside ``srun`` (e.g. ``python main.py``
  typed in ``salloc``) runs single-process, with a warning. Whatever the rules decide,
  :func:`check_local_device_counts` verifies after initialisation that all processes drive
  the same number of devices.
* **Cloud TPU pod** (``TPU_WORKER_HOSTNAMES``/``TPU_PROCESS_ADDRESSES`` with more than one
  host, ``MEGASCALE_COORDINATOR_ADDRESS``, ``MEGASCALE_NUM_SLICES`` > 1 or
  ``CLOUD_TPU_TASK_ID``): ``jax.distributed.initialize()`` without arguments.
* Anything else, notably a single host: nothing happens.

Bad values raise :class:`fno.errors.FnoError` with a one-line message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging

from fno.errors import FnoError

_OFF = frozenset({"off", "0", "none", "false", "no"})
_EXPLICIT = ("FNO_COORDINATOR_ADDRESS", "FNO_NUM_PROCESSES", "FNO_PROCESS_ID")
_TIMEOUTS = {
    "FNO_INITIALIZATION_TIMEOUT": "initialization_timeout",
    "FNO_HEARTBEAT_TIMEOUT": "heartbeat_timeout_seconds",
    "FNO_SHUTDOWN_TIMEOUT": "shutdown_timeout_seconds",
}
# What ``srun`` sets and JAX's SLURM detection reads; without them JAX cannot find the peers.
_SLURM_STEP = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID")


def _int(environ: Mapping[str, str], name: str, minimum: int) -> int:
    """``environ[name]`` as an int >= ``minimum``, or a one-line FnoError naming the variable."""
    raw = environ[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise FnoError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise FnoError(f"{name}={value} must be >= {minimum}")
    return value


def _device_ids(environ: Mapping[str, str], name: str) -> list[int]:
    """Parse a comma list of device ordinals such as ``"0,1,2,3"``."""
    raw = environ[name]
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise FnoError(f"{name}={raw!r} is not a comma-separated list of integers") from None
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise FnoError(f"{name}={raw!r} must list distinct non-negative device ids")
    return ids


def _timeouts(environ: Mapping[str, str]) -> dict[str, int]:
    return {kwarg: _int(environ, name, 1)
            for name, kwarg in _TIMEOUTS.items() if environ.get(name, "").strip()}


def _explicit(environ: Mapping[str, str]) -> dict[str, Any]:
    missing = [name for name in _EXPLICIT if not environ.get(name, "").strip()]
    if missing:
        given = [name for name in _EXPLICIT if name not in missing]
        raise FnoError(f"{', '.join(given)} set but {', '.join(missing)} missing: "
                       f"set all of {', '.join(_EXPLICIT)} or none")
    address = environ["FNO_COORDINATOR_ADDRESS"].strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FnoError(f"FNO_COORDINATOR_ADDRESS={address!r} is not host:port")
    num_processes = _int(environ, "FNO_NUM_PROCESSES", 1)
    process_id = _int(environ, "FNO_PROCESS_ID", 0)
    if process_id >= num_processes:
        raise FnoError(f"FNO_PROCESS_ID={process_id} out of range for "
                       f"FNO_NUM_PROCESSES={num_processes}")
    return {"coordinator_address": address, "num_processes": num_processes,
            "process_id": process_id, "cluster_detection_method": "deactivate"}


def _gres_count(value: str) -> int | None:
    """The GPU count in a SLURM GRES value, None when there is none.

    ``SLURM_GPUS_PER_NODE``/``SLURM_GPUS_PER_TASK`` may carry types and socket lists:
    ``"4"``, ``"a100:4"``, ``"gpu:h100:4(S:0-1)"``, ``"volta:3,kepler:1"`` (summed).
    """
    total = None
    for part in re.sub(r"\([^)]*\)", "", value).split(","):
        match = re.search(r"(\d+)$", part.strip())
        if match:
            total = (total or 0) + int(match.group(1))
    return total


def _visible_gpus(environ: Mapping[str, str]) -> int | None:
    """GPUs listed in ``CUDA_VISIBLE_DEVICES``; None when it is unset or SLURM's NoDevFiles."""
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not visible or visible == "NoDevFiles":
        return None
    return len([v for v in visible.split(",") if v.strip()])


def _node_gpus(environ: Mapping[str, str]) -> int | None:
    """GPUs of the step on this node, from SLURM; None when SLURM does not say."""
    for name in ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"):
        count = _gres_count(environ.get(name, ""))
        if count is not None:
            return count
    return None


def _tasks_on_node(environ: Mapping[str, str], ntasks: int, nnodes: int | None) -> int | None:
    """Tasks of this step on this node; None when the environment does not tell.

    ``SLURM_STEP_TASKS_PER_NODE`` (set by ``srun`` for its step) lists the counts node by node,
    compressed: ``"4(x2)"`` or ``"2(x3),1"``; ``SLURM_NODEID`` picks this node's entry when
    the counts differ.
    """
    for name in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        counts: list[int] = []
        for part in raw.split(","):
            match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
            if not match:
                raise FnoError(f"{name}={raw!r} is not a SLURM task count list such as '4(x2)'")
            counts += [int(match.group(1))] * int(match.group(2) or 1)
        if len(set(counts)) == 1:
            return counts[0]
        node = environ.get("SLURM_NODEID", "").strip()
        if node.isdigit() and int(node) < len(counts):
            return counts[int(node)]
        return None
    if nnodes and ntasks % nnodes == 0:
        return ntasks // nnodes
    return None


def _slurm_device_ids(environ: Mapping[str, str], ntasks: int,
                      nnodes: int | None) -> list[int] | None:
    """GPU ordinals for this task, or None to keep JAX's choice (GPU number SLURM_LOCALID).

    Every task evaluates the same rules on the same kind of environment, so all of them end
    up with the same number of GPUs or all of them stop with the same error.
    """
    tasks = _tasks_on_node(environ, ntasks, nnodes)
    local_id = _int(environ, "SLURM_LOCALID", 0)
    visible = _visible_gpus(environ)
    node = _node_gpus(environ)
    per_task = _gres_count(environ.get("SLURM_GPUS_PER_TASK", ""))
    fix = ("bind each task to its own GPUs (srun --gpus-per-task=N), run one task per GPU or "
           "one per node, or set FNO_LOCAL_DEVICE_IDS")

    if tasks == 1:
        gpus = visible if visible is not None else node
        if gpus is None:
            logging.warning("SLURM: one task per node but the node's GPU count is unknown "
                            "(no CUDA_VISIBLE_DEVICES/SLURM_GPUS_ON_NODE); JAX will give each "
                            "process one GPU; set FNO_LOCAL_DEVICE_IDS to use more")
            return None
        return list(range(gpus))

    # SLURM bound the task to its own GPUs when it sees exactly its --gpus-per-task, fewer
    # than the step has on the node, or (no node count) fewer than one per task on the node.
    if visible is not None and (visible == per_task
                                or (node is not None and visible < node)
                                or (node is None and tasks is not None and visible < tasks)):
        if node is not None and tasks is not None:
            if visible * tasks > node:
                raise FnoError(
                    f"SLURM: task {local_id} sees {visible} GPUs (CUDA_VISIBLE_DEVICES) but "
                    f"{tasks} tasks share the node's {node} GPUs, so tasks would share GPUs; "
                    f"{fix}")
            if visible * tasks < node:
                logging.warning("SLURM: %d tasks x %d GPUs leave %d of the node's %d GPUs idle",
                                tasks, visible, node - visible * tasks, node)
        return list(range(visible))

    # Every task sees all the GPUs of the node.
    gpus = visible if visible is not None else node
    if gpus is None:
        return None  # nothing says there are GPUs: JAX's default
    if tasks is None:
        if local_id >= gpus:
            raise FnoError(f"SLURM: task {local_id} of its node sees only {gpus} GPUs and the "
                           f"number of tasks per node is unknown; {fix}")
        return None
    share = per_task if per_task is not None else (gpus // tasks if gpus % tasks == 0 else None)
    if share is None or share < 1 or share * tasks != gpus:
        raise FnoError(f"SLURM: {tasks} tasks on a node with {gpus} GPUs"
                       f"{f' and --gpus-per-task={per_task}' if per_task is not None else ''} "
                       f"cannot each drive an equal share of the GPUs; {fix}")
    if share == 1:
        return None  # one task per GPU: JAX already picks GPU number SLURM_LOCALID
    return list(range(local_id * share, (local_id + 1) * share))


def _slurm(environ: Mapping[str, str], ntasks: int,
           devices_given: bool) -> dict[str, Any] | None:
    missing = [name for name in _SLURM_STEP if name not in environ]
    if missing:
        logging.warning("SLURM allocation with %d tasks but not inside an srun step (%s unset): "
                        "running as a single process; launch with srun to use all tasks",
                        ntasks, ", ".join(missing))
        return None
    nnodes = next((_int(environ, name, 1) for name in
                   ("SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES")
                   if environ.get(name, "").strip()), None)
    kwargs: dict[str, Any] = {"cluster_detection_method": "slurm"}
    if not devices_given:  # FNO_LOCAL_DEVICE_IDS replaces the layout rules
        device_ids = _slurm_device_ids(environ, ntasks, nnodes)
        if device_ids is not None:
            kwargs["local_device_ids"] = device_ids
    return kwargs


def _tpu_pod(environ: Mapping[str, str]) -> bool:
    for name in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
        if len([h for h in environ.get(name, "").split(",") if h.strip()]) > 1:
            return True
    slices = environ.get("MEGASCALE_NUM_SLICES", "").strip()
    return (bool(environ.get("MEGASCALE_COORDINATOR_ADDRESS", "").strip())
            or (slices.isdigit() and int(slices) > 1)
            or bool(environ.get("CLOUD_TPU_TASK_ID", "").strip()))


# Set on TPU hosts (GKE, queued resources, multi-process launches); any one means "TPU here".
_TPU_VARIABLES = ("TPU_WORKER_ID", "TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES",
                  "TPU_ACCELERATOR_TYPE", "TPU_VISIBLE_CHIPS", "TPU_PROCESS_BOUNDS",
                  "TPU_CHIPS_PER_PROCESS_BOUNDS", "CLOUD_TPU_TASK_ID",
                  "MEGASCALE_COORDINATOR_ADDRESS", "MEGASCALE_NUM_SLICES")


def _tpu_env(environ: Mapping[str, str]) -> bool:
    """Whether the environment says this is a TPU host (pod or single host)."""
    platforms = environ.get("JAX_PLATFORMS", "").lower().split(",")
    return ("tpu" in [p.strip() for p in platforms]
            or any(environ.get(name, "").strip() for name in _TPU_VARIABLES))


def plan(environ: Mapping[str, str], *, on_tpu: bool = False) -> dict[str, Any] | None:
    """Keyword arguments for ``jax.distributed.initialize``, or None for a single process.

    An empty dict means "call it with no arguments" (JAX auto-detection): test with
    ``is None``, not truthiness. ``on_tpu`` says TPU chips were found on this host (a stock
    Cloud TPU VM exports no TPU variables); :func:`initialize` probes for them. See the
    module docstring for the rules.
    """
    mode = environ.get("FNO_DISTRIBUTED", "").strip().lower()
    explicit = any(environ.get(name, "").strip() for name in _EXPLICIT)
    if mode in _OFF:
        if explicit:
            raise FnoError(f"FNO_DISTRIBUTED={mode} contradicts {', '.join(_EXPLICIT)}")
    elif mode not in ("", "auto"):
        raise FnoError(f"FNO_DISTRIBUTED={mode!r} must be 'auto' or 'off' (or unset)")
    elif mode == "auto" and explicit:
        raise FnoError(f"FNO_DISTRIBUTED=auto contradicts {', '.join(_EXPLICIT)}")
    devices_given = bool(environ.get("FNO_LOCAL_DEVICE_IDS", "").strip())
    if devices_given and (on_tpu or _tpu_env(environ)):
        # jax.distributed.initialize turns local_device_ids into jax_cuda_visible_devices
        # and jax_rocm_visible_devices only; the TPU runtime would silently use every chip.
        raise FnoError(f"FNO_LOCAL_DEVICE_IDS={environ['FNO_LOCAL_DEVICE_IDS'].strip()!r} has "
                       "no effect on TPU: unset it and choose chips with TPU_VISIBLE_CHIPS "
                       "(with TPU_CHIPS_PER_PROCESS_BOUNDS and TPU_PROCESS_BOUNDS), which "
                       "libtpu reads")

    kwargs: dict[str, Any] | None
    if mode in _OFF:
        kwargs = None
    elif explicit:
        kwargs = _explicit(environ)
    elif mode == "auto" or _tpu_pod(environ):
        kwargs = {}
    elif environ.get("SLURM_JOB_ID") and environ.get("SLURM_NTASKS", "").strip():
        ntasks = _int(environ, "SLURM_NTASKS", 1)
        kwargs = _slurm(environ, ntasks, devices_given) if ntasks > 1 else None
    else:
        kwargs = None
    if kwargs is None:
        if devices_given:
            logging.warning("FNO_LOCAL_DEVICE_IDS is ignored by a single process; hide GPUs "
                            "with CUDA_VISIBLE_DEVICES instead")
        return None
    if devices_given:
        kwargs["local_device_ids"] = _device_ids(environ, "FNO_LOCAL_DEVICE_IDS")
    kwargs.update(_timeouts(environ))
    return kwargs


def _tpu_chips_present() -> bool:
    """Whether this host has TPU chips, by the PCI scan JAX itself uses (no backend is made)."""
    try:
        from jax._src import hardware_utils

        chips, _ = hardware_utils.num_available_tpu_chips_and_device_id()
    except Exception:  # a private JAX helper: if it moves, fall back to the environment
        return False
    return chips > 0


def initialize() -> None:
    """Join the distributed runtime when this process is one of several; else do nothing.

    Must run before any other JAX call (JAX cannot add a distributed client to an existing
    backend). Calling it again in the same process is a no-op, so tests and notebooks can
    call it freely.
    """
    on_tpu = bool(os.environ.get("FNO_LOCAL_DEVICE_IDS", "").strip()) and _tpu_chips_present()
    kwargs = plan(os.environ, on_tpu=on_tpu)
    if kwargs is None:
        logging.info("fno.parallel.distributed: single process (no multi-process "
                     "environment found)")
        return
    import jax

    if jax.distributed.is_initialized():
        logging.info("fno.parallel.distributed: already initialised")
        return
    logging.info("fno.parallel.distributed: jax.distributed.initialize(%s)",
                 ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "<auto-detect>")
    jax.distributed.initialize(**kwargs)


def device_count_error(counts: Sequence[int]) -> str | None:
    """A one-line message naming the processes when ``counts[i]`` (devices of process ``i``)
    differ, else None. Unequal counts make ``pmap`` average unequal shards and break every
    mesh of shape (processes, devices per process)."""
    if len(set(counts)) <= 1:
        return None
    groups: dict[int, list[int]] = {}
    for process, count in enumerate(counts):
        groups.setdefault(count, []).append(process)

    def ids(processes: list[int]) -> str:
        shown = ",".join(map(str, processes[:8]))
        return shown + (f",... ({len(processes)} processes)" if len(processes) > 8 else "")

    parts = "; ".join(f"{count} on process{'es' if len(ps) > 1 else ''} {ids(ps)}"
                      for count, ps in sorted(groups.items()))
    return (f"processes drive different numbers of devices ({parts}); every process must "
            "drive the same number: check the GPU binding (srun --gpus-per-task, "
            "CUDA_VISIBLE_DEVICES) or FNO_LOCAL_DEVICE_IDS")


def check_local_device_counts() -> None:
    """Raise FnoError on every process when the processes drive different numbers of devices.

    Call it right after :func:`initialize`. It needs no collective: after initialisation
    every process sees all devices of all processes (``jax.devices()``, each with its
    ``process_index``), so each process computes the same counts and all raise together
    instead of some entering a collective that the others never join. (A gather such as
    ``multihost_utils.process_allgather`` is no way to detect the problem: it builds a mesh
    of shape (processes, local devices) and fails, on some processes only, exactly when the
    counts differ.)
    """
    import jax

    if jax.process_count() == 1:
        return
    counts = [0] * jax.process_count()
    for device in jax.devices():
        counts[device.process_index] += 1
    message = device_count_error(counts)
    if message is not None:
        raise FnoError(message)
