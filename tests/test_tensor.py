"""The Tensor and its factories (DESIGN sections 3 and 4): dtypes inferred as PyTorch does,
attributes, conversions to Python and NumPy, repr, seeding, and Python operators."""

import numpy as np
import pytest

import tensorgrad as tg


# ---- tg.tensor and dtype inference -----------------------------------------------------------
def test_tensor_infers_dtypes_as_pytorch():
    assert tg.tensor([1.0, 2.0]).dtype == tg.float32
    assert tg.tensor(2.5).dtype == tg.float32
    assert tg.tensor([1, 2]).dtype == tg.int64
    assert tg.tensor([1, 2.5]).dtype == tg.float32
    assert tg.tensor([True, False]).dtype == tg.bool
    assert tg.tensor(np.zeros(3)).dtype == tg.float64          # NumPy arrays keep their dtype
    assert tg.tensor(np.zeros(3, np.int32)).dtype == tg.int32
    assert tg.tensor(np.zeros(3, np.uint8)).dtype == tg.uint8
    assert tg.tensor(np.float32(1.5)).dtype == tg.float32
    assert tg.tensor([[1, 2], [3, 4]], dtype=tg.float64).dtype == tg.float64
    assert tg.tensor([1, 2], dtype="float16").dtype == tg.float16


def test_tensor_copies_its_data():
    a = np.arange(3.0)
    t = tg.tensor(a)
    a[0] = 100.0
    assert t.tolist() == [0.0, 1.0, 2.0]
    u = tg.tensor(t)
    t.data.array[1] = 7.0
    assert u.tolist() == [0.0, 1.0, 2.0]


def test_tensor_from_a_list_of_tensors():
    assert tg.tensor([tg.tensor(1.0), tg.tensor(2.0)]).tolist() == [1.0, 2.0]


def test_tensor_refuses_unsupported_data():
    with pytest.raises(tg.DTypeError):
        tg.tensor(["a", "b"])
    with pytest.raises(tg.DTypeError):
        tg.tensor(np.zeros(2, np.complex128))


def test_tensor_class_constructor_gives_default_dtype():
    t = tg.Tensor([1, 2])  # as torch.Tensor: the legacy constructor makes float32
    assert isinstance(t, tg.Tensor) and t.dtype == tg.float32 and t.tolist() == [1.0, 2.0]
    assert tg.is_tensor(t) and not tg.is_tensor([1.0])
    assert isinstance(tg.zeros(2) * 2, tg.Tensor)


# ---- factories ----------------------------------------------------------------------------------
def test_zeros_ones_full_empty():
    assert tg.zeros(2, 3).tolist() == [[0.0] * 3] * 2
    assert tg.zeros((2, 3)).shape == (2, 3) and tg.zeros([2, 3]).shape == (2, 3)
    assert tg.zeros(()).shape == () and tg.zeros(0).shape == (0,)
    assert tg.ones(2, dtype=tg.int32).tolist() == [1, 1]
    assert tg.ones(2).dtype == tg.float32
    assert tg.empty(4, 2).shape == (4, 2) and tg.empty(4).dtype == tg.float32
    assert tg.full((2,), 3).dtype == tg.int64
    assert tg.full((2,), 1.5).dtype == tg.float32
    assert tg.full((2,), True).dtype == tg.bool
    assert tg.full((2, 2), 7.0).tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert tg.zeros(2, requires_grad=True).requires_grad


def test_arange_linspace_eye():
    assert tg.arange(5).tolist() == [0, 1, 2, 3, 4] and tg.arange(5).dtype == tg.int64
    assert tg.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert tg.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tg.arange(0, 1, 0.25).dtype == tg.float32
    assert tg.arange(3, dtype=tg.float64).dtype == tg.float64
    assert tg.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert tg.linspace(0, 1, 5).dtype == tg.float32
    assert tg.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert tg.eye(2, 3).shape == (2, 3) and tg.eye(3, dtype=tg.int64).dtype == tg.int64


