"""DataLoader, samplers and collation, with PyTorch's names and semantics.

Shuffling draws from a given `tg.Generator` (`generator=`), else from the CPU generator that
`tg.manual_seed` seeds. Batches of a `TensorDataset` (or a `Subset` of one) are built by
indexing each tensor with the batch's index tensor (`t[idx]`) instead of stacking samples one
by one: the same values, much faster.

Devices: collated Python numbers (and host arrays) become tensors on the default device, as
`tg.tensor` makes them; tensors are stacked where they are. There is no `device=` argument
(PyTorch has none); move a batch with `.to(device)`, or build the dataset on the device.

Speaks only Tensor and tensorgrad's public functions: imports no array library.
"""

import copy
from collections.abc import Mapping, Sequence

from ..creation import arange, randint, randperm, tensor
from ..dtypes import float64, int64
from ..ops import cat, stack
from ..tensor import Tensor
from .dataset import Subset, TensorDataset


# ---- samplers ------------------------------------------------------------------------------
class Sampler:
    """Base class: iterating a sampler yields dataset indices (or, for a batch sampler, lists
    of them)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _epoch_indices(self):
        return arange(len(self.data_source), device="cpu")

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of the indices (a fresh one per epoch), or `num_samples` indices drawn
    with replacement. Draws from `generator`, else from the CPU generator `tg.manual_seed`
    seeds (whatever the default device).
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a bool, got {replacement!r}")
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError("RandomSampler: num_samples should be a positive integer, got "
                             f"{self.num_samples!r}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _epoch_indices(self):
        n, g = len(self.data_source), self.generator
        device = g.device if g is not None else "cpu"
        if self.replacement:
            return randint(0, n, (self.num_samples,), generator=g, device=device)
        perms = [randperm(n, generator=g, device=device)
                 for _ in range(-(-self.num_samples // n))]  # more samples than n: repeat
        return (perms[0] if len(perms) == 1 else cat(perms))[:self.num_samples]

    def __iter__(self):
        return iter(self._epoch_indices().tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order (a fresh one per epoch)."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def _epoch_indices(self):
        g = self.generator
        order = randperm(len(self.indices), generator=g,
                         device=g.device if g is not None else "cpu")
        return _as_index_tensor(self.indices)[order]

    def __iter__(self):
        return iter(self._epoch_indices().tolist())

    def __len__(self):
        return len(self.indices)


_INDEX_SAMPLERS = (SequentialSampler, RandomSampler, SubsetRandomSampler)


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler`; the last may be short unless `drop_last`.

    >>> import tensorgrad as tg
    >>> list(tg.data.BatchSampler(range(5), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError("BatchSampler: batch_size should be a positive integer, got "
                             f"{batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a bool, got {drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# ---- collation -----------------------------------------------------------------------------
def default_collate(batch):
    """Merge a list of samples into a batch, as PyTorch's default_collate.

    Tensors are stacked (on their device); Python floats become a float64 tensor, ints an
    int64 one (bools a bool one), host arrays are stacked, all on the default device; strings
    stay a list; dicts collate per key, named tuples per field; other sequences are transposed
    and collated per position (a tuple gives a list, as in PyTorch); nesting recurses.

    >>> import tensorgrad as tg
    >>> x, y = tg.data.default_collate([(tg.zeros(2), 1), (tg.ones(2), 0)])
    >>> x.shape, y.tolist()
    ((2, 2), [1, 0])
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch, 0)
    if isinstance(elem, float):
        return tensor(batch, dtype=float64)
    if isinstance(elem, int):  # bools too: tg.tensor keeps them bool
        return tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if _is_host_array(elem):
        return stack([tensor(b) for b in batch], 0)
    if isinstance(elem, Mapping):
        return _collate_mapping(elem, batch)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of "
                               f"equal size, got sizes {[len(b) for b in batch]}")
        transposed = [default_collate(s) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return transposed
        try:
            return type(elem)(transposed)
        except TypeError:  # a sequence type that cannot be built from a list
            return transposed
    raise TypeError(f"default_collate: batch must contain tensors, numbers, strings, dicts or "
                    f"lists; found {type(elem).__name__}\n  hint: pass a collate_fn")


def _collate_mapping(elem, batch):
    collated = {key: default_collate([d[key] for d in batch]) for key in elem}
    try:
        out = copy.copy(elem)  # keep the mapping's type (OrderedDict, a custom dict)
        out.update(collated)
        return out
    except (TypeError, AttributeError):
        return collated


def _is_host_array(obj):
    """A NumPy array or scalar (anything with __array__ that is not a Tensor)."""
    return hasattr(type(obj), "__array__") and not isinstance(obj, Tensor)


def default_convert(data):
    """What the loader applies to unbatched samples (`batch_size=None`): host arrays become
    tensors (on the default device), containers are converted per element, the rest passes."""
    if isinstance(data, (Tensor, str, bytes)):
        return data
    if _is_host_array(data):
        return tensor(data)
    if isinstance(data, Mapping):
        converted = {k: default_convert(v) for k, v in data.items()}
        try:
            out = copy.copy(data)
            out.update(converted)
            return out
        except (TypeError, AttributeError):
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (list, tuple)):
        return type(data)(default_convert(d) for d in data)
    return data


