"""Indexing ops through the op harness, plus the indexing rules the harness cannot see:
views vs copies, accumulation over repeated indices, masks, bounds and device errors."""

from types import SimpleNamespace

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.ops import indexing
from tensorgrad.ops.registry import apply

S = (3, 4)


def _with(*extra):
    """A make(rng) giving a float (3, 4) input followed by fixed integer/bool arrays."""
    def make(rng):
        return [rng.uniform(-2, 2, size=S)] + [np.array(e) for e in extra]
    return make


def _gather_ref(x, idx, dim):
    cut = tuple(slice(None) if k == dim else slice(0, n) for k, n in enumerate(idx.shape))
    return np.take_along_axis(x[cut], idx, axis=dim)


def _scatter_add_ref(x, idx, src, dim):
    out = x.copy()
    for pos in np.ndindex(*idx.shape):
        target = list(pos)
        target[dim] = idx[pos]
        out[tuple(target)] += src[pos]
    return out


def _scatter_inputs(rng):
    x = rng.uniform(-2, 2, size=S)
    idx = np.array([[0, 2, 2], [2, 0, 2]])  # repeats: the scatter must accumulate
    src = rng.uniform(-2, 2, size=(3, 4))   # larger than index: only its [:2, :3] is used
    return [x, idx, src]


def _getitem_grad(g):
    key = (np.array([0, 2, 0, 0]), Ellipsis)
    return apply(indexing.GETITEM_GRAD, (g,), {"key": key, "shape": (3, 2)})


def _getitem_grad_ref(g):
    out = np.zeros((3, 2))
    np.add.at(out, np.array([0, 2, 0, 0]), g)
    return out


MASK = [[True, False, True, False], [False, False, True, True], [True, True, False, False]]

