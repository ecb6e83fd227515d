"""Train a Fourier Neural Operator on the problem a config names (Burgers, Darcy, ...).

    python main.py --config=configs/default.py --workdir=/tmp/fno
    python main.py --config=configs/darcy_quick.py --workdir=/tmp/fno_darcy
    python main.py --config=configs/quickstart.py --workdir=/tmp/fno --config.mode=scan

This file is intentionally kept short: it parses flags, sets up logging and the distributed
runtime, and calls ``fno.training.loop.train_and_evaluate``. User mistakes (bad config
values, files, checkpoints) end in a one-line error and exit status 1.
"""

import logging as py_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from fno.cli import fail
from fno.parallel import runtime

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:arg]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])


def quiet_library_info_logs() -> None:
    """orbax logs every checkpoint step at INFO; keep its warnings, drop the chatter."""
    noisy = (f"{os.sep}orbax{os.sep}", f"{os.sep}grain{os.sep}")

    def keep(record) -> bool:
        return record.levelno >= py_logging.WARNING or not any(p in record.pathname for p in noisy)

    logging.get_absl_handler().addFilter(keep)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with config-file problems reported as one line, not a traceback.

    ml_collections loads the config file lazily and raises plain Python exceptions for an
    unreadable file or an unknown field; touching ``FLAGS.config`` here surfaces them now.
    """
    try:
        argv = FLAGS(argv)
        FLAGS.config.keys()  # forces the lazy load
    except flags.Error as e:
        fail(str(e))
    except (AttributeError, KeyError) as e:
        fail(f"--config: unknown config field {e}")
    except (OSError, ValueError, TypeError, SyntaxError) as e:
        fail(f"--config: {e}")
    return argv


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    quiet_library_info_logs()
    from fno.errors import FnoError
    from fno.parallel import distributed  # imports no JAX

    try:
        distributed.initialize()  # before any other JAX call
    except FnoError as e:
        fail(str(e))
    import jax

    multi_process = jax.process_count() > 1
    try:
        from fno.training import loop

        logging.info("JAX %s, process %d of %d, devices: %s", jax.__version__,
                     jax.process_index(), jax.process_count(), jax.devices())
        # Every process must drive as many devices (pmap shards and mesh shapes assume it).
        distributed.check_local_device_counts()
        loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except FnoError as e:
        if multi_process:
            exit_now(str(e), traceback=False, everyone=getattr(e, "everyone", False))
        fail(str(e))
    except Exception as e:  # a bug, or a peer's death seen inside a collective
        if not multi_process:
            raise
        exit_now(f"{type(e).__name__}: {' '.join(str(e).split())[:500]}", traceback=True,
                 everyone=False)


def exit_now(message: str, traceback: bool, everyone: bool) -> None:
    """End one process of a multi-process job promptly, with its error on one line.

    A plain exit would run JAX's shutdown barrier, where a process that failed alone waits
    for peers that sit in a collective (300 s by default) until the coordination service
    aborts everyone and the message is lost. Instead: the error is published (peers waiting
    at an fno barrier stop with it and come here too), then all processes that are failing
    leave together through a short barrier and JAX's shutdown, so none is aborted by
    another's exit. ``everyone``: all processes raised this error at one agreement point
    (:mod:`fno.parallel.collective`), so they all come. A peer stuck inside a device
    collective never does; this process then leaves alone after a short wait and the
    coordination service stops that peer once this process is gone.
    """
    from fno.parallel import collective

    if traceback:
        logging.exception("unexpected error")
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if not everyone:
        collective.report_failure(message)
    collective.leave_together(timeout=10.0 if everyone else 5.0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)

if __name__ == "__main__":
    runtime.ensure_allocator_tuning()  # before JAX is imported
    app.run(main, flags_parser=parse_flags)
