"""tg.autograd.Function: custom ops with PyTorch's ctx API, on every backend."""

import math
import weakref

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.autograd import Function
from tensorgrad.autograd.function import once_differentiable
from tensorgrad.errors import GraphError, ShapeError
from tensorgrad.ops import registry


def _x(device, values=(0.5, -1.0, 2.0), requires_grad=True):
    return tg.tensor(list(values), dtype=tg.float64, device=device, requires_grad=requires_grad)


class MyExp(Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class ScaledPow(Function):
    """x ** p * scale, where `scale` is a Python float (not differentiated)."""

    @staticmethod
    def forward(ctx, x, scale, p=2):
        ctx.save_for_backward(x)
        ctx.scale, ctx.p = scale, p
        return x ** p * scale

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.scale * ctx.p * x ** (ctx.p - 1), None


class MulAdd(Function):
    """(x * y, x + y): two outputs; counts its backward calls."""

    calls = 0

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y, x + y

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        MulAdd.calls += 1
        x, y = ctx.saved_tensors
        return g_prod * y + g_sum, g_prod * x + g_sum


class Recorder(Function):
    """Identity that records needs_input_grad and what backward received."""

    seen = {}

    @staticmethod
    def forward(ctx, a, b):
        Recorder.seen["needs"] = ctx.needs_input_grad
        return a + b

    @staticmethod
    def backward(ctx, g):
        Recorder.seen["backward_needs"] = ctx.needs_input_grad
        return (g if ctx.needs_input_grad[0] else None,
                g if ctx.needs_input_grad[1] else None)


# ---- basic use --------------------------------------------------------------------------------
def test_custom_exp_matches_builtin(device):
    x = _x(device)
    y = MyExp.apply(x)
    assert y.requires_grad and not y.is_leaf
    assert y.grad_fn.name() == "MyExpBackward"
    np.testing.assert_allclose(y.detach().numpy(force=True), np.exp([0.5, -1.0, 2.0]))
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), 2 * np.exp(2 * np.array([0.5, -1, 2])))
    assert x.grad.device == x.device


def test_forward_runs_under_no_grad(device):
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, x):
            seen["enabled"] = tg.is_grad_enabled()
            y = x * 2
            seen["y_requires_grad"] = y.requires_grad
            return y

        @staticmethod
        def backward(ctx, g):
            seen["backward_enabled"] = tg.is_grad_enabled()
            return g * 2

    x = _x(device)
    Probe.apply(x).sum().backward()
    assert seen == {"enabled": False, "y_requires_grad": False, "backward_enabled": False}
    np.testing.assert_allclose(x.grad.numpy(force=True), [2.0, 2.0, 2.0])


def test_python_float_input_gets_no_gradient(device):
    x = _x(device)
    y = ScaledPow.apply(x, 1.5)
    np.testing.assert_allclose(y.detach().numpy(force=True), 1.5 * np.array([0.25, 1.0, 4.0]))
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), 3.0 * np.array([0.5, -1.0, 2.0]))


def test_keyword_arguments_reach_forward(device):
    x = _x(device)
    y = ScaledPow.apply(x, 2.0, p=3)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), 6.0 * np.array([0.25, 1.0, 4.0]))


def test_no_graph_when_no_input_requires_grad(device):
    x = _x(device, requires_grad=False)
    y = MyExp.apply(x)
    assert not y.requires_grad and y.grad_fn is None
    with tg.no_grad():
        z = MyExp.apply(_x(device))
    assert not z.requires_grad and z.grad_fn is None


def test_arbitrary_ctx_attributes(device):
    class Affine(Function):
        @staticmethod
        def forward(ctx, x, a, b):
            ctx.a, ctx.note = a, {"b": b}
            return x * a + b

        @staticmethod
        def backward(ctx, g):
            assert ctx.note == {"b": 3.0}
            return g * ctx.a, None, None

    x = _x(device)
    Affine.apply(x, 2.0, 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [2.0, 2.0, 2.0])


# ---- multiple outputs -------------------------------------------------------------------------
def test_multiple_outputs_call_backward_once(device):
    x, y = _x(device), _x(device, (1.0, 2.0, -3.0))
    MulAdd.calls = 0
    p, s = MulAdd.apply(x, y)
    assert isinstance(p, tg.Tensor) and isinstance(s, tg.Tensor)
    (p.sum() * 2 + (s * s).sum()).backward()
    assert MulAdd.calls == 1
    xv, yv = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -3.0])
    np.testing.assert_allclose(x.grad.numpy(force=True), 2 * yv + 2 * (xv + yv))
    np.testing.assert_allclose(y.grad.numpy(force=True), 2 * xv + 2 * (xv + yv))