def test_random_factories():
    r = tg.rand(1000)
    assert r.dtype == tg.float32 and r.shape == (1000,)
    assert 0.0 <= r.numpy().min() and r.numpy().max() < 1.0
    n = tg.randn(2000, dtype=tg.float64)
    assert n.dtype == tg.float64 and abs(n.numpy().mean()) < 0.1
    assert 0.9 < n.numpy().std() < 1.1
    assert tg.randn(3, dtype=tg.float16).dtype == tg.float16
    i = tg.randint(2, 5, (100,))
    assert i.dtype == tg.int64 and set(i.tolist()) <= {2, 3, 4}
    assert set(tg.randint(3, (50,)).tolist()) <= {0, 1, 2}
    assert sorted(tg.randperm(6).tolist()) == list(range(6))
    assert tg.randperm(6).dtype == tg.int64
    with pytest.raises(tg.DTypeError):
        tg.rand(2, dtype=tg.int64)


def test_manual_seed_makes_random_draws_reproducible():
    tg.manual_seed(123)
    a = [tg.rand(4).tolist(), tg.randn(2, 3).tolist(), tg.randint(0, 100, (5,)).tolist(),
         tg.randperm(8).tolist()]
    tg.manual_seed(123)
    b = [tg.rand(4).tolist(), tg.randn(2, 3).tolist(), tg.randint(0, 100, (5,)).tolist(),
         tg.randperm(8).tolist()]
    assert a == b
    tg.manual_seed(124)
    assert tg.rand(4).tolist() != a[0]


def test_like_factories_follow_their_input():
    x = tg.ones(2, 3, dtype=tg.float64)
    for fn in (tg.zeros_like, tg.ones_like, tg.empty_like, tg.rand_like, tg.randn_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == tg.float64 and y.device == x.device
    assert tg.zeros_like(x).tolist() == [[0.0] * 3] * 2
    assert tg.ones_like(x, dtype=tg.int32).dtype == tg.int32
    assert tg.full_like(x, 4.0).tolist() == [[4.0] * 3] * 2
    i = tg.randint_like(tg.zeros(10, dtype=tg.int64), 3)
    assert i.dtype == tg.int64 and set(i.tolist()) <= {0, 1, 2}
    assert tg.zeros_like(x, requires_grad=True).requires_grad


def test_from_numpy_shares_memory():
    a = np.arange(4.0)
    t = tg.from_numpy(a)
    assert t.dtype == tg.float64 and t.device == "cpu"
    a[0] = 42.0
    assert t.tolist()[0] == 42.0
    assert np.shares_memory(t.numpy(), a)
    with pytest.raises(TypeError):
        tg.from_numpy([1.0, 2.0])


def test_from_dlpack_takes_a_numpy_array():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tg.from_dlpack(a)
    assert t.shape == (2, 3) and t.dtype == tg.float32 and t.device == "cpu"
    assert t.tolist() == a.tolist()
    assert np.shares_memory(t.numpy(), a)  # zero-copy
    back = np.from_dlpack(t)
    assert np.shares_memory(back, a)


# ---- dtypes -------------------------------------------------------------------------------------
def test_dtype_aliases():
    assert tg.half is tg.float16 and tg.float is tg.float32 and tg.double is tg.float64
    assert tg.int is tg.int32 and tg.long is tg.int64 and tg.short is tg.int16
    assert tg.bool.name == "bool" and tg.tensor([True]).dtype == tg.bool
    assert repr(tg.float32) == "tensorgrad.float32"
    assert tg.float64.is_floating_point and not tg.int64.is_floating_point
    assert tg.float32 != tg.float64
    for name in ("float16", "float32", "float64", "uint8", "int8", "int32", "int64"):
        assert tg.zeros(1, dtype=getattr(tg, name)).dtype == getattr(tg, name)


def test_set_default_dtype():
    tg.set_default_dtype(tg.float64)
    assert tg.get_default_dtype() == tg.float64
    assert tg.tensor([1.5]).dtype == tg.float64
    assert tg.zeros(2).dtype == tg.float64 and tg.rand(2).dtype == tg.float64
    assert (tg.tensor([1, 2]) / 2).dtype == tg.float64
    assert tg.tensor([1, 2]).dtype == tg.int64  # ints are not affected
    with pytest.raises(tg.DTypeError):
        tg.set_default_dtype(tg.int32)
    assert tg.get_default_dtype() == tg.float64


def test_to_dtype_and_cast_methods():
    x = tg.tensor([1.7, -2.2])
    assert x.to(tg.float64).dtype == tg.float64
    assert x.to(tg.int32).tolist() == [1, -2]
    assert x.double().dtype == tg.float64 and x.float().dtype == tg.float32
    assert x.long().dtype == tg.int64 and x.half().dtype == tg.float16
    assert x.to(tg.float32) is x  # no-op conversion returns the tensor itself, as PyTorch


# ---- attributes ---------------------------------------------------------------------------------
def test_basic_attributes():
    x = tg.zeros(2, 3)
    assert x.shape == (2, 3) and x.ndim == 2 and x.dim() == 2 and x.numel() == 6
    assert x.size() == (2, 3) and x.size(1) == 3
    assert x.dtype == tg.float32 and x.device == tg.device("cpu") and x.device == "cpu"
    assert not x.requires_grad and x.grad is None and x.is_leaf
    assert isinstance(x.array, np.ndarray)


def test_requires_grad_and_is_leaf():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf and y.requires_grad and y.grad_fn is not None
    assert x.grad_fn is None
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0] and x.grad.shape == x.shape
    z = tg.zeros(2)
    z.requires_grad = True
    assert z.requires_grad and z.is_leaf
    assert z.requires_grad_(False) is z and not z.requires_grad


