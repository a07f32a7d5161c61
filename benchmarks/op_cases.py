"""Single-op workloads (the ops issue: per-op overhead), for `report.py`.

Each op's forward+backward at two sizes: a small one, where the framework's per-op overhead
(Python dispatch, graph bookkeeping) shows, and a large one, where the kernels do:

- elementwise chain `(x.exp() * y + x).tanh().sum()`;
- broadcast `(x + b).sum()`, b of shape (n,) added to every row of x;
- reduction `x.sum(1).square().sum()`;
- softmax `(log_softmax(x, -1) * w).sum()`, w a fixed weight (no gradient);
- conv2d, 3x3 kernel, padding 1, with bias, `.sum()` of the output;
- max_pool2d, 2x2 window, stride 2, `.sum()` of the output.

They are `cases.Case`s: tensorgrad (`lib = tensorgrad`, through `lib.nn.functional` where an
op is a function) and PyTorch eager run the very same forward source; "by hand" is the
forward and the paper-derived backward below, written against `xp` (NumPy on the CPU, CuPy
on CUDA), the honest minimum in the style of `baselines.py` (no `out=` juggling, no algebraic
shortcuts: the ones of the final sum are materialized and pushed back, as a framework does).
The convolution and pooling baselines are `baselines_nn.py`'s im2col convolution and
argmax-scatter max-pool. Only the elementwise chain has a target (issue 8: ≤ 1.2× by hand),
on the large size, where it measures kernels and memory traffic: at 64x64 every
implementation is per-op overhead (PyTorch eager is ~2.9x NumPy by hand there), which the
per-op row's target covers. The other rows are informational.

`flops` counts the convolution's products only (forward, weight gradient, input gradient);
`min_bytes` is the inputs read and the gradients written, which no implementation avoids.
"""

import baselines_nn
import numpy as np
from cases import F32, Case, _seeded

# Sizes: (small, large) per op. Full: small where overhead shows, large where kernels do.
SIZES = {
    "full": {"matrix": (64, 2048),
             # (batch, in channels, out channels, height = width)
             "conv": ((8, 8, 16, 28), (8, 64, 64, 56)),
             # (batch, channels, height = width)
             "pool": ((8, 16, 28), (64, 64, 56))},
    "quick": {"matrix": (8, 64),
              "conv": ((2, 2, 4, 8), (2, 4, 8, 16)),
              "pool": ((2, 2, 8), (2, 8, 16))},
}


# ---- forwards (lib = tensorgrad or torch) -------------------------------------------------------
def _elementwise_forward(lib, x, y):
    return (x.exp() * y + x).tanh().sum()


def _broadcast_forward(lib, x, b):
    return (x + b).sum()


def _reduction_forward(lib, x):
    return x.sum(1).square().sum()


def _softmax_forward(lib, x, w):
    return (lib.nn.functional.log_softmax(x, -1) * w).sum()


def _conv2d_forward(lib, x, w, b):
    return lib.nn.functional.conv2d(x, w, b, padding=1).sum()


def _max_pool2d_forward(lib, x):
    return lib.nn.functional.max_pool2d(x, 2).sum()


# ---- by hand (xp = NumPy or CuPy) ---------------------------------------------------------------
def elementwise(x, y, xp=np):
    """loss = tanh(exp(x)*y + x).sum(); gh = 1 - tanh^2, gx = gh*(exp(x)*y + 1), gy = gh*exp(x)."""
    e = xp.exp(x)
    t = xp.tanh(e * y + x)
    loss = t.sum()
    gh = xp.ones_like(t) * (1 - t * t)
    return loss, [gh * (e * y + 1), gh * e]


def broadcast(x, b, xp=np):
    """loss = (x + b).sum(), b (n,) broadcast over rows; gb sums the ones over the rows."""
    h = x + b
    loss = h.sum()
    g = xp.ones_like(h)
    return loss, [g, g.sum(axis=0)]


def reduction(x, xp=np):
    """loss = (x.sum(1) ** 2).sum(); gx = 2 * s broadcast back over the columns."""
    s = x.sum(axis=1)
    loss = (s * s).sum()
    gs = 2 * s
    return loss, [xp.broadcast_to(gs[:, None], x.shape).copy()]


