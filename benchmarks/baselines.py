"""The benchmark workloads written by hand in NumPy: forward and backward, no framework.

Each function is the honest minimum a person would write for one case of `cases.py`: the
forward pass, then every gradient derived on paper, including the reductions over broadcast
axes. No fusion tricks a reader would not expect (no `out=` juggling, no algebraic shortcuts
such as replacing a matmul by a ones-vector product), so the ratio measures the framework,
not the cleverness of the baseline. Every function returns `(loss, [grads...])` in the order
of its array arguments.

They are written against an array namespace `xp` (NumPy by default), so the GPU report can
pass CuPy. This module imports nothing from tensorgrad.
"""

import numpy as np


def per_op(a, b, xp=np):
    """loss = (a*b + a).sum(); gradients for a and b."""
    loss = (a * b + a).sum()
    ga = b + 1
    gb = a.copy()
    return loss, [ga, gb]


def memory_bound(x, w, b, xp=np):
    """loss = relu(x*w + b).sum() with w, b of shape (n,) broadcast over rows of x."""
    h = x * w + b
    loss = xp.maximum(h, 0).sum()
    gh = (h > 0).astype(x.dtype)  # d loss / d h: the relu mask times the ones of the sum
    gx = gh * w
    gw = (gh * x).sum(axis=0)
    gb = gh.sum(axis=0)
    return loss, [gx, gw, gb]


def matmul(a, b, xp=np):
    """loss = (a @ b).sum(); gA = G @ B^T, gB = A^T @ G with G the ones of the sum."""
    c = a @ b
    loss = c.sum()
    g = xp.ones_like(c)
    return loss, [g @ b.T, a.T @ g]


def mlp(x, w1, b1, w2, b2, w3, b3, xp=np):
    """loss = (relu(relu(x@w1 + b1) @ w2 + b2) @ w3 + b3).sum(); gradients for w1..b3.

    Weights are stored (in, out) so a layer is `x @ w + b`. The input x gets no gradient.
    """
    h1 = x @ w1 + b1
    a1 = xp.maximum(h1, 0)
    h2 = a1 @ w2 + b2
    a2 = xp.maximum(h2, 0)
    out = a2 @ w3 + b3
    loss = out.sum()
    g_out = xp.ones_like(out)
    gw3 = a2.T @ g_out
    gb3 = g_out.sum(axis=0)
    gh2 = (g_out @ w3.T) * (h2 > 0)
    gw2 = a1.T @ gh2
    gb2 = gh2.sum(axis=0)
    gh1 = (gh2 @ w2.T) * (h1 > 0)
    gw1 = x.T @ gh1
    gb1 = gh1.sum(axis=0)
    return loss, [gw1, gb1, gw2, gb2, gw3, gb3]
