"""The fused recurrent ops (tensorgrad/ops/rnn_ops.py) through the op harness.

Forwards are compared with plain NumPy loops written from the equations; the backward ops with
the vector-Jacobian product of those loops taken by complex-step differentiation (exact to
rounding, and independent of the hand-written backward). Then: the first-order fast path and
the recorded (create_graph) path of the layer VJPs give the same gradients, and the errors.
"""

import warnings

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.errors import DTypeError, ShapeError
from tensorgrad.ops import rnn_ops
from tensorgrad.ops.registry import OPS, apply
from tensorgrad.ops.rnn_ops import gru_layer, lstm_cell, lstm_layer
from tensorgrad.tensor import Tensor

T, N, H = 3, 2, 2


# ---- NumPy references (complex-safe, for the complex step) ----------------------------------
def _sig(x):
    return 1 / (1 + np.exp(-x))


def _order(steps, reverse):
    return range(steps - 1, -1, -1) if reverse else range(steps)


def lstm_cell_ref(gates, c):
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    return np.concatenate([_sig(o) * np.tanh(c), c], -1)


def lstm_layer_ref(xw, h0, c0, w, reverse=False):
    hid = h0.shape[-1]
    out = np.zeros(xw.shape[:2] + (2 * hid,), dtype=np.result_type(xw, h0, c0, w))
    h, c = h0, c0
    for t in _order(xw.shape[0], reverse):
        out[t] = lstm_cell_ref(xw[t] + h @ w.T, c)
        h, c = out[t, :, :hid], out[t, :, hid:]
    return out


def gru_layer_ref(xw, h0, w, b_steps, reverse=False):
    """b_steps (T, N, 3H) is added to h W^T at each step (b_hh broadcast, or a probe)."""
    hid = h0.shape[-1]
    out = np.zeros(xw.shape[:2] + (hid,), dtype=np.result_type(xw, h0, w, b_steps))
    h = h0
    for t in _order(xw.shape[0], reverse):
        gh = h @ w.T + b_steps[t]
        r = _sig(xw[t, :, :hid] + gh[:, :hid])
        z = _sig(xw[t, :, hid:2 * hid] + gh[:, hid:2 * hid])
        n = np.tanh(xw[t, :, 2 * hid:] + r * gh[:, 2 * hid:])
        out[t] = h = (1 - z) * n + z * h
    return out


def vjp_ref(f, args, g):
    """<g, df/d args[k]> for every k, by the complex step (no cancellation, exact)."""
    step = 1e-30
    grads = []
    for k, a in enumerate(args):
        gk = np.zeros(a.size)
        for j in range(a.size):
            pert = [np.array(x, dtype=complex, order="C") for x in args]
            pert[k].reshape(-1)[j] += step * 1j
            gk[j] = np.sum(g * f(*pert).imag) / step
        grads.append(gk.reshape(a.shape))
    return grads


def _flat(*arrays):
    return np.concatenate([a.reshape(-1) for a in arrays])


# ---- cases -------------------------------------------------------------------------------------
def _wrap(a, like):
    return Tensor._wrap(a, like._device)


def _lstm_layer_backward_fn(reverse):
    def fn(g, xw, h0, c0, w):
        xp = g._backend.xp
        out, (acts, tcs) = rnn_ops._lstm_layer(xp, xw._array, h0._array, c0._array, w._array,
                                               reverse=reverse)
        return apply(OPS["lstm_layer_backward"], (g, _wrap(out, g), h0, c0, w,
                                                  _wrap(acts, g), _wrap(tcs, g)),
                     {"reverse": reverse})
    return fn


def _lstm_layer_backward_ref(reverse):
    def ref(g, xw, h0, c0, w):
        return _flat(*vjp_ref(lambda *a: lstm_layer_ref(*a, w, reverse), [xw, h0, c0], g))
    return ref


def _gru_layer_backward_fn(reverse):
    def fn(g, xw, h0, w, b):
        xp = g._backend.xp
        out, (acts, ghn) = rnn_ops._gru_layer(xp, xw._array, h0._array, w._array, b._array,
                                              reverse=reverse)
        return apply(OPS["gru_layer_backward"], (g, _wrap(out, g), h0, w, _wrap(acts, g),
                                                 _wrap(ghn, g)), {"reverse": reverse})
    return fn


def _gru_layer_backward_ref(reverse):
    def ref(g, xw, h0, w, b):
        steps = np.broadcast_to(b, xw.shape)

        def f(xw, h0, b_steps):
            return gru_layer_ref(xw, h0, w, b_steps, reverse)
        dxw, dh0, dgh = vjp_ref(f, [xw, h0, steps], g)
        return _flat(dxw, dgh, dh0)
    return ref


def _gru_ref(reverse):
    def ref(xw, h0, w, b=None):
        b = np.zeros(3 * h0.shape[-1]) if b is None else b
        return gru_layer_ref(xw, h0, w, np.broadcast_to(b, xw.shape), reverse)
    return ref


LSTM_SHAPES = ((T, N, 4 * H), (N, H), (N, H), (4 * H, H))
GRU_SHAPES = ((T, N, 3 * H), (N, H), (3 * H, H), (3 * H,))
F32 = {"float32": dict(rtol=1e-4, atol=1e-5)}

