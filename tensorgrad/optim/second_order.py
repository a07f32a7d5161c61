"""Second-order methods from the classical literature: nonlinear conjugate gradient, damped
Newton (Hessian-vector products + truncated CG) and Levenberg–Marquardt.

Each treats the parameters of its one group as a flat vector (`_FlatParams`, shared with
LBFGS), and one `step(closure)` is one iteration of the method. Newton and LM differentiate
through the public engine (`tg.autograd.grad`, `create_graph=True` for second order), so no
Hessian is ever materialised except LM's small n×n normal matrix.

Speaks only Tensor (shared/STYLE.md habit 10): no array library, no raw arrays. Line searches,
CG's curvature tests and LM's damping decisions read host scalars (`.item()`); the vectors
stay Tensors on the parameters' device.
"""

import math

from ..autograd import grad as autograd_grad
from ..autograd.graph import enable_grad, no_grad
from ..creation import eye, ones_like, zeros
from ..ops.join import cat, stack
from ..tensor import Tensor
from .lbfgs import _FlatParams, _loss_value, _require_closure, _strong_wolfe
from .optimizer import Optimizer, check_lr

__all__ = ["ConjugateGradient", "Newton", "LevenbergMarquardt"]


def _flat(tensors):
    return cat([t.reshape(-1) for t in tensors], 0)


def _grads(outputs, params, **kwargs):
    return autograd_grad(outputs, params, allow_unused=True, materialize_grads=True, **kwargs)


def _check_positive(owner, **values):
    for name, v in values.items():
        if not v > 0:
            raise ValueError(f"{owner}: invalid {name}: {v} (must be > 0)")


