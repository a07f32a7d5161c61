"""Datasets: the `Dataset` base, `TensorDataset`, `Subset`, `ConcatDataset`, `random_split`.

Speaks only Tensor and tensorgrad's public functions: imports no array library and touches
no raw arrays (DESIGN.md section 1).
"""

import bisect
import itertools
import math
import warnings

from ..creation import randperm
from ..errors import ShapeError
from ..tensor import Tensor


class Dataset:
    """A map-style dataset: `dataset[i]` is sample i; subclasses define `__getitem__` and
    usually `__len__`. `a + b` concatenates two datasets.

    >>> import tensorgrad as tg
    >>> class Squares(tg.data.Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return i * i
    >>> [s for s in Squares() + Squares()][3:6]
    [9, 0, 1]
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__ "
                                  "(subclasses of Dataset return sample `index`)")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Sample i is `tuple(t[i] for t in tensors)`; every tensor has one row per sample.

    >>> import tensorgrad as tg
    >>> ds = tg.data.TensorDataset(tg.zeros(5, 3), tg.arange(5))
    >>> len(ds), ds[2][0].shape, ds[2][1].item()
    (5, (3,), 2)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, "
                                "not a Tensor\n  hint: wrap it with tg.tensor(...)")
            if t.ndim == 0:
                raise ShapeError(f"TensorDataset: argument {i} is 0-d; each tensor needs a "
                                 "first dimension that indexes the samples")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) > 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ShapeError(f"TensorDataset: size mismatch between tensors: first dimensions "
                             f"{sizes} (shapes {shapes})\n  hint: every tensor needs one row "
                             "per sample, so the same size in dimension 0")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order.

    >>> import tensorgrad as tg
    >>> sub = tg.data.Subset(tg.data.TensorDataset(tg.arange(10)), [7, 2])
    >>> len(sub), sub[0][0].item()
    (2, 7)
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        """Samples at several indices (the DataLoader asks for a batch at once)."""
        getitems = getattr(self.dataset, "__getitems__", None)
        picked = [self.indices[i] for i in indices]
        return getitems(picked) if getitems else [self.dataset[i] for i in picked]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several datasets, one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise IndexError(f"ConcatDataset: index {idx} out of range for length "
                                 f"{len(self)}")
            idx += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        if which == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {idx} out of range for length {len(self)}")
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


def random_split(dataset, lengths, generator=None):
    """Split `dataset` at random into non-overlapping `Subset`s of the given lengths.

    `lengths` are counts summing to `len(dataset)`, or fractions summing to 1: each split then
    gets floor(fraction * len) samples and the remainder goes one by one to the first splits,
    as PyTorch does. The order comes from `tg.randperm(len, generator=generator)`; without a
    generator it follows `tg.manual_seed`.

    >>> import tensorgrad as tg
    >>> a, b = tg.data.random_split(range(10), [0.7, 0.3], generator=tg.Generator().manual_seed(0))
    >>> len(a), len(b), sorted(list(a) + list(b)) == list(range(10))
    (7, 3, True)
    """
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        lengths = _fractions_to_lengths(lengths, n)
    if any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions "
                         f"summing to 1, got {list(lengths)}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not "
                         f"equal the length of the input dataset ({n})")
    device = generator.device if generator is not None else "cpu"
    indices = randperm(n, generator=generator, device=device).tolist()
    splits, offset = [], 0
    for length in lengths:
        splits.append(Subset(dataset, indices[offset:offset + int(length)]))
        offset += int(length)
    return splits


def _fractions_to_lengths(fractions, n):
    lengths = []
    for i, frac in enumerate(fractions):
        if not 0 <= frac <= 1:
            raise ValueError(f"random_split: fraction at index {i} ({frac}) is not between "
                             "0 and 1")
        lengths.append(math.floor(n * frac))
    for i in range(n - sum(lengths)):  # the remainder, round-robin
        lengths[i % len(lengths)] += 1
    for i, length in enumerate(lengths):
        if length == 0:
            warnings.warn(f"random_split: length of split at index {i} is 0; this might "
                          "result in an empty dataset", stacklevel=3)
    return lengths
