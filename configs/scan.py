"""python main.py --config=configs/scan.py --workdir=/tmp/fno_scan

Mode `scan`: One device, steps_per_call (K) training steps fused into one jit(lax.scan) call.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "scan"
    return config
