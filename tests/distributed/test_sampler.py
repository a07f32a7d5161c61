"""DistributedSampler without MPI (num_replicas and rank given): PyTorch's shards, padding,
drop_last, and set_epoch. The run under mpiexec (test_collectives.py) checks the defaults taken
from the process group."""

from collections import Counter

import pytest

import tensorgrad as tg
from tensorgrad.data import DistributedSampler


def _shards(n, world, **kwargs):
    epoch = kwargs.pop("epoch", None)
    samplers = [DistributedSampler(range(n), num_replicas=world, rank=r, **kwargs)
                for r in range(world)]
    if epoch is not None:
        for s in samplers:
            s.set_epoch(epoch)
    return [list(s) for s in samplers], samplers


@pytest.mark.parametrize("n, world", [(12, 3), (10, 4), (7, 2), (3, 5)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_padding_covers_every_sample_with_equal_shards(n, world, shuffle):
    shards, samplers = _shards(n, world, shuffle=shuffle)
    size = -(-n // world)
    assert [len(s) for s in shards] == [len(s) for s in samplers] == [size] * world
    counts = Counter(sum(shards, []))
    assert set(counts) == set(range(n))        # every sample at least once
    assert sum(counts.values()) - n == size * world - n  # only the padding repeats
    if n % world == 0:
        assert all(c == 1 for c in counts.values())


@pytest.mark.parametrize("n, world", [(12, 3), (10, 4), (7, 2)])
def test_drop_last_sees_each_sample_at_most_once(n, world):
    shards, samplers = _shards(n, world, drop_last=True)
    flat = sum(shards, [])
    assert [len(s) for s in shards] == [len(s) for s in samplers] == [n // world] * world
    assert len(flat) == len(set(flat)) == n - n % world


def test_without_shuffle_rank_r_takes_every_world_th_index_as_pytorch():
    shards, _ = _shards(7, 3, shuffle=False)
    assert shards == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]
    shards, _ = _shards(7, 3, shuffle=False, drop_last=True)
    assert shards == [[0, 3], [1, 4], [2, 5]]


def test_set_epoch_reshuffles_identically_on_every_rank():
    a, _ = _shards(20, 2, seed=7, epoch=3)
    b, _ = _shards(20, 2, seed=7, epoch=3)
    c, _ = _shards(20, 2, seed=7, epoch=4)
    d, _ = _shards(20, 2, seed=8, epoch=3)
    assert a == b                        # same seed and epoch: the same order everywhere
    assert a != c and a != d             # a new epoch (or seed) gives a new order
    for shards in (a, c, d):
        assert sorted(sum(shards, [])) == list(range(20))


def test_same_order_whatever_the_global_seed():
    tg.manual_seed(1)
    a, _ = _shards(20, 2)
    tg.manual_seed(2)
    b, _ = _shards(20, 2)
    assert a == b


def test_works_with_a_dataloader():
    ds = tg.data.TensorDataset(tg.arange(10))
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, seed=1)
        loader = tg.data.DataLoader(ds, batch_size=2, sampler=sampler)
        seen += [int(v) for (batch,) in loader for v in batch.tolist()]
    assert sorted(seen) == list(range(10))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"invalid rank 2, rank should be in .*\[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas should be a positive integer"):
        DistributedSampler(range(4), num_replicas=0, rank=0)


def test_defaults_need_the_process_group():
    with pytest.raises(tg.distributed.DistributedError, match="num_replicas= and rank="):
        DistributedSampler(range(4))
    with pytest.raises(tg.distributed.DistributedError, match="not initialized"):
        DistributedSampler(range(4), num_replicas=2)
