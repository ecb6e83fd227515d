"""Test metrics of a trained model, on its own test split or on any other dataset.

    python -m fno.inference.evaluate --workdir=W                       # the run's test split again
    python -m fno.inference.evaluate --workdir=W --data=burgers_data_R10.mat --resolutions=1024,8192
        [--input_key=a --output_key=u] [--split=all|test] [--step=N] [--output=metrics.json]
    python -m fno.inference.evaluate --workdir=W --steps=40   # a time model, a longer rollout

Metrics are those of ``results.json`` (``test_rel_l2``, ``test_mse`` at the training
resolution, ``..._s<r>`` at others), computed by the training loop's own evaluation
(fno.training.loop.evaluate with the eval step of fno.training.steps) on a data-parallel
mesh of this process's devices. Without ``--data`` the run's dataset is opened as training
opened it, so the numbers reproduce results.json. With ``--data``, every sample of that file
or directory is used (``--split=test``: its last ``num_test`` samples, as the run split
its own data). A time-dependent model is scored per output step too (``test_rel_l2_step01``
...); ``--steps`` rolls it out further than it trained, on windows that many snapshots long
where the data hold them.
"""

from __future__ import annotations

import json
import os

from absl import flags

from fno import cli

flags.DEFINE_string("workdir", None, "Training workdir.")
flags.DEFINE_string("data", None, "Dataset (generated directory, .mat, .npz, .h5); default: "
                    "the run's own test split.")
flags.DEFINE_list("resolutions", None, "Resolutions to evaluate at (default: the run's "
                  "training resolution and every finer power-of-two subgrid of the data).")
flags.DEFINE_string("input_key", None, "Input array name (default: the run's).")
flags.DEFINE_string("output_key", None, "Output array name (default: the run's).")
flags.DEFINE_enum("split", None, ["all", "test"], "Samples of --data to use (default: all).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_integer("steps", None, "Time-dependent models: output steps to roll out and score "
                     "(default: the trained window).", lower_bound=1)
flags.DEFINE_string("output", None, "Also write the metrics to this JSON file.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output file.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def _sources(model, config, path: str, split: str, resolutions: list[int] | None) -> dict:
    """``{resolution: source}`` of ``path`` (training resolution first, like fno.data.datasets)."""
    from fno.data import checks, datasets, sources
    from fno.errors import FnoError

    data = config.data
    layout = model.layout  # the checkpoint's record: no registered problem needed

    def open_at(r: int):
        try:
            return sources.open_dataset(path, r, input_key=FLAGS.input_key or data.input_key,
                                        output_key=FLAGS.output_key or data.output_key,
                                        grid_rank=layout.grid_rank, grid=layout.grid,
                                        files=layout.files,
                                        time=datasets.time_window(config))
        except checks.DataError as e:
            raise FnoError(str(e)) from e

    if resolutions is None:
        first = open_at(data.resolution)
        resolutions = [data.resolution, *checks.finer_resolutions(
            first.stored_resolution, data.resolution, first.grid)]
    opened = {r: open_at(r) for r in dict.fromkeys(resolutions)}
    if split == "test":
        num_test = model.data.get("num_test") or data.num_test
        opened = {r: s.subset(len(s) - num_test, len(s)) for r, s in opened.items()}
    return opened


def main() -> None:
    from fno import registry
    from fno.data import datasets
    from fno.errors import FnoError
    from fno.inference import trained
    from fno.storage import array_io, paths
    from fno.training import loop, steps

    output = FLAGS.output and array_io.check_writable(FLAGS.output, FLAGS.overwrite, (".json",))
    model = trained.load(FLAGS.workdir, FLAGS.step)
    resolutions = (model.checked_resolutions(FLAGS.resolutions, "--resolutions")
                   if FLAGS.resolutions is not None else None)
    config = model.config.copy_and_resolve_references()
    horizon = model.checked_steps(FLAGS.steps)
    if horizon is not None:  # the data's windows as long as the rollout
        config.data.output_steps = horizon
    if FLAGS.data is None:
        if FLAGS.split == "all":
            raise FnoError("--split=all needs --data (the run's own data: its test split)")
        if resolutions is not None:
            config.data.eval_resolutions = tuple(resolutions)
        # The dataset the run recorded, read as recorded; where it is gone (another host),
        # the config's (found, downloaded or generated: its problem must be registered).
        recorded = model.data.get("path")
        if recorded and os.path.exists(recorded):
            splits = datasets.load(config, path=recorded, layout=model.layout)
        elif config.data.name not in registry.PROBLEMS:
            raise FnoError(f"the run's dataset {recorded} is not on this host, and its problem "
                           f"{config.data.name!r} is not registered here to find or generate "
                           f"it; pass the data as --data")
        else:
            splits = datasets.load(config)
        if model.data.get("fingerprint") not in (None, splits.fingerprint):
            raise FnoError(f"the run's dataset {splits.train.path} has changed since training "
                           f"(fingerprint {splits.fingerprint}, trained on "
                           f"{model.data['fingerprint']}); pass it as --data to evaluate anyway")
        test = {r: s for r, s in splits.test.items() if resolutions is None or r in resolutions}
        where = f"the test split of {splits.train.path}"
    else:
        test = _sources(model, config, FLAGS.data, FLAGS.split or "all", resolutions)
        where = FLAGS.data
    # Every process-local device holds an equal share of each padded batch.
    config.batch_size = model.padded_batch(config.batch_size)
    strategy = model.strategy
    eval_fn = strategy.compile_eval(steps.make_eval_step(model.predict_steps(horizon), horizon))
    metrics = loop.evaluate(strategy, eval_fn, strategy.place_state(model.state), test, config)
    report = {"workdir": FLAGS.workdir, "step": model.step, "data": where,
              "samples": len(next(iter(test.values()))), **metrics}
    print(json.dumps(report))
    if output:
        try:
            paths.write_json_atomic(output, report)
        except OSError as e:
            raise FnoError(f"{FLAGS.output}: cannot write ({e.strerror or e})") from e


if __name__ == "__main__":
    cli.run(main)
