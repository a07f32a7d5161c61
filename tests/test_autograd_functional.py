"""tg.autograd.functional: the eager forms, with torch.autograd.functional's signatures and
return structures, against closed forms, finite differences and each other; create_graph and
strict. Optionally cross-checked against torch.autograd.functional."""

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.autograd import functional as F
from tensorgrad.errors import GraphError, ShapeError

RNG = np.random.default_rng(3)
A_NP = RNG.standard_normal((3, 3))
X_NP = RNG.standard_normal(3)
B_NP = RNG.standard_normal((4, 3))


def _t(a, device="cpu", requires_grad=False):
    return tg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


def _np(t):
    return t.detach().cpu().numpy()


def _vector_f(x):
    return (_t(B_NP, x.device) @ x).tanh() * x.sum()


def _quadratic(x):
    return x @ (_t(A_NP, x.device).T @ x)


def _fd_jacobian(fn, x_np, eps=1e-6):
    cols = []
    for i in range(x_np.size):
        e = np.zeros(x_np.size)
        e[i] = eps
        e = e.reshape(x_np.shape)
        cols.append((fn(x_np + e) - fn(x_np - e)) / (2 * eps))
    return np.stack(cols, axis=-1).reshape(np.shape(fn(x_np)) + x_np.shape)


# ---- vjp -----------------------------------------------------------------------------------
def test_vjp_structures_follow_inputs_and_outputs():
    x, y = _t([1.0, 2.0]), _t([3.0, 4.0])
    out, g = F.vjp(lambda x: x ** 2, x, _t([1.0, -1.0]))
    assert isinstance(out, tg.Tensor) and isinstance(g, tg.Tensor)
    np.testing.assert_allclose(_np(g), [2.0, -4.0])
    out, g = F.vjp(lambda x, y: x * y, (x, y), _t([1.0, 2.0]))
    assert isinstance(out, tg.Tensor) and isinstance(g, tuple) and len(g) == 2
    np.testing.assert_allclose(_np(g[0]), [3.0, 8.0])
    np.testing.assert_allclose(_np(g[1]), [1.0, 4.0])
    out, g = F.vjp(lambda x: (x * 2, x.sum()), x, (_t([1.0, 1.0]), _t(3.0)))
    assert isinstance(out, tuple) and len(out) == 2 and isinstance(g, tg.Tensor)
    np.testing.assert_allclose(_np(g), [5.0, 5.0])
    out, g = F.vjp(lambda x: (x ** 2).sum(), x)  # v may be None for a one-element output
    np.testing.assert_allclose(_np(g), [2.0, 4.0])
    assert out.item() == 5.0 and not out.requires_grad and not g.requires_grad


def test_vjp_of_an_unused_input_is_zero_unless_strict():
    x, y = _t([1.0, 2.0]), _t([3.0])
    _, (gx, gy) = F.vjp(lambda x, y: x * 2, (x, y), _t([1.0, 1.0]))
    assert _np(gy).tolist() == [0.0] and _np(gx).tolist() == [2.0, 2.0]
    with pytest.raises(GraphError, match="independent of input 1"):
        F.vjp(lambda x, y: x * 2, (x, y), _t([1.0, 1.0]), strict=True)
    with pytest.raises(GraphError, match="output 0.*does not require grad"):
        F.vjp(lambda x: _t([1.0, 1.0]), x, _t([1.0, 1.0]), strict=True)


def test_errors():
    x = _t([1.0, 2.0])
    with pytest.raises(TypeError, match="inputs.*float"):
        F.vjp(lambda x: x, 1.0, None)
    with pytest.raises(TypeError, match="index 1.*list"):
        F.jacobian(lambda x, y: x, (x, [1.0]))
    with pytest.raises(ShapeError, match="v can only be None"):
        F.vjp(lambda x: x * 2, x)
    with pytest.raises(ShapeError, match=r"entry 0 of v has shape \(3,\)"):
        F.vjp(lambda x: x * 2, x, _t([1.0, 2.0, 3.0]))
    with pytest.raises(ShapeError, match="v has 2 entries"):
        F.jvp(lambda x: x * 2, x, (x, x))
    with pytest.raises(ShapeError, match=r"single element.*\(2,\)"):
        F.hvp(lambda x: x * 2, x, x)
    with pytest.raises(ShapeError, match="single element"):
        F.hessian(lambda x: x * 2, x)
    with pytest.raises(ValueError, match="strategy"):
        F.jacobian(lambda x: x, x, strategy="sideways")


# ---- jvp -----------------------------------------------------------------------------------
def test_jvp_equals_jacobian_times_v(device):
    x, v = _t(X_NP, device), _t([0.5, -1.0, 2.0], device)
    out, jv = F.jvp(_vector_f, x, v)
    assert isinstance(jv, tg.Tensor) and jv.shape == (4,)
    jac = F.jacobian(_vector_f, x)
    np.testing.assert_allclose(_np(jv), _np(jac) @ _np(v), rtol=1e-12)
    np.testing.assert_allclose(_np(out), _np(_vector_f(x)))


