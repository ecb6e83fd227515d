"""python main.py --config=configs/pmap.py --workdir=/tmp/fno_pmap

Mode `pmap`: Legacy data parallelism: one pmapped step per iteration over all devices.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "pmap"
    return config
