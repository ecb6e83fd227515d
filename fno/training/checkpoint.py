"""orbax checkpoints of the training state and the grain data-iterator state.

A checkpoint holds the *logical* state (no device axis: the same tree in every mode), so a
checkpoint written in one mode restores in any other: the restore target carries the sharding
of the mode that reads it. The data iterator's position is saved beside it with grain's own
checkpoint handler, which is what makes a resumed run see exactly the remaining batches.

Failures, and what happens (docs/failures.md):

* A run killed at any moment, even mid-save, leaves only complete checkpoints that orbax
  considers finalized: locally it writes ``<step>.orbax-checkpoint-tmp`` and renames it when
  done, on GCS it writes ``<step>`` in place and commits with ``commit_success.txt``. The
  next run removes what orbax calls temporary (with a warning) and resumes from the newest
  finalized step.
* A checkpoint that exists but does not read back (files missing, truncated or corrupt) is
  *damaged*: it is moved to ``<step>.corrupt`` (copied there on GCS; kept for inspection,
  ignored by orbax, and no obstacle to saving that step again), a warning names the new
  path, and the next older checkpoint is tried. When none is left, training starts from
  step 0 with a warning. Falling back is exact: each checkpoint carries its own data
  position. In a multi-process run every process checks the checkpoint against the file
  sizes process 0 recorded (``fno_manifest.json``) and the verdicts are combined
  (:mod:`fno.parallel.collective`) *before* orbax reads it, so all take the same branch.
* A checkpoint that reads fine but holds other shapes or leaves than this config's state is
  *incompatible*: a hard :class:`FnoError`, and nothing is moved.
* A save that fails (disk full, unwritable directory) is a :class:`FnoError` naming the step
  and the OS error; the previous checkpoint is untouched, so rerunning resumes from it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from fno.errors import FnoError
from fno.parallel import collective
from fno.storage import paths

# Suffix of a damaged step directory moved aside; orbax only recognises all-digit names.
CORRUPT_SUFFIX = ".corrupt"


class DamagedCheckpointError(FnoError):
    """A checkpoint whose files are missing, truncated or unreadable (not a config mismatch)."""


def _damaged(where: str, error: BaseException) -> DamagedCheckpointError:
    return DamagedCheckpointError(f"checkpoint {where} is damaged: {paths.storage_error(error)}")


def _is_storage_error(error: BaseException) -> bool:
    """Errors that orbax, tensorstore and grain raise for I/O trouble while writing.

    OSError from Python-side writes, ValueError carrying a tensorstore status
    (``RESOURCE_EXHAUSTED: ...``) and the bare ``Exception`` orbax wraps read/write failures
    in. Anything else (TypeError, AttributeError, ...) is a bug and keeps its traceback.
    """
    return isinstance(error, OSError | ValueError) or type(error) is Exception


def _leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{"opt_state.0.mu.w": (shape, dtype)}``: orbax's own leaf naming, for target and
    metadata trees alike (a namedtuple field in the target is a dict key in the metadata,
    both give the name)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path, simple=True, separator="."):
            (tuple(leaf.shape), np.dtype(leaf.dtype)) for path, leaf in leaves}


def _mismatch(saved: dict, wanted: dict) -> str | None:
    """The first difference between checkpoint and target leaves (parameters before
    optimizer slots, which mirror them), or None if they agree."""
    for name in sorted(set(saved) | set(wanted), key=lambda n: (not n.startswith("params"), n)):
        if name not in wanted:
            return f"{name} is in the checkpoint but not in this config's state"
        if name not in saved:
            return f"{name} is missing from the checkpoint"
        if saved[name] != wanted[name]:
            (s_shape, s_dtype), (w_shape, w_dtype) = saved[name], wanted[name]
            return (f"{name}: checkpoint {s_dtype}{list(s_shape)}, "
                    f"config {w_dtype}{list(w_shape)}")
    return None


# Written by process 0 into every finalized step: each file's size, so that every process
# can tell a damaged checkpoint (a file deleted or truncated) *before* orbax reads it.
MANIFEST = "fno_manifest.json"
# The run facts that give the saved data position its meaning (see Checkpointer.save).
RUN_ITEM = "run"


class _LateReadErrors:
    """Silences the leftovers of a failed restore that Python reports as "Exception ignored".

    orbax runs a restore on a fresh asyncio loop and closes it as soon as one read fails.
    The reads still in flight then complete into the closed loop ("Event loop is closed"),
    and their coroutines, finalized later by the garbage collector, report their own read
    errors. Each comes with a traceback through ``sys.unraisablehook``: dozens for one
    damaged checkpoint, burying the warning that matters. The hook is installed while
    restoring and, once a restore has failed, until the Checkpointer closes (after a final
    garbage collection); every other unraisable error passes through.
    """

    def __init__(self):
        self._previous = None
        self.dropped = 0

    @staticmethod
    def _is_late_read_error(unraisable) -> bool:
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return True
        code = getattr(unraisable.object, "cr_code", None)  # an orbax coroutine
        return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename

    def _hook(self, unraisable) -> None:
        if self._is_late_read_error(unraisable):
            self.dropped += 1
        else:
            self._previous(unraisable)

    def install(self) -> None:
        if self._previous is None:
            self._previous = sys.unraisablehook
            sys.unraisablehook = self._hook

    def uninstall(self, collect: bool = False) -> None:
        """Restore the previous hook; ``collect`` first finalizes what failed reads left."""
        if self._previous is None:
            return
        if collect:
            gc.collect()
        if sys.unraisablehook == self._hook:
            sys.unraisablehook = self._previous
        self._previous = None
        if self.dropped:
            logging.info("Ignored %d late errors of failed checkpoint reads.", self.dropped)


class Checkpointer:
    """An orbax CheckpointManager for ``{state, data, run}`` items, saved asynchronously.

    ``directory`` may be local or ``gs://``: orbax picks its commit protocol per storage
    (rename of ``<step>.orbax-checkpoint-tmp`` locally, a ``commit_success.txt`` file on
    GCS) and fno asks orbax, not the file names, which steps are finalized.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3,
                 asynchronous: bool = True):
        self.directory = paths.resolve(directory, "checkpoint directory")
        # orbax's cleanup_tmp_directories is left off on purpose: it would run for every
        # Checkpointer, including read-only ones (final_params) next to a live run.
        # restore_latest, called under the workdir lock, removes unfinished writes instead.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=asynchronous,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler(),
                           RUN_ITEM: ocp.JsonCheckpointHandler()})
        self._pending: int | None = None  # step of a save that may still be in flight
        self._save_failed = False
        self._late_errors = _LateReadErrors()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    # --- saving ---------------------------------------------------------------------------
    def save(self, step: int, state: Any, data_iterator: grain.DatasetIterator,
             run: dict[str, Any] | None = None) -> None:
        """Start saving (returns once the arrays are copied off the devices).

        ``run`` holds the facts that give the data position its meaning (batch size, seed,
        training-set size, dataset fingerprint); :meth:`restore_latest` compares them with
        the resuming run. A failure of the previous, asynchronous save surfaces here (orbax
        waits for it first) and is reported for *that* step; both become a one-line
        :class:`FnoError`.
        """
        self._finish_pending()
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            **{RUN_ITEM: ocp.args.JsonSave(run or {})},
        )
        self._pending = step
        try:
            self.manager.save(step, args=args, force=True)
        except Exception as e:
            if _is_storage_error(e):
                raise self._save_error(step, e) from e
            raise

    def wait(self) -> None:
        """Block until any asynchronous save has been committed to storage."""
        self._finish_pending()

    def _finish_pending(self, finish: Callable[[], None] | None = None) -> None:
        """Wait for the pending save (``finish``: orbax's close, which waits too), then
        record the finished step's manifest. A storage error becomes the one-line save
        error; while closing, one already reported is only logged."""
        try:
            (finish or self.manager.wait_until_finished)()
        except Exception as e:
            if finish is not None and self._save_failed:
                logging.info("Ignoring a repeated checkpoint error on close: %s",
                             paths.storage_error(e))
                return
            if _is_storage_error(e):
                raise self._save_error(self._pending, e) from e
            raise
        if self._pending is not None:
            self._write_manifest(self._pending)
        self._pending = None

    def _write_manifest(self, step: int) -> None:
        """Record every file of finalized ``step`` with its size (process 0 only)."""
        if jax.process_index() != 0:
            return
        root = self.directory / str(step)
        try:
            sizes = {os.fspath(p.relative_to(root)): p.stat().length
                     for p in paths.files_under(root) if p.name != MANIFEST}
            paths.write_json_atomic(root / MANIFEST, sizes)
        except Exception as e:  # noqa: BLE001 - the checkpoint itself is complete
            logging.warning("Could not write %s for checkpoint %d: %s (it will be checked by "
                            "reading it)", MANIFEST, step, paths.storage_error(e))

    def _save_error(self, step: int | None, error: BaseException) -> FnoError:
        """The one-line error for a failed save, naming the checkpoint that is still good."""
        self._save_failed = True
        try:
            self.manager.reload()  # finalized steps on disk: the failed one never got there
            intact = [s for s in self.manager.all_steps() if s != step]
        except Exception:  # noqa: BLE001 - the message must still be produced
            intact = []
        which = f"at step {step}" if step is not None else ""
        if intact:
            last = max(intact)
            after = (f"the previous checkpoint (step {last}) is intact; fix the problem and "
                     f"rerun the same command to resume from step {last}")
        else:
            after = "no earlier checkpoint exists; fix the problem and rerun to start again"
        return FnoError(f"could not save the checkpoint {which} in {self.directory}: "
                        f"{paths.storage_error(error)}; {after}")

    # --- restoring ------------------------------------------------------------------------
    def has_data_state(self, step: int) -> bool:
        """Whether ``step`` holds this process's data-iterator state. It does not when the
        checkpoint was written by a different number of processes."""
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        return (self.directory / str(step) / "data" / name).exists()

    def _written_by_this_process_count(self, step: int) -> bool:
        """Whether any process of a run with this process count saved a data state at
        ``step``: then a missing file for *this* process is damage, not another topology."""
        suffix = f"-of-{jax.process_count()}.json"
        try:
            return any(p.name.endswith(suffix)
                       for p in (self.directory / str(step) / "data").iterdir())
        except OSError:
            return False

    def run_info(self, step: int) -> dict[str, Any] | None:
        """The ``run`` facts saved with ``step``; None for checkpoints older than them (an
        unreadable file is damage, which :meth:`check_readable` has reported already)."""
        path = self.directory / str(step) / RUN_ITEM / "metadata"  # JsonCheckpointHandler's
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError):
            return None

    def check_readable(self, step: int) -> str | None:
        """Why ``step`` would not read back on this process, or None: its state metadata
        must parse and every file of its manifest must exist with the recorded size. No
        collective call: every process answers, then the answers are combined."""
        root = self.directory / str(step)
        try:
            if self.manager.item_metadata(step)["state"] is None:
                return f"no readable state metadata in {root}/state"
            manifest = root / MANIFEST
            if not manifest.exists():
                return None  # written before manifests, or killed right after finalizing
            for name, size in json.loads(manifest.read_text()).items():
                path = root / name
                if not path.exists():
                    return f"{path} is missing"
                if path.stat().length != size:
                    return f"{path} has {path.stat().length} bytes, expected {size}"
        except Exception as e:  # noqa: BLE001 - any failure to read is damage
            return paths.storage_error(e)
        return None

    def _incompatibility(self, step: int, abstract_state: Any) -> str | None:
        """The one-line error when ``step``'s saved tree differs from ``abstract_state``'s
        (None when it matches or its metadata does not read: that is damage)."""
        try:
            saved = self.manager.item_metadata(step)["state"]
            saved_specs = _leaf_specs(saved) if saved is not None else None
        except Exception:  # noqa: BLE001 - unreadable metadata is damage, judged later
            return None
        problem = saved_specs and _mismatch(saved_specs, _leaf_specs(abstract_state))
        if not problem:
            return None
        return (f"checkpoint {self.directory}/{step} does not match this config's model or "
                f"optimizer ({problem}); use another --workdir or the config it was written "
                f"with")

    def restore(self, step: int, abstract_state: Any,
                data_iterator: grain.DatasetIterator | None = None) -> Any:
        """Restore ``step`` onto ``abstract_state``'s shapes and shardings and, if given,
        rewind ``data_iterator`` to the saved position. ``abstract_state=None`` restores the
        saved tree onto this process's first device, whatever topology wrote it (for
        inspection and tests).

        Raises :class:`DamagedCheckpointError` when the checkpoint's files do not read back
        and a plain :class:`FnoError` when they do but hold a different model or optimizer.
        The saved metadata is compared with the target *before* reading any array: orbax and
        tensorstore raise the same ValueError for a missing file and for a shape mismatch, so
        their exception types cannot tell damage from incompatibility.
        """
        where = f"{self.directory}/{step}"
        try:
            saved = self.manager.item_metadata(step)["state"]
            if saved is None:
                raise FileNotFoundError(f"no readable state metadata in {where}/state")
            _leaf_specs(saved)  # a tree that does not parse is damage too
        except Exception as e:  # noqa: BLE001 - any failure to read metadata is damage
            raise _damaged(where, e) from e
        if abstract_state is None:
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            abstract_state = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
        else:
            problem = self._incompatibility(step, abstract_state)
            if problem:
                raise FnoError(problem)
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:  # noqa: BLE001 - the tree matched: what fails is the data
            raise _damaged(where, e) from e
        logging.info("Restored checkpoint at step %d from %s", step, self.directory)
        return restored["state"]

    def restore_latest(self, abstract_state: Any, data_iterator: grain.DatasetIterator,
                       run: dict[str, Any] | None = None) -> tuple[int, Any, bool]:
        """Resume point of a training run: ``(step, state, data_restored)``.

        Removes unfinished writes of an interrupted run, then restores the newest checkpoint
        that reads back, moving damaged ones aside (see the module docstring). Returns
        ``(0, None, False)`` when there is none. ``data_restored`` is False when the
        checkpoint was written by a different number of processes: its iterator states are
        not used and the caller recomputes the data position from the step. Only the
        training run, which holds the workdir lock, may call this.

        Multi-process: which checkpoint to restore is decided collectively *before* orbax
        reads it (:meth:`check_readable` on every process, then :func:`collective.agree`
        semantics), so every process enters orbax's restore for the same step. ``run`` is
        compared with the facts saved with the checkpoint (:func:`check_run`).
        """
        self._remove_unfinished_writes()
        initial_position = data_iterator.get_state()
        damaged: list[str] = []
        self._late_errors.install()  # kept until close() only if a restore fails
        steps = json.loads(collective.exchange(
            "checkpoint_steps", json.dumps(sorted(self.manager.all_steps())))[0])
        for step in sorted(steps, reverse=True):
            # Another model is a hard error, even if the checkpoint is also damaged.
            collective.agree(f"checkpoint_{step}_compatible",
                             self._incompatibility(step, abstract_state))
            problems = collective.exchange(f"checkpoint_{step}_readable",
                                           self.check_readable(step) or "")
            bad = [(i, p) for i, p in enumerate(problems) if p]
            if bad:
                where, problem = bad[0]
                damaged.append(self._move_aside(
                    step, f"checkpoint {self.directory}/{step} is damaged (seen by process "
                          f"{where}): {problem}"))
                continue
            check_run(self.run_info(step), run, f"{self.directory}/{step}")
            with_data = (self.has_data_state(step)
                         or self._written_by_this_process_count(step))
            try:
                state = self.restore(step, abstract_state, data_iterator if with_data else None)
            except DamagedCheckpointError as e:
                if jax.process_count() > 1:
                    # The others are inside orbax's restore: no common branch is left. Move
                    # the step aside so the rerun falls back instead of failing again.
                    self._move_aside(step, str(e), collective_move=False)
                    raise FnoError(f"{e}; moved it aside: rerun to resume from the previous "
                                   f"checkpoint") from e
                data_iterator.set_state(initial_position)  # a failed restore may have moved it
                damaged.append(self._move_aside(step, str(e)))
                del e
                gc.collect()  # finalize the failed reads now, while their errors are filtered
                continue
            if damaged:
                logging.warning("Resuming from step %d, the newest checkpoint that reads "
                                "back (damaged ones moved aside: %s).", step, ", ".join(damaged))
            else:
                self._late_errors.uninstall()
            return step, state, with_data
        if damaged:
            logging.warning("No valid checkpoint left in %s (damaged ones moved aside: %s): "
                            "training starts from step 0.", self.directory, ", ".join(damaged))
        else:
            self._late_errors.uninstall()
        return 0, None, False

    def _remove_unfinished_writes(self) -> None:
        """Delete step directories that orbax never finalized: saves cut short by a kill.

        orbax decides (``ocp.path.step.is_path_temporary``): locally a
        ``<step>.orbax-checkpoint-tmp*`` directory, on GCS a ``<step>`` without
        ``commit_success.txt``. They hold nothing that a finished checkpoint does not.
        """
        if jax.process_index() == 0 and self.directory.exists():
            unfinished = sorted(
                (p for p in self.directory.iterdir()
                 if p.name.split(".")[0].isdigit() and CORRUPT_SUFFIX not in p.name
                 and ocp.path.step.is_path_temporary(p)), key=lambda p: p.name)
            for path in unfinished:
                path.rmtree(missing_ok=True)
            if unfinished:
                logging.warning("Removed %d unfinished checkpoint write(s) left by an "
                                "interrupted run in %s: %s", len(unfinished), self.directory,
                                ", ".join(p.name for p in unfinished))
            self.manager.reload()
        collective.barrier("checkpoint_remove_unfinished")
        paths.forget_listings(self.directory)
        self.manager.reload()

    def _move_aside(self, step: int, reason: str, collective_move: bool = True) -> str:
        """Move damaged ``<step>`` to ``<step>.corrupt`` (``.corrupt.1``, ... if taken);
        return the new path. Never deletes: the files may matter to whoever investigates.
        ``collective_move``: all processes call this together and process 0 moves; else
        the calling process moves it alone (if it is still there)."""
        source = self.directory / str(step)
        target = self.directory / f"{step}{CORRUPT_SUFFIX}"
        n = 0
        while target.exists():
            n += 1
            target = self.directory / f"{step}{CORRUPT_SUFFIX}.{n}"
        if collective_move:
            collective.barrier(f"checkpoint_move_{step}_start")  # every process is done
        if (jax.process_index() == 0 or not collective_move) and source.exists():
            paths.move_aside(source, target)
        if collective_move:
            collective.barrier(f"checkpoint_move_{step}_done")
        paths.forget_listings(self.directory)
        self.manager.reload()
        logging.warning("%s; moved it aside to %s (not deleted) and trying the previous "
                        "checkpoint.", reason, target)
        return os.fspath(target)

    def close(self, abandon: bool = False) -> None:
        """Wait for the last save and release orbax's threads. After a reported save failure
        the same error would come again: it is logged, not raised a second time.

        ``abandon``: this process is failing in a multi-process job. Waiting for a save
        could block in a barrier that the other processes never reach, so nothing is waited
        for (an unfinished save is removed by the next run).
        """
        self._late_errors.uninstall(collect=not abandon)
        if not abandon:
            self._finish_pending(self.manager.close)


# Run facts whose change would silently reinterpret a checkpoint's data position.
_RUN_FACTS = {"batch_size": "config.batch_size", "seed": "config.seed",
              "num_train": "config.data.num_train", "dataset": "the dataset"}


def check_run(saved: dict[str, Any] | None, current: dict[str, Any] | None, where: str) -> None:
    """Refuse to resume when the facts that define the data order have changed.

    The data position is a step number; which samples step t holds depends on the batch
    size, the seed and the training set, so resuming with another of them would silently
    train on another sequence. Checkpoints without saved facts (older ones) are accepted.
    """
    if not saved or not current:
        return
    for key, name in _RUN_FACTS.items():
        if key in saved and key in current and saved[key] != current[key]:
            raise FnoError(f"checkpoint {where} was trained with {name} = {saved[key]!r}, "
                           f"this run has {current[key]!r}: resuming would change the data "
                           f"order; use the original value or another --workdir")


def abstract_like(tree: Any, shardings: Any) -> Any:
    """Shape/dtype/sharding skeleton of ``tree``, the restore target orbax needs.

    ``shardings`` is one sharding for every leaf or a tree of shardings matching ``tree``.
    """
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)
