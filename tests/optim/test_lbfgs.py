"""LBFGS: convergence, PyTorch's first-step rule, state round trip, bad input, the line
search helpers, and (when torch is installed) iterate-by-iterate parity with torch.optim.LBFGS.
"""

import copy
import doctest

import numpy as np
import pytest
from optim_problems import make_closure, rosenbrock, start

import tensorgrad as tg
from tensorgrad.optim import lbfgs as lbfgs_module
from tensorgrad.optim.lbfgs import _cubic_interpolate, _strong_wolfe


def test_rosenbrock_strong_wolfe_reaches_minimum():
    x = start()
    opt = tg.optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=200, max_eval=400,
                         tolerance_grad=1e-12, tolerance_change=1e-15)
    opt.step(make_closure(opt, rosenbrock, x))
    state = opt.state[x]
    assert state["n_iter"] <= 200
    np.testing.assert_allclose(x.detach().numpy(), [1.0, 1.0], rtol=0, atol=1e-8)


def test_defaults_match_pytorch():
    x = start()
    opt = tg.optim.LBFGS([x])
    assert opt.defaults == dict(lr=1, max_iter=20, max_eval=25, tolerance_grad=1e-7,
                                tolerance_change=1e-9, history_size=100, line_search_fn=None)
    assert tg.optim.LBFGS([x], max_iter=7).defaults["max_eval"] == 8  # max_iter * 5 // 4


def test_first_step_is_scaled_gradient_descent():
    # First iteration: x -= min(1, 1/|g|_1) * lr * g, then no re-evaluation (max_iter=1).
    x = tg.tensor(np.array([0.3, -0.4, 2.0]), requires_grad=True)
    target = tg.tensor(np.array([1.0, 2.0, 3.0]))
    opt = tg.optim.LBFGS([x], lr=0.5, max_iter=1)
    f = lambda v: ((v - target) ** 2).sum()  # noqa: E731
    opt.step(make_closure(opt, f, x))
    g = 2 * (np.array([0.3, -0.4, 2.0]) - [1.0, 2.0, 3.0])
    expected = np.array([0.3, -0.4, 2.0]) - min(1, 1 / np.abs(g).sum()) * 0.5 * g
    np.testing.assert_allclose(x.detach().numpy(), expected, rtol=1e-14)
    assert opt.state[x]["func_evals"] == 1 and opt.state[x]["n_iter"] == 1


def test_quadratic_without_line_search_matches_solve():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((6, 6))
    a_np = m @ m.T / 6 + np.eye(6)
    b_np = rng.standard_normal(6)
    a, b = tg.tensor(a_np), tg.tensor(b_np)
    x = tg.zeros(6, dtype=tg.float64, requires_grad=True)
    opt = tg.optim.LBFGS([x], max_iter=100, tolerance_grad=1e-12, tolerance_change=0)
    f = lambda v: 0.5 * v.dot(a @ v) - b.dot(v)  # noqa: E731
    closure = make_closure(opt, f, x)
    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(x.detach().numpy(), np.linalg.solve(a_np, b_np), atol=1e-9)


def test_several_parameters_of_several_shapes():
    # Least squares through a weight matrix and a bias: flat views must line up.
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((40, 3))
    y_np = x_np @ rng.standard_normal((3, 2)) + rng.standard_normal(2)
    w = tg.zeros((3, 2), dtype=tg.float64, requires_grad=True)
    bias = tg.zeros(2, dtype=tg.float64, requires_grad=True)
    x, y = tg.tensor(x_np), tg.tensor(y_np)
    opt = tg.optim.LBFGS([w, bias], line_search_fn="strong_wolfe", max_iter=100,
                         tolerance_grad=1e-10, tolerance_change=0)
    opt.step(make_closure(opt, lambda: ((x @ w + bias - y) ** 2).mean()))
    design = np.hstack([x_np, np.ones((40, 1))])
    ref = np.linalg.lstsq(design, y_np, rcond=None)[0]
    np.testing.assert_allclose(w.detach().numpy(), ref[:3], atol=1e-7)
    np.testing.assert_allclose(bias.detach().numpy(), ref[3], atol=1e-7)
    assert set(opt.state) == {w}  # global state lives under the first parameter


