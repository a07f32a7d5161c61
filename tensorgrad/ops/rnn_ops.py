"""Fused recurrent ops: the LSTM cell, and whole LSTM and GRU layers, each one graph node.

An LSTM or GRU written with elementwise ops costs a dozen graph nodes per time step, and its
weight gradient T small matmuls and T - 1 adds; these ops run the recurrence as array code,
as PyTorch's `_thnn_fused_lstm_cell` and cuDNN's RNN do:

- `lstm_cell(gates, c_prev)` -> (..., 2H) = [h | c], with gates = x W_ih^T + b_ih + h W_hh^T
  + b_hh in PyTorch's order (i, f, g, o). Its gradient is the op `lstm_cell_backward`, which
  gives [d gates | d c_prev] in one pass, and whose own VJP is written in tensorgrad ops, so
  gradients of any order exist.
- `lstm_layer(xw, h0, c0, w_hh, reverse)` -> (T, N, 2H) = [h_t | c_t] per step, with xw the
  projected input of all steps. Its backward, `lstm_layer_backward`, runs backpropagation
  through time at array level and returns the gates' gradient of every step (and those of
  h0, c0); the VJP then forms the recurrent weight's gradient as ONE matmul over all steps.
- `gru_layer(xw, h0, w_hh, b_hh, reverse)` -> (T, N, H), gates (r, z, n) as PyTorch's GRU,
  with `gru_layer_backward` alike.

The two layer-backward ops are array code without a VJP of their own: a layer's VJP uses
them when the gradient is not itself recorded (first order, the common case), and, under
`create_graph`, writes the same backward as per-step tensorgrad ops (lstm_cell_backward,
matmul, sigmoid, ...) read from the saved outputs, so that higher orders exist too. Tests
check that both paths give the same numbers.

Forwards use only `xp` (NumPy or CuPy); this module imports no array library.
"""

from ..autograd import graph
from ..dtypes import _FLOAT
from ..errors import DTypeError, ShapeError, op_error
from ._util import need_tensor, wrap_like
from .elementwise import _sigmoid
from .join import cat, stack
from .registry import apply, register


def _order(steps, reverse):
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _quarters(a, hid):
    return a[..., :hid], a[..., hid:2 * hid], a[..., 2 * hid:3 * hid], a[..., 3 * hid:]


# ---- the LSTM cell at array level, shared by the cell and layer ops --------------------------
def _cell_forward(xp, gates, c_prev, a, tc, out):
    """Fill a (..., 4H) with the gate activations, tc with tanh(c) and out with [h | c]."""
    hid = c_prev.shape[-1]
    a[...] = _sigmoid(xp, gates)
    a[..., 2 * hid:3 * hid] = xp.tanh(gates[..., 2 * hid:3 * hid])
    i, f, g, o = _quarters(a, hid)
    c = out[..., hid:]
    xp.multiply(f, c_prev, out=c)
    c += i * g
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=out[..., :hid])


def _cell_backward(xp, dh, dc, a, tc, c_prev, d):
    """Fill d (..., 4H) with the gates' gradient from those of h and c; return c_prev's."""
    hid = c_prev.shape[-1]
    i, f, g, o = _quarters(a, hid)
    dc = dc + dh * o * (1 - tc * tc)
    xp.multiply(dc * g, i * (1 - i), out=d[..., :hid])
    xp.multiply(dc * c_prev, f * (1 - f), out=d[..., hid:2 * hid])
    xp.multiply(dc * i, 1 - g * g, out=d[..., 2 * hid:3 * hid])
    xp.multiply(dh * tc, o * (1 - o), out=d[..., 3 * hid:])
    return dc * f


# ---- lstm_cell and lstm_cell_backward ------------------------------------------------------
def _lstm_cell(xp, gates, c_prev):
    hid = c_prev.shape[-1]
    lead = gates.shape[:-1]
    out = xp.empty(lead + (2 * hid,), dtype=gates.dtype)
    a = xp.empty_like(gates)
    tc = xp.empty(lead + (hid,), dtype=gates.dtype)
    _cell_forward(xp, gates, c_prev, a, tc, out)
    return out, (a, tc)


def _lstm_cell_vjp(ctx, g):
    gates, c_prev = ctx.inputs
    a, tc = ctx.res
    d = apply(LSTM_CELL_BACKWARD, (g, gates, c_prev, wrap_like(ctx, a), wrap_like(ctx, tc)))
    hid = c_prev.shape[-1]
    need_gates, need_c = ctx.needs_input_grad
    return (d[..., :4 * hid] if need_gates else None), (d[..., 4 * hid:] if need_c else None)


