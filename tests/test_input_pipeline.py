"""The grain pipelines: deterministic order, per-process shards, resumable state, eval masks."""

import numpy as np
import pytest

from fno.data import pipeline
from tests.helpers import InMemorySource


def indexed_source(num: int, resolution: int = 4) -> InMemorySource:
    """Row i is filled with the value i, so a batch reveals which samples it holds."""
    x = np.repeat(np.arange(num, dtype=np.float32)[:, None], resolution, axis=1)
    return InMemorySource(x, -x)


def sample_ids(batch) -> list[int]:
    return [int(v) for v in batch["x"][:, 0]]


def test_each_epoch_is_a_fresh_permutation_without_remainder():
    batches = pipeline.TrainBatches(indexed_source(23), global_batch_size=5, seed=1)
    assert batches.steps_per_epoch == 4  # 3 samples dropped per epoch
    epoch0 = sum((sample_ids(batches(t)) for t in range(4)), [])
    epoch1 = sum((sample_ids(batches(t)) for t in range(4, 8)), [])
    assert len(set(epoch0)) == 20 and len(set(epoch1)) == 20
    assert epoch0 != epoch1
    again = pipeline.TrainBatches(indexed_source(23), global_batch_size=5, seed=1)
    assert sample_ids(again(5)) == sample_ids(batches(5))
    other_seed = pipeline.TrainBatches(indexed_source(23), global_batch_size=5, seed=2)
    assert sample_ids(other_seed(0)) != sample_ids(batches(0))


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_shards_partition_each_global_batch(process_count):
    source = indexed_source(40)
    single = pipeline.TrainBatches(source, 8, seed=0)
    shards = [pipeline.TrainBatches(source, 8, 0, p, process_count)
              for p in range(process_count)]
    for step in range(12):
        parts = [sample_ids(shard(step)) for shard in shards]
        assert all(len(part) == 8 // process_count for part in parts)
        assert sorted(sum(parts, [])) == sorted(sample_ids(single(step)))


def test_iterator_state_resumes_exactly():
    batches = pipeline.TrainBatches(indexed_source(30), 6, seed=3)
    it = pipeline.train_iterator(batches, num_steps=20)
    for _ in range(7):
        next(it)
    state = it.get_state()
    expected = [sample_ids(next(it)) for _ in range(5)]
    resumed = pipeline.train_iterator(batches, num_steps=20)
    resumed.set_state(state)
    assert [sample_ids(next(resumed)) for _ in range(5)] == expected


def test_next_batches_stacks_along_a_scan_axis():
    batches = pipeline.TrainBatches(indexed_source(30), 6, seed=3)
    it = pipeline.train_iterator(batches, num_steps=10, prefetch=0)
    stacked = pipeline.next_batches(it, 3)
    assert stacked["x"].shape == (3, 6, 4)
    assert sample_ids({"x": stacked["x"][2]}) == sample_ids(batches(2))


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_counts_every_sample_once_with_padding_masked(process_count):
    source = indexed_source(13)
    seen = []
    for p in range(process_count):
        for batch in pipeline.eval_batches(source, 4, p, process_count):
            assert batch["x"].shape[0] == 4 // process_count
            seen += [i for i, m in zip(sample_ids(batch), batch["mask"], strict=True) if m]
    assert sorted(seen) == list(range(13))


def test_batch_larger_than_dataset_is_rejected():
    with pytest.raises(ValueError, match="larger than the training set"):
        pipeline.TrainBatches(indexed_source(5), 8, seed=0)
