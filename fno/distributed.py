"""Multi-process runtime: decide how to call ``jax.distributed.initialize``, then call it.

``main.py`` calls :func:`initialize` before any other JAX call: JAX refuses to join a
distributed runtime once its backend exists (even ``jax.devices()`` creates it). The decision
itself lives in :func:`plan`, a pure function of the environment, so it is unit-testable
without starting JAX.

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
    Optional comma list of device ordinals (``0,1,2,3``) this process drives; the ordinals are
    counted after ``CUDA_VISIBLE_DEVICES`` has hidden devices. Applies in every mode.
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
  detection, which gives each process only the GPU numbered ``SLURM_LOCALID``. That is right
  for one task per GPU but wastes all but one GPU with one task per node, so when
  ``SLURM_NTASKS`` equals the number of nodes (or ``SLURM_NTASKS_PER_NODE`` is 1) this module
  passes ``local_device_ids`` = every GPU of the node (counted from ``CUDA_VISIBLE_DEVICES``,
  ``SLURM_GPUS_ON_NODE`` or ``SLURM_GPUS_PER_NODE``). Likewise when SLURM already bound each
  task to its own GPUs (``CUDA_VISIBLE_DEVICES`` lists fewer devices than ``SLURM_LOCALID``
  needs), the task drives all the GPUs it can see instead of asking for one it cannot. The
  coordinator is the step's first node; its port comes from the job id unless
  ``JAX_COORDINATOR_PORT`` is set. A multi-task allocation outside ``srun`` (e.g. ``python
  main.py`` typed in ``salloc``) runs single-process, with a warning.
* **Cloud TPU pod** (``TPU_WORKER_HOSTNAMES``/``TPU_PROCESS_ADDRESSES`` with more than one
  host, ``MEGASCALE_COORDINATOR_ADDRESS``, ``MEGASCALE_NUM_SLICES`` > 1 or
  ``CLOUD_TPU_TASK_ID``): ``jax.distributed.initialize()`` without arguments.
* Anything else, notably a single host: nothing happens.

Bad values raise :class:`fno.errors.FnoError` with a one-line message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
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


def _count_gpus(environ: Mapping[str, str]) -> int | None:
    """GPUs this process can see, from what SLURM/CUDA export; None when nothing says."""
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible and visible != "NoDevFiles":
        return len([v for v in visible.split(",") if v.strip()])
    for name in ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"):
        # SLURM_GPUS_PER_NODE may carry a type: "4", "a100:4", "gpu:a100:4(S:0-1)".
        match = re.search(r"(\d+)(\(.*\))?$", environ.get(name, "").strip())
        if match:
            return int(match.group(1))
    return None


def _slurm(environ: Mapping[str, str], ntasks: int) -> dict[str, Any] | None:
    missing = [name for name in _SLURM_STEP if name not in environ]
    if missing:
        logging.warning("SLURM allocation with %d tasks but not inside an srun step (%s unset): "
                        "running as a single process; launch with srun to use all tasks",
                        ntasks, ", ".join(missing))
        return None
    nnodes = next((_int(environ, name, 1) for name in
                   ("SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES")
                   if environ.get(name, "").strip()), None)
    per_node = environ.get("SLURM_NTASKS_PER_NODE", "").strip() == "1" or ntasks == nnodes
    local_id = _int(environ, "SLURM_LOCALID", 0)
    gpus = _count_gpus(environ)
    kwargs: dict[str, Any] = {"cluster_detection_method": "slurm"}
    if per_node:
        if gpus is None:
            logging.warning("SLURM: one task per node but the node's GPU count is unknown "
                             "(no CUDA_VISIBLE_DEVICES/SLURM_GPUS_ON_NODE); JAX will give each "
                             "process one GPU; set FNO_LOCAL_DEVICE_IDS to use more")
        else:
            kwargs["local_device_ids"] = list(range(gpus))
    elif gpus is not None and "CUDA_VISIBLE_DEVICES" in environ and local_id >= gpus:
        # JAX would ask for GPU number SLURM_LOCALID, which this task cannot see.
        kwargs["local_device_ids"] = list(range(gpus))
    return kwargs


def _tpu_pod(environ: Mapping[str, str]) -> bool:
    for name in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
        if len([h for h in environ.get(name, "").split(",") if h.strip()]) > 1:
            return True
    slices = environ.get("MEGASCALE_NUM_SLICES", "").strip()
    return (bool(environ.get("MEGASCALE_COORDINATOR_ADDRESS", "").strip())
            or (slices.isdigit() and int(slices) > 1)
            or bool(environ.get("CLOUD_TPU_TASK_ID", "").strip()))


def plan(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """Keyword arguments for ``jax.distributed.initialize``, or None for a single process.

    An empty dict means "call it with no arguments" (JAX auto-detection): test with
    ``is None``, not truthiness. See the module docstring for the rules.
    """
    mode = environ.get("FNO_DISTRIBUTED", "").strip().lower()
    explicit = any(environ.get(name, "").strip() for name in _EXPLICIT)
    if mode in _OFF:
        if explicit:
            raise FnoError(f"FNO_DISTRIBUTED={mode} contradicts {', '.join(_EXPLICIT)}")
        return None
    if mode not in ("", "auto"):
        raise FnoError(f"FNO_DISTRIBUTED={mode!r} must be 'auto' or 'off' (or unset)")
    if mode == "auto" and explicit:
        raise FnoError(f"FNO_DISTRIBUTED=auto contradicts {', '.join(_EXPLICIT)}")

    kwargs: dict[str, Any] | None
    if explicit:
        kwargs = _explicit(environ)
    elif mode == "auto" or _tpu_pod(environ):
        kwargs = {}
    elif environ.get("SLURM_JOB_ID") and environ.get("SLURM_NTASKS", "").strip():
        ntasks = _int(environ, "SLURM_NTASKS", 1)
        kwargs = _slurm(environ, ntasks) if ntasks > 1 else None
    else:
        kwargs = None
    if kwargs is None:
        return None
    if environ.get("FNO_LOCAL_DEVICE_IDS", "").strip():
        kwargs["local_device_ids"] = _device_ids(environ, "FNO_LOCAL_DEVICE_IDS")
    kwargs.update(_timeouts(environ))
    return kwargs


def initialize() -> None:
    """Join the distributed runtime when this process is one of several; else do nothing.

    Must run before any other JAX call (JAX cannot add a distributed client to an existing
    backend). Calling it again in the same process is a no-op, so tests and notebooks can
    call it freely.
    """
    kwargs = plan(os.environ)
    if kwargs is None:
        logging.info("fno.distributed: single process (no multi-process environment found)")
        return
    import jax

    if jax.distributed.is_initialized():
        logging.info("fno.distributed: already initialised")
        return
    logging.info("fno.distributed: jax.distributed.initialize(%s)",
                 ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "<auto-detect>")
    jax.distributed.initialize(**kwargs)
