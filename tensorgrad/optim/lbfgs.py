"""`LBFGS` (torch.optim.LBFGS's algorithm and defaults) and the strong-Wolfe line search.

The line search (`_strong_wolfe`, with `_cubic_interpolate`) and the flat-parameter helpers
(`_FlatParams`) are shared with `second_order.py` (ConjugateGradient, Newton, LM).

Speaks only Tensor (shared/STYLE.md habit 10): no array library, no raw arrays. Line-search
methods must decide on numbers, so they read host scalars (`.item()`): the loss, g·d and a
few norms per inner iteration, exactly where PyTorch's LBFGS reads them. The vectors (flat
gradient, directions, history) stay Tensors on the parameters' device.
"""

import math

from ..autograd.graph import enable_grad, no_grad
from ..creation import zeros
from ..errors import ShapeError
from ..ops.join import cat
from ..tensor import Tensor
from .optimizer import Optimizer, check_lr

__all__ = ["LBFGS"]


# ---- scalar helpers --------------------------------------------------------------------------
def _loss_value(loss, owner):
    """The closure's loss as a Python float; a clear error if it is not a scalar."""
    if isinstance(loss, Tensor):
        if loss.numel() != 1:
            raise ShapeError(
                f"{owner}: the closure returned a tensor of shape {tuple(loss.shape)}, but a "
                "scalar loss was expected\n  hint: reduce it, e.g. return loss.sum() or "
                "loss.mean()")
        return loss.item()
    if isinstance(loss, (int, float)) and not isinstance(loss, bool):
        return float(loss)
    raise TypeError(f"{owner}: the closure returned {type(loss).__name__}, but a scalar loss "
                    "(0-d Tensor) was expected\n  hint: `def closure(): opt.zero_grad(); "
                    "loss = f(); loss.backward(); return loss`")


def _require_closure(closure, owner, returns="the loss"):
    if not callable(closure):
        raise TypeError(f"{owner}.step() needs a closure that re-evaluates the model and "
                        f"returns {returns}\n  hint: opt.step(closure)")


# ---- line search -----------------------------------------------------------------------------
def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic matching f and f' at x1 and x2, clipped to `bounds`.

    Nocedal & Wright eq. 3.59. Without a real minimiser (or on a degenerate division) the
    midpoint of the bounds is returned, which only bisects.
    """
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    try:
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        disc = d1 * d1 - g1 * g2
        if disc < 0:
            return (lo + hi) / 2.0
        d2 = math.sqrt(disc)
        if x1 <= x2:
            t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    except ZeroDivisionError:
        return (lo + hi) / 2.0
    if math.isnan(t):
        return (lo + hi) / 2.0
    return min(max(t, lo), hi)


class _Point:
    """One trial of the line search: step t, loss f, flat gradient g and slope gtd = g·d."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t, f, g, gtd):
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


class _WolfeSearch:
    """Nocedal & Wright Alg. 3.5 (bracketing) and 3.6 (zoom), with minFunc's safeguards."""

    def __init__(self, obj_func, x, d, start, c1, c2, tolerance_change, max_ls):
        self.obj_func, self.x, self.d, self.start = obj_func, x, d, start
        self.c1, self.c2, self.tol, self.max_ls = c1, c2, tolerance_change, max_ls
        self.evals = 0

    def evaluate(self, t):
        f, g = self.obj_func(self.x, t, self.d)
        self.evals += 1
        return _Point(t, f, g, g.dot(self.d).item())

    def armijo_fails(self, p):  # sufficient decrease violated
        return p.f > self.start.f + self.c1 * p.t * self.start.gtd

    def curvature_holds(self, p):  # strong Wolfe curvature condition
        return abs(p.gtd) <= -self.c2 * self.start.gtd

    def bracket(self, t):
        """Returns ([point], True) when t satisfies both conditions, else ([a, b], False)."""
        prev, cur = self.start, self.evaluate(t)
        while self.evals - 1 < self.max_ls:
            if self.armijo_fails(cur) or (self.evals > 2 and cur.f >= prev.f):
                return [prev, cur], False
            if self.curvature_holds(cur):
                return [cur], True
            if cur.gtd >= 0:
                return [prev, cur], False
            # Still descending: extrapolate, between 1.01 t and 10 t.
            bounds = (cur.t + 0.01 * (cur.t - prev.t), cur.t * 10)
            t = _cubic_interpolate(prev.t, prev.f, prev.gtd, cur.t, cur.f, cur.gtd, bounds)
            prev, cur = cur, self.evaluate(t)
        return [self.start, cur], False  # out of evaluations: keep the better end

    def zoom(self, br):
        """Shrink the bracket `br` until a point satisfies both conditions; return it."""
        low, high = (0, 1) if br[0].f <= br[-1].f else (1, 0)
        insufficient = False
        while self.evals - 1 < self.max_ls:
            if abs(br[1].t - br[0].t) * self.d_norm < self.tol:
                break
            t = _cubic_interpolate(br[0].t, br[0].f, br[0].gtd, br[1].t, br[1].f, br[1].gtd)
            t, insufficient = _keep_off_edges(t, br[0].t, br[1].t, insufficient)
            cur = self.evaluate(t)
            if self.armijo_fails(cur) or cur.f >= br[low].f:
                br[high] = cur
                low, high = (0, 1) if br[0].f <= br[1].f else (1, 0)
                continue
            done = self.curvature_holds(cur)
            if not done and cur.gtd * (br[high].t - br[low].t) >= 0:
                br[high] = br[low]  # the slope says the minimum lies behind: old low goes high
            br[low] = cur
            if done:
                break
        return br[low]


