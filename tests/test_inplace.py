"""In-place methods, augmented assignment and `x[idx] = v` (shared/DESIGN.md section 4).

(a) where no gradient is recorded they write into the array itself, and views see it;
(b) on a leaf that requires grad, in grad mode, they raise GraphError;
(c) where a gradient is recorded they are differentiable, and `+=` keeps the object;
(d) a tensor saved for backward and modified in place afterwards makes backward raise;
(e) `buf[i] = v` with v requiring grad makes a fresh buffer differentiable;
(f) an integer tensor cannot take a floating-point result in place;
(g) where a gradient is recorded, an in-place op on a view writes through to the tensor it
    views, and both get the right gradients (PyTorch's CopySlices).
"""

import numpy as np
import pytest

import tensorgrad as tg


def _t(values, device, requires_grad=False):
    return tg.tensor(np.asarray(values, dtype=np.float64), device=device,
                     requires_grad=requires_grad)


def _grad_of(fn, values, device):
    x = _t(values, device, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy(force=True)


# ---- (a) no gradient recorded: write into the array ----------------------------------------
def test_no_grad_update_keeps_the_leaf_and_its_array(device):
    w = _t([1.0, 2.0, 3.0], device, requires_grad=True)
    (w * w).sum().backward()
    array, view = w.array, w[1:]
    with tg.no_grad():
        w -= 0.1 * w.grad
    assert w.array is array  # the same storage, written in place
    np.testing.assert_allclose(w.numpy(force=True), [0.8, 1.6, 2.4])
    assert w.is_leaf and w.requires_grad and w.grad_fn is None
    np.testing.assert_allclose(view.numpy(force=True), [1.6, 2.4])  # views see the write


def test_no_grad_methods_and_setitem_write_through(device):
    x = _t([[1.0, -2.0], [3.0, -4.0]], device)
    row, col = x[0], x[:, 1]
    x.mul_(2).relu_()
    x[1, 0] = 9.0
    assert x.tolist() == [[2.0, 0.0], [9.0, 0.0]]
    assert row.tolist() == [2.0, 0.0] and col.tolist() == [0.0, 0.0]
    version = x._version
    x.zero_()
    assert x._version > version and row.tolist() == [0.0, 0.0]


# ---- (b) a leaf that requires grad, in grad mode --------------------------------------------
@pytest.mark.parametrize("write", [
    lambda w: w.add_(1), lambda w: w.__iadd__(1), lambda w: w.__setitem__(0, 1.0),
    lambda w: w.mul_(2), lambda w: w.zero_(),
], ids=["add_", "+=", "setitem", "mul_", "zero_"])
def test_leaf_requiring_grad_refuses_inplace(device, write):
    w = _t([1.0, 2.0], device, requires_grad=True)
    with pytest.raises(tg.GraphError, match="leaf"):
        write(w)
    assert w.tolist() == [1.0, 2.0]
    with tg.no_grad():
        write(w)  # allowed where nothing is recorded
    assert w.is_leaf and w.requires_grad


def test_augmented_assignment_on_leaf_raises_in_grad_mode(device):
    w = _t([1.0, 2.0], device, requires_grad=True)
    with pytest.raises(tg.GraphError):
        w += 1


# ---- (c) recorded: differentiable, rebased onto the new value --------------------------------
INPLACE_VS_OUT_OF_PLACE = {
    "add_": (lambda x: (x * 2).add_(1), lambda x: x * 2 + 1),
    "mul_": (lambda x: (x * 2).mul_(x), lambda x: x * 2 * x),
    "relu_": (lambda x: (x * 3).relu_(), lambda x: (x * 3).relu()),
    "sigmoid_": (lambda x: (x * 2).sigmoid_(), lambda x: (x * 2).sigmoid()),
    "+=": (lambda x: _iadd(x.sin(), x * x), lambda x: x.sin() + x * x),
    "setitem": (lambda x: _setitem(x.cos(), 1, x[2] ** 2), lambda x: _cat_middle(x)),
}


def _iadd(out, residual):
    out += residual
    return out


def _setitem(out, i, value):
    out[i] = value
    return out


def _cat_middle(x):
    c = x.cos()
    mask = tg.tensor([1.0, 0.0, 1.0, 1.0], dtype=x.dtype, device=x.device)
    onehot = tg.tensor([0.0, 1.0, 0.0, 0.0], dtype=x.dtype, device=x.device)
    return c * mask + onehot * x[2] ** 2


@pytest.mark.parametrize("name", list(INPLACE_VS_OUT_OF_PLACE))
def test_recorded_inplace_matches_out_of_place(device, name):
    inplace, reference = INPLACE_VS_OUT_OF_PLACE[name]
    values = [0.3, -1.2, 0.7, 2.0]
    x = _t(values, device)
    np.testing.assert_allclose(inplace(x).tolist(), reference(x).tolist(), rtol=1e-12)
    np.testing.assert_allclose(_grad_of(inplace, values, device),
                               _grad_of(reference, values, device), rtol=1e-12)
    assert tg.autograd.gradcheck(inplace, [_t(values, device, requires_grad=True)])


def test_recorded_inplace_rebases_the_same_object(device):
    x = _t([1.0, -2.0], device, requires_grad=True)
    h = x * 2
    before, view = id(h), h[0]
    h += 1
    assert id(h) == before and not h.is_leaf and h.requires_grad
    assert h.grad_fn.op.name == "add"
    assert view.item() == 2.0  # a view taken earlier keeps the old value
    h.relu_()
    assert id(h) == before and h.tolist() == [3.0, 0.0]
    h.sum().backward()
    assert x.grad.tolist() == [2.0, 0.0]


def test_out_setitem_of_function_of_x(device):
    x = _t([1.0, 2.0, 3.0], device, requires_grad=True)
    out = x * 1.0
    out[0] = x[1] * x[2]
    out[tg.tensor([2, 2], device=device)] = 0.0
    assert out.tolist() == [6.0, 2.0, 0.0]
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0 + 3.0, 2.0]