def test_unused_output_gets_zeros_or_none(device):
    got = {}

    class Two(Function):
        @staticmethod
        def forward(ctx, x, materialize):
            ctx.set_materialize_grads(materialize)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            got["gb"] = gb
            return ga * 2, None

    x = _x(device)
    a, _ = Two.apply(x, True)
    a.sum().backward()
    assert got["gb"] is not None
    np.testing.assert_array_equal(got["gb"].numpy(force=True), [0.0, 0.0, 0.0])
    x.grad = None
    a, _ = Two.apply(x, False)
    a.sum().backward()
    assert got["gb"] is None
    np.testing.assert_allclose(x.grad.numpy(force=True), [2.0, 2.0, 2.0])


def test_multiple_outputs_saved_output_and_retain_graph(device):
    class SinCos(Function):
        @staticmethod
        def forward(ctx, x):
            s, c = x.sin(), x.cos()
            ctx.save_for_backward(s, c)
            return s, c

        @staticmethod
        def backward(ctx, gs, gc):
            s, c = ctx.saved_tensors
            return gs * c - gc * s

    x = _x(device)
    s, c = SinCos.apply(x)
    loss = (s * c).sum()
    (g,) = tg.autograd.grad(loss, x, create_graph=True)
    xv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(g.detach().numpy(force=True), np.cos(2 * xv), rtol=1e-12)
    # the saved outputs stay graph-connected under create_graph: second derivative
    (gg,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(force=True), -2 * np.sin(2 * xv), rtol=1e-12)
    assert tg.autograd.gradcheck(lambda t: SinCos.apply(t), (x,))
    assert tg.autograd.gradgradcheck(lambda t: SinCos.apply(t), (x,))