CASES = [
    # basic indexing (views)
    OpCase(("getitem",), lambda x: x[1], lambda x: x[1], (S,), name="getitem-int"),
    OpCase(("getitem",), lambda x: x[1, 2], lambda x: x[1, 2], (S,), name="getitem-0d"),
    OpCase(("getitem",), lambda x: x[:, 1:3], lambda x: x[:, 1:3], (S,), name="getitem-slice"),
    OpCase(("getitem",), lambda x: x[::-1, 3:0:-2], lambda x: x[::-1, 3:0:-2], (S,),
           name="getitem-negative-step"),
    OpCase(("getitem",), lambda x: x[None, ..., -1], lambda x: x[None, ..., -1], (S,),
           name="getitem-none-ellipsis"),
    # advanced indexing (copies), repeated indices accumulate in the gradient
    OpCase(("getitem",), lambda x: x[[0, 2, 2, 0]], lambda x: x[[0, 2, 2, 0]], (S,),
           name="getitem-list-repeated"),
    OpCase(("getitem",), lambda x, i: x[i], lambda x, i: x[i], make=_with([[1, 1], [2, 0]]),
           name="getitem-tensor-2d"),
    OpCase(("getitem",), lambda x, i: x[i, 1:], lambda x, i: x[i, 1:], make=_with([2, 2, 0]),
           name="getitem-mixed"),
    OpCase(("getitem",), lambda x, i, j: x[i, j], lambda x, i, j: x[i, j],
           make=_with([0, 0, 2], [[1], [1]]), name="getitem-two-arrays-broadcast"),
    OpCase(("getitem",), lambda x, i: x[:, i], lambda x, i: x[:, i], make=_with([3, -1, 3]),
           name="getitem-negative-array"),
    OpCase(("getitem",), lambda x, m: x[m], lambda x, m: x[m], make=_with(MASK),
           name="getitem-bool-mask"),
    OpCase(("getitem",), lambda x, m: x[m, 1::2], lambda x, m: x[m, 1::2],
           make=_with([True, False, True]), name="getitem-bool-rows"),
    OpCase(("getitem",), lambda x, i: x[0, :, i], lambda x, i: x[0][:, i],
           make=lambda rng: [rng.uniform(-2, 2, (2, 3, 4)), np.array([3, 0, 3])],
           name="getitem-int-slice-array-torch-layout"),
    OpCase(("getitem_grad",), _getitem_grad, _getitem_grad_ref, ((4, 2),)),
    # index_put
    OpCase(("index_put",), lambda x, v: tg.index_put(x, (tg.tensor([2, 0], device=x.device),), v),
           lambda x, v: _put(x, [2, 0], v), (S, (4,)), name="index_put-rows-broadcast"),
    OpCase(("index_put",), lambda x, v: tg.index_put(x, ([2, 0, 2],), v, True),
           lambda x, v: _put(x, [2, 0, 2], v, True), (S, (3, 1)), name="index_put-accumulate"),
    OpCase(("index_put",), lambda x, v: tg.index_put(x, (slice(None), 1), v),
           lambda x, v: _put(x, (slice(None), 1), v), (S, (1, 3)), name="index_put-lead-ones"),
    OpCase(("index_put",), lambda x, m: tg.index_put(x, m, 0.5),
           lambda x, m: _put(x, m, 0.5), make=_with(MASK), name="index_put-mask-scalar"),
    # gather / scatter_add and the ops built on them
    OpCase(("gather",), lambda x, i: tg.gather(x, 1, i), lambda x, i: _gather_ref(x, i, 1),
           make=_with([[0, 3, 3], [1, 0, 2]])),
    OpCase(("gather",), lambda x, i: x.gather(0, i), lambda x, i: _gather_ref(x, i, 0),
           make=_with([[2, 2, 0, 1], [0, 1, 2, 2], [1, 1, 1, 1], [0, 0, 0, 0]]),
           name="gather-dim0-longer-index"),
    OpCase(("scatter_add",), lambda x, i, s: tg.scatter_add(x, 1, i, s),
           lambda x, i, s: _scatter_add_ref(x, i, s, 1), make=_scatter_inputs),
    OpCase(("scatter_add",), lambda x, i, s: x.scatter_add(0, i, s),
           lambda x, i, s: _scatter_add_ref(x, i, s, 0), make=_scatter_inputs,
           name="scatter_add-dim0"),
    OpCase(("gather",), lambda x, i: tg.take_along_dim(x, i, 1),
           lambda x, i: np.take_along_axis(x, np.broadcast_to(i, (3, 2)), 1),
           make=_with([[3, 0]]), name="take_along_dim-broadcast"),
    OpCase(("gather",), lambda x, i: tg.take_along_dim(x, i),
           lambda x, i: np.take_along_axis(x.reshape(-1), i, None), make=_with([11, 0, 11]),
           name="take_along_dim-flat"),
    OpCase(("getitem",), lambda x, i: tg.index_select(x, 1, i),
           lambda x, i: x[:, i], make=_with([3, 1, 3]), name="index_select"),
    OpCase(("where",), lambda x, m: x.masked_fill(m, -1.5),
           lambda x, m: np.where(m, -1.5, x), make=_with(MASK), name="masked_fill"),
    OpCase(("getitem",), lambda x, m: tg.masked_select(x, m),
           lambda x, m: x[np.broadcast_to(m, S)], make=_with([True, False, False, True]),
           name="masked_select-broadcast"),
    OpCase(("nonzero",), lambda x: tg.nonzero(x > 0), lambda x: np.argwhere(x > 0), (S,),
           differentiable=False),
]


def _put(x, key, v, accumulate=False):
    out = x.copy()
    if accumulate:
        np.add.at(out, key, v)
    else:
        out[key] = v
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- gradients --------------------------------------------------------------------------
def test_repeated_indices_accumulate(device):
    x = tg.zeros(4, device=device, requires_grad=True)
    x[[0, 0, 1]].sum().backward()
    assert x.grad.tolist() == [2.0, 1.0, 0.0, 0.0]
    x.grad = None
    x[tg.tensor([3, 3, 3], device=device)].sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 3.0]


def test_second_order_through_repeated_indices(device):
    x = tg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    (g,) = tg.autograd.grad((x[[0, 0, 2]] ** 3).sum(), x, create_graph=True)
    assert g.tolist() == [6.0, 0.0, 27.0]  # 2 * 3x^2 at x=1, 3x^2 at x=3
    g.sum().backward()
    assert x.grad.tolist() == [12.0, 0.0, 18.0]


