"""ConjugateGradient, Newton and LevenbergMarquardt: convergence on the classical test
problems, memory (Newton builds no Hessian), damping behaviour, and bad input.
"""

import doctest
import math
import tracemalloc

import numpy as np
import pytest
from optim_problems import make_closure, rosenbrock, start

import tensorgrad as tg
from tensorgrad.optim import second_order
from tensorgrad.optim.second_order import _solve_spd


def max_error(x, target):
    return np.abs(x.detach().numpy() - target).max()


# ---- ConjugateGradient -----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["PR+", "FR"])
def test_cg_rosenbrock(method):
    x = start()
    opt = tg.optim.ConjugateGradient([x], method=method)
    closure = make_closure(opt, rosenbrock, x)
    for _ in range(2000):
        opt.step(closure)
        if max_error(x, 1.0) <= 1e-8:
            break
    assert max_error(x, 1.0) <= 1e-8
    assert opt.state[x]["n_iter"] <= 2000


def test_cg_quadratic_and_restart_one_is_steepest_descent():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((5, 5))
    a = tg.tensor(m @ m.T + np.eye(5))
    b = tg.tensor(rng.standard_normal(5))
    f = lambda v: 0.5 * v.dot(a @ v) - b.dot(v)  # noqa: E731
    ref = np.linalg.solve(a.numpy(), b.numpy())

    x = tg.zeros(5, dtype=tg.float64, requires_grad=True)
    opt = tg.optim.ConjugateGradient([x])
    closure = make_closure(opt, f, x)
    for _ in range(40):
        opt.step(closure)
    assert max_error(x, ref) <= 1e-8

    y = tg.zeros(5, dtype=tg.float64, requires_grad=True)
    sd = tg.optim.ConjugateGradient([y], restart=1)
    closure = make_closure(sd, f, y)
    for _ in range(3):
        sd.step(closure)
        state = sd.state[y]
        np.testing.assert_array_equal(state["d"].numpy(), -state["prev_flat_grad"].numpy())


def test_cg_without_line_search_takes_fixed_steps():
    x = tg.tensor(np.array([2.0, -1.0]), requires_grad=True)
    opt = tg.optim.ConjugateGradient([x], lr=0.1, line_search=None, restart=1)
    opt.step(make_closure(opt, lambda v: (v ** 2).sum(), x))
    # First trial step min(1, 1/|g|_1) * lr along -g, g = (4, -2).
    np.testing.assert_allclose(x.detach().numpy(), [2 - 0.1 / 6 * 4, -1 + 0.1 / 6 * 2])


def test_cg_bad_input():
    x = start()
    with pytest.raises(ValueError, match="method"):
        tg.optim.ConjugateGradient([x], method="HS")
    with pytest.raises(ValueError, match="c1 < c2"):
        tg.optim.ConjugateGradient([x], c2=1e-5)
    opt = tg.optim.ConjugateGradient([x])

    def vector_loss():
        opt.zero_grad()
        loss = x ** 2
        loss.sum().backward()
        return loss

    with pytest.raises(tg.ShapeError, match="scalar loss"):
        opt.step(vector_loss)


# ---- Newton ----------------------------------------------------------------------------------
@pytest.mark.parametrize("line_search", [True, False])
def test_newton_rosenbrock(line_search):
    x = start()
    opt = tg.optim.Newton([x], line_search=line_search)
    for _ in range(50):
        opt.step(lambda: rosenbrock(x))
        if max_error(x, 1.0) <= 1e-8:
            break
    assert max_error(x, 1.0) <= 1e-8
    assert opt.state[x]["n_iter"] <= 50


def test_newton_undamped_step_on_a_quadratic_is_exact():
    rng = np.random.default_rng(2)
    m = rng.standard_normal((4, 4))
    a_np = m @ m.T + np.eye(4)
    a, b = tg.tensor(a_np), tg.tensor(rng.standard_normal(4))
    w = tg.zeros((2, 2), dtype=tg.float64, requires_grad=True)  # a matrix: flat views
    opt = tg.optim.Newton([w], damping=0.0, line_search=False)
    opt.step(lambda: 0.5 * w.reshape(-1).dot(a @ w.reshape(-1)) - b.dot(w.reshape(-1)))
    np.testing.assert_allclose(w.detach().numpy().ravel(), np.linalg.solve(a_np, b.numpy()),
                               atol=1e-10)
    assert opt.state[w]["cg_iters"] <= 4 and opt.state[w]["negative_curvature"] is False


def saddle(v):
    # f = x² − y² + y⁴/4: a saddle at 0, minima at (0, ±√2) with f = −1.
    return v[0] ** 2 - v[1] ** 2 + v[1] ** 4 / 4


