"""Broadcasting: every differentiable binary op over hypothesis' broadcastable shape pairs,
the `broadcast_shapes` / `unbroadcast` helpers, and the error for shapes that do not fit.

Reference gradients are computed in NumPy with an un-broadcast written here, independently
of tensorgrad's (sum the added leading axes, then the axes where the input had size 1).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tensorgrad as tg
from tensorgrad.ops.broadcast import broadcast_shapes, unbroadcast

SHAPE_PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def np_unbroadcast(g, shape):
    g = np.asarray(g)
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _max_share(a, b):
    # maximum's gradient share for `a`: 1 where it wins, 1/2 on ties (PyTorch).
    return (a > b) + 0.5 * (a == b)


# name -> (tensorgrad fn, NumPy forward, NumPy (d out/d a, d out/d b) at full shape, low)
BINARY = {
    "add": (tg.add, np.add, lambda a, b: (np.ones_like(a + b),) * 2, -2.0),
    "sub": (tg.sub, np.subtract, lambda a, b: (np.ones_like(a + b), -np.ones_like(a + b)),
            -2.0),
    "mul": (tg.mul, np.multiply, lambda a, b: (b + 0 * a, a + 0 * b), -2.0),
    "div": (tg.div, np.divide, lambda a, b: (1 / b + 0 * a, -a / b ** 2), 0.5),
    "pow": (tg.pow, np.power, lambda a, b: (b * a ** (b - 1), a ** b * np.log(a)), 0.5),
    "maximum": (tg.maximum, np.maximum,
                lambda a, b: (_max_share(a, b), _max_share(b, a)), -2.0),
    "minimum": (tg.minimum, np.minimum,
                lambda a, b: (_max_share(b, a), _max_share(a, b)), -2.0),
}


def _arrays(shapes, low, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, 2.0, size=s) for s in shapes]


def _check_grad(t, expected_full, name, i):
    assert t.grad is not None, f"{name}: input {i} got no gradient"
    assert t.grad.shape == t.shape, f"{name}: grad {t.grad.shape} for input {t.shape}"
    assert t.grad.dtype == t.dtype
    np.testing.assert_allclose(t.grad.numpy(), np_unbroadcast(expected_full, t.shape),
                               rtol=1e-12, atol=1e-12, err_msg=f"{name} input {i}")


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=SHAPE_PAIRS)
def test_binary_op_broadcasts_values_and_gradients(name, shapes):
    fn, ref, grads, low = BINARY[name]
    a, b = _arrays(shapes.input_shapes, low)
    if name in ("maximum", "minimum"):
        b = np.where(np.random.default_rng(1).uniform(size=b.shape) < 0.3, 0.5, b)
        a = np.where(np.random.default_rng(2).uniform(size=a.shape) < 0.3, 0.5, a)  # ties
    ta = tg.tensor(a, requires_grad=True)
    tb = tg.tensor(b, requires_grad=True)
    out = fn(ta, tb)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.detach().numpy(), ref(a, b), rtol=1e-12, atol=1e-12)
    out.sum().backward()
    ga, gb = grads(a, b)
    _check_grad(ta, np.broadcast_to(ga, shapes.result_shape), name, 0)
    _check_grad(tb, np.broadcast_to(gb, shapes.result_shape), name, 1)


@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
def test_where_broadcasts_values_and_gradients(shapes):
    s_cond, s_a, s_b = shapes.input_shapes
    cond = np.random.default_rng(0).uniform(size=s_cond) < 0.5
    a, b = _arrays((s_a, s_b), -2.0)
    ta = tg.tensor(a, requires_grad=True)
    tb = tg.tensor(b, requires_grad=True)
    out = tg.where(tg.tensor(cond), ta, tb)
    assert out.shape == shapes.result_shape
    np.testing.assert_array_equal(out.detach().numpy(), np.where(cond, a, b))
    out.sum().backward()
    full = np.broadcast_to(cond, shapes.result_shape).astype(np.float64)
    _check_grad(ta, full, "where", 1)
    _check_grad(tb, 1 - full, "where", 2)


@given(shapes=SHAPE_PAIRS)
def test_only_the_input_that_requires_grad_gets_one(shapes):
    a, b = _arrays(shapes.input_shapes, -2.0)
    ta = tg.tensor(a)
    tb = tg.tensor(b, requires_grad=True)
    (ta * tb).sum().backward()
    assert ta.grad is None
    _check_grad(tb, np.broadcast_to(a, shapes.result_shape), "mul", 1)


@given(shapes=SHAPE_PAIRS)
def test_python_scalar_and_0d_operands_broadcast(shapes):
    a, = _arrays(shapes.input_shapes[:1], -2.0)
    ta = tg.tensor(a, requires_grad=True)
    s = tg.tensor(3.0, dtype=tg.float64, requires_grad=True)
    out = ta * s + 1.5
    assert out.shape == a.shape
    out.sum().backward()
    assert s.grad.shape == () and s.grad.item() == pytest.approx(a.sum())
    _check_grad(ta, np.full(a.shape, 3.0), "mul-0d", 0)


# ---- the helpers -------------------------------------------------------------------------------
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, max_side=3))
def test_broadcast_shapes_matches_numpy(shapes):
    assert broadcast_shapes(*shapes.input_shapes) == shapes.result_shape
    assert broadcast_shapes(*shapes.input_shapes) == np.broadcast_shapes(*shapes.input_shapes)


def test_broadcast_shapes_cases():
    assert broadcast_shapes() == ()
    assert broadcast_shapes((), ()) == ()
    assert broadcast_shapes((3,), ()) == (3,)
    assert broadcast_shapes((2, 1, 4), (3, 1)) == (2, 3, 4)
    assert broadcast_shapes((0,), (1,)) == (0,)
    assert broadcast_shapes((5, 0), (1, 1)) == (5, 0)


@given(shape=array_shapes(min_dims=0, max_dims=3, max_side=3),
       lead=st.lists(st.integers(1, 3), max_size=2), data=st.data())
def test_unbroadcast_matches_numpy(shape, lead, data):
    # A gradient shape that `shape` broadcasts to: extra leading dims, size-1 dims grown.
    grown = tuple(data.draw(st.integers(1, 3)) if d == 1 else d for d in shape)
    gshape = tuple(lead) + grown
    g = np.random.default_rng(0).standard_normal(gshape)
    out = unbroadcast(tg.tensor(g), shape)
    assert out.shape == tuple(shape)
    np.testing.assert_allclose(out.numpy(), np_unbroadcast(g, shape), rtol=1e-12, atol=1e-12)


def test_unbroadcast_cases():
    g = tg.ones(2, 3, 4)
    assert unbroadcast(g, (3, 1)).tolist() == [[8.0], [8.0], [8.0]]
    assert unbroadcast(g, ()).item() == 24.0
    assert unbroadcast(g, (1, 1, 4)).shape == (1, 1, 4)
    assert unbroadcast(g, (2, 3, 4)) is g  # nothing to do: the same tensor
    assert unbroadcast(tg.ones(2, 1), (1,)).tolist() == [2.0]


def test_unbroadcast_is_differentiable():
    g = tg.ones(2, 3, dtype=tg.float64, requires_grad=True)
    (unbroadcast(g, (3,)) * tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64)).sum().backward()
    assert g.grad.tolist() == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]


# ---- shapes that do not broadcast ----------------------------------------------------------------
@pytest.mark.parametrize("name, call", [
    ("add", lambda a, b: a + b), ("sub", tg.sub), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", tg.pow), ("maximum", tg.maximum),
    ("minimum", tg.minimum), ("eq", lambda a, b: a == b), ("lt", tg.lt),
    ("where", lambda a, b: tg.where(a > 0, a, b)),
])
def test_incompatible_shapes_raise_shape_error_naming_op_shapes_and_dim(name, call, device):
    a = tg.ones(2, 3, device=device)
    b = tg.ones(2, 4, device=device)
    with pytest.raises(tg.ShapeError) as info:
        call(a, b)
    msg = str(info.value)
    assert msg.startswith(name + ":"), msg
    assert "(2, 3)" in msg and "(2, 4)" in msg
    assert "dimension -1" in msg and "hint:" in msg
    assert isinstance(info.value, ValueError)


def test_mismatch_names_the_first_offending_dimension():
    with pytest.raises(tg.ShapeError, match=r"dimension -3 the sizes are 2, 5"):
        broadcast_shapes((2, 1, 3), (5, 4, 3), op="demo")
    with pytest.raises(tg.ShapeError, match=r"^demo: shapes \(3,\) and \(4,\)"):
        broadcast_shapes((3,), (4,), op="demo")
