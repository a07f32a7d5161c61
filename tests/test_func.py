"""tg.func: transforms checked against finite differences (float64), closed forms and each
other, composed (grad of grad, jacfwd of jacrev), with pytrees, argnums, has_aux and errors.
Optionally cross-checked against torch.func where PyTorch is installed."""

import math

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad import func
from tensorgrad.errors import ShapeError

RNG = np.random.default_rng(7)
A_NP = RNG.standard_normal((3, 3))
X_NP = RNG.standard_normal(3)
B_NP = RNG.standard_normal((4, 3))


def _t(a, device="cpu", requires_grad=False):
    return tg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


def _np(t):
    return t.detach().cpu().numpy() if t.device.type != "cpu" else t.detach().numpy()


def _scalar_f(x):
    """A non-polynomial scalar function of a 3-vector (its Hessian has no zero pattern)."""
    return (x.sin() * (_t(A_NP, x.device) @ x)).sum() + (x ** 3).sum() * x[0]


def _vector_f(x):
    """R^3 -> R^4, nonlinear."""
    return (_t(B_NP, x.device) @ x).tanh() * x.sum()


def _fd_jacobian(fn, x_np, eps=1e-6):
    """Central differences of fn (numpy in, numpy out) at x_np: shape out.shape + x.shape."""
    x_np = np.asarray(x_np, dtype=np.float64)
    cols = []
    for i in range(x_np.size):
        e = np.zeros(x_np.size)
        e[i] = eps
        e = e.reshape(x_np.shape)
        cols.append((np.asarray(fn(x_np + e)) - np.asarray(fn(x_np - e))) / (2 * eps))
    out_shape = np.asarray(fn(x_np)).shape
    return np.stack(cols, axis=-1).reshape(out_shape + x_np.shape)


def _via_tg(f):
    """f on numpy arrays, through tensorgrad, with no graph."""
    def run(a):
        with tg.no_grad():
            return _np(f(_t(a)))
    return run


# ---- grad ----------------------------------------------------------------------------------
def test_grad_matches_finite_differences():
    g = func.grad(_scalar_f)(_t(X_NP))
    np.testing.assert_allclose(_np(g), _fd_jacobian(_via_tg(_scalar_f), X_NP), rtol=1e-7,
                               atol=1e-8)


@pytest.mark.parametrize("x0", [-2.0, 0.0, 0.5, 3.0])
def test_grad_of_grad_of_sin_is_minus_sin(x0):
    x = tg.tensor(x0, dtype=tg.float64)
    d2 = func.grad(func.grad(tg.sin))(x)
    d3 = func.grad(func.grad(func.grad(tg.sin)))(x)
    assert d2.shape == () and d3.shape == ()
    assert d2.item() == pytest.approx(-math.sin(x0), abs=1e-12)
    assert d3.item() == pytest.approx(-math.cos(x0), abs=1e-12)


def test_grad_of_grad_of_a_vector_function_matches_the_hessian():
    # grad(lambda x: grad(f)(x) @ v) = H v, by composition alone
    v = _t([0.3, -1.0, 2.0])
    hv = func.grad(lambda x: func.grad(_scalar_f)(x) @ v)(_t(X_NP))
    h = func.hessian(_scalar_f)(_t(X_NP))
    np.testing.assert_allclose(_np(hv), _np(h) @ _np(v), rtol=1e-10)


def test_grad_argnums_tuple_and_negative():
    def f(x, y, scale):
        return ((x * y).sum() + (x ** 2 * y).sum()) * scale

    x, y = _t([1.0, 2.0]), _t([3.0, -1.0])
    gx, gy = func.grad(f, argnums=(0, 1))(x, y, 2.0)
    np.testing.assert_allclose(_np(gx), 2 * (_np(y) + 2 * _np(x) * _np(y)))
    np.testing.assert_allclose(_np(gy), 2 * (_np(x) + _np(x) ** 2))
    (gy_only,) = func.grad(f, argnums=(1,))(x, y, 2.0)
    np.testing.assert_allclose(_np(gy_only), _np(gy))
    np.testing.assert_allclose(_np(func.grad(f, argnums=-2)(x, y, 2.0)), _np(gy))