def test_converged_start_returns_without_moving():
    x = tg.tensor(np.array([1.0, 1.0]), requires_grad=True)
    opt = tg.optim.LBFGS([x])
    loss = opt.step(make_closure(opt, rosenbrock, x))
    assert loss.item() == 0.0 and x.tolist() == [1.0, 1.0]
    assert opt.state[x]["n_iter"] == 0 and opt.state[x]["func_evals"] == 1


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_state_dict_round_trip(tmp_path, line_search_fn):
    def run(x, opt, steps):
        closure = make_closure(opt, rosenbrock, x)
        for _ in range(steps):
            opt.step(closure)

    x = start()
    opt = tg.optim.LBFGS([x], max_iter=4, history_size=3, line_search_fn=line_search_fn)
    run(x, opt, 3)
    saved_x = x.detach().clone()
    tg.save(opt.state_dict(), tmp_path / "lbfgs.safetensors")
    sd = copy.deepcopy(opt.state_dict())
    assert {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
            "prev_flat_grad", "prev_loss", "al"} <= set(sd["state"][0])
    run(x, opt, 3)

    for loaded in (sd, tg.load(tmp_path / "lbfgs.safetensors")):
        y = saved_x.clone().requires_grad_()
        opt2 = tg.optim.LBFGS([y], max_iter=1, line_search_fn="strong_wolfe")
        opt2.load_state_dict(loaded)
        assert opt2.param_groups[0]["max_iter"] == 4
        assert opt2.param_groups[0]["line_search_fn"] == line_search_fn
        run(y, opt2, 3)
        np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
        assert opt2.state[y]["n_iter"] == opt.state[x]["n_iter"]


def test_bad_input():
    x = start()
    with pytest.raises(ValueError, match="per-parameter options"):
        tg.optim.LBFGS([{"params": [x]}, {"params": [tg.zeros(2, requires_grad=True)]}])
    with pytest.raises(ValueError, match="learning rate"):
        tg.optim.LBFGS([x], lr=-1)
    with pytest.raises(ValueError, match="line_search_fn"):
        tg.optim.LBFGS([x], line_search_fn="armijo")
    opt = tg.optim.LBFGS([x])
    with pytest.raises(TypeError, match="closure"):
        opt.step()

    def vector_loss():
        opt.zero_grad()
        loss = (x - 1) ** 2
        loss.sum().backward()
        return loss

    with pytest.raises(tg.ShapeError, match=r"shape \(2,\).*scalar loss"):
        opt.step(vector_loss)
    with pytest.raises(ValueError, match="scalar"):  # ShapeError is a ValueError too
        opt.step(vector_loss)


# ---- the line-search helpers -----------------------------------------------------------------
def test_cubic_interpolate_is_exact_on_a_cubic():
    # f(t) = (t - 1)^3 / 3 - (t - 1) ... use f = t^3 - 3 t: minimum at t = 1.
    f = lambda t: t ** 3 - 3 * t  # noqa: E731
    df = lambda t: 3 * t ** 2 - 3  # noqa: E731
    assert _cubic_interpolate(0.0, f(0.0), df(0.0), 2.0, f(2.0), df(2.0)) == pytest.approx(1.0)
    assert _cubic_interpolate(2.0, f(2.0), df(2.0), 0.0, f(0.0), df(0.0)) == pytest.approx(1.0)
    # Clipped to the bounds, and the midpoint when the cubic has no minimiser.
    assert _cubic_interpolate(0.0, f(0.0), df(0.0), 2.0, f(2.0), df(2.0), (1.5, 3)) == 1.5
    assert _cubic_interpolate(0.0, 0.0, 1.0, 1.0, 1.0, 1.0, (0, 4)) == 2.0


def test_strong_wolfe_satisfies_both_conditions():
    # Along d = -g from x = 0 on f(x) = sum(exp(x) - 2x): both conditions at the returned t.
    x0 = tg.zeros(3, dtype=tg.float64)
    d = tg.tensor(np.array([1.0, 2.0, 0.5]))

    def obj(x, t, d):
        z = x[0] + d * t
        return (z.exp() - 2 * z).sum().item(), z.exp() - 2

    f0, g0 = obj([x0], 0.0, d)
    gtd = g0.dot(d).item()
    f, g, t, evals = _strong_wolfe(obj, [x0], 10.0, d, f0, g0, gtd)
    assert f <= f0 + 1e-4 * t * gtd
    assert abs(g.dot(d).item()) <= 0.9 * abs(gtd)
    assert 1 <= evals <= 25 and t > 0


def test_module_doctests():
    assert doctest.testmod(lbfgs_module).failed == 0


