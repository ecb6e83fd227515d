"""python main.py --config=configs/pmap_scan.py --workdir=/tmp/fno_pmap_scan

Mode `pmap_scan`: Legacy data parallelism with K steps fused by lax.scan inside pmap.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "pmap_scan"
    return config
