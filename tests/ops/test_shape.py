"""Shape ops (casts, transfers, reshape/view, expand, permute, squeeze, flip/roll, tril/triu)
through the op harness, plus views, PyTorch conventions and error messages."""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.errors import GraphError, ShapeError


def _other_device(x):
    return "cpu" if x.device.type == "alt" else "alt"


def _cast_round_trip(x):
    # float32 -> float64 -> float32 is exact; in float64 (gradcheck) both casts are no-ops,
    # so the cast's VJP is checked by test_cast_gradients below.
    return x.double().to(x.dtype)


def _expand_minus_one(x):
    return x.expand(-1, 4) * tg.arange(4.0, device=x.device, dtype=x.dtype)


def _np_movedim(a):
    return np.moveaxis(a, (0, 1), (2, 0))


CASES = [
    OpCase(("to_dtype",), _cast_round_trip, lambda a: a, ((3, 4),), name="to_dtype-f32-f64"),
    OpCase(("to_device",), lambda x: (x.to(_other_device(x)) * 2).to(x.device),
           lambda a: 2 * a, ((2, 3),)),
    OpCase(("reshape",), lambda x: x.reshape(4, -1), lambda a: a.reshape(4, -1), ((2, 3, 2),)),
    OpCase(("reshape",), lambda x: x.view((3, 4)).T, lambda a: a.reshape(3, 4).T, ((2, 6),),
           name="view-then-T"),
    OpCase(("reshape",), lambda x: x.flatten(1), lambda a: a.reshape(2, -1), ((2, 3, 2),),
           name="flatten"),
    OpCase(("reshape",), lambda x: x.unflatten(1, (3, -1)), lambda a: a.reshape(2, 3, 2),
           ((2, 6),), name="unflatten"),
    OpCase(("reshape",), lambda x: x.squeeze(), lambda a: a.squeeze(), ((1, 3, 1, 2),),
           name="squeeze-all"),
    OpCase(("reshape",), lambda x: x.squeeze((-1, 0, 1)), lambda a: a.squeeze((0, 3)),
           ((1, 3, 1, 1),), name="squeeze-dims"),
    OpCase(("reshape",), lambda x: x.unsqueeze(-1).unsqueeze(0), lambda a: a[None, :, :, None],
           ((2, 3),), name="unsqueeze"),
    OpCase(("broadcast_to",), lambda x: tg.broadcast_to(x, (2, 3, 4)),
           lambda a: np.broadcast_to(a, (2, 3, 4)), ((3, 1),)),
    OpCase(("broadcast_to",), _expand_minus_one, lambda a: a * np.arange(4.0), ((3, 1),),
           name="expand-minus-one"),
    OpCase(("permute",), lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1),
           ((2, 3, 4),)),
    OpCase(("permute",), lambda x: x.transpose(0, -1), lambda a: a.swapaxes(0, 2),
           ((2, 3, 4),), name="transpose"),
    OpCase(("permute",), lambda x: x.t() @ x, lambda a: a.T @ a, ((3, 2),), name="t-matmul"),
    OpCase(("permute",), lambda x: x.mT, lambda a: a.swapaxes(-1, -2), ((2, 3, 4),),
           name="mT"),
    OpCase(("permute",), lambda x: tg.movedim(x, (0, 1), (2, 0)), _np_movedim, ((2, 3, 4),),
           name="movedim"),
    OpCase(("clone",), lambda x: x.clone() * x, lambda a: a * a, ((3, 4),)),
    OpCase(("contiguous",), lambda x: x.T.contiguous(), lambda a: a.T, ((3, 4),)),
    OpCase(("flip",), lambda x: x.flip(0, -1), lambda a: a[::-1, :, ::-1], ((2, 3, 2),)),
    OpCase(("flip",), lambda x: tg.flip(x, dims=[1]) * x, lambda a: a[:, ::-1] * a, ((2, 3),),
           name="flip-times-x"),
    OpCase(("roll",), lambda x: x.roll((1, -2), (0, 1)), lambda a: np.roll(a, (1, -2), (0, 1)),
           ((3, 4),)),
    OpCase(("roll",), lambda x: tg.roll(x, 5), lambda a: np.roll(a, 5), ((3, 4),),
           name="roll-flat"),
    OpCase(("tril",), lambda x: x.tril(), np.tril, ((3, 4),)),
    OpCase(("tril",), lambda x: tg.tril(x, -1), lambda a: np.tril(a, -1), ((2, 3, 3),),
           name="tril-batched"),
    OpCase(("triu",), lambda x: x.triu(1), lambda a: np.triu(a, 1), ((2, 3, 4),)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- casts and transfers ---------------------------------------------------------------
def test_cast_gradients(device):
    x = tg.tensor([1.5, -2.0], device=device, requires_grad=True)
    y = x.double()
    assert y.dtype == tg.float64
    (g,) = tg.autograd.grad((y ** 3).sum(), x, create_graph=True)
    assert g.dtype == tg.float32 and g.tolist() == [6.75, 12.0]
    (gg,) = tg.autograd.grad(g.sum(), x)
    assert gg.dtype == tg.float32 and gg.tolist() == [9.0, -12.0]


def test_cast_to_integer_cuts_the_graph(device):
    x = tg.tensor([1.7, -2.2], device=device, requires_grad=True)
    n = x.long()
    assert n.dtype == tg.int64 and not n.requires_grad and n.tolist() == [1, -2]


def test_transfer_gradient_returns_to_source_device(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.to(_other_device(x))
    assert y.device.type == _other_device(x)
    (y * y).sum().backward()
    assert x.grad.device == x.device and x.grad.tolist() == [2.0, 4.0]


# ---- views -----------------------------------------------------------------------------
def test_views_share_storage():
    x = tg.arange(6.0)
    y = x.reshape(2, 3)
    z = y.transpose(0, 1)
    e = x.narrow(0, 1, 1).expand(4)
    with tg.no_grad():
        x.mul_(10)
    assert y.tolist() == [[0.0, 10.0, 20.0], [30.0, 40.0, 50.0]]
    assert z.tolist() == [[0.0, 30.0], [10.0, 40.0], [20.0, 50.0]]
    assert y._version == x._version == z._version  # one version counter for base and views
    assert e.tolist() == [10.0] * 4


def test_permute_and_narrow_are_views_flip_is_a_copy():
    x = tg.arange(6.0).reshape(2, 3)
    p, n, f, r = x.permute(1, 0), x.narrow(1, 1, 2), x.flip(0), x.repeat(1, 1)
    with tg.no_grad():
        x.fill_(1.0)
    assert p.tolist() == [[1.0, 1.0]] * 3 and n.tolist() == [[1.0, 1.0]] * 2
    assert f.tolist() == [[3.0, 4.0, 5.0], [0.0, 1.0, 2.0]]  # PyTorch's flip copies
    assert r.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]  # and so does repeat


# ---- views that change nothing are new tensors, as in PyTorch ---------------------------
# name -> the no-op view of a (2, 3) tensor, or of the 0-d or 1-d tensor its name ends with.
NO_OP_VIEWS = {
    "view": lambda x: x.view(2, 3), "reshape": lambda x: x.reshape(-1, 3),
    "view_as": lambda x: x.view_as(x), "reshape_as": lambda x: x.reshape_as(x),
    "squeeze": lambda x: x.squeeze(), "squeeze-dim": lambda x: x.squeeze(0),
    "unflatten": lambda x: x.unflatten(1, (3,)), "expand": lambda x: x.expand(2, 3),
    "expand-minus-one": lambda x: x.expand(-1, -1), "expand_as": lambda x: x.expand_as(x),
    "broadcast_to": lambda x: tg.broadcast_to(x, (2, 3)),
    "permute": lambda x: x.permute(0, 1), "transpose-same-dim": lambda x: x.transpose(1, 1),
    "movedim": lambda x: x.movedim(0, 0), "transpose-0d": lambda s: s.transpose(0, -1),
    "t-0d": lambda s: s.t(), "T-0d": lambda s: s.T, "t-1d": lambda r: r.t(),
    "T-1d": lambda r: r.T,
}


def _base(name, x):
    # The tensor the no-op view is taken of: x itself, or a 0-d or 1-d tensor made from it.
    return x.sum() if name.endswith("0d") else x[0] if name.endswith("1d") else x


@pytest.mark.parametrize("name", NO_OP_VIEWS)
def test_a_view_that_changes_nothing_is_a_new_tensor_on_the_graph(name, device):
    x = tg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device, requires_grad=True)
    base = _base(name, x)
    v = NO_OP_VIEWS[name](base)
    assert v is not base and v.shape == base.shape
    assert not v.is_leaf and v.grad_fn is not None and v.requires_grad
    with pytest.raises(GraphError, match="leaf"):  # not a leaf: x's flag cannot be switched
        v.requires_grad_(False)
    assert x.requires_grad
    w = tg.arange(1.0, 1.0 + v.numel(), device=device).reshape(v.shape)
    (v * w).sum().backward()
    expected = {"0d": [[1.0] * 3] * 2, "1d": [[1.0, 2.0, 3.0], [0.0] * 3]}.get(
        name[-2:], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.grad.tolist() == expected


@pytest.mark.parametrize("name", NO_OP_VIEWS)
def test_a_view_that_changes_nothing_shares_storage_and_version(name, device):
    x = tg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device)
    base = _base(name, x)
    v = NO_OP_VIEWS[name](base)
    assert v is not base and v.is_leaf and not v.requires_grad  # a plain alias: no graph
    version = base._version
    with tg.no_grad():
        base.mul_(10)
    assert v._version == base._version == version + 1  # one counter: saved-tensor checks see it
    assert v.tolist() == base.tolist()