def test_bool_mask_indexing(device):
    a = np.arange(12.0).reshape(3, 4)
    x = tg.tensor(a, device=device, requires_grad=True)
    mask = x.detach() % 3 == 0
    y = x[mask]
    assert y.tolist() == a[a % 3 == 0].tolist()
    (y * y).sum().backward()
    assert x.grad.tolist() == np.where(a % 3 == 0, 2 * a, 0).tolist()
    assert x[mask.numpy() if device == "cpu" else mask].shape == (4,)


def test_negative_step_slices(device):
    a = np.arange(10.0)
    x = tg.tensor(a, device=device, requires_grad=True)
    for key in (slice(None, None, -1), slice(8, 1, -3), slice(-2, None, -2)):
        assert x[key].tolist() == a[key].tolist()
    x[8:1:-3].sum().backward()
    assert x.grad.tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 1, 0]


# ---- views and copies ------------------------------------------------------------------------
def test_basic_indexing_is_a_view_that_sees_writes(device):
    x = tg.arange(6.0, device=device).reshape(2, 3).requires_grad_()
    row, col, elem = x[1], x[:, ::-1], x[0, 2]
    with tg.no_grad():
        x[1, 0] = 10.0
        x[0] += 1
    assert row.tolist() == [10.0, 4.0, 5.0]
    assert col.tolist() == [[3.0, 2.0, 1.0], [5.0, 4.0, 10.0]]
    assert elem.item() == 3.0 and elem.shape == ()
    assert x._version == row._version == elem._version  # views share the version counter


def test_advanced_indexing_is_a_copy(device):
    x = tg.arange(6.0, device=device)
    picked, masked = x[[0, 1]], x[x > 3]
    x.fill_(-1.0)
    assert picked.tolist() == [0.0, 1.0] and masked.tolist() == [4.0, 5.0]


def test_int_tensor_indices(device):
    x = tg.arange(12.0, device=device).reshape(3, 4)
    assert x[tg.tensor(1, device=device)].tolist() == [4.0, 5.0, 6.0, 7.0]  # 0-d acts as int
    assert x[tg.tensor(2)].shape == (4,)  # a 0-d CPU index goes with any device
    assert x[np.array([2, 0])].tolist() == [[8, 9, 10, 11], [0, 1, 2, 3]]
    assert x[[]].shape == (0, 4)
    assert x[tg.tensor([True, False, True], device=device)].shape == (2, 4)


MASK45 = np.array([[True, False, True, False, True], [False] * 5, [True] * 5,
                   [False, True, False, True, False]])
# Beside index arrays NumPy counts ints as advanced indices, PyTorch does not: these differ.
TORCH_KEYS = [(slice(None), [0, 2]), ([1, 0], slice(None), [4, 4]), (None, 1, ..., [3, 0]),
              ([[0], [2]], [1, 3]), (slice(None, None, 2), 0), (0, slice(None), [0, 1]),
              (slice(None), [1, 0], slice(None), 0), ([0, 1], 0, [1, 2]), (0, ..., [1, 2]),
              (0, MASK45), (2, slice(1, 3), [[0], [1]], 4), (slice(None), 0, slice(None), [1, 2]),
              (0, slice(None), [[1], [2]], [0, 5]), (1, MASK45, 2), (slice(None), MASK45, 0),
              (0, slice(None), MASK45[0])]


@pytest.mark.parametrize("key", TORCH_KEYS, ids=lambda k: str(k)[:40])
def test_matches_torch_layout_get_set_and_grad(key):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((3, 4, 5, 6))
    tkey = tuple(torch.tensor(k) if isinstance(k, (list, np.ndarray)) else k for k in key)
    x, xt = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    got, want = x[key], xt[tkey]
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy())
    w = np.random.default_rng(1).standard_normal(got.shape)
    (got * tg.tensor(w)).sum().backward()
    (want * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())
    y, yt = tg.tensor(a), torch.tensor(a)
    y[key], yt[tkey] = -7.0, -7.0
    np.testing.assert_allclose(y.numpy(), yt.numpy())