def _keep_off_edges(t, a, b, insufficient):
    """Move a trial that lands within 10 % of the bracket's edge back to 10 % inside.

    The first time it lands there it is allowed (and remembered); the second time, or when
    it is on or beyond an edge, it is moved. Returns (t, insufficient).
    """
    lo, hi = min(a, b), max(a, b)
    eps = 0.1 * (hi - lo)
    if min(hi - t, t - lo) >= eps:
        return t, False
    if insufficient or t >= hi or t <= lo:
        return (hi - eps if abs(t - hi) < abs(t - lo) else lo + eps), False
    return t, True


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """A step along d that satisfies the strong Wolfe conditions (N&W section 3.5).

    `obj_func(x, t, d) -> (loss float, flat grad)` evaluates at x + t d; f, g, gtd (floats but
    g) describe t = 0. Returns (f_new, g_new, t, number of evaluations), as PyTorch's does.
    """
    search = _WolfeSearch(obj_func, x, d, _Point(0.0, f, g, gtd), c1, c2, tolerance_change,
                          max_ls)
    search.d_norm = d.abs().max().item()
    br, done = search.bracket(t)
    best = br[0] if done else search.zoom(br)
    return best.f, best.g, best.t, search.evals


# ---- flat views of the parameters ------------------------------------------------------------
class _FlatParams:
    """The parameters seen as one flat vector (PyTorch's LBFGS helpers); mixed into optimizers
    whose single group's parameters are `self._params`."""

    def _single_group(self):
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} doesn't support per-parameter options "
                             "(parameter groups)")
        self._params = self.param_groups[0]["params"]

    def _numel(self):
        return sum(p.numel() for p in self._params)

    def _gather_flat_grad(self):
        views = [p.grad.reshape(-1) if p.grad is not None
                 else zeros(p.numel(), dtype=p.dtype, device=p.device) for p in self._params]
        return cat(views, 0)

    def _split_flat(self, flat):
        """Per-parameter views of a flat vector, shaped like the parameters."""
        out, offset = [], 0
        for p in self._params:
            n = p.numel()
            out.append(flat[offset:offset + n].view_as(p))
            offset += n
        return out

    def _add_grad(self, step_size, update):
        with no_grad():
            for p, u in zip(self._params, self._split_flat(update)):
                p.add_(u, alpha=step_size)

    def _clone_param(self):
        return [p.detach().clone() for p in self._params]

    def _set_param(self, params_data):
        with no_grad():
            for p, pdata in zip(self._params, params_data, strict=True):
                p.copy_(pdata)

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        with enable_grad():
            loss = _loss_value(closure(), type(self).__name__)
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad


# ---- LBFGS -----------------------------------------------------------------------------------
class LBFGS(_FlatParams, Optimizer):
    """L-BFGS (torch.optim.LBFGS): same algorithm, defaults, state and closure convention.

    Use it for smooth, deterministic, full-batch problems with up to millions of
    parameters, where a curvature model pays off (curve fits, small networks, style transfer);
    `line_search_fn="strong_wolfe"` makes it robust. One `step(closure)` runs up to
    `max_iter` inner iterations; the closure zeroes the gradients, computes the loss, calls
    `backward()` and returns the loss. One parameter group only, as in PyTorch. Memory:
    `history_size` pairs of flat vectors.

    >>> import tensorgrad as tg
    >>> w = tg.tensor([3.0, -2.0], dtype=tg.float64, requires_grad=True)
    >>> opt = tg.optim.LBFGS([w], line_search_fn="strong_wolfe")
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = ((w - 1) ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> _ = opt.step(closure)
    >>> [round(v, 6) for v in w.tolist()]
    [1.0, 1.0]
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("LBFGS: Tensor lr must be 1-element")
        check_lr("LBFGS", lr)
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                             f"{line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        self._single_group()

    def _direction(self, state, flat_grad, history_size):
        """The new search direction d = -H g (two-loop recursion, N&W Alg. 7.4)."""
        if state["n_iter"] == 1:
            state.update(old_dirs=[], old_stps=[], ro=[], H_diag=1)
            return flat_grad.neg()
        y = flat_grad.sub(state["prev_flat_grad"])
        s = state["d"].mul(state["t"])
        ys = y.dot(s)
        if ys.item() > 1e-10:  # keep only pairs with positive curvature
            if len(state["old_dirs"]) == history_size:
                for key in ("old_dirs", "old_stps", "ro"):
                    state[key].pop(0)
            state["old_dirs"].append(y)
            state["old_stps"].append(s)
            state["ro"].append(1.0 / ys)
            state["H_diag"] = ys / y.dot(y)  # scale of the initial inverse Hessian
        return _two_loop(state, flat_grad, history_size)

    @no_grad()
    def step(self, closure=None):
        """Up to `max_iter` L-BFGS iterations; returns the closure's first loss."""
        _require_closure(closure, "LBFGS")
        group = self.param_groups[0]
        state = self.state[self._params[0]]  # global state, under the first parameter
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with enable_grad():
            orig_loss = closure()
        loss = _loss_value(orig_loss, "LBFGS")
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if flat_grad.abs().max().item() <= group["tolerance_grad"]:
            return orig_loss
        run = _Run(self, closure, group, state, loss, flat_grad)
        while run.n_iter < group["max_iter"] and run.iterate():
            pass
        return orig_loss


def _two_loop(state, flat_grad, history_size):
    dirs, stps, ro = state["old_dirs"], state["old_stps"], state["ro"]
    if "al" not in state:
        state["al"] = [None] * history_size
    al = state["al"]
    q = flat_grad.neg()
    for i in range(len(dirs) - 1, -1, -1):
        al[i] = stps[i].dot(q) * ro[i]
        q.sub_(dirs[i] * al[i])
    r = q * state["H_diag"]
    for i in range(len(dirs)):
        be_i = dirs[i].dot(r) * ro[i]
        r.add_(stps[i] * (al[i] - be_i))
    return r


class _Run:
    """The inner iterations of one LBFGS.step (a helper, to keep each function short)."""

    def __init__(self, opt, closure, group, state, loss, flat_grad):
        self.opt, self.closure, self.group, self.state = opt, closure, group, state
        self.loss, self.flat_grad = loss, flat_grad
        self.n_iter, self.current_evals = 0, 1

    def iterate(self):
        """One inner iteration; False when a stopping test fires."""
        group, state = self.group, self.state
        self.n_iter += 1
        state["n_iter"] += 1
        d = state["d"] = self.opt._direction(state, self.flat_grad, group["history_size"])
        state["prev_flat_grad"] = self.flat_grad.clone()
        state["prev_loss"] = prev_loss = self.loss
        if state["n_iter"] == 1:
            t = min(1.0, 1.0 / self.flat_grad.abs().sum().item()) * float(group["lr"])
        else:
            t = float(group["lr"])
        gtd = self.flat_grad.dot(d).item()
        state["t"] = t
        if gtd > -group["tolerance_change"]:  # not a descent direction (any more)
            return False
        evals, opt_cond = self._move(t, d, gtd)
        self.current_evals += evals
        state["func_evals"] += evals
        if self.n_iter == group["max_iter"] or self.current_evals >= group["max_eval"]:
            return False
        if opt_cond:
            return False
        if (d * state["t"]).abs().max().item() <= group["tolerance_change"]:
            return False
        return abs(self.loss - prev_loss) >= group["tolerance_change"]

    def _move(self, t, d, gtd):
        """Step along d (line search or fixed step); returns (evaluations, optimal?)."""
        opt, group = self.opt, self.group
        if group["line_search_fn"] is not None:
            x_init = opt._clone_param()
            self.loss, self.flat_grad, t, evals = _strong_wolfe(
                lambda x, s, v: opt._directional_evaluate(self.closure, x, s, v), x_init, t,
                d, self.loss, self.flat_grad, gtd, max_ls=group["max_eval"] - self.current_evals)
            # (PyTorch passes no tolerance_change here: the search keeps its own 1e-9.)
            self.state["t"] = t
            opt._add_grad(t, d)
        else:
            opt._add_grad(t, d)
            if self.n_iter == group["max_iter"]:
                return 0, False  # no re-evaluation after the last iteration (PyTorch's rule)
            with enable_grad():
                self.loss = _loss_value(self.closure(), "LBFGS")
            self.flat_grad = opt._gather_flat_grad()
            evals = 1
        return evals, self.flat_grad.abs().max().item() <= group["tolerance_grad"]