def test_newton_negative_curvature_falls_back_to_gradient():
    v = tg.tensor(np.array([0.0, 0.1]), requires_grad=True)
    opt = tg.optim.Newton([v])
    loss = opt.step(lambda: saddle(v))
    state = opt.state[v]
    assert state["negative_curvature"] and state["cg_iters"] == 1  # first direction: -g
    assert saddle(v).item() < loss.item() and v.tolist()[1] > 0.1
    for _ in range(50):
        opt.step(lambda: saddle(v))
    np.testing.assert_allclose(v.detach().numpy(), [0.0, math.sqrt(2)], atol=1e-8)


def test_newton_negative_curvature_keeps_cg_iterate():
    v = tg.tensor(np.array([1.0, 0.1]), requires_grad=True)
    opt = tg.optim.Newton([v])
    loss = opt.step(lambda: saddle(v))
    assert opt.state[v]["negative_curvature"] and opt.state[v]["cg_iters"] == 2
    assert saddle(v).item() < loss.item()
    # The step is t times the first CG iterate α·(-g), α = g·g / gᵀ(H + λI)g.
    g, h = np.array([2.0, -0.2 + 0.001]), np.diag([2.0, -2 + 3 * 0.01]) + 1e-4 * np.eye(2)
    z = -g * (g @ g) / (g @ h @ g)
    np.testing.assert_allclose(v.detach().numpy(), [1.0, 0.1] + opt.state[v]["t"] * z,
                               rtol=1e-12)


def test_newton_10k_parameters_without_a_hessian():
    # L2-regularised logistic regression, 10 000 weights: a Hessian would be 800 MB.
    rng = np.random.default_rng(0)
    n, d, alpha = 100, 10_000, 1e-2
    x_np = rng.standard_normal((n, d)) / math.sqrt(d)
    y_np = (x_np @ rng.standard_normal(d) > 0).astype(np.float64)
    x, y = tg.tensor(x_np), tg.tensor(y_np)
    w = tg.zeros(d, dtype=tg.float64, requires_grad=True)

    def loss():
        z = x @ w
        return (tg.nn.functional.softplus(z) - y * z).mean() + 0.5 * alpha * w.dot(w)

    opt = tg.optim.Newton([w], cg_max_iter=100)
    tracemalloc.start()
    try:
        for _ in range(10):
            opt.step(loss)
        _, peak = tracemalloc.get_traced_memory()
        big = tg.zeros(8_000_000, dtype=tg.float64)  # the tracer does see tensor storage
        _, peak_big = tracemalloc.get_traced_memory()
        del big
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    assert peak_big >= 60 * 2**20
    (g,) = tg.autograd.grad(loss(), w)
    assert g.abs().max().item() < 1e-9


def test_newton_bad_input():
    x = start()
    opt = tg.optim.Newton([x])
    with pytest.raises(tg.ShapeError, match=r"shape \(2,\).*scalar loss"):
        opt.step(lambda: x ** 2)
    with pytest.raises(TypeError, match="does not depend"):
        opt.step(lambda: 3.0)
    with pytest.raises(TypeError, match="closure"):
        opt.step()
    with pytest.raises(ValueError, match="damping"):
        tg.optim.Newton([x], damping=-1)
    with pytest.raises(ValueError, match="per-parameter options"):
        tg.optim.Newton([{"params": [x]}, {"params": [tg.zeros(1, requires_grad=True)]}])


# ---- Levenberg–Marquardt ---------------------------------------------------------------------
def exp_data():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 4, 200)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.01 * rng.standard_normal(200)
    return tg.tensor(x), tg.tensor(y)


@pytest.mark.parametrize("jacobian", ["auto", "reverse"])
def test_lm_exponential_fit(jacobian):
    x, y = exp_data()
    theta = tg.tensor(np.array([1.0, 1.0, 0.0]), requires_grad=True)
    opt = tg.optim.LevenbergMarquardt([theta], jacobian=jacobian)

    def residuals():
        return theta[0] * tg.exp(-theta[1] * x) + theta[2] - y

    first = opt.step(residuals)
    assert opt.state[theta]["accepted"] and opt.state[theta]["lambda_"] == pytest.approx(1e-4)
    for _ in range(48 if jacobian == "auto" else 8):
        opt.step(residuals)
    np.testing.assert_allclose(theta.detach().numpy(), [2.5, 1.3, 0.5], rtol=0.02)
    final = (residuals() ** 2).sum().item()
    assert final < 1e-3 * first.item() and final < 200 * 0.01 ** 2 * 1.5


def test_lm_forward_and_reverse_jacobians_agree():
    x, y = exp_data()
    thetas = []
    for mode in ("forward", "reverse"):
        theta = tg.tensor(np.array([1.0, 1.0, 0.0]), requires_grad=True)
        opt = tg.optim.LevenbergMarquardt([theta], jacobian=mode)

        def residuals(theta=theta):
            return theta[0] * tg.exp(-theta[1] * x) + theta[2] - y

        for _ in range(2):
            opt.step(residuals)
        thetas.append(theta.detach().numpy())
    np.testing.assert_allclose(thetas[0], thetas[1], rtol=1e-12)