# ---- parity with PyTorch ---------------------------------------------------------------------
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("kwargs", [{}, {"lr": 0.5, "max_iter": 7, "history_size": 4}])
def test_matches_torch_lbfgs(line_search_fn, kwargs):
    torch = pytest.importorskip("torch")
    xt = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    xg = start()
    opt_t = torch.optim.LBFGS([xt], line_search_fn=line_search_fn, **kwargs)
    opt_g = tg.optim.LBFGS([xg], line_search_fn=line_search_fn, **kwargs)
    closure_t = make_closure(opt_t, rosenbrock, xt)
    closure_g = make_closure(opt_g, rosenbrock, xg)
    for _ in range(4):
        loss_t, loss_g = opt_t.step(closure_t), opt_g.step(closure_g)
        # PyTorch's add_(alpha=) fuses multiply-add, so agreement is to rounding, not bits.
        assert loss_g.item() == pytest.approx(loss_t.item(), rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(xg.detach().numpy(), xt.detach().numpy(), rtol=0,
                                   atol=1e-9)
        st, sg = opt_t.state[xt], opt_g.state[xg]
        assert (sg["n_iter"], sg["func_evals"]) == (st["n_iter"], st["func_evals"])
        assert len(sg["old_dirs"]) == len(st["old_dirs"])
        assert float(sg["t"]) == pytest.approx(float(st["t"]), rel=1e-7)


def _rosenbrock_along(x, t, d):
    z = (x + d * t).detach().requires_grad_()
    loss = rosenbrock(z)
    loss.backward()
    return loss.item(), z.grad


@pytest.mark.parametrize("x0", [[-1.2, 1.0], [0.5, -0.3], [2.0, 2.0]])
def test_strong_wolfe_matches_torch(x0):
    # Tiny, moderate and huge first trials exercise extrapolation, zoom and running out.
    torch = pytest.importorskip("torch")
    from torch.optim.lbfgs import _strong_wolfe as torch_strong_wolfe

    def torch_along(x, t, d):
        z = (x + t * d).detach().requires_grad_()
        loss = rosenbrock(z)
        loss.backward()
        return loss.item(), z.grad

    for t0 in (1e-6, 1e-3, 1.0, 30.0):
        for max_ls in (3, 25):
            xt = torch.tensor(x0, dtype=torch.float64)
            ft, gt = torch_along(xt, 0.0, torch.zeros(2, dtype=torch.float64))
            ref = torch_strong_wolfe(torch_along, xt, t0, -gt, ft, gt, gt.dot(-gt),
                                     max_ls=max_ls)
            xg = tg.tensor(np.array(x0))
            fg, gg = _rosenbrock_along(xg, 0.0, tg.zeros(2, dtype=tg.float64))
            got = _strong_wolfe(_rosenbrock_along, xg, t0, -gg, fg, gg, -gg.dot(gg).item(),
                                max_ls=max_ls)
            assert got[3] == ref[3]  # evaluations
            assert got[2] == pytest.approx(float(ref[2]), rel=1e-9, abs=1e-15)
            assert got[0] == pytest.approx(ref[0], rel=1e-9)
            np.testing.assert_allclose(got[1].numpy(), ref[1].numpy(), rtol=1e-8)


def _wiggle(z):
    return (z * z / 2 + 2 * (3 * z).sin() + (7 * z).cos()).sum()


def _wiggle_along(x, t, d):
    z = (x + d * t).detach().requires_grad_()
    loss = _wiggle(z)
    loss.backward()
    return loss.item(), z.grad


@pytest.mark.parametrize("c2", [0.9, 0.1, 0.01])
def test_strong_wolfe_matches_torch_on_a_wiggly_function(c2):
    # Many local minima: long zooms, moves off the bracket's edges, insufficient progress.
    torch = pytest.importorskip("torch")
    from torch.optim.lbfgs import _strong_wolfe as torch_strong_wolfe

    for x0 in np.linspace(-3, 3, 13):
        for t0 in (0.01, 0.3, 1.0, 5.0):
            xt = torch.tensor([x0], dtype=torch.float64)
            ft, gt = _wiggle_along(xt, 0.0, torch.zeros(1, dtype=torch.float64))
            dt = -gt.sign()
            ref = torch_strong_wolfe(_wiggle_along, xt, t0, dt, ft, gt, gt.dot(dt), c2=c2)
            xg = tg.tensor(np.array([x0]))
            fg, gg = _wiggle_along(xg, 0.0, tg.zeros(1, dtype=tg.float64))
            dg = -gg.sign()
            got = _strong_wolfe(_wiggle_along, xg, t0, dg, fg, gg, gg.dot(dg).item(), c2=c2)
            assert got[3] == ref[3], (x0, t0)
            assert got[2] == pytest.approx(float(ref[2]), rel=1e-8), (x0, t0)