LSTM_CELL = register("lstm_cell", _lstm_cell, _lstm_cell_vjp, save_inputs=True, has_res=True)


def _lstm_cell_backward(xp, g, gates, c_prev, a=None, tc=None):
    """[d gates | d c_prev] (..., 5H) from g = [dh | dc] (..., 2H); a, tc: the forward's
    activations and tanh(c), recomputed when not given."""
    hid = c_prev.shape[-1]
    if a is None:
        _, (a, tc) = _lstm_cell(xp, gates, c_prev)
    d = xp.empty(gates.shape[:-1] + (5 * hid,), dtype=gates.dtype)
    d[..., 4 * hid:] = _cell_backward(xp, g[..., :hid], g[..., hid:], a, tc, c_prev,
                                      d[..., :4 * hid])
    return d


def _lstm_cell_backward_vjp(ctx, u):
    # The backward is linear in g and smooth in (gates, c_prev). With A = dL/d(dc), where
    # L = <u, backward(g, gates, c_prev)> and dc = dc_in + dh * o * (1 - tc^2), the chain
    # rule through i, f, g~, o, c and tanh(c) gives the terms below (g~ written gt).
    g, gates, c_prev = ctx.inputs[:3]
    hid = c_prev.shape[-1]
    zi, zf, zg, zo = gates.split(hid, -1)
    i, f, o, gt = zi.sigmoid(), zf.sigmoid(), zo.sigmoid(), zg.tanh()
    si, sf, so, tgt = i * (1 - i), f * (1 - f), o * (1 - o), 1 - gt * gt
    tc = (f * c_prev + i * gt).tanh()
    dtc = 1 - tc * tc
    dh, dc_in = g.split(hid, -1)
    dc = dc_in + dh * o * dtc
    ui, uf, ug, uo, ucp = u.split(hid, -1)
    big_a = ui * gt * si + uf * c_prev * sf + ug * i * tgt + ucp * f
    gc = dtc * dh * (uo * so - 2 * big_a * o * tc)   # dL/dc through tanh(c)
    need_g, need_gates, need_c = ctx.needs_input_grad[:3]
    d_g = cat([big_a * o * dtc + uo * tc * so, big_a], -1) if need_g else None
    d_gates = cat([si * (dc * (ui * gt * (1 - 2 * i) + ug * tgt) + gc * gt),
                   sf * (dc * (uf * c_prev * (1 - 2 * f) + ucp) + gc * c_prev),
                   tgt * (dc * (ui * si - 2 * ug * i * gt) + gc * i),
                   so * dh * (big_a * dtc + uo * tc * (1 - 2 * o))], -1) if need_gates else None
    d_c = dc * uf * sf + gc * f if need_c else None
    return (d_g, d_gates, d_c) + (None,) * (len(ctx.needs_input_grad) - 3)


# Inputs (g, gates, c_prev) and optionally the activations lstm_cell kept: constants (their
# gradient reaches gates through input 1).
LSTM_CELL_BACKWARD = register("lstm_cell_backward", _lstm_cell_backward,
                              _lstm_cell_backward_vjp, save_inputs=True)


def _cell_grads_graph(g, gates, c_prev):
    """The cell backward as a recorded, differentiable op: (d gates, d c_prev)."""
    d = apply(LSTM_CELL_BACKWARD, (g, gates, c_prev))
    hid = c_prev.shape[-1]
    return d[..., :4 * hid], d[..., 4 * hid:]


# ---- lstm_layer --------------------------------------------------------------------------------
def _lstm_layer(xp, xw, h0, c0, w_hh, *, reverse):
    steps, n, four_h = xw.shape
    hid = four_h // 4
    out = xp.empty((steps, n, 2 * hid), dtype=xw.dtype)
    acts = xp.empty_like(xw)
    tcs = xp.empty((steps, n, hid), dtype=xw.dtype)
    w_t = w_hh.T
    h, c = h0, c0
    for t in _order(steps, reverse):
        gates = xp.matmul(h, w_t)
        gates += xw[t]
        _cell_forward(xp, gates, c, acts[t], tcs[t], out[t])
        h, c = out[t, :, :hid], out[t, :, hid:]
    return out, (acts, tcs)


