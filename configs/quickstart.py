"""python main.py --config=configs/quickstart.py --workdir=/tmp/fno_quickstart

The README's first run: the paper's model and recipe at s = 256 on a freshly generated
dataset of 1200 samples, shortened to 150 epochs (lr halved every 20) to fit a few minutes on
a 2-core CPU, with a zero-shot evaluation at s = 1024.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "scan"
    config.num_epochs = 150
    config.lr_decay_epochs = 20
    config.log_every_steps = 500
    config.eval_every_steps = 2500
    config.checkpoint_every_steps = 2500
    config.data.resolution = 256
    config.data.eval_resolutions = (1024,)
    config.data.generate.num_samples = 1200
    return config
