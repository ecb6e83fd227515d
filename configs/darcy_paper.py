"""python main.py --config=configs/darcy_paper.py:85 --workdir=/tmp/fno_darcy_85

The FNO paper's 2D Darcy flow experiment at the resolution given after the colon (85, 141,
211 or 421: every 5th, 3rd, 2nd or 1st point of the 421 grid), with the released
``fourier_2d.py`` recipe: 1100 samples generated at 421 x 421, the first 1000 for training
and the last 100 held out for test, 500 epochs, batch 20, Adam 1e-3 with coupled weight
decay 1e-4, lr halved every 100 epochs, the per-sample relative L2 errors summed over the
batch (the released ``LpLoss(size_average=False)``), the point-wise normaliser, width 32 and
12 modes in each direction. The other three resolutions are evaluated zero-shot.
"""

import ml_collections

from configs import darcy_quick, default

RESOLUTIONS = (85, 141, 211, 421)


def get_config(resolution: str = "85") -> ml_collections.ConfigDict:
    config = default.get_config()
    darcy_quick.darcy_data(config, num_samples=1100)
    config.mode = "scan"
    config.loss_reduction = "sum"
    config.num_epochs = 500
    config.lr_decay_epochs = 100
    config.data.num_train = 1000
    config.data.num_test = 100
    config.data.resolution = int(resolution)
    config.data.eval_resolutions = tuple(r for r in RESOLUTIONS if r != int(resolution))
    config.log_every_steps = 500
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 2500
    return config
