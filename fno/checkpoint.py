"""orbax checkpoints of the training state and the grain data-iterator state.

A checkpoint holds the *logical* state (no device axis: the same tree in every mode), so a
checkpoint written in one mode restores in any other: the restore target carries the sharding
of the mode that reads it. The data iterator's position is saved beside it with grain's own
checkpoint handler, which is what makes a resumed run see exactly the remaining batches.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging

from fno.errors import FnoError


class Checkpointer:
    """An orbax CheckpointManager for ``{state, data}`` items, saved asynchronously."""

    def __init__(self, directory: str, *, max_to_keep: int = 3, asynchronous: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=asynchronous,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, data_iterator: grain.DatasetIterator) -> None:
        """Start saving (returns once the arrays are copied off the devices)."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
        )
        self.manager.save(step, args=args, force=True)

    def has_data_state(self, step: int) -> bool:
        """Whether ``step`` holds this process's data-iterator state. It does not when the
        checkpoint was written by a different number of processes."""
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        return os.path.exists(os.path.join(self.directory, str(step), "data", name))

    def restore(self, step: int, abstract_state: Any,
                data_iterator: grain.DatasetIterator | None = None) -> Any:
        """Restore ``step`` onto ``abstract_state``'s shapes and shardings and, if given,
        rewind ``data_iterator`` to the saved position. ``abstract_state=None`` restores the
        saved tree onto this process's first device, whatever topology wrote it (for
        inspection and tests)."""
        if abstract_state is None:
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            abstract_state = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                self.manager.item_metadata(step)["state"])
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        args = ocp.args.Composite(**items)
        try:
            restored = self.manager.restore(step, args=args)
        except (ValueError, KeyError, TypeError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FnoError(
                f"checkpoint {self.directory}/{step} does not match this config's model or "
                f"optimizer ({first_line}); use another --workdir or the config it was "
                f"written with") from e
        logging.info("Restored checkpoint at step %d from %s", step, self.directory)
        return restored["state"]

    def wait(self) -> None:
        """Block until any asynchronous save has been committed to disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def abstract_like(tree: Any, shardings: Any) -> Any:
    """Shape/dtype/sharding skeleton of ``tree``, the restore target orbax needs.

    ``shardings`` is one sharding for every leaf or a tree of shardings matching ``tree``.
    """
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)