def test_grad_of_an_unused_argument_is_zero():
    gx, gy = func.grad(lambda x, y: (x ** 2).sum(), argnums=(0, 1))(_t([1.0, 2.0]), _t([5.0]))
    assert _np(gy).tolist() == [0.0]
    assert _np(func.grad(lambda x: tg.tensor(3.0, dtype=tg.float64))(_t([1.0]))).tolist() == [0.0]


def test_grad_has_aux_and_grad_and_value():
    marker = object()

    def f(x):
        out = (x ** 2).sum()
        return out, {"out": out, "tag": marker}

    x = _t([1.0, -2.0])
    g, aux = func.grad(f, has_aux=True)(x)
    assert _np(g).tolist() == [2.0, -4.0]
    assert aux["tag"] is marker and aux["out"].item() == 5.0
    g2, (value, aux2) = func.grad_and_value(f, has_aux=True)(x)
    assert _np(g2).tolist() == [2.0, -4.0] and value.item() == 5.0 and aux2["tag"] is marker
    g3, value3 = func.grad_and_value(lambda x: (x ** 3).sum())(x)
    assert _np(g3).tolist() == [3.0, 12.0] and value3.item() == -7.0


def test_grad_over_pytrees_keeps_their_structure():
    def f(params, xs):
        w, b = params["w"], params["b"]
        return ((xs[0] * w + b) ** 2).sum() + xs[1].sum() * b.sum()

    params = {"w": _t([1.0, 2.0]), "b": _t([0.5])}
    xs = (_t([3.0, -1.0]), _t([2.0, 2.0]))
    gp, gxs = func.grad(f, argnums=(0, 1))(params, xs)
    assert set(gp) == {"w", "b"} and isinstance(gxs, tuple) and len(gxs) == 2
    r = _np(xs[0]) * _np(params["w"]) + 0.5
    np.testing.assert_allclose(_np(gp["w"]), 2 * r * _np(xs[0]))
    np.testing.assert_allclose(_np(gp["b"]), [2 * r.sum() + 4.0])
    np.testing.assert_allclose(_np(gxs[0]), 2 * r * _np(params["w"]))
    np.testing.assert_allclose(_np(gxs[1]), [0.5, 0.5])
    gl = func.grad(lambda ts: (ts[0] * ts[1]).sum())([_t([2.0]), _t([5.0])])
    assert isinstance(gl, list) and [_np(t).tolist() for t in gl] == [[5.0], [2.0]]


def test_top_level_results_carry_no_graph():
    x = _t(X_NP)
    g = func.grad(_scalar_f)(x)
    assert not g.requires_grad and not x.requires_grad and x.grad is None
    _np(g)  # .numpy() works on it directly, as on torch.func's result
    assert not func.jacrev(_vector_f)(x).requires_grad
    assert not func.hessian(_scalar_f)(x).requires_grad


def test_closed_over_parameters_stay_differentiable_gradient_penalty():
    # d/dw sum((d/dx sum(sin(x) * w))^2) = d/dw sum((cos(x) w)^2) = 2 cos(x)^2 w
    w = _t([0.5, -1.0, 2.0], requires_grad=True)
    x = _t(X_NP)
    gx = func.grad(lambda x: (x.sin() * w).sum())(x)
    assert gx.requires_grad
    (gx ** 2).sum().backward()
    np.testing.assert_allclose(_np(w.grad), 2 * np.cos(X_NP) ** 2 * _np(w), rtol=1e-12)
    with tg.no_grad():
        assert not func.grad(lambda x: (x.sin() * w).sum())(x).requires_grad


def test_results_can_be_backpropagated_to_an_input_that_requires_grad():
    x = _t(X_NP, requires_grad=True)
    g = func.grad(_scalar_f)(x)
    (dg,) = tg.autograd.grad(g.sum(), x)
    h = func.hessian(_scalar_f)(_t(X_NP))
    np.testing.assert_allclose(_np(dg), _np(h).sum(axis=0), rtol=1e-10)