def test_jvp_structure_follows_outputs():
    x, y = _t([1.0, 2.0]), _t([3.0, 4.0])
    out, jv = F.jvp(lambda x, y: (x * y, (x + y).sum()), (x, y), (_t([1.0, 0.0]), _t([0.0, 1.0])))
    assert isinstance(out, tuple) and isinstance(jv, tuple) and len(jv) == 2
    np.testing.assert_allclose(_np(jv[0]), [3.0, 2.0])
    assert jv[1].item() == 2.0
    _, jv = F.jvp(lambda x: x * 3, _t([2.0]))  # v may be None for a one-element input
    assert _np(jv).tolist() == [3.0]


# ---- hvp, vhp ------------------------------------------------------------------------------
def test_hvp_and_vhp_of_quadratic(device):
    x, v = _t(X_NP, device), _t([1.0, 0.5, -2.0], device)
    expected = (A_NP + A_NP.T) @ _np(v)
    for fn in (F.hvp, F.vhp):
        out, r = fn(_quadratic, x, v)
        assert isinstance(r, tg.Tensor) and r.shape == (3,)
        np.testing.assert_allclose(_np(r), expected, rtol=1e-12)
        assert out.item() == pytest.approx(X_NP @ A_NP.T @ X_NP)


def test_hvp_with_tuple_inputs_matches_hessian_blocks():
    def f(x, y):
        return (x.sin() * y).sum() + (x * x).sum() * (y ** 3).sum()

    x, y = _t([0.3, -0.7]), _t([1.5, 0.2])
    v = (_t([1.0, 2.0]), _t([-1.0, 0.5]))
    (hxx, hxy), (hyx, hyy) = F.hessian(f, (x, y))
    expected = (_np(hxx) @ _np(v[0]) + _np(hxy) @ _np(v[1]),
                _np(hyx) @ _np(v[0]) + _np(hyy) @ _np(v[1]))
    for fn in (F.hvp, F.vhp):
        out, r = fn(f, (x, y), v)
        assert isinstance(out, tg.Tensor) and isinstance(r, tuple) and len(r) == 2
        for got, want in zip(r, expected):
            np.testing.assert_allclose(_np(got), want, rtol=1e-12)


