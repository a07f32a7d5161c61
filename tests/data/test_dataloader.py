"""DataLoader, samplers and default_collate: coverage per epoch, seeded order, partial batches,
nested collation, the TensorDataset fast path, devices, and PyTorch's argument checks."""

import collections

import pytest

import tensorgrad as tg
from tensorgrad.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
)


class Items(Dataset):
    """A generic map-style dataset (the per-sample path): (row tensor, int label)."""

    def __init__(self, n):
        self.x = tg.arange(n * 2).reshape(n, 2).float()
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.x[i], i


def _tensor_ds(n):
    return TensorDataset(tg.arange(n * 2).reshape(n, 2).float(), tg.arange(n))


def _labels(loader):
    return [y.tolist() for _, y in loader]


def _flat(batches):
    return [v for b in batches for v in b]


MAKERS = {"tensor_dataset": _tensor_ds, "generic": Items,
          "subset": lambda n: Subset(_tensor_ds(n + 5), list(range(n + 5))[5:][::-1])}


# ---- every sample once, partial batches ----------------------------------------------------
@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
@pytest.mark.parametrize("batch_size", [1, 3, 7, 10, 25])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_appears_exactly_once_per_epoch(make, batch_size, shuffle):
    ds = make(10)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == -(-10 // batch_size)
        sizes = [len(y.tolist()) for _, y in batches]
        assert sizes[:-1] == [batch_size] * (len(sizes) - 1)
        assert sizes[-1] == 10 - batch_size * (len(sizes) - 1)  # the partial last batch
        targets = _flat(_labels(batches))
        assert sorted(targets) == sorted(ds[i][1] if isinstance(ds[i][1], int)
                                         else ds[i][1].item() for i in range(10))
        for x, y in batches:  # features travel with their labels
            assert x.shape == (len(y.tolist()), 2)
        if not shuffle and make is _tensor_ds:
            assert targets == list(range(10))


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
def test_drop_last_drops_the_partial_batch(make):
    loader = DataLoader(make(10), batch_size=4, shuffle=True, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    assert [len(y.tolist()) for _, y in batches] == [4, 4]
    assert len(set(_flat(_labels(batches)))) == 8


def test_batch_larger_than_dataset_and_exact_multiple():
    assert [y.tolist() for _, y in DataLoader(_tensor_ds(3), batch_size=5)] == [[0, 1, 2]]
    assert len(DataLoader(_tensor_ds(3), batch_size=5, drop_last=True)) == 0
    assert list(DataLoader(_tensor_ds(3), batch_size=5, drop_last=True)) == []
    assert len(DataLoader(_tensor_ds(8), batch_size=4)) == 2


# ---- seeded order --------------------------------------------------------------------------
@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
def test_seeded_shuffle_is_reproducible(make):
    def epochs(seed):
        loader = DataLoader(make(20), batch_size=6, shuffle=True,
                            generator=tg.Generator().manual_seed(seed))
        return [_labels(loader) for _ in range(2)]
    a, b, c = epochs(0), epochs(0), epochs(1)
    assert a == b
    assert a != c
    assert a[0] != a[1]  # a new order each epoch


def test_fast_path_gives_the_batches_the_per_sample_path_gives():
    fast = DataLoader(_tensor_ds(23), batch_size=5, shuffle=True,
                      generator=tg.Generator().manual_seed(4))
    slow = DataLoader(Items(23), batch_size=5, shuffle=True,
                      generator=tg.Generator().manual_seed(4))
    for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
        assert xf.tolist() == xs.tolist() and yf.tolist() == ys.tolist()
        assert xf.dtype == xs.dtype and yf.dtype == ys.dtype == tg.int64


def test_fast_path_indexes_instead_of_fetching_samples(monkeypatch):
    def refuse(self, index):
        raise AssertionError("the fast path must not fetch samples one by one")
    monkeypatch.setattr(TensorDataset, "__getitem__", refuse)
    batches = list(DataLoader(_tensor_ds(10), batch_size=4, shuffle=True))
    assert isinstance(batches[0], list)  # as default_collate makes of tuples
    assert sorted(_flat(_labels(batches))) == list(range(10))


def test_shuffle_without_generator_follows_manual_seed():
    loader = DataLoader(_tensor_ds(30), batch_size=30, shuffle=True)
    tg.manual_seed(5)
    a = _labels(loader)
    tg.manual_seed(5)
    assert _labels(loader) == a
    assert a != [list(range(30))]


def test_random_sampler_with_replacement_and_more_samples_than_data():
    g = tg.Generator().manual_seed(0)
    drawn = list(RandomSampler(range(5), replacement=True, num_samples=50, generator=g))
    assert len(drawn) == 50 and set(drawn) <= set(range(5))
    more = list(RandomSampler(range(5), num_samples=12, generator=g))
    counts = collections.Counter(more)
    assert len(more) == 12 and all(counts[i] >= 2 for i in range(5))
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(range(5), num_samples=0)


def test_sequential_subset_random_and_batch_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    picked = list(SubsetRandomSampler([10, 20, 30], generator=tg.Generator().manual_seed(2)))
    assert sorted(picked) == [10, 20, 30]
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    assert len(BatchSampler(range(7), 3, drop_last=True)) == 2
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            BatchSampler(range(7), bad, drop_last=False)


# ---- samplers given to the loader ----------------------------------------------------------
@pytest.mark.parametrize("make", [_tensor_ds, Items], ids=["tensor_dataset", "generic"])
def test_custom_sampler_and_batch_sampler(make):
    ds = make(6)
    loader = DataLoader(ds, batch_size=2, sampler=[5, 3, 1, 0])
    assert _labels(loader) == [[5, 3], [1, 0]]
    loader = DataLoader(ds, batch_sampler=[[4, 4], [0, 2, 1], []][:2])
    assert _labels(loader) == [[4, 4], [0, 2, 1]] and len(loader) == 2


def test_batch_size_none_yields_samples_one_by_one():
    loader = DataLoader(Items(3), batch_size=None)
    items = list(loader)
    assert len(loader) == 3 and [i for _, i in items] == [0, 1, 2]
    assert items[1][0].tolist() == [2.0, 3.0]


def test_collate_fn_is_used():
    loader = DataLoader(Items(5), batch_size=2, collate_fn=lambda b: [i for _, i in b])
    assert list(loader) == [[0, 1], [2, 3], [4]]


def test_workers_and_pinning_are_accepted_and_give_the_same_batches():
    ref = _labels(DataLoader(Items(9), batch_size=4))
    loader = DataLoader(Items(9), batch_size=4, num_workers=2, pin_memory=True,
                        persistent_workers=True, prefetch_factor=2)
    assert _labels(loader) == ref


@pytest.mark.parametrize("kwargs, message", [
    (dict(shuffle=True, sampler=[0]), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_size=None, drop_last=True), "mutually exclusive with drop_last"),
    (dict(num_workers=-1), "non-negative"),
])
def test_conflicting_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(Items(3), **kwargs)


# ---- collation -----------------------------------------------------------------------------
def test_collate_numbers_follow_pytorch_dtypes():
    assert default_collate([1, 2]).dtype == tg.int64
    assert default_collate([1.5, 2.0]).dtype == tg.float64
    assert default_collate([True, False]).dtype == tg.bool
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_collate_nested_structures():
    Point = collections.namedtuple("Point", "x y")
    samples = [{"img": tg.full((2, 2), float(i)), "meta": (i, [float(i), f"s{i}"]),
                "pt": Point(i, tg.tensor([i, -i]))} for i in range(3)]
    batch = default_collate(samples)
    assert set(batch) == {"img", "meta", "pt"}
    assert batch["img"].shape == (3, 2, 2) and batch["img"][2].tolist() == [[2.0, 2.0]] * 2
    ids, (floats, names) = batch["meta"]  # a tuple collates to a list, as in PyTorch
    assert isinstance(batch["meta"], list)
    assert ids.tolist() == [0, 1, 2] and floats.dtype == tg.float64
    assert names == ("s0", "s1", "s2")
    assert isinstance(batch["pt"], Point) and batch["pt"].y.tolist() == [[0, 0], [1, -1],
                                                                        [2, -2]]


def test_collate_keeps_the_mapping_and_sequence_types():
    ordered = default_collate([collections.OrderedDict(b=1, a=2)] * 2)
    assert isinstance(ordered, collections.OrderedDict) and list(ordered) == ["b", "a"]
    assert isinstance(default_collate([[1, 2], [3, 4]]), list)


def test_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])