def _lstm_layer_backward(xp, g, out, h0, c0, w_hh, acts, tcs, *, reverse):
    """Backpropagation through time: one flat array holding the gates' gradient of every step
    (T, N, 4H), then those of h0 and c0 (N, H each)."""
    steps, n, two_h = out.shape
    hid = two_h // 2
    size = steps * n * 4 * hid
    flat = xp.empty(size + 2 * n * hid, dtype=out.dtype)
    dgates = flat[:size].reshape(steps, n, 4 * hid)
    dh = dc = None
    for t in reversed(_order(steps, reverse)):
        prev = t + 1 if reverse else t - 1
        c_prev = out[prev, :, hid:] if 0 <= prev < steps else c0
        dh = g[t, :, :hid] if dh is None else dh + g[t, :, :hid]
        dc = g[t, :, hid:] if dc is None else dc + g[t, :, hid:]
        dc = _cell_backward(xp, dh, dc, acts[t], tcs[t], c_prev, dgates[t])
        dh = xp.matmul(dgates[t], w_hh)
    flat[size:size + n * hid] = dh.reshape(-1)
    flat[size + n * hid:] = dc.reshape(-1)
    return flat


# Array code only, called by lstm_layer's VJP when the gradient is not recorded.
LSTM_LAYER_BACKWARD = register("lstm_layer_backward", _lstm_layer_backward)


def _previous(seq, first, reverse):
    """The state before each step: first, then seq shifted by one step, in time order."""
    if reverse:
        return cat([seq[1:], first.unsqueeze(0)], 0)
    return cat([first.unsqueeze(0), seq[:-1]], 0)


def _weight_grad(dgates, h_prev):
    """sum_t dgates_t^T h_prev_t as one matmul over all steps."""
    width = dgates.shape[-1]
    return dgates.reshape(-1, width).T @ h_prev.reshape(-1, h_prev.shape[-1])


def _lstm_layer_vjp(ctx, g, reverse):
    xw, h0, c0, w_hh = ctx.inputs
    out = ctx.out
    hid = h0.shape[-1]
    if graph._mode.enabled:
        dgates, dh0, dc0 = _lstm_layer_grads_graph(g, xw, out, h0, c0, w_hh, reverse)
    else:
        acts, tcs = ctx.res
        flat = apply(LSTM_LAYER_BACKWARD, (g, out, h0, c0, w_hh, wrap_like(ctx, acts),
                                           wrap_like(ctx, tcs)), {"reverse": reverse})
        size = xw.numel()
        dgates = flat[:size].reshape(xw.shape)
        dh0, dc0 = flat[size:].reshape(2, *h0.shape).unbind(0)
    need = ctx.needs_input_grad
    dw = _weight_grad(dgates, _previous(out[..., :hid], h0, reverse)) if need[3] else None
    return (dgates if need[0] else None, dh0 if need[1] else None, dc0 if need[2] else None,
            dw)


def _lstm_layer_grads_graph(g, xw, out, h0, c0, w_hh, reverse):
    """The same backward as recorded per-step ops (create_graph): differentiable again."""
    hid = h0.shape[-1]
    h_prev = _previous(out[..., :hid], h0, reverse)
    c_prev = _previous(out[..., hid:], c0, reverse)
    w_t = w_hh.T
    dgates = [None] * xw.shape[0]
    dh = dc = None
    for t in reversed(_order(xw.shape[0], reverse)):
        dh = g[t, :, :hid] if dh is None else dh + g[t, :, :hid]
        dc = g[t, :, hid:] if dc is None else dc + g[t, :, hid:]
        gates = xw[t] + h_prev[t] @ w_t
        dgates[t], dc = _cell_grads_graph(cat([dh, dc], -1), gates, c_prev[t])
        dh = dgates[t] @ w_hh
    return stack(dgates), dh, dc


LSTM_LAYER = register("lstm_layer", _lstm_layer, _lstm_layer_vjp, save_inputs=True,
                      save_out=True, has_res=True)


# ---- gru_layer ---------------------------------------------------------------------------------
def _gru_layer(xp, xw, h0, w_hh, b_hh=None, *, reverse):
    steps, n, three_h = xw.shape
    hid = three_h // 3
    out = xp.empty((steps, n, hid), dtype=xw.dtype)
    acts = xp.empty_like(xw)                       # r, z, n per step
    ghn = xp.empty((steps, n, hid), dtype=xw.dtype)  # W_hn h + b_hn, inside r * (...)
    w_t = w_hh.T
    h = h0
    for t in _order(steps, reverse):
        gh = xp.matmul(h, w_t)
        if b_hh is not None:
            gh += b_hh
        a, x = acts[t], xw[t]
        a[:, :2 * hid] = _sigmoid(xp, x[:, :2 * hid] + gh[:, :2 * hid])
        ghn[t] = gh[:, 2 * hid:]
        a[:, 2 * hid:] = xp.tanh(x[:, 2 * hid:] + a[:, :hid] * ghn[t])
        new = a[:, 2 * hid:]
        out[t] = new + a[:, hid:2 * hid] * (h - new)
        h = out[t]
    return out, (acts, ghn)


