"""python main.py --config=configs/darcy_quick.py --workdir=/tmp/fno_darcy

The README's 2D first run: the paper's FNO-2D (width 32, 12 modes in each direction, 4
layers) on Darcy flow, with the released code's point-wise normaliser, on a freshly
generated dataset of 250 samples at 421 x 421. Trained at s = 85 (every 5th point, as the
paper) on 200 samples for 40 epochs (lr halved every 10) to fit a few minutes on a 2-core
CPU, and evaluated zero-shot at s = 141 (every 3rd point).
"""

import ml_collections

from configs import default


def darcy_data(config: ml_collections.ConfigDict, num_samples: int,
               resolution: int = 421) -> None:
    """Point ``config`` at generated Darcy flow (fno.data.darcy) with the paper's psi = 12/3
    and the released code's normaliser; the model becomes the paper's FNO-2D."""
    config.data.name = "darcy"  # data.generate follows: seed 0, a_pos 12, a_neg 3
    config.data.normalize = True
    config.data.generate.num_samples = num_samples
    config.data.generate.resolution = resolution
    config.model.name = "fno2d"
    config.model.width = 32
    config.model.modes = 12


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    darcy_data(config, num_samples=250)
    config.mode = "scan"
    config.num_epochs = 40
    config.lr_decay_epochs = 10
    config.log_every_steps = 50
    config.eval_every_steps = 400
    config.checkpoint_every_steps = 200
    config.data.num_train = 200
    config.data.num_test = 50
    config.data.resolution = 85
    config.data.eval_resolutions = (141,)
    return config
