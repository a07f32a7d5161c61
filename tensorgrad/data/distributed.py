"""DistributedSampler: each rank's share of a dataset, with PyTorch's signature and semantics.

Every rank builds the same order (shuffled from `seed + epoch`, so `set_epoch` reshuffles
identically everywhere), pads it by repeating its start until its length divides by the
number of ranks (or, with `drop_last`, cuts the tail instead), and takes every
`num_replicas`-th index from its rank on. With padding every sample is seen at least once per
epoch across the ranks (those at the start of the order twice); with `drop_last`, at most
once.

Speaks only Tensor and tensorgrad's public functions: imports no array library.
"""

import math

from .. import distributed
from ..creation import randperm
from ..random import Generator
from .dataloader import Sampler


class DistributedSampler(Sampler):
    """The indices of `dataset` that rank `rank` of `num_replicas` should load this epoch.

    `num_replicas` and `rank` default to tg.distributed's world size and rank (the process
    group must be initialized then). Call `set_epoch(epoch)` before each epoch to reshuffle.

    >>> import tensorgrad as tg
    >>> [list(tg.data.DistributedSampler(range(5), num_replicas=2, rank=r, shuffle=False))
    ...  for r in (0, 1)]
    [[0, 2, 4], [1, 3, 0]]
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None:
            num_replicas = _group_value("num_replicas", distributed.get_world_size)
        if rank is None:
            rank = _group_value("rank", distributed.get_rank)
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) \
                or num_replicas <= 0:
            raise ValueError("DistributedSampler: num_replicas should be a positive integer, "
                             f"got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the "
                             f"interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)  # cut the tail
        else:
            self.num_samples = math.ceil(n / num_replicas)  # pad to a multiple
        self.total_size = self.num_samples * num_replicas

    def _order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return list(range(n))
        g = Generator().manual_seed(self.seed + self.epoch)  # the same order on every rank
        return randperm(n, generator=g, device="cpu").tolist()

    def __iter__(self):
        indices = self._order()
        if not self.drop_last:
            padding = self.total_size - len(indices)
            indices += (indices * math.ceil(padding / max(len(indices), 1)))[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use `epoch` for the next iteration's shuffle (call it with the same value on every
        rank, before each epoch; otherwise every epoch repeats the same order)."""
        self.epoch = epoch


def _group_value(name, getter):
    if not distributed.is_initialized():
        raise distributed.DistributedError(
            f"DistributedSampler: {name} was not given and the default process group is not "
            "initialized\n  hint: call tg.distributed.init_process_group() first, or pass "
            "num_replicas= and rank=")
    return getter()
