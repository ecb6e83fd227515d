"""Export a trained model to a file that runs with jax alone (no fno, no flax).

    python -m fno.inference.export --workdir=W --output=model.fnox [--resolutions=1024,2048]
        [--platforms=cpu,cuda,tpu] [--step=N] [--overwrite]

The ``.fnox`` file is a zip archive:

* ``card.json``: the model card (architecture, parameter count, config, training data, test
  metrics from results.json, versions, platforms, the exported functions and their shapes);
* ``weights.npz``: the parameters and normaliser fields, ``w0000, w0001, ...`` in the order
  the exported functions take them;
* ``s<S>.jaxexport``: one serialized ``jax.export.Exported`` (StableHLO) per resolution, a
  function ``(weights, x) -> y`` with a symbolic batch dimension, lowered for every platform
  in ``--platforms``. A time-dependent model's function is its whole prediction window (an
  autoregressive rollout of the trained ``output_steps`` is one ``lax.scan`` inside it).

The resolution is fixed per function: the truncated-DFT path builds its bases as constants
of the grid size, and jnp.fft needs a static length, so a symbolic grid does not trace.
Loading it needs jax and numpy only (plus flatbuffers, which jax.export's deserializer
imports): see :data:`USAGE`, which the card repeats.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile

from absl import flags

from fno import cli

flags.DEFINE_string("workdir", None, "Training workdir.")
flags.DEFINE_string("output", None, "The .fnox file to write.")
flags.DEFINE_list("resolutions", None, "Resolutions to export (default: the training "
                  "resolution and the run's test resolutions).")
flags.DEFINE_list("platforms", ["cpu", "cuda", "tpu"], "Platforms to lower for.")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
flags.mark_flags_as_required(["workdir", "output"])
FLAGS = flags.FLAGS

USAGE = """\
import io, json, zipfile
import numpy as np
from jax import export

with zipfile.ZipFile("model.fnox") as archive:
    card = json.loads(archive.read("card.json"))
    weights = np.load(io.BytesIO(archive.read("weights.npz")))
    weights = [weights[name] for name in sorted(weights.files)]
    predict = export.deserialize(archive.read("s1024.jaxexport"))  # card["functions"]
y = np.asarray(predict.call(weights, x))  # x: float32 [n, *grid(, C)]
"""


def export_model(model, resolutions: list[int], platforms: list[str]) -> dict[str, bytes]:
    """The archive's members for ``model`` (an fno.inference.trained.TrainedModel)."""
    import jax
    import numpy as np
    from jax import export

    leaves, treedef = jax.tree.flatten(model.state)

    def predict(weights, x):
        return model.predict(jax.tree.unflatten(treedef, weights), x)

    weights_spec = [jax.ShapeDtypeStruct(w.shape, w.dtype) for w in leaves]
    members, functions = {}, {}
    for r in resolutions:
        (batch,) = export.symbolic_shape("batch")
        x_spec = jax.ShapeDtypeStruct((batch, *model.sample_shape(r)), jax.numpy.float32)
        exported = export.export(jax.jit(predict), platforms=tuple(platforms))(weights_spec,
                                                                              x_spec)
        name = f"s{r}.jaxexport"
        members[name] = bytes(exported.serialize())
        functions[name] = {"resolution": r, "input": ["batch", *model.sample_shape(r)],
                           "output": [str(d) for d in exported.out_avals[0].shape]}
    buffer = io.BytesIO()
    np.savez(buffer, **{f"w{i:04d}": np.asarray(w) for i, w in enumerate(leaves)})
    members["weights.npz"] = buffer.getvalue()
    members["card.json"] = json.dumps(model_card(model, functions, platforms, leaves),
                                      indent=2).encode()
    return members


def model_card(model, functions: dict, platforms: list[str], leaves: list) -> dict:
    import flax
    import jax
    import numpy as np

    import fno
    from fno.storage import paths

    results_path = paths.resolve(model.workdir) / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    metrics = {k: v for k, v in results.items() if k.startswith("test_")}
    params = jax.tree.leaves(model.state["params"])
    cfg = model.config.model
    return {
        "format": "fnox-1",
        "architecture": {"name": cfg.name, "width": cfg.width, "modes": cfg.modes,
                         "num_layers": cfg.num_layers, "projection_width": cfg.projection_width,
                         "activation": cfg.activation, "grid_rank": model.grid_rank,
                         "in_channels": model.in_channels, "out_channels": model.out_channels,
                         "parameters": int(sum(np.size(p) for p in params)),
                         "normalizer": "normalizer" in model.state,
                         "time": model.time_scheme and {
                             "scheme": model.time_scheme,
                             "input_steps": model.config.data.input_steps,
                             "output_steps": model.output_steps,
                             "channels_per_step": model.data.get("channels_per_step", 1)}},
        "trained": {"workdir": model.workdir, "step": model.step,
                    "test_metrics": metrics, "data": model.data},
        "functions": functions,
        "platforms": list(platforms),
        "weights": len(leaves),
        "versions": {"fno": fno.__version__, "jax": jax.__version__,
                     "jaxlib": jax.lib.__version__, "flax": flax.__version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "usage": USAGE,
        "config": model.config.to_dict(),
    }


def main() -> None:
    from fno.errors import FnoError
    from fno.inference import trained
    from fno.storage import array_io, paths

    output = array_io.check_writable(FLAGS.output, FLAGS.overwrite, (".fnox",))
    unknown = set(FLAGS.platforms) - {"cpu", "cuda", "rocm", "tpu"}
    if unknown:
        raise FnoError(f"--platforms: unknown {', '.join(sorted(unknown))} (choose from cpu, "
                       f"cuda, rocm, tpu)")
    model = trained.load(FLAGS.workdir, FLAGS.step)
    resolutions = model.checked_resolutions(
        FLAGS.resolutions or [model.resolution, *model.data.get("test_resolutions", [])],
        "--resolutions")
    members = export_model(model, resolutions, FLAGS.platforms)
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    try:
        paths.write_bytes_atomic(paths.resolve(output), data.getvalue())
    except OSError as e:
        raise FnoError(f"{output}: cannot write ({e.strerror or e})") from e
    print(f"exported step {model.step} of {FLAGS.workdir} for {', '.join(FLAGS.platforms)} "
          f"at resolution(s) {', '.join(map(str, resolutions))}: {output} "
          f"({len(data.getvalue()) / 1e6:.2f} MB)")


if __name__ == "__main__":
    cli.run(main)