def test_requires_grad_only_for_floating_tensors():
    with pytest.raises(tg.DTypeError, match="floating"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(tg.GraphError):
        (tg.ones(2, requires_grad=True) * 2).requires_grad_(False)


def test_data_shares_storage_and_is_detached():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.data
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert np.shares_memory(d.array, y.array)
    xd = x.data
    xd.array[0] = 10.0  # writes through to x
    assert x.detach().tolist() == [10.0, 2.0]
    assert x.requires_grad


def test_assigning_data_replaces_storage():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    new = tg.tensor([5.0, 6.0, 7.0])
    x.data = new
    assert x.tolist() == [5.0, 6.0, 7.0] and x.shape == (3,)
    assert x.requires_grad and x.is_leaf
    assert np.shares_memory(x.array, new.array)
    with pytest.raises(TypeError):
        x.data = [1.0]


def test_detach():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf and d.tolist() == [2.0, 4.0]


# ---- conversions --------------------------------------------------------------------------------
def test_numpy_shares_memory_and_refuses_requires_grad():
    x = tg.tensor([1.0, 2.0])
    a = x.numpy()
    assert isinstance(a, np.ndarray) and np.shares_memory(a, x.array)
    y = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad") as info:
        y.numpy()
    assert "detach().numpy()" in str(info.value)
    assert y.detach().numpy().tolist() == [1.0]


def test_item_and_python_numbers():
    assert tg.tensor(2.5).item() == 2.5 and isinstance(tg.tensor(2.5).item(), float)
    assert tg.tensor([[3]]).item() == 3 and isinstance(tg.tensor([3]).item(), int)
    assert tg.tensor([True]).item() is True
    assert float(tg.tensor([2.5])) == 2.5 and int(tg.tensor(7)) == 7
    with pytest.raises(tg.ShapeError, match=r"\(2,\)"):
        tg.ones(2).item()
    with pytest.raises(ValueError):
        float(tg.ones(3))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tg.ones(2))
    assert bool(tg.tensor(1.0)) and not bool(tg.tensor(0))


def test_tolist():
    assert tg.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert tg.tensor(1.5).tolist() == 1.5
    assert tg.zeros(0).tolist() == []


def test_array_protocol():
    x = tg.tensor([[1.0, 2.0]])
    a = np.asarray(x)
    assert a.dtype == np.float32 and a.shape == (1, 2)
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert np.array(x).tolist() == [[1.0, 2.0]]


def test_len_and_iteration():
    x = tg.tensor([[1, 2], [3, 4], [5, 6]])
    assert len(x) == 3
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(r, tg.Tensor) for r in rows)
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(TypeError):
        len(tg.tensor(1.0))
    with pytest.raises(TypeError):
        iter(tg.tensor(1.0))


def test_iteration_keeps_the_graph():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    total = sum(r * r for r in x)
    total.backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0]