def test_grad_errors_name_the_problem():
    with pytest.raises(ShapeError, match=r"scalar.*shape \(3,\)"):
        func.grad(lambda x: x * 2)(_t([1.0, 2.0, 3.0]))
    with pytest.raises(ShapeError, match=r"shape \(1,\)"):
        func.grad(lambda x: x.sum().reshape(1))(_t([1.0]))
    with pytest.raises(TypeError, match="float"):
        func.grad(lambda x: x * 2)(3.0)
    with pytest.raises(TypeError, match=r"argument 1.*str"):
        func.grad(lambda x, y: x.sum(), argnums=(0, 1))(_t([1.0]), "not a tensor")
    with pytest.raises(TypeError, match="floating-point"):
        func.grad(lambda x: x.sum())(tg.tensor([1, 2]))
    with pytest.raises(TypeError, match="return a scalar Tensor, got tuple"):
        func.grad(lambda x: (x.sum(), 1))(_t([1.0]))
    with pytest.raises(TypeError, match=r"pair \(output, aux\)"):
        func.grad(lambda x: x.sum(), has_aux=True)(_t([1.0]))
    with pytest.raises(IndexError, match="argnums=2"):
        func.grad(lambda x: x.sum(), argnums=2)(_t([1.0]))
    with pytest.raises(ValueError, match="unique"):
        func.grad(lambda x: x.sum(), argnums=(0, 0))(_t([1.0]))
    with pytest.raises(TypeError, match="argnums"):
        func.grad(lambda x: x.sum(), argnums=[0])(_t([1.0]))


# ---- vjp, jvp, hvp -------------------------------------------------------------------------
def test_vjp_returns_one_product_per_primal_and_can_be_called_twice():
    x, y = _t([1.0, 2.0]), _t([3.0, -4.0])
    out, vjp_fn = func.vjp(lambda x, y: x * y, x, y)
    assert _np(out).tolist() == [3.0, -8.0] and not out.requires_grad
    for ct in ([1.0, 1.0], [2.0, -0.5]):
        gx, gy = vjp_fn(_t(ct))
        np.testing.assert_allclose(_np(gx), np.array(ct) * _np(y))
        np.testing.assert_allclose(_np(gy), np.array(ct) * _np(x))
    out1, vjp1 = func.vjp(tg.sin, x)
    res = vjp1(_t([1.0, 1.0]))
    assert isinstance(res, tuple) and len(res) == 1
    np.testing.assert_allclose(_np(res[0]), np.cos(_np(x)))


def test_vjp_with_tuple_output_and_aux():
    x = _t([1.0, 2.0])
    out, vjp_fn, aux = func.vjp(lambda x: ((x ** 2, x.sum()), "aux"), x, has_aux=True)
    assert aux == "aux" and isinstance(out, tuple)
    (g,) = vjp_fn((_t([1.0, 0.0]), _t(2.0)))
    np.testing.assert_allclose(_np(g), [2.0 * 1.0 + 2.0, 2.0])
    with pytest.raises(ShapeError, match=r"shape \(3,\)"):
        vjp_fn((_t([1.0, 0.0, 0.0]), _t(2.0)))
    with pytest.raises(ValueError, match="structure"):
        vjp_fn(_t([1.0, 0.0]))


def test_jvp_equals_jacobian_times_v():
    x = _t(X_NP)
    v = _t([0.5, -1.0, 0.25])
    out, jv = func.jvp(_vector_f, (x,), (v,))
    jac = tg.autograd.functional.jacobian(_vector_f, x)
    np.testing.assert_allclose(_np(jv), _np(jac) @ _np(v), rtol=1e-12)
    np.testing.assert_allclose(_np(out), _np(_vector_f(x)))
    assert not jv.requires_grad