def test_collate_host_arrays_become_tensors():
    np = pytest.importorskip("numpy")
    batch = default_collate([np.ones(3), np.zeros(3)])
    assert batch.shape == (2, 3) and batch.dtype == tg.float64


# ---- devices -------------------------------------------------------------------------------
def test_collated_numbers_go_to_the_default_device_tensors_stay_put():
    with tg.device("alt"):
        assert default_collate([1, 2]).device == tg.device("alt")
        assert default_collate([tg.zeros(2, device="cpu")] * 2).device == tg.device("cpu")
    x = tg.zeros(2, device="alt")
    assert default_collate([x, x]).device == tg.device("alt")


def test_fast_path_with_tensors_on_another_device():
    ds = TensorDataset(tg.arange(8, device="alt").float(), tg.arange(8))
    loader = DataLoader(ds, batch_size=3, shuffle=True, generator=tg.Generator().manual_seed(0))
    batches = list(loader)
    assert all(x.device == tg.device("alt") and y.device == tg.device("cpu") for x, y in batches)
    assert all(x.tolist() == [float(v) for v in y.tolist()] for x, y in batches)


def test_utils_data_is_data():
    from tensorgrad.utils.data import DataLoader as UtilsLoader
    assert tg.utils.data is tg.data and UtilsLoader is DataLoader