def softmax(x, w, xp=np):
    """loss = (log_softmax(x, -1) * w).sum(); gx = w - softmax(x) * w.sum(-1)."""
    z = x - x.max(axis=1, keepdims=True)
    ls = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    loss = (ls * w).sum()
    gx = w - xp.exp(ls) * w.sum(axis=1, keepdims=True)
    return loss, [gx]


def conv2d(x, w, b, xp=np):
    """loss = conv2d(x, w, b, padding=1).sum(), im2col; gradients for x, w, b."""
    out, cols = baselines_nn.conv2d_forward(x, w, b, 1, xp)
    loss = out.sum()
    gx, gw, gb = baselines_nn.conv2d_backward(xp.ones_like(out), cols, x.shape, w, 1, xp=xp)
    return loss, [gx, gw, gb]


def max_pool2d(x, xp=np):
    """loss = max_pool2d(x, 2).sum(); the ones scattered to each window's argmax."""
    out, idx = baselines_nn.max_pool2_forward(x, xp)
    loss = out.sum()
    return loss, [baselines_nn.max_pool2_backward(xp.ones_like(out), idx, x.shape, xp)]


# ---- the cases ---------------------------------------------------------------------------------
def conv_flops(n, c, o, hw, k=3):
    """Forward, weight-gradient and input-gradient products of a stride-1 'same' conv."""
    return 3 * 2 * n * o * hw * hw * c * k * k


def get_cases(quick=False):
    """The single-op cases, in report order, at full or quick sizes."""
    s = SIZES["quick" if quick else "full"]
    cases = []
    for label, m in zip(("small", "large"), s["matrix"], strict=True):
        mm = m * m
        cases += [
            # read x, y; write gx, gy
            Case(f"op_elementwise_{label}",
                 f"op: (x.exp() * y + x).tanh().sum(), {m}x{m}",
                 lambda m=m: _seeded(10, (m, m), (m, m)), (True, True),
                 _elementwise_forward, elementwise, note="ops issue",
                 target=("numpy", 1.2) if label == "large" else None,
                 min_bytes=F32 * 4 * mm),
            # read x, b; write gx, gb
            Case(f"op_broadcast_{label}", f"op: (x + b).sum(), x {m}x{m}, b ({m},)",
                 lambda m=m: _seeded(11, (m, m), (m,)), (True, True),
                 _broadcast_forward, broadcast, note="ops issue",
                 min_bytes=F32 * (2 * mm + 2 * m)),
            # read x; write gx
            Case(f"op_reduction_{label}", f"op: x.sum(1).square().sum(), {m}x{m}",
                 lambda m=m: _seeded(12, (m, m)), (True,),
                 _reduction_forward, reduction, note="ops issue",
                 min_bytes=F32 * 2 * mm),
            # read x, w; write gx
            Case(f"op_softmax_{label}", f"op: (log_softmax(x, -1) * w).sum(), {m}x{m}",
                 lambda m=m: _seeded(13, (m, m), (m, m)), (True, False),
                 _softmax_forward, softmax, note="ops issue",
                 min_bytes=F32 * 3 * mm),
        ]
    for label, (n, c, o, hw) in zip(("small", "large"), s["conv"], strict=True):
        # read x, w, b; write gx, gw, gb
        cases.append(Case(
            f"op_conv2d_{label}",
            f"op: conv2d 3x3 pad 1, {c}→{o} channels, {n}x{c}x{hw}x{hw}, .sum()",
            lambda n=n, c=c, o=o, hw=hw: _conv_inputs(n, c, o, hw), (True, True, True),
            _conv2d_forward, conv2d, note="ops issue",
            flops=conv_flops(n, c, o, hw),
            min_bytes=F32 * 2 * (n * c * hw * hw + o * c * 9 + o)))
    for label, (n, c, hw) in zip(("small", "large"), s["pool"], strict=True):
        # read x; write gx
        cases.append(Case(
            f"op_maxpool_{label}", f"op: max_pool2d 2x2, {n}x{c}x{hw}x{hw}, .sum()",
            lambda n=n, c=c, hw=hw: _seeded(15, (n, c, hw, hw)), (True,),
            _max_pool2d_forward, max_pool2d, note="ops issue",
            min_bytes=F32 * 2 * n * c * hw * hw))
    return cases


def _conv_inputs(n, c, o, hw):
    x, w, b = _seeded(14, (n, c, hw, hw), (o, c, 3, 3), (o,))
    scale = np.float32(1 / np.sqrt(c * 9))
    return [x, w * scale, b * scale]
