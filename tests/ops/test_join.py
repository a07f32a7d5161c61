"""narrow, split/chunk/unbind, cat/stack, pad and repeat/tile through the op harness, plus
PyTorch's conventions (chunk sizes, split by size or sections, pad order) and errors."""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.errors import DeviceError, ShapeError


def _weighted_cat(pieces, dim=0):
    # Scale each piece differently, so a gradient routed to the wrong piece shows.
    return tg.cat([p * (i + 1) for i, p in enumerate(pieces)], dim)


def _np_weighted_cat(pieces, axis=0):
    return np.concatenate([p * (i + 1) for i, p in enumerate(pieces)], axis)


def _reflect_2d(x):
    return tg.pad(x, (2, 1, 1, 2), mode="reflect")


def _np_pad(mode, widths):
    return lambda a: np.pad(a, widths, mode=mode)


CASES = [
    OpCase(("narrow",), lambda x: x.narrow(1, 1, 2), lambda a: a[:, 1:3], ((2, 4),)),
    OpCase(("narrow",), lambda x: tg.narrow(x, -1, -2, 2) * x.narrow(1, 0, 2),
           lambda a: a[:, 2:] * a[:, :2], ((2, 4),), name="narrow-negative-start"),
    OpCase(("narrow",), lambda x: _weighted_cat(x.split(2)),
           lambda a: _np_weighted_cat(np.split(a, [2, 4])), ((5, 2),), name="split-int"),
    OpCase(("narrow",), lambda x: _weighted_cat(tg.split(x, [1, 3], dim=1), 1),
           lambda a: _np_weighted_cat(np.split(a, [1], axis=1), 1), ((2, 4),),
           name="split-sections"),
    OpCase(("narrow",), lambda x: _weighted_cat(x.chunk(2, -1), -1),
           lambda a: _np_weighted_cat(np.split(a, [3], axis=-1), -1), ((2, 5),),
           name="chunk"),
    OpCase(("narrow", "reshape"), lambda x: _weighted_cat(x.unbind(1)),
           lambda a: _np_weighted_cat(list(np.moveaxis(a, 1, 0))), ((2, 3),), name="unbind"),
    OpCase(("cat",), lambda a, b, c: tg.cat([a, b, c], 1), lambda a, b, c: np.concatenate(
        [a, b, c], 1), ((2, 1), (2, 3), (2, 2))),
    OpCase(("cat",), lambda a, b: tg.cat((a * b, b), dim=-1), lambda a, b: np.concatenate(
        (a * b, b), -1), ((2, 3), (2, 3)), name="cat-shared-input"),
    OpCase(("cat",), lambda a, b: tg.concatenate([a, b], axis=0),
           lambda a, b: np.concatenate([a, b]), ((1, 3), (2, 3)), grad=(1,),
           name="cat-one-input-constant"),
    OpCase(("stack",), lambda a, b: tg.stack([a, b]), lambda a, b: np.stack([a, b]),
           ((2, 3), (2, 3))),
    OpCase(("stack",), lambda a, b: tg.stack([a, b * a], dim=-1),
           lambda a, b: np.stack([a, b * a], -1), ((2, 3), (2, 3)), name="stack-last-dim"),
    OpCase(("pad",), lambda x: tg.pad(x, (1, 2)), _np_pad("constant", ((0, 0), (1, 2))),
           ((2, 3),)),
    OpCase(("pad",), lambda x: tg.pad(x, (0, 1, 2, 0), value=1.5) * 2,
           lambda a: 2 * np.pad(a, ((2, 0), (0, 1)), constant_values=1.5), ((2, 3),),
           name="pad-value"),
    OpCase(("pad", "narrow"), lambda x: tg.pad(x, (-1, 2, 1, -1)),
           lambda a: np.pad(a[:2, 1:], ((1, 0), (0, 2))), ((3, 4),), name="pad-negative"),
    OpCase(("pad", "cat", "flip"), _reflect_2d, _np_pad("reflect", ((0, 0), (1, 2), (2, 1))),
           ((2, 3, 4),), name="pad-reflect"),
    OpCase(("pad", "cat"), lambda x: tg.pad(x, (2, 1), mode="replicate"),
           _np_pad("edge", ((0, 0), (2, 1))), ((2, 3),), name="pad-replicate"),
    OpCase(("pad", "cat"), lambda x: tg.pad(x, (1, 3, 2, 0), mode="circular"),
           _np_pad("wrap", ((0, 0), (2, 0), (1, 3))), ((1, 2, 3),), name="pad-circular"),
    # repeat/tile are reshape -> broadcast_to -> reshape (a copy), so they have no op of their own.
    OpCase(("reshape", "broadcast_to"), lambda x: x.repeat(2, 1, 3),
           lambda a: np.tile(a, (2, 1, 3)), ((2, 3),), name="repeat"),
    OpCase(("reshape", "broadcast_to"), lambda x: tg.tile(x, (2,)),
           lambda a: np.tile(a, (1, 2)), ((2, 3),), name="tile"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- split / chunk / unbind ------------------------------------------------------------
def _sizes(pieces, dim=0):
    return [p.shape[dim] for p in pieces]


def test_split_int_is_a_chunk_size_list_gives_sizes():
    x = tg.arange(10)
    assert _sizes(x.split(3)) == [3, 3, 3, 1]  # PyTorch: a chunk size, not a count
    assert _sizes(tg.split(x, [2, 5, 3])) == [2, 5, 3]
    assert [p.tolist() for p in x.split([2, 8])] == [[0, 1], list(range(2, 10))]
    assert _sizes(tg.zeros(2, 7).split(4, dim=-1), 1) == [4, 3]
    assert _sizes(x.split(np.int64(4))) == [4, 4, 2]
    assert _sizes(tg.zeros(0).split(2)) == [0]
    with pytest.raises(ShapeError, match="sum exactly to 10"):
        x.split([2, 2])


def test_chunk_sizes_follow_pytorch():
    assert _sizes(tg.chunk(tg.arange(5), 2)) == [3, 2]
    assert _sizes(tg.arange(6).chunk(4)) == [2, 2, 2]  # fewer chunks, as PyTorch
    assert _sizes(tg.arange(6).chunk(3)) == [2, 2, 2]
    assert _sizes(tg.zeros(0).chunk(3)) == [0, 0, 0]
    assert _sizes(tg.zeros(2, 7).chunk(3, dim=1), 1) == [3, 3, 1]


def test_unbind_drops_the_dimension():
    x = tg.arange(6).reshape(2, 3)
    assert [p.tolist() for p in x.unbind(1)] == [[0, 3], [1, 4], [2, 5]]
    assert [p.shape for p in tg.unbind(x)] == [(3,), (3,)]


def test_split_pieces_get_their_own_gradients(device):
    x = tg.arange(5.0, device=device, requires_grad=True)
    a, b = x.chunk(2)
    (a.sum() * 2 + (b * b).sum()).backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0, 6.0, 8.0]


def test_pieces_share_one_node_and_backward_joins_them_once(device):
    # One Split node for all pieces: backward is one cat (one stack for unbind), not a
    # zero-padded full-size gradient per piece (quadratic for unbind over a long axis).
    x0 = tg.arange(12.0, device=device, requires_grad=True)
    x = x0.reshape(3, 4)
    pieces = x.unbind(1)
    assert len({p.grad_fn.edges[0] for p in pieces}) == 1
    assert pieces[0].grad_fn.edges[0].name() == "SplitBackward"
    (pieces[1] * 2 + pieces[3]).sum().backward()  # pieces 0 and 2 get zeros
    assert x0.grad.reshape(3, 4).tolist() == [[0.0, 2.0, 0.0, 1.0]] * 3
    g = tg.autograd.grad((x.split([1, 3], 1)[1] ** 2).sum(), x0)[0]
    np.testing.assert_allclose(g.cpu().numpy().reshape(3, 4),
                               np.where(np.arange(4) >= 1, 2, 0) * np.arange(12.0).reshape(3, 4))


def test_split_gradients_of_gradients(device):
    x = tg.tensor(np.random.default_rng(0).random((4, 6)), device=device, requires_grad=True)

    def f(x):
        a, _, c = x.split(2, dim=1)
        return (a * c ** 2).sum() + sum((r * (i + 1)).sum() for i, r in enumerate(x.unbind(0))
                                         if i != 2)
    assert tg.autograd.gradcheck(f, (x,)) and tg.autograd.gradgradcheck(f, (x,))


def test_narrow_bounds_message():
    with pytest.raises(ShapeError, match="hint:"):
        tg.zeros(2, 3).narrow(1, 2, 2)


# ---- cat / stack -----------------------------------------------------------------------
def test_cat_mismatch_message_names_everything():
    with pytest.raises(ShapeError) as err:
        tg.cat([tg.zeros(2, 3), tg.zeros(4, 3), tg.zeros(2, 5)])
    msg = str(err.value)
    assert msg.startswith("cat:")
    assert "dimension 1" in msg and "tensor 2" in msg and "size 5" in msg
    assert "(2, 3)" in msg and "(4, 3)" in msg and "(2, 5)" in msg and "hint:" in msg
    with pytest.raises(ShapeError, match="same number of dimensions"):
        tg.cat([tg.zeros(2, 3), tg.zeros(2, 3, 1)])
    with pytest.raises(ShapeError, match="zero-dimensional"):
        tg.cat([tg.tensor(1.0), tg.tensor(2.0)])
    with pytest.raises(RuntimeError):  # what a PyTorch user catches
        tg.cat([tg.zeros(2, 3), tg.zeros(2, 4)])


def test_stack_mismatch_message():
    with pytest.raises(ShapeError) as err:
        tg.stack([tg.zeros(2, 3), tg.zeros(2, 3), tg.zeros(3, 2)])
    msg = str(err.value)
    assert msg.startswith("stack:") and "entry 2" in msg
    assert "(2, 3)" in msg and "(3, 2)" in msg and "hint:" in msg


def test_cat_and_stack_arguments():
    with pytest.raises(TypeError, match="list or tuple"):
        tg.cat(tg.zeros(2))
    with pytest.raises(ValueError, match="non-empty"):
        tg.stack([])
    x = tg.zeros(2, 3)
    assert tg.stack([x, x], dim=-1).shape == (2, 3, 2)
    assert tg.stack([x, x], 2).shape == (2, 3, 2)
    assert tg.concat([x, x], -1).shape == (2, 6)
    assert tg.cat([tg.tensor([]), x]).shape == (2, 3)  # legacy empty 1-D tensors are skipped


def test_cat_promotes_dtypes_like_torch():
    i32, f16 = tg.ones(2, dtype=tg.int32), tg.ones(2, dtype=tg.float16)
    assert tg.cat([i32, f16]).dtype == tg.float16
    assert tg.cat([i32, tg.ones(2, dtype=tg.int64)]).dtype == tg.int64
    assert tg.stack([tg.ones(2, dtype=tg.bool), i32]).dtype == tg.int32
    f32 = tg.ones(2, requires_grad=True)
    out = tg.cat([f32, tg.ones(2, dtype=tg.float64)])
    assert out.dtype == tg.float64
    out.sum().backward()
    assert f32.grad.dtype == tg.float32 and f32.grad.tolist() == [1.0, 1.0]


def test_cat_across_devices_raises():
    with pytest.raises(DeviceError, match="cat"):
        tg.cat([tg.zeros(2), tg.zeros(2, device="alt")])


# ---- pad ---------------------------------------------------------------------------------
def test_pad_orders_widths_from_the_last_dim():
    a = np.arange(6.0).reshape(1, 2, 3)
    x = tg.tensor(a)
    # (left, right) pads the last dim, then (top, bottom) the one before it.
    np.testing.assert_array_equal(tg.pad(x, (1, 2)).numpy(),
                                  np.pad(a, ((0, 0), (0, 0), (1, 2))))
    np.testing.assert_array_equal(tg.pad(x, (1, 0, 0, 2), value=-1).numpy(),
                                  np.pad(a, ((0, 0), (0, 2), (1, 0)), constant_values=-1))
    np.testing.assert_array_equal(tg.pad(x, (0, 0, 0, 0, 1, 1)).numpy(),
                                  np.pad(a, ((1, 1), (0, 0), (0, 0))))
    for mode, np_mode in [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")]:
        np.testing.assert_array_equal(tg.pad(x, (2, 1, 1, 0), mode=mode).numpy(),
                                      np.pad(a, ((0, 0), (1, 0), (2, 1)), mode=np_mode))
    i = tg.tensor([1, 2], dtype=tg.int32)
    assert tg.pad(i, (1, 1), value=7).tolist() == [7, 1, 2, 7]
    assert tg.pad(i, (1, 1)).dtype == tg.int32


def test_pad_errors():
    x = tg.zeros(2, 3)
    with pytest.raises(ShapeError, match="even length"):
        tg.pad(x, (1,))
    with pytest.raises(ShapeError, match="even length"):
        tg.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ShapeError, match="reflect"):
        tg.pad(x, (3, 0), mode="reflect")  # widths must be < size
    with pytest.raises(ShapeError, match="negative size"):
        tg.pad(x, (-2, -2))
    with pytest.raises(ValueError, match="value"):
        tg.pad(x, (1, 1), mode="reflect", value=2.0)
    with pytest.raises(ValueError, match="unknown mode"):
        tg.pad(x, (1, 1), mode="symmetric")


# ---- repeat / tile -------------------------------------------------------------------
def test_repeat_is_tile_and_checks_its_arguments():
    a = np.arange(6.0).reshape(2, 3)
    x = tg.tensor(a)
    np.testing.assert_array_equal(x.repeat(2, 2).numpy(), np.tile(a, (2, 2)))
    np.testing.assert_array_equal(x.repeat(3, 1, 2).numpy(), np.tile(a, (3, 1, 2)))
    np.testing.assert_array_equal(x.tile(2).numpy(), np.tile(a, 2))
    np.testing.assert_array_equal(x.repeat((1, 0)).numpy(), np.tile(a, (1, 0)))
    with pytest.raises(ShapeError, match="at least one per dimension"):
        x.repeat(2)


def test_against_torch_if_present():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 3, 5))
    x, t = tg.tensor(a), torch.tensor(a)
    F = torch.nn.functional
    pairs = [
        (tg.pad(x, (1, 2, 0, 1)), F.pad(t, (1, 2, 0, 1))),
        (tg.pad(x, (-1, 2), value=3.0), F.pad(t, (-1, 2), value=3.0)),
        (tg.pad(x, (2, 1, 1, 2), mode="reflect"), F.pad(t, (2, 1, 1, 2), mode="reflect")),
        (tg.pad(x, (3, 1), mode="replicate"), F.pad(t, (3, 1), mode="replicate")),
        (tg.pad(x, (4, 5, 1, 0), mode="circular"), F.pad(t, (4, 5, 1, 0), mode="circular")),
        (x.repeat(2, 1, 1, 2), t.repeat(2, 1, 1, 2)), (x.tile((2, 1)), t.tile((2, 1))),
        (tg.cat(x.split([1, 4], -1)[::-1], -1), torch.cat(t.split([1, 4], -1)[::-1], -1)),
        (tg.stack(x.chunk(3, 1), 3), torch.stack(t.chunk(3, 1), 3)),
        (tg.stack(x.unbind(1)), torch.stack(t.unbind(1))),
    ]
    for ours, theirs in pairs:
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_narrow_over_the_whole_dimension_is_a_new_view(device):
    # Not the input object: requires_grad_(False) or hooks on the view must not reach it.
    x = tg.ones(3, device=device, requires_grad=True)
    v = x.narrow(0, 0, 3)
    assert v is not x and not v.is_leaf and v.grad_fn is not None
    with tg.no_grad():
        x.add_(1.0)
    assert v._version == x._version and v.tolist() == [2.0, 2.0, 2.0]
