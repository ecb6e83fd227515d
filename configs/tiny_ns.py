"""python main.py --config=configs/tiny_ns.py --workdir=/tmp/fno_tiny_ns --config.mode=mesh

configs/tiny.py for a time-dependent problem: a seconds-long FNO-2D rollout on a small
generated Navier-Stokes dataset (32 x 32, trained at 16 x 16, 2 snapshots in, 3 rolled out),
for tests and smoke checks. ``--config.model.name=fno3d`` trains the space-time model on it.
"""

import ml_collections

from configs import ns_paper, tiny


def get_config() -> ml_collections.ConfigDict:
    config = tiny.get_config()
    ns_paper.navier_stokes_data(config, num_samples=48, final_time=6.0, input_steps=2,
                                output_steps=3)
    config.data.generate.resolution = 32
    config.data.resolution = 16
    config.data.eval_resolutions = (32,)
    config.model.name = "fno2d"
    config.model.modes = 4
    config.model.time_padding = 5  # FNO-3D: 3 steps + 5 >= 2 * modes along time
    return config
