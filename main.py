"""Train a Fourier Neural Operator on 1D Burgers.

    python main.py --config=configs/mesh.py --workdir=/tmp/fno
    python main.py --config=configs/quickstart.py --workdir=/tmp/fno --config.mode=scan

This file is intentionally kept short: it parses flags, sets up logging and the distributed
runtime, and calls ``fno.train.train_and_evaluate``. User mistakes (bad config values, files,
checkpoints) end in a one-line error and exit status 1.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:arg]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from fno import distributed

    distributed.initialize()  # before any other JAX call
    import jax

    from fno import train
    from fno.errors import FnoError

    logging.info("JAX %s, process %d of %d, devices: %s", jax.__version__,
                 jax.process_index(), jax.process_count(), jax.devices())
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except FnoError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
