"""python main.py --config=configs/tiny.py --workdir=/tmp/fno_tiny --config.mode=mesh_scan

A seconds-long run for tests and smoke checks: a small model on a small generated dataset.
Numbers are chosen so that K, the log/eval/checkpoint intervals and the test batch do not
divide each other (every boundary case of the loop runs).
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "basic"
    config.batch_size = 8
    config.steps_per_call = 3
    config.num_train_steps = 12
    config.log_every_steps = 4
    config.eval_every_steps = 6
    config.checkpoint_every_steps = 5
    config.num_plot_samples = 2
    config.data.num_train = 32
    config.data.num_test = 12
    config.data.resolution = 64
    config.data.eval_resolutions = (128,)
    config.data.generate.num_samples = 48
    config.data.generate.resolution = 128
    config.model.width = 8
    config.model.modes = 4
    config.model.num_layers = 2
    config.model.projection_width = 16
    return config