def test_grad_of_one_output_through_autograd_grad(device):
    x, y = _x(device), _x(device, (1.0, 2.0, -3.0))
    p, s = MulAdd.apply(x, y)
    gx, gy = tg.autograd.grad(s.sum(), (x, y))
    np.testing.assert_array_equal(gx.numpy(force=True), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(gy.numpy(force=True), [1.0, 1.0, 1.0])


# ---- needs_input_grad -------------------------------------------------------------------------
def test_needs_input_grad(device):
    a, b = _x(device), _x(device, requires_grad=False)
    Recorder.seen.clear()
    Recorder.apply(a, b).sum().backward()
    assert Recorder.seen == {"needs": (True, False), "backward_needs": (True, False)}
    assert a.grad is not None and b.grad is None
    Recorder.apply(a, 2.0)
    assert Recorder.seen["needs"] == (True, False)
    with tg.no_grad():
        Recorder.apply(a, b)
    assert Recorder.seen["needs"] == (False, False)


# ---- double backward --------------------------------------------------------------------------
def test_double_backward_through_function(device):
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            assert tg.is_grad_enabled() == ctx.create_graph_expected
            return g * 3 * x ** 2

    x = _x(device)
    y = Cube.apply(x)
    y.grad_fn.attrs["ctx"].create_graph_expected = True
    (g,) = tg.autograd.grad(y.sum(), x, create_graph=True)
    assert g.requires_grad
    (gg,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(force=True), 6 * np.array([0.5, -1.0, 2.0]))
    assert tg.autograd.gradgradcheck(lambda t: ScaledPow.apply(t, 0.7, p=3), (x,))


def test_custom_exp_double_backward_uses_saved_output(device):
    x = _x(device)
    (g,) = tg.autograd.grad(MyExp.apply(x).sum(), x, create_graph=True)
    (gg,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(force=True), np.exp([0.5, -1.0, 2.0]), rtol=1e-12)


# ---- mark_non_differentiable ------------------------------------------------------------------
def test_mark_non_differentiable(device):
    got = {}

    class SortedWithRank(Function):
        @staticmethod
        def forward(ctx, x):
            y = x * 1.0
            flag = (x > 0).to(tg.float64)
            ctx.mark_non_differentiable(flag)
            return y, flag

        @staticmethod
        def backward(ctx, gy, gflag):
            got["gflag"] = gflag
            return gy

    x = _x(device)
    y, flag = SortedWithRank.apply(x)
    assert y.requires_grad and not flag.requires_grad and flag.grad_fn is None
    np.testing.assert_array_equal(flag.numpy(force=True), [1.0, 0.0, 1.0])
    with pytest.raises(GraphError):
        flag.sum().backward()
    y.sum().backward()
    np.testing.assert_array_equal(got["gflag"].numpy(force=True), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(x.grad.numpy(force=True), [1.0, 1.0, 1.0])


def test_integer_outputs_do_not_require_grad(device):
    class WithIndex(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, tg.zeros(3, dtype=tg.int64, device=x.device)

        @staticmethod
        def backward(ctx, g, gi):
            return g * 2

    y, idx = WithIndex.apply(_x(device))
    assert y.requires_grad and not idx.requires_grad


# ---- saved tensors: versions and freeing --------------------------------------------------------
def test_saved_input_modified_in_place_raises(device):
    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * g * x

    leaf = _x(device)
    h = leaf * 1.0
    y = Square.apply(h)
    h.add_(1.0)
    with pytest.raises(GraphError, match="Square.*in-place|in-place.*Square"):
        y.sum().backward()
    w = _x(device)
    y = Square.apply(w)
    with tg.no_grad():
        w.mul_(2.0)
    with pytest.raises(GraphError, match="modified by an in-place operation"):
        y.sum().backward()


def test_saved_output_modified_in_place_raises(device):
    x = _x(device)
    y = MyExp.apply(x)
    y.mul_(2.0)  # a non-leaf: recorded out of place, the saved version is stale
    with pytest.raises(GraphError, match="MyExp"):
        y.sum().backward()


def test_saved_tensors_freed_after_backward(device):
    keep = {}

    class Keep(Function):
        @staticmethod
        def forward(ctx, x):
            keep["ctx"] = ctx
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2

    x = _x(device)
    y = Keep.apply(x * 1.0)
    y.sum().backward(retain_graph=True)
    assert len(keep["ctx"].saved_tensors) == 1  # kept by retain_graph
    y.sum().backward()
    with pytest.raises(GraphError, match="retain_graph"):
        _ = keep["ctx"].saved_tensors
    with pytest.raises(GraphError, match="retain_graph"):
        y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(force=True), [4.0, 4.0, 4.0])


def test_saved_array_really_freed(device):
    class Hold(Function):
        @staticmethod
        def forward(ctx, x):
            big = x * 3.0  # an intermediate, held only by the saved tensors
            ctx.save_for_backward(big)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            (big,) = ctx.saved_tensors
            return g * 2

    x = _x(device)
    y = Hold.apply(x)
    ref = weakref.ref(y.grad_fn.inputs[0])
    assert ref() is not None
    y.sum().backward()
    assert ref() is None and y.grad_fn is not None


def test_function_graph_has_no_reference_cycles(device):
    import gc
    gc.disable()
    try:
        x = _x(device)
        p, s = MulAdd.apply(x * 1.0, x)
        y = MyExp.apply(p + s)
        refs = [weakref.ref(n) for n in (p.grad_fn, s.grad_fn, y.grad_fn,
                                         p.grad_fn.edges[0])]
        ctx_ref = weakref.ref(y.grad_fn.attrs["ctx"])
        y.sum().backward()
        del p, s, y
        assert all(r() is None for r in refs) and ctx_ref() is None
    finally:
        gc.enable()


def test_function_without_saved_tensors_backwards_twice(device):
    class Double(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = _x(device)
    y = Double.apply(x).sum()
    y.backward()
    y.backward()  # nothing was saved, so nothing was freed (as in PyTorch)
    np.testing.assert_array_equal(x.grad.numpy(force=True), [4.0, 4.0, 4.0])


# ---- errors -----------------------------------------------------------------------------------
class WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x.sum()

    @staticmethod
    def backward(ctx, g):
        return g  # should be expanded to x's shape


class WrongCount(Function):
    @staticmethod
    def forward(ctx, x, y):
        return x * y

    @staticmethod
    def backward(ctx, g):
        return (g, g, g)


def test_wrong_shape_gradient_names_the_class(device):
    x = _x(device)
    with pytest.raises(ShapeError, match=r"WrongShape.*input 0.*\(\).*\(3,\)") as info:
        WrongShape.apply(x).backward()
    assert "WrongShape.backward must return" in str(info.value)  # not "a bug in the op's VJP"


def test_wrong_number_of_gradients_names_the_class(device):
    x, y = _x(device), _x(device)
    with pytest.raises(ShapeError, match=r"WrongCount.backward returned 3 gradient.*2 input"):
        WrongCount.apply(x, y).sum().backward()


def test_extra_trailing_none_gradients_are_accepted(device):
    class Extra(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2, None, None

    x = _x(device)
    Extra.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(force=True), [2.0, 2.0, 2.0])


def test_gradient_for_a_non_tensor_argument_raises(device):
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * 2, g

    with pytest.raises(GraphError, match="input 1"):
        Bad.apply(_x(device), 2.0).sum().backward()


def test_function_is_not_a_registered_op(device):
    MyExp.apply(_x(device))
    assert "MyExp" not in registry.OPS
    assert all(not isinstance(k, str) or k[:1].islower() for k in registry.OPS)


def test_returned_input_storage_is_not_adopted_as_grad(device):
    class PassSaved(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x / 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return x  # equal to g * x for g == 1, but it is x's own storage

    x = _x(device)
    PassSaved.apply(x).sum().backward()
    assert not np.shares_memory(x.grad.numpy(force=True), x.detach().numpy(force=True))
    PassSaved.apply(x).sum().backward()
    np.testing.assert_allclose(x.detach().numpy(force=True), [0.5, -1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(force=True), [1.0, -2.0, 4.0])


def test_returned_output_storage_is_not_adopted_as_grad(device):
    class ExpReturnsOutput(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return y  # right for g == 1, but it is the output's own storage

    x = _x(device)
    y = ExpReturnsOutput.apply(x)
    y.sum().backward()
    x.grad.mul_(0.0)
    np.testing.assert_allclose(y.detach().numpy(force=True), np.exp([0.5, -1.0, 2.0]))


def test_setup_context_form(device):
    class Sin(Function):
        @staticmethod
        def forward(x):
            return x.sin()

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x.cos()

    x = _x(device)
    Sin.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), np.cos([0.5, -1.0, 2.0]))


# ---- gradcheck of the custom ops ----------------------------------------------------------------
def test_gradcheck_custom_ops(device):
    x, y = _x(device), _x(device, (1.0, 2.0, -3.0))
    assert tg.autograd.gradcheck(MyExp.apply, (x,))
    assert tg.autograd.gradcheck(lambda t: ScaledPow.apply(t, -0.5), (x,))
    assert tg.autograd.gradcheck(MulAdd.apply, (x, y))
    assert tg.autograd.gradgradcheck(MyExp.apply, (x,))
    assert tg.autograd.gradgradcheck(MulAdd.apply, (x, y))
    assert math.isfinite(MyExp.apply(x).sum().item())


# ---- once_differentiable -------------------------------------------------------------------------
class OnceSquare(Function):
    """x * x with a backward that is not differentiable (as if it ran a NumPy kernel)."""

    seen = []

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        OnceSquare.seen.append((tg.is_grad_enabled(), x.requires_grad, g.requires_grad))
        return 2 * x * g


def test_once_differentiable_backward_runs_with_grad_mode_off(device):
    OnceSquare.seen.clear()
    x = _x(device)
    OnceSquare.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(force=True), [1.0, -2.0, 4.0])
    (g,) = tg.autograd.grad(OnceSquare.apply(x).sum(), x)
    assert not g.requires_grad
    # As PyTorch: grad mode off even under create_graph (the saved input still requires grad,
    # the incoming gradient does not).
    tg.autograd.grad(OnceSquare.apply(x).sum(), x, create_graph=True)
    assert OnceSquare.seen == [(False, True, False)] * 3
    assert OnceSquare.backward.__name__ == "backward"


def test_differentiating_a_once_differentiable_gradient_again_raises(device):
    x = _x(device)
    (g,) = tg.autograd.grad(OnceSquare.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.numpy(force=True), [1.0, -2.0, 4.0])
    assert g.requires_grad and g.grad_fn.name() == "OnceDifferentiableBackward0"
    with pytest.raises(GraphError, match="OnceSquare.backward: trying to differentiate twice a "
                                         "function that was marked with @once_differentiable"):
        tg.autograd.grad(g.sum(), x)
    with pytest.raises(GraphError, match="once_differentiable"):
        g.sum().backward()
    # Mixed with differentiable terms it still raises (PyTorch returns a wrong second
    # derivative there, having left the gradient a constant).
    (g3,) = tg.autograd.grad(OnceSquare.apply(x).sum() + (x ** 3).sum(), x, create_graph=True)
    with pytest.raises(GraphError, match="once_differentiable"):
        tg.autograd.grad(g3.sum(), x)


def test_once_differentiable_gradient_outputs_that_require_grad(device):
    x = _x(device)
    go = tg.ones(3, dtype=tg.float64, device=device, requires_grad=True)
    (g,) = tg.autograd.grad(OnceSquare.apply(x), x, grad_outputs=go, create_graph=True)
    with pytest.raises(GraphError, match="once_differentiable"):
        tg.autograd.grad(g.sum(), go)


def test_once_differentiable_keeps_none_and_tuples(device):
    class Scale(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * 2.0

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            return g * 2.0, None

    x = _x(device)
    (g,) = tg.autograd.grad(Scale.apply(x, _x(device, requires_grad=False)).sum(), x,
                            create_graph=True)
    np.testing.assert_allclose(g.numpy(force=True), [2.0, 2.0, 2.0])
    with pytest.raises(GraphError, match="Scale.backward"):
        tg.autograd.grad(g.sum(), x)