@pytest.mark.parametrize("damping", ["marquardt", "levenberg"])
def test_lm_linear_least_squares_in_two_steps(damping):
    rng = np.random.default_rng(3)
    a_np, b_np = rng.standard_normal((50, 5)), rng.standard_normal(50)
    a, b = tg.tensor(a_np), tg.tensor(b_np)
    w = tg.zeros(4, dtype=tg.float64, requires_grad=True)
    c = tg.zeros(1, dtype=tg.float64, requires_grad=True)  # two parameters, flat views
    opt = tg.optim.LevenbergMarquardt([w, c], damping=damping)
    for _ in range(2):
        opt.step(lambda: a[:, :4] @ w + a[:, 4] * c - b)
    ref = np.linalg.lstsq(a_np, b_np, rcond=None)[0]
    np.testing.assert_allclose(np.concatenate([w.detach().numpy(), c.detach().numpy()]), ref,
                               atol=1e-6)


def test_lm_rejects_steps_and_raises_damping():
    # Rosenbrock as least squares, from far out with almost no damping: steps get rejected.
    v = tg.tensor(np.array([-1.2, 1.0]), requires_grad=True)
    opt = tg.optim.LevenbergMarquardt([v], lambda_=1e-8, damping="levenberg")
    lambdas, costs = [], []
    for _ in range(60):
        costs.append(opt.step(lambda: tg.stack([10 * (v[1] - v[0] ** 2), 1 - v[0]])).item())
        lambdas.append(opt.state[v]["lambda_"])
    assert any(b > a for a, b in zip(lambdas, lambdas[1:]))
    assert all(b <= a for a, b in zip(costs, costs[1:]))  # never accepts an increase
    assert max_error(v, 1.0) <= 1e-8


def test_lm_scalar_residual():
    s = tg.tensor(3.0, dtype=tg.float64, requires_grad=True)
    opt = tg.optim.LevenbergMarquardt([s])
    for _ in range(20):
        opt.step(lambda: s * s - 2)
    assert s.item() == pytest.approx(math.sqrt(2), rel=1e-12)


def test_lm_bad_input():
    w = tg.zeros(2, dtype=tg.float64, requires_grad=True)
    with pytest.raises(TypeError, match="residual Tensor"):
        tg.optim.LevenbergMarquardt([w]).step(lambda: 1.0)
    with pytest.raises(ValueError, match="lambda_up"):
        tg.optim.LevenbergMarquardt([w], lambda_up=1)
    with pytest.raises(ValueError, match="damping"):
        tg.optim.LevenbergMarquardt([w], damping="none")


def test_solve_spd_matches_numpy_and_flags_indefinite():
    rng = np.random.default_rng(4)
    m = rng.standard_normal((7, 7))
    a_np, b_np = m @ m.T + 0.1 * np.eye(7), rng.standard_normal(7)
    x, ok = _solve_spd(tg.tensor(a_np), tg.tensor(b_np))
    assert ok
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a_np, b_np), rtol=1e-10)
    _, ok = _solve_spd(tg.tensor(np.diag([1.0, -1.0, 2.0])), tg.tensor(np.ones(3)))
    assert not ok


def test_defaults_and_doctests():
    x = start()
    for cls in (tg.optim.ConjugateGradient, tg.optim.Newton, tg.optim.LevenbergMarquardt):
        assert cls([x]).defaults  # every hyper-parameter has a default
    assert tg.optim.ConjugateGradient([x]).defaults["c2"] == 0.1
    assert doctest.testmod(second_order).failed == 0


@pytest.mark.parametrize("method, expected", [("PR+", [-0.5, -0.1]),  # β_PR < 0 → 0
                                              ("FR", [-0.76, -0.1])])  # β_FR = 0.26
def test_cg_beta(method, expected):
    x = start()
    opt = tg.optim.ConjugateGradient([x], method=method)
    state = {"n_iter": 1, "since_restart": 1, "prev_flat_grad": tg.tensor([1.0, 0.0]),
             "d": tg.tensor([-1.0, 0.0])}
    d, gtd = opt._direction(state, tg.tensor([0.5, 0.1]), opt.param_groups[0])
    np.testing.assert_allclose(d.numpy(), expected, rtol=1e-6)
    assert gtd == pytest.approx(float(np.dot(expected, [0.5, 0.1])), rel=1e-6)


def test_cg_restarts_when_not_a_descent_direction():
    x = start()
    opt = tg.optim.ConjugateGradient([x], method="FR")
    state = {"n_iter": 1, "since_restart": 1, "prev_flat_grad": tg.tensor([0.1, 0.0]),
             "d": tg.tensor([1.0, 0.0])}  # -g + 1·d_prev = (0.9, 0) points uphill
    d, gtd = opt._direction(state, tg.tensor([0.1, 0.0]), opt.param_groups[0])
    np.testing.assert_allclose(d.numpy(), [-0.1, 0.0])
    assert gtd == pytest.approx(-0.01) and state["since_restart"] == 1