def _gru_layer_backward(xp, g, out, h0, w_hh, acts, ghn, *, reverse):
    """Backpropagation through time: one flat array holding, for every step, the gradient of
    the input projection (T, N, 3H), then that of the hidden projection h W_hh^T + b_hh
    (T, N, 3H; they differ in the n gate), then that of h0 (N, H)."""
    steps, n, hid = out.shape
    size = steps * n * 3 * hid
    flat = xp.empty(2 * size + n * hid, dtype=out.dtype)
    dxw = flat[:size].reshape(steps, n, 3 * hid)
    dgh = flat[size:2 * size].reshape(steps, n, 3 * hid)
    dh = None
    for t in reversed(_order(steps, reverse)):
        prev = t + 1 if reverse else t - 1
        h_prev = out[prev] if 0 <= prev < steps else h0
        dh = g[t] if dh is None else dh + g[t]
        r, z, new = acts[t, :, :hid], acts[t, :, hid:2 * hid], acts[t, :, 2 * hid:]
        dx, dg = dxw[t], dgh[t]
        xp.multiply(dh * (1 - z), 1 - new * new, out=dx[:, 2 * hid:])
        dan = dx[:, 2 * hid:]
        xp.multiply(dan * ghn[t], r * (1 - r), out=dx[:, :hid])
        xp.multiply(dh * (h_prev - new), z * (1 - z), out=dx[:, hid:2 * hid])
        dg[:, :2 * hid] = dx[:, :2 * hid]
        xp.multiply(dan, r, out=dg[:, 2 * hid:])
        dh = dh * z + xp.matmul(dg, w_hh)
    flat[2 * size:] = dh.reshape(-1)
    return flat


# Array code only, called by gru_layer's VJP when the gradient is not recorded.
GRU_LAYER_BACKWARD = register("gru_layer_backward", _gru_layer_backward)


def _gru_layer_vjp(ctx, g, reverse):
    xw, h0, w_hh = ctx.inputs[:3]
    b_hh = ctx.inputs[3] if len(ctx.inputs) == 4 else None
    out = ctx.out
    if graph._mode.enabled:
        dxw, dgh, dh0 = _gru_layer_grads_graph(g, xw, out, h0, w_hh, b_hh, reverse)
    else:
        acts, ghn = ctx.res
        flat = apply(GRU_LAYER_BACKWARD, (g, out, h0, w_hh, wrap_like(ctx, acts),
                                          wrap_like(ctx, ghn)), {"reverse": reverse})
        size = xw.numel()
        dxw, dgh = flat[:2 * size].reshape(2, *xw.shape).unbind(0)
        dh0 = flat[2 * size:].reshape(h0.shape)
    need = ctx.needs_input_grad
    grads = [dxw if need[0] else None, dh0 if need[1] else None,
             _weight_grad(dgh, _previous(out, h0, reverse)) if need[2] else None]
    if b_hh is not None:
        grads.append(dgh.sum((0, 1)) if need[3] else None)
    return tuple(grads)


def _gru_layer_grads_graph(g, xw, out, h0, w_hh, b_hh, reverse):
    """The same backward as recorded per-step ops (create_graph): differentiable again."""
    hid = h0.shape[-1]
    h_prev = _previous(out, h0, reverse)
    w_t = w_hh.T
    dxw, dgh = [None] * xw.shape[0], [None] * xw.shape[0]
    dh = None
    for t in reversed(_order(xw.shape[0], reverse)):
        dh = g[t] if dh is None else dh + g[t]
        gh = h_prev[t] @ w_t if b_hh is None else h_prev[t] @ w_t + b_hh
        x_r, x_z, x_n = xw[t].split(hid, -1)
        h_r, h_z, h_n = gh.split(hid, -1)
        r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
        new = (x_n + r * h_n).tanh()
        dan = dh * (1 - z) * (1 - new * new)
        dar, daz = dan * h_n * r * (1 - r), dh * (h_prev[t] - new) * z * (1 - z)
        dxw[t], dgh[t] = cat([dar, daz, dan], -1), cat([dar, daz, dan * r], -1)
        dh = dh * z + dgh[t] @ w_hh
    return stack(dxw), stack(dgh), dh


GRU_LAYER = register("gru_layer", _gru_layer, _gru_layer_vjp, save_inputs=True, save_out=True,
                     has_res=True)