def test_flatten_of_one_dimension_returns_its_input():
    # PyTorch's flatten returns the input itself when there is nothing to flatten.
    x = tg.zeros(2, 3, requires_grad=True)
    assert x.flatten(1, 1) is x and x.flatten(-2, 0) is x
    v = tg.zeros(3).flatten()
    assert v.shape == (3,)
    s = tg.tensor(1.0, requires_grad=True)
    assert s.flatten() is not s and s.flatten().shape == (1,)


def test_an_expand_that_changes_nothing_can_be_written_through():
    # Nothing is repeated, so PyTorch allows in-place writes; real expansions stay read-only.
    x = tg.zeros(2, 3)
    x.expand(2, 3).add_(1.0)
    assert x.tolist() == [[1.0] * 3] * 2
    with pytest.raises(GraphError, match="read-only"):
        tg.zeros(3).expand(2, 3).add_(1.0)


def test_transpose_of_a_0d_tensor_checks_its_dims():
    s = tg.tensor(1.0)
    assert s.transpose(-1, 0).shape == ()
    with pytest.raises(ShapeError, match=r"\[-1, 0\]"):
        s.transpose(0, 1)


# ---- reshape / expand / squeeze conventions --------------------------------------------
def test_reshape_infers_minus_one():
    x = tg.zeros(2, 3, 4)
    assert x.reshape(-1).shape == (24,)
    assert x.reshape(4, -1).shape == (4, 6)
    assert x.view(-1, 2, 3).shape == (4, 2, 3)
    assert x.reshape([2, -1]).shape == (2, 12)


