"""python main.py --config=configs/ns_quick.py --workdir=/tmp/fno_ns

The README's time-dependent first run: Navier-Stokes at viscosity 1e-3 (fno.data.navier_stokes)
on a freshly generated small dataset (120 trajectories at 64 x 64 to T = 20), trained at
32 x 32 (every 2nd point) with the released FNO-2D-in-time recipe shrunk to a few minutes on a
2-core CPU: 10 snapshots in (t = 1..10), rolled out autoregressively inside the compiled step
over the next 10, width 20 and 8 modes, 100 training and 20 test trajectories, 30 epochs.
The evaluation writes the error of every rollout step and an animation of one rollout.
"""

import ml_collections

from configs import default, ns_paper


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    ns_paper.navier_stokes_data(config, num_samples=120, final_time=20.0, input_steps=10,
                                output_steps=10)
    config.mode = "scan"
    config.model.name = "fno2d"
    config.model.width = 20
    config.model.modes = 8
    config.data.resolution = 32
    config.data.num_train = 100
    config.data.num_test = 20
    config.batch_size = 10
    config.num_epochs = 30
    config.lr_decay_epochs = 10
    config.log_every_steps = 50
    config.eval_every_steps = 150
    config.checkpoint_every_steps = 150
    return config