# ---- (d) version counter --------------------------------------------------------------------
def test_modifying_a_saved_input_makes_backward_raise(device):
    x = _t([1.0, 2.0], device, requires_grad=True)
    a = x.exp()
    b = a * a  # mul saves a
    a.add_(1)
    with pytest.raises(tg.GraphError, match="mul.*modified by an in-place operation"):
        b.sum().backward()


def test_modifying_a_saved_output_under_no_grad_makes_backward_raise(device):
    x = _t([1.0, 2.0], device, requires_grad=True)
    y = x.exp()  # exp saves its output
    with tg.no_grad():
        y.add_(1)
    with pytest.raises(tg.GraphError, match="exp") as info:
        y.sum().backward()
    assert "version" in str(info.value) and "hint:" in str(info.value)


def test_writing_through_a_view_bumps_the_base_version(device):
    x = _t([1.0, 2.0, 3.0], device, requires_grad=True)
    a = x * 1.0
    b = a * a
    with tg.no_grad():
        a[1:].fill_(0.0)
    with pytest.raises(tg.GraphError, match="in-place"):
        b.sum().backward()


@pytest.mark.parametrize("view", [
    lambda t: t.contiguous(),        # the very array, when it is contiguous already
    lambda t: t.reshape(3, 1),       # a view whose .base is the input
    lambda t: t[1:].reshape(2, 1),   # a view of a view
    lambda t: t.expand(2, 3),        # a stride-0 view
], ids=["contiguous", "reshape", "view-of-view", "expand"])
def test_a_view_shares_the_version_counter_of_its_base(device, view):
    x = _t([1.0, 2.0, 3.0], device, requires_grad=True)
    a = x * 2.0
    v = view(a)
    b = (v * v).sum()  # saves v: writing through a must be seen, and the other way round
    with tg.no_grad():
        a.add_(1.0)
    assert v._version == a._version == 1
    with pytest.raises(tg.GraphError, match="in-place"):
        b.backward()


def test_a_copy_keeps_its_own_version_counter(device):
    a = _t([[1.0, 2.0], [3.0, 4.0]], device) * 1.0
    c = a.t().reshape(4)  # not contiguous: reshape copies
    with tg.no_grad():
        c.add_(1.0)
    assert c._version == 1 and a._version == 0


def test_unsaved_tensor_can_be_modified(device):
    x = _t([1.0, 2.0], device, requires_grad=True)
    a = x + 1  # add saves nothing
    b = a * 3.0  # mul saves a ... and the scalar; a's version matters
    c = x * 2
    c.add_(1)  # c was saved by no one
    (b + c).sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


