"""Apply a trained model to new inputs.

    python -m fno.inference.predict --workdir=W --input=u0.npy --output=u1.npy [--resolution=S]
        [--step=N] [--input_key=a] [--output_key=u] [--batch_size=64] [--steps=K]
        [--overwrite]

Inputs ``[N, *grid]`` or one sample ``[*grid]`` (a trailing channel axis for a model with
several input channels) from ``.npy``, ``.npz``, ``.mat`` or ``.h5``; predictions are
written in the output's format at the input's resolution (an FNO is resolution-free) or, with
``--resolution``, on the input's subgrid of that size. The checkpoint carries the config and
the data normaliser (fno.inference.trained), so nothing else is passed. A time-dependent
model takes the first snapshots as channels (``[N, *grid, input_steps]``) and writes
``--steps`` predicted snapshots (default: as many as it trained on).
"""

from __future__ import annotations

import numpy as np
from absl import flags

from fno import cli

flags.DEFINE_string("workdir", None, "Training workdir (its latest checkpoint is used).")
flags.DEFINE_string("input", None, "Input file: .npy, .npz, .mat or .h5.")
flags.DEFINE_string("output", None, "Output file (format from its suffix).")
flags.DEFINE_integer("resolution", None, "Predict on the input's subgrid of this many points "
                     "per axis (default: the input's resolution).", lower_bound=1)
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_string("input_key", None, "Array name in .npz/.mat/.h5 inputs (default: 'a', "
                    "or the file's only array).")
flags.DEFINE_string("output_key", "u", "Array name in .npz/.mat/.h5 outputs.")
flags.DEFINE_integer("batch_size", 64, "Samples per compiled call.", lower_bound=1)
flags.DEFINE_integer("steps", None, "Time-dependent models: snapshots to predict (default: "
                     "the trained output_steps).", lower_bound=1)
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
flags.mark_flags_as_required(["workdir", "input", "output"])
FLAGS = flags.FLAGS


def subsample(x: np.ndarray, batched: bool, grid_rank: int, resolution: int, grid: str,
              path: str) -> np.ndarray:
    """``x`` on its subgrid of ``resolution`` points per grid axis (fno.data.sources rules:
    every r-th point of a periodic grid, both ends kept on a vertex grid)."""
    from fno.data import checks
    from fno.errors import FnoError

    index: list[slice] = [slice(None)] * batched
    for size in x.shape[batched:batched + grid_rank]:
        try:
            step, _ = checks.subsample_step(path, size, resolution, grid)
        except checks.DataError as e:
            raise FnoError(f"--resolution: {e}") from e
        index.append(slice(None, None, step))
    return x[tuple(index)]


def main() -> None:
    from fno.errors import FnoError
    from fno.inference import trained
    from fno.storage import array_io

    output = array_io.check_writable(FLAGS.output, FLAGS.overwrite)  # before any work
    x, _ = array_io.read_array(FLAGS.input, FLAGS.input_key)
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise FnoError(f"{FLAGS.input}: not a numeric array ({e})") from e
    model = trained.load(FLAGS.workdir, FLAGS.step)
    batched = model.check_input(x.shape)
    if FLAGS.resolution:
        x = subsample(x, batched, model.grid_rank, FLAGS.resolution, model.grid, FLAGS.input)
        model.check_input(x.shape)
    y, seconds = model.throughput(x, FLAGS.batch_size, FLAGS.steps)
    array_io.write_array(output, y, FLAGS.output_key, FLAGS.overwrite)
    n = len(x) if batched else 1
    grid = "x".join(map(str, x.shape[batched:batched + model.grid_rank]))
    print(f"predicted {n} sample(s) on a {grid} grid in {seconds:.3f} s "
          f"({n / max(seconds, 1e-9):.1f} samples/s, {model.devices} "
          f"{model.strategy.devices[0].platform} device(s)) with step {model.step} of "
          f"{FLAGS.workdir}: {output}")


if __name__ == "__main__":
    cli.run(main)