def _as_index_tensor(indices):
    if isinstance(indices, Tensor):
        return indices.to(device="cpu", dtype=int64)
    return tensor(list(indices), dtype=int64, device="cpu")


# ---- the loader ----------------------------------------------------------------------------
class DataLoader:
    """Batches of a dataset, in order or shuffled, as `torch.utils.data.DataLoader`.

    `shuffle=True` draws a new order each epoch from `generator`, else from the generator
    `tg.manual_seed` seeds. `len(loader)` is the number of batches; the last one is short
    unless `drop_last=True`. Samples are loaded in the calling process: `num_workers`,
    `pin_memory`, `timeout`, `worker_init_fn`, `prefetch_factor` and `persistent_workers` are
    accepted so PyTorch scripts run unchanged, and give the batches `num_workers=0` gives.

    >>> import tensorgrad as tg
    >>> ds = tg.data.TensorDataset(tg.arange(10).float(), tg.arange(10))
    >>> loader = tg.data.DataLoader(ds, batch_size=4, shuffle=True,
    ...                             generator=tg.Generator().manual_seed(0))
    >>> len(loader), [y.shape for x, y in loader]
    (3, [(4,), (4,), (2,)])
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False):
        _check_options(batch_size, shuffle, sampler, batch_sampler, num_workers, drop_last)
        if batch_sampler is not None:
            batch_size, drop_last = None, False
        if sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory, self.timeout = num_workers, pin_memory, timeout
        self.worker_init_fn, self.prefetch_factor = worker_init_fn, prefetch_factor
        self.persistent_workers = persistent_workers
        self.multiprocessing_context = multiprocessing_context
        self._auto_collation = batch_sampler is not None
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else default_convert)

    def __len__(self):
        return len(self.batch_sampler if self._auto_collation else self.sampler)

    def __iter__(self):
        if not self._auto_collation:
            for i in self.sampler:
                yield self.collate_fn(self.dataset[i])
            return
        source = _tensor_source(self.dataset) if self.collate_fn is default_collate else None
        if source is not None:
            yield from self._tensor_batches(*source)
            return
        getitems = getattr(self.dataset, "__getitems__", None)
        for indices in self.batch_sampler:
            samples = getitems(indices) if getitems else [self.dataset[i] for i in indices]
            yield self.collate_fn(samples)

    def _index_batches(self):
        """Each batch's indices as an int64 CPU tensor."""
        bs = self.batch_sampler
        if type(bs) is BatchSampler and type(bs.sampler) in _INDEX_SAMPLERS:
            order, step = bs.sampler._epoch_indices(), bs.batch_size
            n = order.shape[0]
            stop = n - n % step if bs.drop_last else n
            for start in range(0, stop, step):
                yield order[start:start + step]
        else:
            for indices in bs:
                yield _as_index_tensor(indices)

    def _tensor_batches(self, tensors, base):
        """The fast path: `t[idx]` for each tensor instead of stacking samples one by one."""
        for idx in self._index_batches():
            if base is not None:
                idx = base[idx]
            on_device = {}  # the index, moved once per device the tensors live on
            batch = []
            for t in tensors:
                if t.device not in on_device:
                    on_device[t.device] = idx.to(t.device)
                batch.append(t[on_device[t.device]])
            yield batch  # a list, as default_collate makes of the samples' tuples


def _check_options(batch_size, shuffle, sampler, batch_sampler, num_workers, drop_last):
    """PyTorch's checks of DataLoader options that exclude each other (same messages)."""
    if num_workers < 0:
        raise ValueError("DataLoader: num_workers option should be non-negative; use "
                         "num_workers=0 to disable multiprocessing")
    if sampler is not None and shuffle:
        raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                             "batch_size, shuffle, sampler, and drop_last")
    elif batch_size is None and drop_last:
        raise ValueError("DataLoader: batch_size=None option disables auto-batching and is "
                         "mutually exclusive with drop_last")


def _tensor_source(dataset):
    """(tensors, base index or None) when `dataset` is a TensorDataset or Subset(s) of one."""
    if type(dataset) is TensorDataset:
        return dataset.tensors, None
    if type(dataset) is Subset:
        inner = _tensor_source(dataset.dataset)
        if inner is None:
            return None
        tensors, base = inner
        idx = _as_index_tensor(dataset.indices)
        return tensors, idx if base is None else base[idx]
    return None