def test_jvp_two_primals_tuple_output_and_aux():
    def f(x, y):
        return (x * y, (x ** 2).sum() + y.sum()), "aux"

    x, y = _t([1.0, 2.0]), _t([3.0, 5.0])
    vx, vy = _t([1.0, 0.0]), _t([0.0, 2.0])
    (o1, o2), (t1, t2), aux = func.jvp(f, (x, y), (vx, vy), has_aux=True)
    assert aux == "aux"
    np.testing.assert_allclose(_np(t1), _np(vx) * _np(y) + _np(x) * _np(vy))
    assert t2.item() == pytest.approx(2 * 1.0 * 1.0 + 2.0)
    with pytest.raises(TypeError, match="tuple"):
        func.jvp(tg.sin, x, vx)
    with pytest.raises(ShapeError, match="tangents"):
        func.jvp(tg.sin, (x,), (_t([1.0]),))


def test_hvp_of_quadratic_is_a_plus_a_transpose_times_v():
    a = _t(A_NP)
    x, v = _t(X_NP), _t([1.0, -2.0, 0.5])
    out, hv = func.hvp(lambda x: x @ (a.T @ x), (x,), (v,))
    assert isinstance(hv, tuple) and len(hv) == 1 and hv[0].shape == (3,)
    np.testing.assert_allclose(_np(hv[0]), (A_NP + A_NP.T) @ _np(v), rtol=1e-12)
    assert out.item() == pytest.approx(X_NP @ A_NP.T @ X_NP)


def test_hvp_with_two_primals_matches_hessian_blocks():
    def f(x, y):
        return (x.sin() * y).sum() + (x * x).sum() * (y * y).sum()

    x, y = _t([0.3, -0.7]), _t([1.5, 0.2])
    vx, vy = _t([1.0, 2.0]), _t([-1.0, 0.5])
    _, (hx, hy) = func.hvp(f, (x, y), (vx, vy))
    (hxx, hxy), (hyx, hyy) = func.hessian(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(_np(hx), _np(hxx) @ _np(vx) + _np(hxy) @ _np(vy), rtol=1e-12)
    np.testing.assert_allclose(_np(hy), _np(hyx) @ _np(vx) + _np(hyy) @ _np(vy), rtol=1e-12)
    with pytest.raises(ShapeError, match="scalar"):
        func.hvp(lambda x: x * 2, (x,), (vx,))


# ---- jacrev, jacfwd, hessian ---------------------------------------------------------------
def test_jacrev_equals_jacfwd_and_finite_differences(device):
    x = _t(X_NP, device)
    jr, jf = func.jacrev(_vector_f)(x), func.jacfwd(_vector_f)(x)
    assert jr.shape == jf.shape == (4, 3)
    np.testing.assert_allclose(_np(jr), _np(jf), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_np(jr), _fd_jacobian(_via_tg(_vector_f), X_NP), rtol=1e-7,
                               atol=1e-9)


def test_jacobian_shape_is_output_shape_plus_input_shape():
    m = _t(RNG.standard_normal((2, 3)))

    def f(m):  # (2, 3) -> (3, 2)
        return (m.T * m.T.sum(dim=0)).exp()

    jr, jf = func.jacrev(f)(m), func.jacfwd(f)(m)
    assert jr.shape == jf.shape == (3, 2, 2, 3)
    np.testing.assert_allclose(_np(jr), _np(jf), rtol=1e-12)
    np.testing.assert_allclose(_np(jr), _fd_jacobian(_via_tg(f), _np(m)), rtol=1e-7, atol=1e-9)
    assert func.jacrev(lambda x: x.sum())(m).shape == (2, 3)  # scalar output: the gradient


def test_jacrev_tuple_outputs_and_argnums_nest_outputs_outside():
    def f(x, y):
        return x * y, (x ** 2).sum()

    x, y = _t([1.0, 2.0]), _t([3.0, 4.0])
    for jac in (func.jacrev, func.jacfwd):
        (dax, day), (dbx, dby) = jac(f, argnums=(0, 1))(x, y)
        np.testing.assert_allclose(_np(dax), np.diag(_np(y)))
        np.testing.assert_allclose(_np(day), np.diag(_np(x)))
        np.testing.assert_allclose(_np(dbx), 2 * _np(x))
        np.testing.assert_allclose(_np(dby), [0.0, 0.0])


def test_jacrev_and_jacfwd_has_aux():
    x = _t([1.0, 2.0])
    for jac in (func.jacrev, func.jacfwd):
        j, aux = jac(lambda x: (x ** 2, {"n": 2}), has_aux=True)(x)
        assert aux == {"n": 2}
        np.testing.assert_allclose(_np(j), np.diag([2.0, 4.0]))


def test_hessian_of_quadratic_is_a_plus_a_transpose(device):
    a = _t(A_NP, device)
    h = func.hessian(lambda x: x @ (a.T @ x))(_t(X_NP, device))
    assert h.shape == (3, 3)
    np.testing.assert_allclose(_np(h), A_NP + A_NP.T, rtol=1e-12)


def test_hessian_matches_finite_differences_of_the_gradient_and_other_compositions():
    x = _t(X_NP)
    h = _np(func.hessian(_scalar_f)(x))
    np.testing.assert_allclose(h, h.T, rtol=1e-12)
    fd = _fd_jacobian(_via_tg_grad(_scalar_f), X_NP)
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-7)
    for composed in (func.jacrev(func.jacrev(_scalar_f)), func.jacfwd(func.jacfwd(_scalar_f)),
                     func.jacrev(func.grad(_scalar_f))):
        np.testing.assert_allclose(_np(composed(x)), h, rtol=1e-12, atol=1e-13)