# ---- (e) a fresh buffer filled with differentiable values ---------------------------------
def test_setitem_makes_a_fresh_buffer_differentiable(device):
    x = _t([1.5, -0.5], device, requires_grad=True)
    buf = tg.zeros(3, dtype=tg.float64, device=device)
    buf[0] = x[0] * 2
    buf[1:] = x ** 2
    assert buf.requires_grad and not buf.is_leaf
    assert buf.tolist() == [3.0, 2.25, 0.25]
    (buf * tg.tensor([1.0, 10.0, 100.0], dtype=tg.float64, device=device)).sum().backward()
    assert x.grad.tolist() == [2.0 + 10 * 3.0, 100 * -1.0]


# ---- (f) dtype ------------------------------------------------------------------------------
@pytest.mark.parametrize("write", [
    lambda t: t.add_(0.5), lambda t: t.__itruediv__(2), lambda t: t.sqrt_(),
    lambda t: t.__imul__(tg.tensor([1.5, 1.5])),
], ids=["add_", "/=", "sqrt_", "*=float-tensor"])
def test_integer_tensor_rejects_float_result(write):
    t = tg.tensor([1, 2])
    with pytest.raises(tg.DTypeError, match="int64"):
        write(t)
    assert t.tolist() == [1, 2]  # left untouched


def test_integer_tensor_keeps_integer_results():
    t = tg.tensor([1, 2])
    t += 3
    t.mul_(2)
    t[0] = 7.9  # a Python float written by setitem is cast, as PyTorch does
    assert t.tolist() == [7, 10] and t.dtype == tg.int64


def test_direct_inplace_arithmetic_writes_into_the_same_array(device):
    # Under no_grad, `w -= lr * g` / add_(alpha=) update the storage itself (views see it),
    # bump the version, and keep w a leaf that requires grad.
    w = tg.ones(4, device=device, requires_grad=True)
    view = w.detach()[1:]
    g = tg.full((4,), 2.0, device=device)
    before = w._version
    with tg.no_grad():
        w -= 0.5 * g
        w.add_(g, alpha=-0.25)
        w *= 2.0
    assert w.tolist() == [-1.0, -1.0, -1.0, -1.0]
    assert view.tolist() == [-1.0, -1.0, -1.0]
    assert w.is_leaf and w.requires_grad and w._version == before + 3


def test_leaf_grad_never_aliases_what_the_caller_holds(device):
    # A transposed view is adopted as .grad, but never a view of the caller's gradient.
    x = tg.ones(2, 3, device=device, requires_grad=True)
    gy = tg.ones(3, 2, device=device)
    x.T.backward(gy)
    with tg.no_grad():
        x.grad += 1
    assert gy.tolist() == [[1.0, 1.0]] * 3
    a = tg.ones(2, 2, device=device, requires_grad=True)
    b = tg.ones(2, 2, device=device, requires_grad=True)
    (a + b.T).sum().backward()
    with tg.no_grad():
        a.grad += 1
    assert b.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]


# ---- (g) recorded in-place ops on views reach the base ---------------------------------------
def test_inplace_on_a_slice_reaches_the_base_and_its_gradient(device):
    x = _t([1.0, 2.0, 3.0, 4.0], device, requires_grad=True)
    a = x * 1.0
    a[:2].mul_(2.0)
    assert a.tolist() == [2.0, 4.0, 3.0, 4.0]
    (a * a).sum().backward()  # a = (2 x0, 2 x1, x2, x3): d/dx sum a^2 = (8 x0, 8 x1, 2 x2, 2 x3)
    np.testing.assert_allclose(x.grad.numpy(force=True), [8.0, 16.0, 6.0, 8.0])


def test_copy_into_a_slice_of_a_buffer_makes_it_differentiable(device):
    x = _t([1.0, 2.0], device, requires_grad=True)
    out = tg.zeros(3, dtype=tg.float64, device=device)
    out[1:2].copy_(x[:1] * 3.0)
    assert out.tolist() == [0.0, 3.0, 0.0] and out.requires_grad and not out.is_leaf
    (out * tg.tensor([1.0, 2.0, 4.0], dtype=tg.float64, device=device)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [6.0, 0.0])