# ---- jacobian ------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_jacobian_matches_finite_differences(strategy):
    jac = F.jacobian(_vector_f, _t(X_NP), strategy=strategy, vectorize=True)
    assert jac.shape == (4, 3)

    def fn(a):
        with tg.no_grad():
            return _np(_vector_f(_t(a)))
    np.testing.assert_allclose(_np(jac), _fd_jacobian(fn, X_NP), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_jacobian_structures(strategy):
    x, y = _t([1.0, 2.0]), _t([[3.0], [4.0]])
    j = F.jacobian(lambda x: x * 2, x, strategy=strategy)
    assert isinstance(j, tg.Tensor) and j.shape == (2, 2)
    j = F.jacobian(lambda x, y: x * y[:, 0], (x, y), strategy=strategy)
    assert isinstance(j, tuple) and [t.shape for t in j] == [(2, 2), (2, 2, 1)]
    np.testing.assert_allclose(_np(j[1])[:, :, 0], np.diag([1.0, 2.0]))
    j = F.jacobian(lambda x: (x * 2, x.sum()), x, strategy=strategy)
    assert isinstance(j, tuple) and [t.shape for t in j] == [(2, 2), (2,)]
    j = F.jacobian(lambda x, y: (x * 2, y.sum()), (x, y), strategy=strategy)
    assert isinstance(j[0], tuple) and [[t.shape for t in row] for row in j] == \
        [[(2, 2), (2, 2, 1)], [(2,), (2, 1)]]
    assert _np(j[0][1]).sum() == 0.0 and _np(j[1][1]).tolist() == [[1.0], [1.0]]
    with pytest.raises(GraphError, match="independent of input 1"):
        F.jacobian(lambda x, y: x * 2, (x, y), strict=True, strategy=strategy)


# ---- hessian -------------------------------------------------------------------------------
@pytest.mark.parametrize("outer", ["reverse-mode", "forward-mode"])
def test_hessian_of_quadratic_is_a_plus_a_transpose(device, outer):
    h = F.hessian(_quadratic, _t(X_NP, device), outer_jacobian_strategy=outer)
    assert isinstance(h, tg.Tensor) and h.shape == (3, 3) and not h.requires_grad
    np.testing.assert_allclose(_np(h), A_NP + A_NP.T, rtol=1e-12)


def test_hessian_of_a_linear_function_is_zero_unless_strict():
    x = _t([1.0, 2.0])
    assert _np(F.hessian(lambda x: x.sum() * 3, x)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(GraphError, match="jacobian w.r.t. input 0 is independent"):
        F.hessian(lambda x: x.sum() * 3, x, strict=True)


# ---- create_graph --------------------------------------------------------------------------
def test_create_graph_results_can_be_differentiated_again():
    x = _t([0.5, -1.5, 2.0], requires_grad=True)
    out, g = F.vjp(lambda x: x ** 3, x, tg.ones_like(x), create_graph=True)
    assert out.requires_grad and g.requires_grad
    (d,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(_np(d), 6 * _np(x))                        # d/dx 3x^2
    _, jv = F.jvp(lambda x: x ** 3, x, tg.ones_like(x), create_graph=True)
    np.testing.assert_allclose(_np(tg.autograd.grad(jv.sum(), x)[0]), 6 * _np(x))
    jac = F.jacobian(lambda x: x ** 3, x, create_graph=True)
    np.testing.assert_allclose(_np(tg.autograd.grad(jac.sum(), x)[0]), 6 * _np(x))
    h = F.hessian(lambda x: (x ** 4).sum(), x, create_graph=True)
    np.testing.assert_allclose(_np(tg.autograd.grad(h.sum(), x)[0]), 24 * _np(x))
    _, hv = F.hvp(lambda x: (x ** 4).sum(), x, tg.ones_like(x), create_graph=True)
    np.testing.assert_allclose(_np(tg.autograd.grad(hv.sum(), x)[0]), 24 * _np(x))
    _, vh = F.vhp(lambda x: (x ** 4).sum(), x, tg.ones_like(x), create_graph=True)
    np.testing.assert_allclose(_np(tg.autograd.grad(vh.sum(), x)[0]), 24 * _np(x))


def test_create_graph_also_differentiates_with_respect_to_v():
    x = _t([1.0, 2.0])
    v = _t([0.5, -1.0], requires_grad=True)
    _, g = F.vjp(lambda x: x ** 2, x, v, create_graph=True)
    np.testing.assert_allclose(_np(tg.autograd.grad(g.sum(), v)[0]), 2 * _np(x))


def test_without_create_graph_nothing_is_connected_nor_accumulated():
    x = _t([0.5, -1.5], requires_grad=True)
    for out, res in (F.vjp(lambda x: x ** 3, x, tg.ones_like(x)),
                     F.jvp(lambda x: x ** 3, x, tg.ones_like(x)),
                     F.hvp(lambda x: (x ** 3).sum(), x, tg.ones_like(x))):
        assert not out.requires_grad and not res.requires_grad
    assert not F.jacobian(lambda x: x ** 3, x).requires_grad
    assert not F.hessian(lambda x: (x ** 3).sum(), x).requires_grad
    assert x.grad is None and x.is_leaf


# ---- torch.autograd.functional cross-check -------------------------------------------------
def test_against_torch_autograd_functional():
    torch = pytest.importorskip("torch")
    TF = torch.autograd.functional
    tb = torch.tensor(B_NP)

    def f_tg(x, y):
        return (_t(B_NP) @ (x * y)).tanh(), (x.exp() * y).sum()

    def f_torch(x, y):
        return (tb @ (x * y)).tanh(), (x.exp() * y).sum()

    y_np = RNG.standard_normal(3)
    ours, theirs = (_t(X_NP), _t(y_np)), (torch.tensor(X_NP), torch.tensor(y_np))
    a, b = F.jacobian(f_tg, ours), TF.jacobian(f_torch, theirs)
    for i in range(2):
        for k in range(2):
            np.testing.assert_allclose(_np(a[i][k]), b[i][k].numpy(), rtol=1e-10, atol=1e-12)

    def s_tg(x, y):
        return f_tg(x, y)[1] + f_tg(x, y)[0].sum()

    def s_torch(x, y):
        return f_torch(x, y)[1] + f_torch(x, y)[0].sum()

    a, b = F.hessian(s_tg, ours), TF.hessian(s_torch, theirs)
    for i in range(2):
        for k in range(2):
            np.testing.assert_allclose(_np(a[i][k]), b[i][k].numpy(), rtol=1e-10, atol=1e-12)
    v_np = (RNG.standard_normal(3), RNG.standard_normal(3))
    v_tg, v_t = tuple(_t(v) for v in v_np), tuple(torch.tensor(v) for v in v_np)
    for name in ("hvp", "vhp"):
        (_, ra), (_, rb) = getattr(F, name)(s_tg, ours, v_tg), getattr(TF, name)(s_torch,
                                                                                theirs, v_t)
        for p, q in zip(ra, rb):
            np.testing.assert_allclose(_np(p), q.numpy(), rtol=1e-10, atol=1e-12)
