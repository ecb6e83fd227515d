"""grain input pipelines: a deterministic, resumable, per-process-sharded train stream and a
padded, masked evaluation pass.

The train stream is a ``grain.MapDataset`` over *global step numbers*: element ``t`` is this
process's share of global batch ``t``. Global batch ``t`` of epoch ``e`` is a slice of a
permutation of the training set drawn from ``(seed, e)``, so the data order is a pure function
of the seed. Each process reads only its rows (positions ``p, p + P, p + 2P, ...`` of the
global batch), which makes the concatenation of all processes' batches a fixed row
permutation of the single-process batch: the same samples, the same mean loss. The iterator's
state is just the next step, checkpointed with grain's checkpoint handler, so a resumed run
sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol

import grain
import numpy as np

Batch = dict[str, np.ndarray]


class BatchSource(Protocol):
    """What the pipelines need from a data source: its length and a vectorised row read."""

    def __len__(self) -> int: ...

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class TrainBatches:
    """Maps a global step to this process's rows of that step's global batch."""

    source: BatchSource
    global_batch_size: int
    seed: int
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if self.global_batch_size % self.process_count:
            raise ValueError(f"batch_size {self.global_batch_size} is not divisible by the "
                             f"process count {self.process_count}")
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {self.global_batch_size} is larger than the training "
                             f"set ({len(self.source)} samples)")

    @property
    def steps_per_epoch(self) -> int:
        return len(self.source) // self.global_batch_size

    def permutation(self, epoch: int) -> np.ndarray:
        """The epoch's sample order, identical on every process."""
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.source))

    def indices(self, step: int) -> np.ndarray:
        """Sample indices of this process's share of global batch ``step``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.global_batch_size
        rows = self.permutation(epoch)[start:start + self.global_batch_size]
        return rows[self.process_index::self.process_count]

    def __call__(self, step: int) -> Batch:
        x, y = self.source.get_batch(self.indices(step))
        return {"x": x, "y": y}


def train_dataset(batches: TrainBatches, num_steps: int) -> grain.MapDataset:
    """The first ``num_steps`` steps of the train stream as a grain MapDataset."""
    return grain.MapDataset.range(num_steps).map(batches)


def train_iterator(batches: TrainBatches, num_steps: int,
                   prefetch: int = 2) -> grain.DatasetIterator:
    """A checkpointable iterator over the train stream, prefetching on a background thread."""
    options = grain.ReadOptions(num_threads=1 if prefetch else 0,
                                prefetch_buffer_size=prefetch)
    return iter(train_dataset(batches, num_steps).to_iter_dataset(options))


def next_batches(iterator: Iterator[Batch], count: int) -> Batch:
    """Stack ``count`` consecutive batches along a new leading axis (the scan axis)."""
    items = [next(iterator) for _ in range(count)]
    return {key: np.stack([item[key] for item in items]) for key in items[0]}


def eval_batches(source: BatchSource, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[Batch]:
    """Every sample exactly once, in order; the last global batch padded, with a 0/1 mask.

    Each process yields its own rows of each global batch (the same interleaving as the
    train stream), so summing masked metrics over all processes counts each sample once.
    """
    num = len(source)
    for start in range(0, num, global_batch_size):
        positions = np.arange(start, start + global_batch_size)[process_index::process_count]
        mask = positions < num
        x, y = source.get_batch(np.where(mask, positions, num - 1))
        yield {"x": x, "y": y, "mask": mask.astype(np.float32)}