def _via_tg_grad(f):
    def run(a):
        return _np(func.grad(f)(_t(a)))
    return run


def test_third_derivative_by_jacrev_of_hessian():
    # f = sum(x^2 y) has d3f/dx_i dx_i dy = 2
    f = lambda x: (x[:2] ** 2).sum() * x[2]  # noqa: E731
    t = _np(func.jacrev(func.hessian(f))(_t([1.0, 2.0, 3.0])))
    assert t.shape == (3, 3, 3)
    assert t[0, 0, 2] == t[0, 2, 0] == t[2, 0, 0] == 2.0 and t[2, 2, 2] == 0.0


# ---- torch.func cross-check ----------------------------------------------------------------
def test_against_torch_func():
    torch = pytest.importorskip("torch")
    ta = torch.tensor(A_NP)

    def f_tg(x, y):
        return ((x.sin() * (_t(A_NP) @ x)) * y).sum() + (x * y).tanh().sum()

    def f_torch(x, y):
        return ((x.sin() * (ta @ x)) * y).sum() + (x * y).tanh().sum()

    y_np = RNG.standard_normal(3)
    args_tg, args_t = (_t(X_NP), _t(y_np)), (torch.tensor(X_NP), torch.tensor(y_np))
    for ours, theirs in [(func.grad(f_tg, argnums=(0, 1)), torch.func.grad(f_torch, (0, 1))),
                         (func.jacrev(func.grad(f_tg)), torch.func.jacrev(torch.func.grad(
                             f_torch))),
                         (func.hessian(f_tg, (0, 1)), torch.func.hessian(f_torch, (0, 1)))]:
        a = ours(*args_tg)
        b = theirs(*args_t)
        flat_a = _flat(a)
        flat_b = _flat(b)
        assert len(flat_a) == len(flat_b)
        for p, q in zip(flat_a, flat_b):
            np.testing.assert_allclose(_np(p), q.numpy(), rtol=1e-10, atol=1e-12)
    v = (_t([1.0, 0.0, -1.0]), _t([0.5, 0.5, 0.5]))
    _, jv = func.jvp(f_tg, args_tg, v)
    _, tjv = torch.func.jvp(f_torch, args_t, tuple(torch.tensor(_np(t)) for t in v))
    assert jv.item() == pytest.approx(tjv.item(), rel=1e-10)


def _flat(tree):
    if isinstance(tree, (tuple, list)):
        return [x for t in tree for x in _flat(t)]
    return [tree]