def test_inplace_on_a_transposed_view_and_a_view_of_a_view(device):
    x = _t([[1.0, 2.0], [3.0, 4.0]], device, requires_grad=True)
    a = x * 1.0
    a.t().add_(10.0)
    a.reshape(4)[1:3].mul_(3.0)
    assert a.tolist() == [[11.0, 36.0], [39.0, 14.0]]
    a.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [[1.0, 3.0], [3.0, 1.0]])
    y = _t([1.0, 2.0, 3.0], device, requires_grad=True)
    b = y * 1.0
    b[1:][:1].mul_(5.0)  # a view of a view writes into the first base
    assert b.tolist() == [1.0, 10.0, 3.0]


def test_inplace_on_a_view_of_a_leaf_that_requires_grad_raises(device):
    x = _t([1.0, 2.0], device, requires_grad=True)
    with pytest.raises(tg.GraphError, match="view of a leaf"):
        x[:1].mul_(2.0)
    assert x.tolist() == [1.0, 2.0]


def test_writing_through_a_view_invalidates_what_saved_the_base(device):
    x = _t([1.0, 2.0], device, requires_grad=True)
    a = x * 1.0
    y = a * a  # saves a
    a[:1].mul_(2.0)
    with pytest.raises(tg.GraphError, match="in-place"):
        y.sum().backward()


def test_inplace_on_a_view_of_a_transposed_base(device):
    # Elementwise ops keep a transposed input's layout, so the base is not C-contiguous;
    # `h[0] += 1` runs h[0].__iadd__ on a view, then h[0] = that view.
    x = _t([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], device, requires_grad=True)
    h = x.t() * 2.0
    h[0] += 1.0
    h[:, 1].mul_(3.0)
    assert h.tolist() == [[1.0, 21.0], [2.0, 24.0], [4.0, 30.0]]
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [[2.0, 2.0, 2.0], [6.0, 6.0, 6.0]])


def test_a_strided_view_keeps_its_elements_over_several_inplace_ops(device):
    x = _t([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], device, requires_grad=True)
    h = x * 1.0
    v = h[::2]
    v.mul_(2.0)
    assert v.tolist() == [2.0, 6.0, 10.0]
    v.add_(100.0)
    assert h.tolist() == [102.0, 2.0, 106.0, 4.0, 110.0, 6.0]
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [2.0, 1.0, 2.0, 1.0, 2.0, 1.0])
    with tg.no_grad():
        v.zero_()  # still a view of h's storage: unrecorded writes reach h too
    assert h.tolist() == [0.0, 2.0, 0.0, 4.0, 0.0, 6.0]


def test_a_view_made_under_no_grad_cannot_be_written_with_grad_on(device):
    x = _t([1.0, 2.0, 3.0], device, requires_grad=True)
    h = x * 1.0
    with tg.no_grad():
        v = h[1:]
    with pytest.raises(tg.GraphError, match="made under no_grad"):
        v.mul_(x[:2])


def test_a_tensor_cannot_be_its_own_operand_in_place_while_recording(device):
    x = _t([1.0, 2.0, 3.0], device, requires_grad=True)
    h = x * 1.0
    with pytest.raises(tg.GraphError, match="also an operand"):
        h.mul_(h)
    v = h[1:]
    with pytest.raises(tg.GraphError, match="also an operand"):
        v.mul_(v)
    h.mul_(h.clone())  # the hint's way works
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [2.0, 4.0, 6.0])


def test_retained_grad_follows_the_tensor_through_an_inplace_op(device):
    x = _t([1.0, 2.0], device, requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    h.mul_(2.0)
    assert h.retains_grad
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(force=True), [8.0, 16.0])


def test_inplace_on_a_split_piece_reaches_the_base(device):
    # PyTorch refuses in-place ops on the views a multi-view op returns; here they write
    # through like any view, rather than silently staying out of place.
    x = _t([1.0, 2.0, 3.0, 4.0], device, requires_grad=True)
    h = x * 1.0
    first, second = h.split(2)
    second.mul_(10.0)
    assert h.tolist() == [1.0, 2.0, 30.0, 40.0] and first.tolist() == [1.0, 2.0]
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [2.0, 4.0, 600.0, 800.0])