CASES = [
    OpCase(("lstm_cell",), lstm_cell, lstm_cell_ref, ((3, 4 * H), (3, H))),
    OpCase(("lstm_cell",), lstm_cell, lstm_cell_ref, ((4 * H,), (H,)), name="lstm_cell-1d"),
    OpCase(("lstm_cell_backward",),
           lambda g, z, c: apply(OPS["lstm_cell_backward"], (g, z, c)),
           lambda g, z, c: np.concatenate(vjp_ref(lstm_cell_ref, [z, c], g), -1),
           ((3, 2 * H), (3, 4 * H), (3, H))),
]
for _r in (False, True):
    CASES += [
        OpCase(("lstm_layer",), lambda xw, h, c, w, r=_r: lstm_layer(xw, h, c, w, r),
               lambda xw, h, c, w, r=_r: lstm_layer_ref(xw, h, c, w, r), LSTM_SHAPES,
               tol=F32, name=f"lstm_layer-reverse={_r}"),
        OpCase(("lstm_layer_backward",), _lstm_layer_backward_fn(_r),
               _lstm_layer_backward_ref(_r), ((T, N, 2 * H),) + LSTM_SHAPES, tol=F32,
               differentiable=False, name=f"lstm_layer_backward-reverse={_r}"),
        OpCase(("gru_layer",), lambda xw, h, w, b, r=_r: gru_layer(xw, h, w, b, r),
               _gru_ref(_r), GRU_SHAPES, tol=F32, name=f"gru_layer-reverse={_r}"),
        OpCase(("gru_layer",), lambda xw, h, w, r=_r: gru_layer(xw, h, w, None, r),
               _gru_ref(_r), GRU_SHAPES[:3], tol=F32,
               name=f"gru_layer-no-bias-reverse={_r}"),
        OpCase(("gru_layer_backward",), _gru_layer_backward_fn(_r),
               _gru_layer_backward_ref(_r), ((T, N, H),) + GRU_SHAPES, tol=F32,
               differentiable=False, name=f"gru_layer_backward-reverse={_r}"),
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- the two paths of the layer VJPs agree -------------------------------------------------------
def _grads(fn, inputs, create_graph):
    out = fn(*inputs)
    g = tg.randn(*out.shape, dtype=out.dtype, generator=None)
    return tg.autograd.grad((out * g.to(out.device)).sum(), inputs, create_graph=create_graph)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("which", ["lstm", "gru", "gru-no-bias"])
def test_fast_and_recorded_backward_agree(which, reverse, device):
    rng = np.random.default_rng(3)
    shapes = LSTM_SHAPES if which == "lstm" else GRU_SHAPES[:3 if which == "gru-no-bias" else 4]
    inputs = [tg.tensor(rng.uniform(-1, 1, s), device=device, requires_grad=True)
              for s in shapes]
    fn = ((lambda *a: lstm_layer(*a, reverse=reverse)) if which == "lstm"
          else (lambda *a: gru_layer(*a, reverse=reverse) if len(a) == 4
                else gru_layer(*a, None, reverse)))
    tg.manual_seed(0)
    fast = _grads(fn, inputs, False)
    tg.manual_seed(0)
    recorded = _grads(fn, inputs, True)
    for a, b in zip(fast, recorded, strict=True):
        np.testing.assert_allclose(a.detach().cpu().numpy(), b.detach().cpu().numpy(),
                                   rtol=1e-12, atol=1e-14)


def test_lstm_layer_is_differentiable_twice_end_to_end(device):
    rng = np.random.default_rng(4)
    xw, h0, c0, w = [tg.tensor(rng.uniform(-1, 1, s), device=device, requires_grad=True)
                     for s in LSTM_SHAPES]

    def f(w):
        (gx,) = tg.autograd.grad(lstm_layer(xw, h0, c0, w).pow(2).sum(), xw, create_graph=True)
        return (gx * gx).sum()
    assert tg.autograd.gradcheck(f, (w,), eps=1e-6, atol=1e-6, rtol=1e-4)


# ---- sigmoid, which the cells use --------------------------------------------------------------
def test_sigmoid_is_exact_in_the_tails_without_warnings():
    # The generic forward (the "alt" test backend overrides it with a tanh form on purpose).
    device = "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype in (tg.float32, tg.float64):
            y = tg.sigmoid(tg.tensor([-1e4, -50.0, 0.0, 50.0, 1e4, float("-inf"),
                                      float("inf")], dtype=dtype, device=device)).tolist()
            assert y[0] == 0.0 and y[2] == 0.5 and y[3] == 1.0 and y[4] == 1.0
            assert y[5] == 0.0 and y[6] == 1.0
            np.testing.assert_allclose(y[1], 1.9287498479639178e-22, rtol=1e-6)
        assert np.isnan(tg.sigmoid(tg.tensor([float("nan")], device=device)).item())


# ---- errors ------------------------------------------------------------------------------------
def test_errors_name_the_op_and_the_shapes():
    with pytest.raises(ShapeError, match=r"lstm_cell.*\(3, 2\)"):
        lstm_cell(tg.zeros(3, 8), tg.zeros(3, 3))
    with pytest.raises(ShapeError, match="4 \\* hidden_size"):
        lstm_cell(tg.zeros(3, 7), tg.zeros(3, 1))
    with pytest.raises(ShapeError, match=r"lstm_layer.*\(8, 2\)"):
        lstm_layer(tg.zeros(3, 2, 8), tg.zeros(2, 2), tg.zeros(2, 2), tg.zeros(2, 8))
    with pytest.raises(ShapeError, match="gru_layer"):
        gru_layer(tg.zeros(3, 2, 6), tg.zeros(2, 2), tg.zeros(6, 2), tg.zeros(5))
    with pytest.raises(DTypeError, match="lstm_cell"):
        lstm_cell(tg.zeros(3, 8), tg.zeros(3, 2, dtype=tg.float64))
