"""The command line every generator shares, so a new one declares only its own flags.

    python -m fno.data.<pde> --output_dir=DIR [--num_samples=N --resolution=S --seed=0
        --chunk_size=C --overwrite] [the generator's own flags]

A generator module (``generate_dataset(output_dir, *, num_samples, resolution, seed,
chunk_size, overwrite, **its settings)``) ends with

    def _define_flags() -> None:  # its own settings, each named as its keyword
        flags.DEFINE_float("nu", DEFAULT_NU, "Viscosity.")

    if __name__ == "__main__":
        generator_cli.run(generate_dataset, _define_flags)

The shared flags default to ``generate_dataset``'s own defaults (``--num_samples`` and
``--resolution`` are required where it has none), and every flag's value is passed to it
under the flag's name. Bad settings (``ValueError``) and an existing dataset end in one line
and exit status 1; progress (samples/s, ETA) is logged by
:func:`fno.data.dataset_dir.write_pairs`. Flags are defined only when a generator runs as a
program, so importing one adds none.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags


def _define_common_flags(generate: Callable[..., Any]) -> None:
    params = inspect.signature(generate).parameters

    def default(name: str, fallback: Any = None) -> Any:
        value = params[name].default if name in params else inspect.Parameter.empty
        return fallback if value is inspect.Parameter.empty else value

    flags.DEFINE_string("output_dir", None, "Dataset directory to create.", required=True)
    flags.DEFINE_integer("num_samples", default("num_samples"), "Number of samples N.",
                         required=default("num_samples") is None)
    flags.DEFINE_integer("resolution", default("resolution"), "Grid points S per axis of the "
                         "stored data.", required=default("resolution") is None)
    flags.DEFINE_integer("seed", default("seed", 0), "Sample i is drawn from "
                         "default_rng([seed, i]).")
    flags.DEFINE_integer("chunk_size", default("chunk_size", 64), "Samples per progress report.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing dataset directory.")


def run(generate: Callable[..., Any], define_flags: Callable[[], None]) -> None:
    """Define the shared flags (with the generator's defaults) and the generator's own, parse
    the command line and call ``generate(output_dir, **every other flag)``."""
    program = getattr(sys.modules[generate.__module__].__spec__, "name", generate.__module__)
    before = set(flags.FLAGS)
    _define_common_flags(generate)
    define_flags()
    names = sorted(set(flags.FLAGS) - before - {"output_dir"})

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        settings = {name: flags.FLAGS[name].value for name in names}
        try:
            generate(flags.FLAGS.output_dir, **settings)
        except (ValueError, FileExistsError) as e:
            sys.exit(f"{program}: {e}")

    app.run(main)