# ---- repr ---------------------------------------------------------------------------------------
def test_repr_like_pytorch():
    assert repr(tg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(tg.tensor([1.5, 2.25])) == "tensor([1.5000, 2.2500])"
    assert repr(tg.tensor(3.5)) == "tensor(3.5000)"
    assert repr(tg.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(tg.tensor([True, False])) == "tensor([ True, False])"
    assert repr(tg.tensor([1.0, 2.0], requires_grad=True)) == \
        "tensor([1., 2.], requires_grad=True)"
    assert repr(tg.tensor([1.0, 2.0], dtype=tg.float64)) == \
        "tensor([1., 2.], dtype=tensorgrad.float64)"
    assert repr(tg.tensor([1, 2], dtype=tg.int32)) == "tensor([1, 2], dtype=tensorgrad.int32)"
    assert repr(tg.ones(2, 2)) == "tensor([[1., 1.],\n        [1., 1.]])"


def test_repr_shows_grad_fn():
    y = tg.tensor([1.0, 2.0], requires_grad=True) * 2
    r = repr(y)
    assert r.startswith("tensor([2., 4.], grad_fn=") and "Mul" in r
    assert "requires_grad" not in r


def test_repr_of_default_dtype_follows_set_default_dtype():
    tg.set_default_dtype(tg.float64)
    assert repr(tg.tensor([1.0])) == "tensor([1.])"
    assert "dtype=tensorgrad.float32" in repr(tg.tensor([1.0], dtype=tg.float32))


def test_repr_of_a_large_tensor_is_summarised():
    r = repr(tg.arange(5000))
    assert "..." in r and len(r) < 200


# ---- operators ----------------------------------------------------------------------------------
def test_python_operators():
    x = tg.tensor([1.0, 2.0, 4.0])
    assert (x + 1).tolist() == [2.0, 3.0, 5.0]
    assert (x - 1).tolist() == [0.0, 1.0, 3.0]
    assert (x * 2).tolist() == [2.0, 4.0, 8.0]
    assert (x / 2).tolist() == [0.5, 1.0, 2.0]
    assert (x // 2).tolist() == [0.0, 1.0, 2.0]
    assert (x % 3).tolist() == [1.0, 2.0, 1.0]
    assert (x ** 2).tolist() == [1.0, 4.0, 16.0]
    assert (-x).tolist() == [-1.0, -2.0, -4.0]
    assert (x + x).tolist() == [2.0, 4.0, 8.0]


def test_reflected_operators():
    x = tg.tensor([1.0, 2.0, 4.0])
    assert (1 + x).tolist() == [2.0, 3.0, 5.0]
    assert (2 - x).tolist() == [1.0, 0.0, -2.0]
    assert (3 * x).tolist() == [3.0, 6.0, 12.0]
    assert (2 / x).tolist() == [2.0, 1.0, 0.5]
    assert (2 ** x).tolist() == [2.0, 4.0, 16.0]
    assert (9 // x).tolist() == [9.0, 4.0, 2.0]
    assert (9 % x).tolist() == [0.0, 1.0, 1.0]
    assert isinstance(np.float64(2.0) * x, tg.Tensor)  # NumPy scalars defer to the Tensor
    assert (np.float64(2.0) - x).tolist() == [1.0, 0.0, -2.0]


def test_reflected_operators_are_differentiable():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (2 - x + 2 / x + 2 ** x).sum().backward()
    expected = [-1 - 2 / v ** 2 + np.log(2) * 2 ** v for v in (1.0, 2.0)]
    np.testing.assert_allclose(x.grad.tolist(), expected, rtol=1e-6)


def test_comparisons_return_bool_without_grad():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for out in (x < 2, x <= 2, x > 2, x >= 2, x == 2, x != 2, 2 < x, x == x):
        assert out.dtype == tg.bool and not out.requires_grad and out.grad_fn is None
    assert (x < 2).tolist() == [True, False, False]
    assert (2 < x).tolist() == [False, False, True]
    assert (x == 2).tolist() == [False, True, False]
    assert (x != tg.tensor([1.0, 0.0, 3.0])).tolist() == [False, True, False]


def test_logical_operators_on_bool_and_int():
    a = tg.tensor([True, False, True])
    b = tg.tensor([True, True, False])
    assert (a & b).tolist() == [True, False, False]
    assert (a | b).tolist() == [True, True, True]
    assert (a ^ b).tolist() == [False, True, True]
    assert (~a).tolist() == [False, True, False]
    i = tg.tensor([6, 3])
    assert (i & 5).tolist() == [4, 1] and (i | 1).tolist() == [7, 3] and (~i).tolist() == [-7, -4]


def test_tensor_is_hashable_by_identity():
    x, y = tg.ones(2), tg.ones(2)
    assert len({x, y}) == 2 and {x: 1}[x] == 1


# ---- .data is invisible to autograd; .grad is validated on assignment (PyTorch parity) -------
def test_writes_through_data_are_invisible_to_autograd():
    # As PyTorch: .data has a version counter of its own, so backward does not raise, and the
    # saved x is read as it is now (2 * new x), as PyTorch reads it.
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    d = x.data
    d.add_(1.0)
    assert d._version == 1 and x._version == 0
    y.backward()
    assert x.grad.tolist() == [4.0, 6.0]


def test_each_data_has_its_own_version_counter_and_detach_shares_it():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    d1, d2, alias = x.data, x.data, x.detach()
    d1.mul_(2.0)
    assert (d1._version, d2._version, x._version, alias._version) == (1, 0, 0, 0)
    alias.add_(1.0)
    assert x._version == alias._version == 1 and d1._version == 1
    assert x.tolist() == d2.tolist() == [3.0, 5.0]


def test_data_of_a_non_leaf_writes_unseen_by_autograd():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    z = x * 2.0
    w = z * z
    z.data.mul_(10.0)  # PyTorch: no error, and backward reads the new z
    w.sum().backward()
    assert x.grad.tolist() == [80.0, 160.0]


def test_assigning_data_bumps_no_version():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    x.data = tg.tensor([3.0, 4.0])
    assert x._version == 0
    y.backward()  # as PyTorch: the saved x is x, now holding the new data
    assert x.grad.tolist() == [6.0, 8.0]


def test_assigning_integer_data_to_a_tensor_that_requires_grad_raises():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.DTypeError, match="floating point.*int64"):
        x.data = tg.tensor([1, 2])
    assert x.dtype == tg.float32
    y = tg.tensor([1.0, 2.0])
    y.data = tg.tensor([1, 2])  # fine where no gradient is wanted
    assert y.dtype == tg.int64


@pytest.mark.parametrize("bad,kind", [([0.0, 0.0], "list"), (1.0, "float"),
                                      (np.zeros(2, np.float32), "numpy.ndarray")])
def test_assigning_a_grad_that_is_not_a_tensor_raises_type_error(bad, kind):
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=f"expected to be a Tensor or None but got grad of "
                                        f"type {kind}"):
        x.grad = bad
    assert x.grad is None


def test_assigning_a_grad_of_another_shape_dtype_or_device_raises():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"shape \(2, 2\) but the tensor has shape \(2,\)"):
        x.grad = tg.zeros(2, 2)
    with pytest.raises(tg.ShapeError, match=r"shape \(\) but the tensor has shape \(2,\)"):
        x.grad = tg.tensor(0.0)
    with pytest.raises(tg.DTypeError, match="dtype float64 but the tensor has dtype float32"):
        x.grad = tg.zeros(2, dtype=tg.float64)
    with pytest.raises(tg.DTypeError, match=r"hint: .*g\.to\(tg\.float32\)"):
        x.grad = tg.zeros(2, dtype=tg.int64)
    with pytest.raises(tg.DeviceError, match="is on alt:0 but the tensor is on cpu"):
        x.grad = tg.zeros(2, device="alt")
    assert x.grad is None
    for err in (tg.ShapeError, tg.DTypeError, tg.DeviceError):
        assert issubclass(err, RuntimeError)  # what PyTorch raises


def test_assigning_a_valid_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    g = tg.ones(2)
    x.grad = g
    assert x.grad is g
    (x * x).sum().backward()  # accumulates into it
    assert x.grad is g and g.tolist() == [3.0, 5.0]
    x.grad = tg.ones(2, requires_grad=True)  # allowed, as in PyTorch
    del x.grad
    assert x.grad is None
    import copy
    g = tg.ones(2)
    g._device = copy.copy(x.device)  # an equal device object, not the canonical one: fine
    x.grad = g
    assert x.grad is g
    i = tg.tensor([1, 2])
    i.grad = tg.tensor([0, 0])  # PyTorch checks the dtype only against the tensor's own
    assert i.grad.tolist() == [0, 0]


def test_grad_of_a_view_and_of_an_alias():
    x = tg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    v = x.reshape(2, 2)
    assert v.grad is None
    v.grad = tg.ones(2, 2)
    assert v.grad.shape == (2, 2) and x.grad is None
    with pytest.raises(tg.ShapeError, match=r"shape \(4,\) but the tensor has shape \(2, 2\)"):
        v.grad = tg.ones(4)
    alias = x.detach()
    x.grad = tg.ones(4)
    assert alias.grad is None
    with pytest.raises(tg.ShapeError):
        x.data.grad = tg.ones(3)


def test_parameter_grad_is_validated_too():
    p = tg.nn.Parameter(tg.zeros(3))
    with pytest.raises(tg.ShapeError):
        p.grad = tg.zeros(2)
    p.grad = tg.ones(3)
    assert p.grad.tolist() == [1.0, 1.0, 1.0]
    import copy
    q = copy.deepcopy(p)
    assert q.grad.tolist() == [1.0, 1.0, 1.0] and q.grad is not p.grad


def test_retain_grad_on_a_tensor_that_does_not_require_grad_raises():
    with pytest.raises(tg.GraphError, match="can't retain_grad on Tensor that has "
                                            "requires_grad=False"):
        tg.ones(2).retain_grad()
    x = tg.ones(2, requires_grad=True)
    with tg.no_grad():
        y = x * 2.0
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        y.retain_grad()
    x.retain_grad()  # a leaf that requires grad: allowed, nothing to do


# ---- pickling and copy.copy (as PyTorch: a leaf, without graph, grad or hooks) ---------------
def test_a_pickled_tensor_comes_back_as_a_leaf_with_its_values(device):
    import pickle
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    x.grad = tg.ones(2, device=device)
    x.register_hook(lambda g: g * 2)
    y = (x * 2.0).exp()
    for t in (x, y):
        u = pickle.loads(pickle.dumps(t))
        assert type(u) is tg.Tensor and u.is_leaf and u.grad_fn is None
        assert u.requires_grad and u.grad is None and u._hooks is None
        assert u.device is t.device  # the canonical device object, as dispatch expects
        np.testing.assert_array_equal(u.detach().numpy(force=True),
                                      t.detach().numpy(force=True))
    # The copy joins new graphs as a leaf; the original graph is untouched.
    u = pickle.loads(pickle.dumps(y))
    (y.sum() + (u * 3.0).sum()).backward()
    np.testing.assert_allclose(u.grad.numpy(force=True), [3.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(force=True),
                               1.0 + 2 * 2 * np.exp([2.0, 4.0]), rtol=1e-6)


def test_a_pickled_parameter_stays_a_parameter():
    import pickle
    p = tg.nn.Parameter(tg.arange(3.0))
    q = pickle.loads(pickle.dumps(p))
    assert type(q) is tg.nn.Parameter and q.requires_grad
    assert q.tolist() == [0.0, 1.0, 2.0]
    frozen = pickle.loads(pickle.dumps(tg.nn.Parameter(tg.ones(1), requires_grad=False)))
    assert not frozen.requires_grad


def test_copy_copy_shares_storage_and_drops_graph_grad_and_hooks():
    import copy
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    x.grad = tg.ones(2)
    x.register_hook(lambda g: g * 10)
    c = copy.copy(x)
    assert c.requires_grad and c.is_leaf and c.grad is None
    with tg.no_grad():
        x[0] = 5.0
    assert c.tolist() == [5.0, 2.0]  # PyTorch's copy.copy shares the storage too
    (c * 2.0).sum().backward()
    assert c.grad.tolist() == [2.0, 2.0]  # x's hook did not come along
    y = x * 3.0
    assert copy.copy(y).grad_fn is None