# ---- nonlinear conjugate gradient ------------------------------------------------------------
class ConjugateGradient(_FlatParams, Optimizer):
    """Nonlinear conjugate gradient (Nocedal & Wright section 5.2) with a strong-Wolfe search.

    Use it for smooth deterministic problems when even L-BFGS's history is too much memory:
    it keeps two flat vectors. `method="PR+"` (Polak–Ribière, β = max(0, β_PR)) is usually
    faster, `"FR"` (Fletcher–Reeves) has the cleaner theory. The direction restarts as
    steepest descent every `restart` iterations (default: the number of parameters) and
    whenever it is not a descent direction. The first trial step is min(1, 1/‖g‖₁)·lr, later
    ones α_prev·(g_prev·d_prev)/(g·d) (N&W eq. 3.60). Closure as LBFGS's: it zeroes the
    gradients, computes the loss, calls `backward()` and returns the loss.

    >>> import tensorgrad as tg
    >>> w = tg.tensor([3.0, -2.0], dtype=tg.float64, requires_grad=True)
    >>> opt = tg.optim.ConjugateGradient([w])
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = ((w - 1) ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> for _ in range(3):
    ...     _ = opt.step(closure)
    >>> [round(v, 6) for v in w.tolist()]
    [1.0, 1.0]
    """

    def __init__(self, params, lr=1, method="PR+", line_search="strong_wolfe", restart=None,
                 tolerance_grad=1e-10, tolerance_change=1e-9, c1=1e-4, c2=0.1, max_ls=25):
        check_lr("ConjugateGradient", lr)
        if method not in ("PR+", "FR"):
            raise ValueError(f"ConjugateGradient: method must be 'PR+' or 'FR', got {method!r}")
        if line_search not in ("strong_wolfe", None):
            raise ValueError("ConjugateGradient: line_search must be 'strong_wolfe' or None, "
                             f"got {line_search!r}")
        if not 0 < c1 < c2 < 1:
            raise ValueError(f"ConjugateGradient: need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
        defaults = dict(lr=lr, method=method, line_search=line_search, restart=restart,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        c1=c1, c2=c2, max_ls=max_ls)
        super().__init__(params, defaults)
        self._single_group()

    def _direction(self, state, g, group):
        """(d, g·d): the conjugate direction, or steepest descent at a restart."""
        restart = group["restart"] or self._numel()
        if state["n_iter"] > 0 and state["since_restart"] < restart:
            g_prev = state["prev_flat_grad"]
            if group["method"] == "FR":
                beta = g.dot(g) / g_prev.dot(g_prev)
            else:
                beta = (g.dot(g - g_prev) / g_prev.dot(g_prev)).clamp(min=0)
            d = state["d"] * beta - g
            gtd = g.dot(d).item()
            if gtd < 0 and math.isfinite(gtd):
                state["since_restart"] += 1
                return d, gtd
        state["since_restart"] = 1
        return g.neg(), -g.dot(g).item()

    def _first_step(self, state, g, gtd, lr):
        if state["n_iter"] == 0:
            return min(1.0, 1.0 / g.abs().sum().item()) * lr
        t = state["t"] * state["prev_gtd"] / gtd  # same first-order change as last time
        return t if math.isfinite(t) and t > 0 else lr

    def step(self, closure=None):
        """One CG iteration; returns the closure's loss at the starting point."""
        _require_closure(closure, "ConjugateGradient")
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        for key in ("func_evals", "n_iter"):
            state.setdefault(key, 0)
        with enable_grad():
            orig_loss = closure()
        loss = _loss_value(orig_loss, "ConjugateGradient")
        state["func_evals"] += 1
        g = self._gather_flat_grad()
        if g.abs().max().item() <= group["tolerance_grad"]:
            return orig_loss
        d, gtd = self._direction(state, g, group)
        t = self._first_step(state, g, gtd, float(group["lr"]))
        if group["line_search"] == "strong_wolfe":
            _, _, t, evals = _strong_wolfe(
                lambda x, s, v: self._directional_evaluate(closure, x, s, v),
                self._clone_param(), t, d, loss, g, gtd, c1=group["c1"], c2=group["c2"],
                tolerance_change=group["tolerance_change"], max_ls=group["max_ls"])
            state["func_evals"] += evals
        self._add_grad(t, d)
        state.update(d=d, t=t, prev_gtd=gtd, prev_flat_grad=g, prev_loss=loss)
        state["n_iter"] += 1
        return orig_loss


# ---- damped Newton ---------------------------------------------------------------------------
def _truncated_cg(matvec, g, max_iter, tol):
    """Approximately solve B z = -g by CG (N&W Alg. 7.1); returns (z, iterations, hit < 0?).

    Stops when ‖r‖ ≤ tol·‖g‖, after max_iter products, or at the first direction of
    non-positive curvature: then the iterate so far (or -g at the first) is returned, which
    is still a descent direction.
    """
    z = zeros(g.shape, dtype=g.dtype, device=g.device)
    r = g.clone()
    d = g.neg()
    rr = r.dot(r)
    stop = tol * math.sqrt(rr.item())
    for j in range(max_iter):
        bd = matvec(d)
        dbd = d.dot(bd)
        if not dbd.item() > 0:
            return (g.neg() if j == 0 else z), j + 1, True
        alpha = rr / dbd
        z = z + d * alpha
        r = r + bd * alpha
        rr_new = r.dot(r)
        if math.sqrt(rr_new.item()) <= stop:
            return z, j + 1, False
        d = d * (rr_new / rr) - r
        rr = rr_new
    return z, max_iter, False


class Newton(_FlatParams, Optimizer):
    """Damped Newton: solve (H + damping·I) p = -g by truncated CG on Hessian-vector products.

    Use it for small-to-medium smooth problems (up to ~10⁵ parameters, a full batch) where
    quadratic convergence is worth a few dozen gradient evaluations per step: logistic
    regression, small curve fits, the last digits of an L-BFGS solution. Each product H·v is
    one double-backward pass of the engine (`tg.autograd.grad(g, params, grad_outputs=v)` on
    g = ∇loss built with `create_graph=True`), so memory is a few flat vectors and no Hessian
    is built. Indefinite H: CG stops at the first direction of negative curvature (falling
    back to -g if that is the first). With `line_search=True` the step t·p, t = lr, lr/2, ...
    must satisfy Armijo's condition f(x + t p) ≤ f(x) + c1·t·g·p (no acceptable t within
    `max_ls` halvings: no move); otherwise x += lr·p. `cg_tol` is relative to ‖g‖.

    The closure only returns the loss (Newton differentiates for itself, calling it under
    `tg.enable_grad()`); line-search trials call it under `tg.no_grad()`, so it must not
    call `backward()`.

    >>> import tensorgrad as tg
    >>> w = tg.tensor([3.0, -2.0], dtype=tg.float64, requires_grad=True)
    >>> opt = tg.optim.Newton([w], damping=0.0)
    >>> _ = opt.step(lambda: ((w - 1) ** 4 + (w - 1) ** 2).sum())
    >>> opt.state[w]["n_iter"]
    1
    """

    def __init__(self, params, lr=1.0, damping=1e-4, cg_max_iter=50, cg_tol=1e-10,
                 line_search=True, tolerance_grad=1e-12, c1=1e-4, max_ls=30):
        check_lr("Newton", lr)
        if damping < 0:
            raise ValueError(f"Newton: invalid damping: {damping} (must be >= 0)")
        _check_positive("Newton", cg_max_iter=cg_max_iter, max_ls=max_ls)
        defaults = dict(lr=lr, damping=damping, cg_max_iter=cg_max_iter, cg_tol=cg_tol,
                        line_search=line_search, tolerance_grad=tolerance_grad, c1=c1,
                        max_ls=max_ls)
        super().__init__(params, defaults)
        self._single_group()

    def _gradient(self, closure):
        """(loss, its value, differentiable flat gradient) at the current parameters."""
        with enable_grad():
            loss = closure()
            value = _loss_value(loss, "Newton")
            if not isinstance(loss, Tensor) or not loss.requires_grad:
                raise TypeError("Newton: the closure's loss does not depend on the parameters "
                                "through the graph\n  hint: return the loss tensor computed "
                                "from the parameters (not a float, not under no_grad)")
            return loss, value, _flat(_grads(loss, self._params, create_graph=True))

    def _hvp(self, g_graph, damping):
        def matvec(v):
            if not g_graph.requires_grad:  # the gradient is constant: H = 0
                return v * damping
            hv = _flat(_grads(g_graph, self._params, grad_outputs=v, retain_graph=True))
            return hv + v * damping if damping else hv
        return matvec

    def step(self, closure=None):
        """One Newton iteration; returns the loss (detached) at the starting point."""
        _require_closure(closure, "Newton", "the loss (Newton differentiates for itself)")
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        for key in ("func_evals", "n_iter"):
            state.setdefault(key, 0)
        loss, value, g_graph = self._gradient(closure)
        state["func_evals"] += 1
        g = g_graph.detach()
        if g.abs().max().item() <= group["tolerance_grad"]:
            return loss.detach()
        p, cg_iters, negative = _truncated_cg(self._hvp(g_graph, group["damping"]), g,
                                              group["cg_max_iter"], group["cg_tol"])
        del g_graph  # frees the double-backward graph before the line search
        t = float(group["lr"])
        if group["line_search"]:
            t = self._backtrack(closure, value, g, p, t, group)
        else:
            self._add_grad(t, p)
        state.update(t=t, cg_iters=cg_iters, negative_curvature=negative)
        state["n_iter"] += 1
        return loss.detach()

    def _backtrack(self, closure, f0, g, p, t, group):
        """Armijo backtracking from x along p (halving t); returns the step taken (0: none)."""
        slope = g.dot(p).item()
        x0 = self._clone_param()
        state = self.state[self._params[0]]
        for _ in range(group["max_ls"]):
            self._add_grad(t, p)
            with no_grad():
                f = _loss_value(closure(), "Newton")
            state["func_evals"] += 1
            if f <= f0 + group["c1"] * t * slope:
                return t
            self._set_param(x0)
            t *= 0.5
        return 0.0


# ---- Levenberg–Marquardt ---------------------------------------------------------------------
def _solve_spd(a, b):
    """Solve a x = b for a small symmetric positive-definite `a` (n×n) in Tensor ops.

    Gauss–Jordan elimination on [a | b], one vectorised pass per column (no pivoting is
    needed for SPD matrices). Returns (x, ok) with ok False when a pivot is not positive
    (the matrix is not positive definite) or x is not finite. O(n³) work, n passes: meant
    for n up to a few hundred.
    """
    n = a.shape[0]
    m = cat([a, b.reshape(n, 1)], 1)
    identity = eye(n, dtype=a.dtype, device=a.device)
    pivots = []
    for k in range(n):
        pivots.append(m[k, k])
        row = m[k] / m[k, k]
        # Rows i != k lose m[i, k]·row; row k becomes `row` (its factor is m[k, k] - 1).
        m = m - (m[:, k] - identity[k]).outer(row)
    x = m[:, n]
    ok = (stack(pivots) > 0).all().logical_and((x.abs() < math.inf).all())
    return x, bool(ok.item())


class LevenbergMarquardt(_FlatParams, Optimizer):
    """Levenberg–Marquardt for least squares: minimise ‖r(θ)‖², the closure returning r.

    Use it for small nonlinear least-squares fits (curve fitting, calibration, a few hundred
    parameters at most): it converges in a handful of iterations where first-order methods
    crawl. Each step builds the Jacobian J (m residuals × n parameters) through the engine,
    row by row (one backward per residual, when m ≤ n) or column by column (forward mode by
    double VJP, when m > n; `jacobian="reverse" | "forward"` forces one), then solves
    (JᵀJ + λD)δ = −Jᵀr with D = diag(JᵀJ) (`damping="marquardt"`, scale-invariant; zero
    diagonal entries count as 1) or D = I (`"levenberg"`) by Gauss–Jordan elimination on the
    n×n system, so n must stay small. The step is accepted when the sum of squares decreases
    (then λ /= lambda_down); otherwise λ *= lambda_up and it is solved again, within the same
    `step()`, until accepted or λ passes `max_lambda` (then no move). `state["lambda_"]`
    carries λ across steps. A closure returning a scalar is a residual of length 1.

    The closure only returns the residuals (LM differentiates for itself, calling it under
    `tg.enable_grad()`; trial steps call it under `tg.no_grad()`). `step()` returns ‖r‖² at
    the starting point.

    >>> import tensorgrad as tg
    >>> x = tg.linspace(0, 1, 20, dtype=tg.float64)
    >>> w = tg.zeros(2, dtype=tg.float64, requires_grad=True)
    >>> opt = tg.optim.LevenbergMarquardt([w])
    >>> for _ in range(3):
    ...     _ = opt.step(lambda: w[0] + w[1] * x - (1 + 2 * x))
    >>> [round(v, 6) for v in w.tolist()]
    [1.0, 2.0]
    """

    def __init__(self, params, lambda_=1e-3, lambda_up=10, lambda_down=10, max_lambda=1e10,
                 min_lambda=1e-12, damping="marquardt", jacobian="auto", tolerance_grad=0.0):
        _check_positive("LevenbergMarquardt", lambda_=lambda_, max_lambda=max_lambda,
                        min_lambda=min_lambda)
        if not (lambda_up > 1 and lambda_down > 1):
            raise ValueError("LevenbergMarquardt: lambda_up and lambda_down must be > 1, got "
                             f"{lambda_up} and {lambda_down}")
        if damping not in ("marquardt", "levenberg"):
            raise ValueError("LevenbergMarquardt: damping must be 'marquardt' or 'levenberg', "
                             f"got {damping!r}")
        if jacobian not in ("auto", "reverse", "forward"):
            raise ValueError("LevenbergMarquardt: jacobian must be 'auto', 'reverse' or "
                             f"'forward', got {jacobian!r}")
        defaults = dict(lambda_=lambda_, lambda_up=lambda_up, lambda_down=lambda_down,
                        max_lambda=max_lambda, min_lambda=min_lambda, damping=damping,
                        jacobian=jacobian, tolerance_grad=tolerance_grad)
        super().__init__(params, defaults)
        self._single_group()

    def _residuals(self, closure):
        r = closure()
        if not isinstance(r, Tensor):
            raise TypeError(f"LevenbergMarquardt: the closure returned {type(r).__name__}, "
                            "but a residual Tensor was expected\n  hint: return the vector "
                            "r(θ) whose sum of squares is minimised, e.g. model(x) - y")
        return r.reshape(-1)

    def _jacobian(self, r, mode):
        """J = ∂r/∂θ, shape (m, n), detached."""
        m, n = r.numel(), self._numel()
        if not r.requires_grad:
            return zeros((m, n), dtype=r.dtype, device=r.device)
        if mode == "reverse" or (mode == "auto" and m <= n):
            rows = eye(m, dtype=r.dtype, device=r.device)
            return stack([_flat(_grads(r, self._params, grad_outputs=rows[i],
                                       retain_graph=True)) for i in range(m)])
        # Forward mode by double VJP: u ↦ Jᵀu is linear, so its VJP with e_j is J e_j.
        u = zeros(m, dtype=r.dtype, device=r.device, requires_grad=True)
        jtu = _flat(_grads(r, self._params, grad_outputs=u, create_graph=True))
        if not jtu.requires_grad:
            return zeros((m, n), dtype=r.dtype, device=r.device)
        cols = eye(n, dtype=r.dtype, device=r.device)
        return stack([_grads(jtu, [u], grad_outputs=cols[j], retain_graph=True)[0]
                      for j in range(n)], 1)

    def _sum_sq(self, closure):
        with no_grad():
            r = self._residuals(closure)
            return r.dot(r).item()

    def step(self, closure=None):
        """One LM iteration (retrying with more damping until accepted)."""
        _require_closure(closure, "LevenbergMarquardt", "the residual vector")
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        for key, init in (("func_evals", 0), ("n_iter", 0), ("lambda_", group["lambda_"])):
            state.setdefault(key, init)
        with enable_grad():
            r = self._residuals(closure)
            jac = self._jacobian(r, group["jacobian"])
        r = r.detach()
        state["func_evals"] += 1
        cost = r.dot(r)
        jtr = jac.T @ r
        if jtr.abs().max().item() <= group["tolerance_grad"]:
            return cost
        jtj = jac.T @ jac
        scale = (jac * jac).sum(0)
        scale = scale.where(scale > 0, 1.0) if group["damping"] == "marquardt" else ones_like(scale)
        self._try_steps(closure, cost.item(), jtj, jtr, scale, group, state)
        state["n_iter"] += 1
        return cost

    def _try_steps(self, closure, cost, jtj, jtr, scale, group, state):
        x0 = self._clone_param()
        lam = state["lambda_"]
        identity = eye(jtj.shape[0], dtype=jtj.dtype, device=jtj.device)
        while True:
            delta, ok = _solve_spd(jtj + identity * (scale * lam), -jtr)
            if ok:
                self._add_grad(1.0, delta)
                state["func_evals"] += 1
                if self._sum_sq(closure) < cost:
                    state["lambda_"] = max(lam / group["lambda_down"], group["min_lambda"])
                    state["accepted"] = True
                    return
                self._set_param(x0)
            lam *= group["lambda_up"]
            if lam > group["max_lambda"]:
                state["lambda_"], state["accepted"] = group["max_lambda"], False
                return
