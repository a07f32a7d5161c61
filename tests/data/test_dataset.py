"""Dataset, TensorDataset, Subset, ConcatDataset and random_split (PyTorch's semantics)."""

import pytest

import tensorgrad as tg
from tensorgrad.data import ConcatDataset, Dataset, Subset, TensorDataset, random_split


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i


# ---- TensorDataset -------------------------------------------------------------------------
def test_tensor_dataset_items_and_len():
    x, y = tg.arange(12).reshape(4, 3).float(), tg.tensor([5, 6, 7, 8])
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    xi, yi = ds[2]
    assert xi.tolist() == [6.0, 7.0, 8.0] and yi.item() == 7 and yi.ndim == 0
    assert ds.tensors == (x, y)


def test_tensor_dataset_size_mismatch_names_the_sizes():
    with pytest.raises(tg.ShapeError, match=r"\[3, 4\]") as info:
        TensorDataset(tg.zeros(3, 2), tg.zeros(4))
    assert "(3, 2)" in str(info.value) and "(4,)" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_tensor_dataset_refuses_non_tensors_0d_and_nothing():
    with pytest.raises(TypeError, match="argument 1 is a list"):
        TensorDataset(tg.zeros(3), [1, 2, 3])
    with pytest.raises(tg.ShapeError, match="0-d"):
        TensorDataset(tg.tensor(1.0))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_dataset_base_needs_getitem():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]


# ---- Subset and ConcatDataset --------------------------------------------------------------
def test_subset_maps_indices():
    sub = Subset(Range(10), [7, 2, 9])
    assert len(sub) == 3
    assert [sub[i] for i in range(3)] == [7, 2, 9]
    assert sub[-1] == 9
    assert sub.__getitems__([2, 0]) == [9, 7]


def test_subset_with_a_list_index_asks_the_dataset_once():
    ds = TensorDataset(tg.arange(10) * 10)
    (values,) = Subset(ds, [4, 1, 8])[[0, 2]]
    assert values.tolist() == [40, 80]


def test_concat_dataset_and_add():
    cat = Range(3) + Range(2)
    assert isinstance(cat, ConcatDataset) and len(cat) == 5
    assert [cat[i] for i in range(5)] == [0, 1, 2, 0, 1]
    assert cat[-1] == 1 and cat[-5] == 0
    for bad in (5, -6):
        with pytest.raises(IndexError):
            cat[bad]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])


# ---- random_split --------------------------------------------------------------------------
def _values(subset):
    return [subset[i] for i in range(len(subset))]


def test_random_split_with_counts_is_a_partition():
    parts = random_split(Range(10), [3, 7], generator=tg.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(_values(parts[0]) + _values(parts[1])) == list(range(10))


def test_random_split_fractions_floor_then_round_robin_as_pytorch():
    # PyTorch: floor(10 * .33) = 3, 3, floor(3.4) = 3; the remainder 1 goes to split 0.
    parts = random_split(Range(10), [0.33, 0.33, 0.34], generator=tg.Generator())
    assert [len(p) for p in parts] == [4, 3, 3]
    parts = random_split(Range(7), [0.5, 0.5], generator=tg.Generator())
    assert [len(p) for p in parts] == [4, 3]


def test_random_split_is_reproducible_with_a_generator():
    a = random_split(Range(50), [0.8, 0.2], generator=tg.Generator().manual_seed(3))
    b = random_split(Range(50), [0.8, 0.2], generator=tg.Generator().manual_seed(3))
    c = random_split(Range(50), [0.8, 0.2], generator=tg.Generator().manual_seed(4))
    assert _values(a[0]) == _values(b[0]) and _values(a[1]) == _values(b[1])
    assert _values(a[0]) != _values(c[0])


def test_random_split_without_generator_follows_manual_seed():
    tg.manual_seed(8)
    a = _values(random_split(Range(30), [10, 20])[0])
    tg.manual_seed(8)
    b = _values(random_split(Range(30), [10, 20])[0])
    assert a == b and a != list(range(10))


def test_random_split_wrong_lengths_raise():
    with pytest.raises(ValueError, match=r"sum of input lengths \(9\).*\(10\)"):
        random_split(Range(10), [4, 5])
    with pytest.raises(ValueError, match="non-negative ints or fractions"):
        random_split(Range(10), [0.5, 0.2])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(Range(10), [1.5, -0.5])


def test_random_split_warns_on_an_empty_split():
    with pytest.warns(UserWarning) as record:
        parts = random_split(Range(2), [0.9, 0.05, 0.05], generator=tg.Generator())
    assert ["index 1 is 0" in str(w.message) for w in record] == [True, False]
    assert "index 2 is 0" in str(record[1].message)
    assert [len(p) for p in parts] == [2, 0, 0]
