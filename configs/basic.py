"""python main.py --config=configs/basic.py --workdir=/tmp/fno_basic

Mode `basic`: One device, one jitted training step per Python iteration.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "basic"
    return config
