"""python main.py --config=configs/ns_paper.py:2d --workdir=/tmp/fno_ns_2d
python main.py --config=configs/ns_paper.py:3d --workdir=/tmp/fno_ns_3d

The FNO paper's 2D Navier-Stokes experiment at viscosity 1e-3 with the released recipes,
on a freshly generated dataset (fno.data.navier_stokes: 1200 trajectories at 64 x 64,
snapshots every time unit to T = 50): the first 1000 for training, the last 200 for test.
As in the released ``NavierStokes_V1e-3_N5000_T50.mat`` (whose ``u`` starts at t = 1), the
input is the snapshots at t = 1..10 and the target the 40 after them.

* ``2d`` (``fourier_2d_time.py``): FNO-2D of the last 10 snapshots (width 20, 12 modes),
  rolled out autoregressively over the 40 steps with the loss summed over steps; batch 20.
* ``3d`` (``fourier_3d.py``): FNO-3D over (x, y, t) (width 20, 8 modes per axis, the time
  axis padded by 6), the 10 input snapshots repeated along t, with the point-wise
  normaliser; batch 10.

Both: Adam 1e-3 with coupled weight decay 1e-4, lr halved every 100 epochs, 500 epochs, the
per-sample errors summed over the batch (``LpLoss(size_average=False)``).
"""

import ml_collections

from configs import default
from fno.models.fno3d import RELEASED_TIME_PADDING


def navier_stokes_data(config: ml_collections.ConfigDict, num_samples: int,
                       final_time: float, input_steps: int, output_steps: int) -> None:
    """Point ``config`` at generated Navier-Stokes trajectories (viscosity 1e-3, 64 x 64)
    windowed as the released scripts do: the input from t = 1 (``first_step`` 1 skips the
    stored initial field, which the released ``u`` does not hold)."""
    config.data.name = "navier_stokes"  # data.generate follows: nu 1e-3, seed 0, 64 x 64
    config.data.generate.num_samples = num_samples
    config.data.generate.final_time = final_time
    config.data.resolution = 64
    config.data.eval_resolutions = ()
    config.data.first_step = 1
    config.data.input_steps = input_steps
    config.data.output_steps = output_steps


def get_config(model: str = "2d") -> ml_collections.ConfigDict:
    if model not in ("2d", "3d"):
        raise ValueError(f"configs/ns_paper.py:{model}: choose 2d or 3d")
    config = default.get_config()
    navier_stokes_data(config, num_samples=1200, final_time=50.0, input_steps=10,
                       output_steps=40)
    config.mode = "scan"
    config.loss_reduction = "sum"
    config.num_epochs = 500
    config.lr_decay_epochs = 100
    config.data.num_train = 1000
    config.data.num_test = 200
    config.model.width = 20
    if model == "2d":
        config.model.name = "fno2d"
        config.model.modes = 12
        config.batch_size = 20
    else:
        config.model.name = "fno3d"
        config.model.modes = 8
        config.model.time_padding = RELEASED_TIME_PADDING
        config.data.normalize = True
        config.batch_size = 10
    config.log_every_steps = 500
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 2500
    return config
