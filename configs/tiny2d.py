"""python main.py --config=configs/tiny2d.py --workdir=/tmp/fno_tiny2d --config.mode=mesh

configs/tiny.py for two grid axes: a seconds-long FNO-2D run on a small generated Darcy
dataset (33 x 33, trained at 17 x 17, evaluated also at 33 x 33), for tests and smoke checks.
"""

import ml_collections

from configs import darcy_quick, tiny


def get_config() -> ml_collections.ConfigDict:
    config = tiny.get_config()
    darcy_quick.darcy_data(config, num_samples=48, resolution=33)
    config.model.width = 8
    config.model.modes = 4
    config.data.resolution = 17
    config.data.eval_resolutions = (33,)
    return config