def test_reshape_impossible_shape_message():
    x = tg.zeros(2, 3)
    with pytest.raises(ShapeError) as err:
        x.reshape(4, -1)
    msg = str(err.value)
    assert "reshape" in msg and "(4, -1)" in msg and "(2, 3)" in msg and "6 elements" in msg
    assert "hint:" in msg
    with pytest.raises(ShapeError, match="hint:"):
        x.reshape(5)
    with pytest.raises(ShapeError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(ShapeError, match="invalid shape dimension -3"):
        x.reshape(-2, -3)
    with pytest.raises(ValueError):  # a ShapeError is a ValueError too, for NumPy users
        x.view(7)


def test_expand_keeps_minus_one_dims():
    x = tg.tensor([[1.0], [2.0], [3.0]])
    y = x.expand(-1, 4)
    assert y.shape == (3, 4) and y.tolist()[2] == [3.0] * 4
    assert x.expand(2, -1, 4).shape == (2, 3, 4)
    with pytest.raises(ShapeError, match="hint:"):
        x.expand(2, 4)


def test_squeeze_and_unsqueeze_negative_dims():
    x = tg.zeros(1, 3, 1)
    assert x.squeeze(-1).shape == (1, 3)
    assert x.squeeze(-3).shape == (3, 1)
    assert x.squeeze(1).shape == (1, 3, 1)  # a non-1 dim: no-op, as in PyTorch
    assert x.squeeze().shape == (3,)
    assert tg.squeeze(x, (0, -1)).shape == (3,)
    assert tg.unsqueeze(tg.zeros(2, 3), -1).shape == (2, 3, 1)
    assert tg.zeros(2, 3).unsqueeze(-3).shape == (1, 2, 3)
    assert tg.zeros(2, 3).unsqueeze(2).shape == (2, 3, 1)
    assert tg.tensor(1.0).unsqueeze(-1).shape == (1,)
    assert tg.tensor(1.0).squeeze(0).shape == ()
    with pytest.raises(ShapeError, match="out of range"):
        tg.zeros(2, 3).unsqueeze(3)
    with pytest.raises(ShapeError, match="out of range"):
        x.squeeze(3)


def test_movedim_matches_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = tg.tensor(a)
    for src, dst in [(0, -1), (-1, 0), ((0, 1), (2, 0)), ((0, 2), (1, 0))]:
        np.testing.assert_array_equal(tg.movedim(x, src, dst).numpy(), np.moveaxis(a, src, dst))
    with pytest.raises(ShapeError):
        tg.movedim(x, (0, 1), 2)


def test_tril_triu_need_two_dims():
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        tg.zeros(3).tril()
    m = tg.ones(3, 3)
    assert (m.tril() + m.triu(1)).tolist() == m.tolist()


def test_roll_without_dims_flattens():
    x = tg.arange(6).reshape(2, 3)
    assert x.roll(1).tolist() == [[5, 0, 1], [2, 3, 4]]
    assert x.roll(-1, 1).tolist() == [[1, 2, 0], [4, 5, 3]]
    with pytest.raises(ShapeError):
        x.roll((1, 2), 0)


def test_against_torch_if_present():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 1, 3, 1))
    x, t = tg.tensor(a), torch.tensor(a)
    pairs = [
        (x.squeeze(), t.squeeze()), (x.squeeze((1, 2)), t.squeeze((1, 2))),
        (x.unsqueeze(-2), t.unsqueeze(-2)), (x.movedim(0, -1), t.movedim(0, -1)),
        (x.flip(0, 2), t.flip((0, 2))), (x.roll(2, 2), t.roll(2, 2)),
        (x.reshape(3, 2).tril(-1), t.reshape(3, 2).tril(-1)),
        (x.reshape(2, 3).triu(1), t.reshape(2, 3).triu(1)), (x.mT, t.mT),
        (x.flatten(1, 2), t.flatten(1, 2)), (x.expand(2, 4, 3, 5), t.expand(2, 4, 3, 5)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