# ---- the functions -------------------------------------------------------------------------------
def _check(op, tensors, shapes, hint):
    """Float tensors of one dtype and the shapes an op needs; `shapes` holds the expected
    shape of each (None where any shape does)."""
    tensors = [t for t in tensors if t is not None]
    for t in tensors:
        need_tensor(t, op)
    dtype = tensors[0].dtype
    if dtype.category != _FLOAT or any(t.dtype is not dtype for t in tensors):
        names = ", ".join(t.dtype.name for t in tensors)
        raise op_error(DTypeError, op, f"expected floating tensors of one dtype, got {names}",
                       tensors, "convert them all, e.g. with .float()")
    for t, want in zip(tensors, shapes, strict=False):
        if want is not None and tuple(t.shape) != tuple(want):
            raise op_error(ShapeError, op, f"expected shape {tuple(want)}, got "
                           f"{tuple(t.shape)}", tensors, hint)


def lstm_cell(gates, c_prev):
    """One LSTM step from its pre-activations: gates (..., 4H) in PyTorch's order (i, f, g, o)
    and c_prev (..., H) give [h | c] (..., 2H), c = f c_prev + i g and h = o tanh(c).

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.rnn_ops import lstm_cell
    >>> lstm_cell(tg.zeros(2, 12), tg.ones(2, 3)).shape
    (2, 6)
    """
    need_tensor(gates, "lstm_cell", "gates")
    hid = gates.shape[-1] // 4 if gates.ndim else 0
    _check("lstm_cell", (gates, c_prev), (None, tuple(gates.shape[:-1]) + (hid,)),
           "gates hold 4 * hidden_size pre-activations per row, c_prev hidden_size")
    if gates.shape[-1] != 4 * hid:
        raise op_error(ShapeError, "lstm_cell", f"the gates' last dimension "
                       f"{gates.shape[-1]} is not 4 * hidden_size", (gates, c_prev),
                       "gates are x W_ih^T + b_ih + h W_hh^T + b_hh, (..., 4 * hidden_size)")
    return apply(LSTM_CELL, (gates, c_prev))


def lstm_layer(xw, h0, c0, w_hh, reverse=False):
    """An LSTM layer over a sequence: xw (T, N, 4H) is x_t W_ih^T + b_ih + b_hh for every
    step, h0 and c0 (N, H) the initial state, w_hh (4H, H). Returns (T, N, 2H) holding
    [h_t | c_t] for each step t; `reverse` runs from the last step to the first.

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.rnn_ops import lstm_layer
    >>> lstm_layer(tg.zeros(5, 2, 12), tg.zeros(2, 3), tg.zeros(2, 3), tg.zeros(12, 3)).shape
    (5, 2, 6)
    """
    need_tensor(xw, "lstm_layer", "xw")
    steps, n, four_h = tuple(xw.shape) if xw.ndim == 3 else (0, 0, 0)
    hid = four_h // 4
    _check("lstm_layer", (xw, h0, c0, w_hh), ((steps, n, 4 * hid), (n, hid), (n, hid),
                                               (4 * hid, hid)),
           "xw is (T, N, 4H), h0 and c0 (N, H), w_hh (4H, H)")
    return apply(LSTM_LAYER, (xw, h0, c0, w_hh), {"reverse": bool(reverse)})


def gru_layer(xw, h0, w_hh, b_hh=None, reverse=False):
    """A GRU layer over a sequence: xw (T, N, 3H) is x_t W_ih^T + b_ih for every step, h0
    (N, H), w_hh (3H, H), b_hh (3H,) or None; gates (r, z, n) as PyTorch's GRU. Returns the
    hidden states (T, N, H); `reverse` runs from the last step to the first.

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.rnn_ops import gru_layer
    >>> gru_layer(tg.zeros(5, 2, 9), tg.zeros(2, 3), tg.zeros(9, 3)).shape
    (5, 2, 3)
    """
    need_tensor(xw, "gru_layer", "xw")
    steps, n, three_h = tuple(xw.shape) if xw.ndim == 3 else (0, 0, 0)
    hid = three_h // 3
    _check("gru_layer", (xw, h0, w_hh, b_hh), ((steps, n, 3 * hid), (n, hid), (3 * hid, hid),
                                               (3 * hid,)),
           "xw is (T, N, 3H), h0 (N, H), w_hh (3H, H), b_hh (3H,)")
    inputs = (xw, h0, w_hh) if b_hh is None else (xw, h0, w_hh, b_hh)
    return apply(GRU_LAYER, inputs, {"reverse": bool(reverse)})


METHODS = {}
__all__ = []