# ---- errors ----------------------------------------------------------------------------------
def test_out_of_range_index_raises(device):
    x = tg.zeros(3, 4, device=device)
    for key in (3, -4, (0, 4), [0, 3], (slice(None), [-5]), tg.tensor([1, 7], device=device)):
        with pytest.raises(IndexError, match="out of bounds") as info:
            x[key]
        assert isinstance(info.value, tg.ShapeError)
        assert "(3, 4)" in str(info.value) and "hint:" in str(info.value)
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="mask"):
        x[tg.tensor([True, False], device=device)]
    with pytest.raises(IndexError, match="long, int, byte or bool"):
        x[tg.tensor([0.0], device=device)]


def test_index_on_another_device_raises(device):
    other = "cpu" if device == "alt" else "alt"
    x = tg.zeros(3, device=device)
    with pytest.raises(tg.DeviceError, match="indices are on"):
        x[tg.tensor([0], device=other)]
    with pytest.raises(tg.DeviceError):
        tg.gather(x, 0, tg.tensor([0], device=other))


def test_gather_scatter_errors_name_shapes(device):
    x = tg.zeros(3, 4, device=device)
    idx = tg.tensor([[0, 1, 2, 0, 1]], device=device)
    with pytest.raises(tg.ShapeError, match=r"input \(3, 4\), index \(1, 5\)"):
        tg.gather(x, 0, idx)
    with pytest.raises(tg.ShapeError, match="same number of dimensions"):
        tg.gather(x, 0, tg.tensor([0], device=device))
    with pytest.raises(IndexError, match="out of bounds"):
        tg.gather(x, 1, tg.tensor([[4]], device=device))
    with pytest.raises(IndexError, match="out of bounds"):
        tg.gather(x, 1, tg.tensor([[-1]], device=device))
    with pytest.raises(tg.DTypeError):
        tg.gather(x, 1, tg.tensor([[0.0]], device=device))
    with pytest.raises(tg.ShapeError, match=r"src \(1, 1\)"):
        tg.scatter_add(x, 0, tg.tensor([[0, 1]], device=device), tg.ones(1, 1, device=device))
    with pytest.raises(tg.DTypeError, match="dtype"):
        tg.scatter_add(x, 0, tg.tensor([[0]], device=device),
                       tg.ones(1, 1, dtype=tg.float64, device=device))
    with pytest.raises(tg.DTypeError, match="bool mask"):
        x.masked_fill(tg.ones(3, 4, device=device), 0.0)


def test_add_at_fallback_without_ufunc_at():
    # A backend whose `add` has no `.at` (CuPy before v12) takes the bincount path.
    xp = SimpleNamespace(**{n: getattr(np, n) for n in dir(np) if not n.startswith("_")})
    xp.add = lambda *args, **kwargs: np.add(*args, **kwargs)
    key = (np.array([[0, 2], [2, 2]]), slice(None, None, -1), Ellipsis)
    values = np.arange(6.0).reshape(2, 1, 3)
    got, want = np.zeros((3, 2, 3), np.float32), np.zeros((3, 2, 3), np.float32)
    indexing._add_at(xp, got, key, values)
    np.add.at(want, key, values)
    np.testing.assert_allclose(got, want)


# ---- in-place forms ------------------------------------------------------------------------
def test_inplace_forms_differentiable(device):
    x = tg.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    h = x * 2
    h.masked_fill_(x.detach() < 0, 0.0)
    h.index_put_((tg.tensor([0, 0], device=device),), tg.tensor(1.0, device=device), True)
    assert h.tolist() == [4.0, 0.0, 6.0]
    h.sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 2.0]
    buf = tg.zeros(2, 3, device=device)
    buf.scatter_add_(1, tg.tensor([[2, 2]], device=device), tg.ones(1, 2, device=device))
    assert buf.tolist() == [[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]


def test_nonzero_as_tuple_indexes(device):
    x = tg.tensor([[0.0, 1.5], [2.0, 0.0]], device=device)
    rows, cols = tg.nonzero(x, as_tuple=True)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    assert x[tg.nonzero(x, as_tuple=True)].tolist() == [1.5, 2.0]
    assert tg.nonzero(x).dtype == tg.int64
