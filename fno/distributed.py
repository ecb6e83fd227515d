"""Multi-process runtime: ``jax.distributed.initialize`` before any other JAX call."""

from __future__ import annotations

import os

from absl import logging


def initialize() -> None:
    """Initialise JAX's distributed runtime when this process is one of several.

    Single-host runs do nothing. Multi-process runs are recognised from the environment:
    ``FNO_COORDINATOR_ADDRESS``, ``FNO_NUM_PROCESSES`` and ``FNO_PROCESS_ID`` (set by
    ``launch/local.sh``); Cloud TPU pods and SLURM jobs are auto-detected by JAX.
    """
    import jax

    address = os.environ.get("FNO_COORDINATOR_ADDRESS")
    if address:
        num = int(os.environ["FNO_NUM_PROCESSES"])
        pid = int(os.environ["FNO_PROCESS_ID"])
        logging.info("jax.distributed.initialize(%s, num_processes=%d, process_id=%d)",
                     address, num, pid)
        jax.distributed.initialize(coordinator_address=address, num_processes=num,
                                   process_id=pid)
