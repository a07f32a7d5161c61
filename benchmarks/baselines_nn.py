"""The training-step workloads written by hand in NumPy: forward, loss, backward, SGD update.

The honest minimum a competent person would write with NumPy for the networks of
`training_cases.py`, vectorized: no Python loop over the batch or over pixels, a loop over
time steps for the LSTM and over kernel offsets for col2im, batched matmuls over (batch, head)
for attention. Every gradient is derived on paper; no fusion tricks a reader would not expect
(no `out=` juggling), so the ratio measures the framework, not the cleverness of the baseline.

Parameters are laid out as PyTorch lays them out (`Linear.weight` is (out, in), `Conv2d.weight`
is (out, in, kh, kw), `LSTM.weight_ih_l0` is (4*hidden, in) with gates in the order i, f, g, o,
`Embedding.weight` is (num_embeddings, dim)), so that the very same arrays can be copied into
tensorgrad's and PyTorch's modules. Each `*_step(params, x, y, lr)` takes the list of
parameter arrays in the model's `parameters()` order, the float32 input (the transformer:
int64 tokens, and its `heads` as a keyword), the int64 class targets and the learning rate;
it runs one training step (softmax cross-entropy, mean over the batch), updates the arrays in
place with plain SGD (`p -= lr * grad`) and returns `(loss, [grads...])` in parameter order.

Written against an array namespace `xp` (NumPy by default); this module imports nothing from
tensorgrad.
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view as _np_sliding_window_view


# ---- pieces ----------------------------------------------------------------------------------
def sliding_window_view(x, window, axis, xp=np):
    """`numpy.lib.stride_tricks.sliding_window_view` for NumPy, and for an `xp` without it
    (older CuPy) the same strided view built with `as_strided`."""
    if xp is np:
        return _np_sliding_window_view(x, window, axis=axis)
    native = getattr(xp.lib.stride_tricks, "sliding_window_view", None)
    if native is not None:
        return native(x, window, axis=axis)
    shape, strides = list(x.shape), list(x.strides)
    for ax, w in zip(axis, window, strict=True):
        shape[ax] -= w - 1
    shape += list(window)
    strides += [x.strides[ax] for ax in axis]
    return xp.lib.stride_tricks.as_strided(x, shape=tuple(shape), strides=tuple(strides))


def softmax_cross_entropy(logits, y, xp=np):
    """Mean cross-entropy of `logits` (N, K) against class indices `y` (N,), and its gradient."""
    n = logits.shape[0]
    rows = xp.arange(n)
    z = logits - logits.max(axis=1, keepdims=True)
    e = xp.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = (xp.log(s[:, 0]) - z[rows, y]).mean()
    g = e / s
    g[rows, y] -= 1
    g /= n
    return loss, g


def sgd(params, grads, lr):
    for p, g in zip(params, grads, strict=True):
        p -= lr * g


def conv2d_forward(x, w, b, pad, xp=np):
    """Stride-1 convolution by im2col, one image's columns (C*kh*kw, Ho*Wo) per batch entry
    (Caffe's layout), so the GEMM lands in NCHW: returns the output and the columns."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    if pad:
        x = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    win = sliding_window_view(x, (kh, kw), (2, 3), xp)            # (n, c, ho, wo, kh, kw)
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)
    out = (w.reshape(o, -1) @ cols).reshape(n, o, ho, wo) + b.reshape(o, 1, 1)
    return out, cols


def conv2d_backward(g, cols, x_shape, w, pad, input_grad=True, xp=np):
    """Gradients of `conv2d_forward`: (input or None, weight, bias); col2im loops on offsets."""
    n, c, h, wd = x_shape
    o, _, kh, kw = w.shape
    ho, wo = g.shape[2:]
    g3 = g.reshape(n, o, ho * wo)
    gw = (g3 @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    gb = g.sum(axis=(0, 2, 3))
    if not input_grad:
        return None, gw, gb
    gcols = (w.reshape(o, -1).T @ g3).reshape(n, c, kh, kw, ho, wo)
    gx = xp.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i:i + ho, j:j + wo] += gcols[:, :, i, j]
    return gx[:, :, pad:pad + h, pad:pad + wd], gw, gb


_OFFSETS_2X2 = ((0, 0), (0, 1), (1, 0), (1, 1))


def max_pool2_forward(x, xp=np):
    """2x2 max pooling, stride 2 (an odd last row/column is dropped, as PyTorch floors).

    Returns the maxima and, per window, the offset (0..3, row-major) of its first maximum,
    as PyTorch picks on ties: the max of the four strided views, then the argmax by
    comparing each view with it (no copy of the windows, no argmax over a length-4 axis)."""
    ho, wo = x.shape[2] // 2, x.shape[3] // 2
    win = [x[:, :, i:2 * ho:2, j:2 * wo:2] for i, j in _OFFSETS_2X2]
    out = xp.maximum(xp.maximum(win[0], win[1]), xp.maximum(win[2], win[3]))
    idx = xp.full(out.shape, 3, dtype=xp.int8)
    for k in (2, 1, 0):
        idx[win[k] == out] = k
    return out, idx


def max_pool2_backward(g, idx, x_shape, xp=np):
    """Scatter each output gradient to the argmax of its window."""
    ho, wo = g.shape[2:]
    gx = (xp.empty if x_shape[2:] == (2 * ho, 2 * wo) else xp.zeros)(x_shape, dtype=g.dtype)
    for k, (i, j) in enumerate(_OFFSETS_2X2):
        gx[:, :, i:2 * ho:2, j:2 * wo:2] = g * (idx == k)
    return gx


def _sigmoid(x, xp=np):
    return 1 / (1 + xp.exp(-x))


# ---- the three networks ----------------------------------------------------------------------
def mlp_step(params, x, y, lr, xp=np):
    """Linear-ReLU-Linear-ReLU-Linear, cross-entropy, backward, SGD. x (N, in), y (N,)."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = x @ w1.T + b1
    a1 = xp.maximum(h1, 0)
    h2 = a1 @ w2.T + b2
    a2 = xp.maximum(h2, 0)
    logits = a2 @ w3.T + b3
    loss, g = softmax_cross_entropy(logits, y, xp)
    gw3 = g.T @ a2
    gb3 = g.sum(axis=0)
    gh2 = (g @ w3) * (h2 > 0)
    gw2 = gh2.T @ a1
    gb2 = gh2.sum(axis=0)
    gh1 = (gh2 @ w2) * (h1 > 0)
    gw1 = gh1.T @ x
    gb1 = gh1.sum(axis=0)
    grads = [gw1, gb1, gw2, gb2, gw3, gb3]
    sgd(params, grads, lr)
    return loss, grads


def cnn_step(params, x, y, lr, pad=1, xp=np):
    """conv-ReLU-maxpool2, conv-ReLU-maxpool2, flatten, linear; cross-entropy; SGD.

    x (N, 1, H, W); params: conv1.weight, conv1.bias, conv2.weight, conv2.bias, fc.weight,
    fc.bias. The input gets no gradient, so the first convolution's col2im is skipped.
    """
    cw1, cb1, cw2, cb2, fw, fb = params
    n = x.shape[0]
    z1, cols1 = conv2d_forward(x, cw1, cb1, pad, xp)
    a1 = xp.maximum(z1, 0)
    p1, idx1 = max_pool2_forward(a1, xp)
    z2, cols2 = conv2d_forward(p1, cw2, cb2, pad, xp)
    a2 = xp.maximum(z2, 0)
    p2, idx2 = max_pool2_forward(a2, xp)
    flat = p2.reshape(n, -1)
    logits = flat @ fw.T + fb
    loss, g = softmax_cross_entropy(logits, y, xp)
    gfw = g.T @ flat
    gfb = g.sum(axis=0)
    gp2 = (g @ fw).reshape(p2.shape)
    gz2 = max_pool2_backward(gp2, idx2, a2.shape, xp) * (z2 > 0)
    gp1, gcw2, gcb2 = conv2d_backward(gz2, cols2, p1.shape, cw2, pad, True, xp)
    gz1 = max_pool2_backward(gp1, idx1, a1.shape, xp) * (z1 > 0)
    _, gcw1, gcb1 = conv2d_backward(gz1, cols1, x.shape, cw1, pad, False, xp)
    grads = [gcw1, gcb1, gcw2, gcb2, gfw, gfb]
    sgd(params, grads, lr)
    return loss, grads


def lstm_step(params, x, y, lr, xp=np):
    """One-layer LSTM over x (T, B, I) from zero state, linear head on the last hidden state,
    cross-entropy, backpropagation through time, SGD.

    params: weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,), head.weight (K, H),
    head.bias (K,). The input projection of all steps is one matmul before the loop, and the
    weight gradients one matmul each after it.
    """
    w_ih, w_hh, b_ih, b_hh, w_out, b_out = params
    t_len, batch, n_in = x.shape
    hid = w_hh.shape[1]
    xw = (x.reshape(t_len * batch, n_in) @ w_ih.T + (b_ih + b_hh)).reshape(t_len, batch, 4 * hid)
    hs = xp.zeros((t_len + 1, batch, hid), dtype=x.dtype)    # h_0 = 0, then h_1 .. h_T
    cs = xp.zeros((t_len + 1, batch, hid), dtype=x.dtype)
    acts, tcs = [], []
    for t in range(t_len):
        gates = xw[t] + hs[t] @ w_hh.T
        a = _sigmoid(gates, xp)
        a[:, 2 * hid:3 * hid] = xp.tanh(gates[:, 2 * hid:3 * hid])
        i, f, g, o = a[:, :hid], a[:, hid:2 * hid], a[:, 2 * hid:3 * hid], a[:, 3 * hid:]
        cs[t + 1] = f * cs[t] + i * g
        tc = xp.tanh(cs[t + 1])
        hs[t + 1] = o * tc
        acts.append(a)
        tcs.append(tc)
    logits = hs[t_len] @ w_out.T + b_out
    loss, gl = softmax_cross_entropy(logits, y, xp)
    gw_out = gl.T @ hs[t_len]
    gb_out = gl.sum(axis=0)

    dgates = xp.empty((t_len, batch, 4 * hid), dtype=x.dtype)
    dh = gl @ w_out
    dc = xp.zeros((batch, hid), dtype=x.dtype)
    for t in reversed(range(t_len)):
        a, tc = acts[t], tcs[t]
        i, f, g, o = a[:, :hid], a[:, hid:2 * hid], a[:, 2 * hid:3 * hid], a[:, 3 * hid:]
        dc = dc + dh * o * (1 - tc * tc)
        d = dgates[t]
        d[:, :hid] = dc * g * i * (1 - i)
        d[:, hid:2 * hid] = dc * cs[t] * f * (1 - f)
        d[:, 2 * hid:3 * hid] = dc * i * (1 - g * g)
        d[:, 3 * hid:] = dh * tc * o * (1 - o)
        dc = dc * f
        if t:  # the gradient of h_0 (zeros, not a parameter) is not needed
            dh = d @ w_hh
    dg2 = dgates.reshape(t_len * batch, 4 * hid)
    gw_ih = dg2.T @ x.reshape(t_len * batch, n_in)
    gw_hh = dg2.T @ hs[:t_len].reshape(t_len * batch, hid)
    gb = dg2.sum(axis=0)
    grads = [gw_ih, gw_hh, gb, gb, gw_out, gb_out]
    sgd(params, grads, lr)
    return loss, grads


# ---- the transformer block -------------------------------------------------------------------
GELU_C = math.sqrt(2 / math.pi)


def linear_backward(g, a, w):
    """Gradients of `a @ w.T + b` for 2-D `a`: (input, weight, bias)."""
    return g @ w, g.T @ a, g.sum(axis=0)


def layer_norm_forward(x, w, b, eps=1e-5, xp=np):
    """LayerNorm over the last axis (biased variance, as PyTorch); returns the output and
    what the backward needs, the normalized input and 1/std."""
    xc = x - x.mean(axis=-1, keepdims=True)
    rstd = 1 / xp.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * rstd
    return xhat * w + b, (xhat, rstd)


def layer_norm_backward(g, saved, w):
    """(input, weight, bias) gradients of `layer_norm_forward` for 2-D `g`. The input's is the
    closed form rstd * (gx̂ - mean(gx̂) - x̂ mean(gx̂ x̂)): the mean and the variance each
    take one projection out of gx̂."""
    xhat, rstd = saved
    gxhat = g * w
    gx = rstd * (gxhat - gxhat.mean(axis=-1, keepdims=True)
                 - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True))
    return gx, (g * xhat).sum(axis=0), g.sum(axis=0)


def gelu_tanh_forward(h, xp=np):
    """PyTorch's GELU(approximate="tanh"); returns it and the tanh for the backward."""
    t = xp.tanh(GELU_C * (h + 0.044715 * (h * h * h)))
    return 0.5 * h * (1 + t), t


def gelu_tanh_backward(g, h, t):
    """The input gradient of `gelu_tanh_forward`, from its input and saved tanh."""
    return g * (0.5 * (1 + t) + 0.5 * h * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * (h * h)))


def _split_heads(a, batch, heads):
    """(B*T, D) -> (B, H, T, D/H): a view, no copy."""
    bt, d = a.shape
    return a.reshape(batch, bt // batch, heads, d // heads).transpose(0, 2, 1, 3)


def _merge_heads(a):
    """(B, H, T, D/H) -> (B*T, D), the inverse of `_split_heads` (a copy)."""
    b, h, t, dh = a.shape
    return a.transpose(0, 2, 1, 3).reshape(b * t, h * dh)


def attention_forward(q, k, v, batch, heads, xp=np):
    """softmax(q kᵀ / sqrt(D/H)) v per (batch, head), q, k, v (B*T, D); the output merged
    back to (B*T, D) and what the backward needs."""
    qh, kh, vh = (_split_heads(a, batch, heads) for a in (q, k, v))
    scale = 1 / math.sqrt(qh.shape[-1])
    qs = qh * scale
    s = qs @ kh.transpose(0, 1, 3, 2)
    e = xp.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return _merge_heads(p @ vh), (qs, kh, vh, p, scale)


def attention_backward(go, saved):
    """Gradients of `attention_forward` for q, k, v, each (B*T, D)."""
    qs, kh, vh, p, scale = saved
    goh = _split_heads(go, qs.shape[0], qs.shape[1])
    gp = goh @ vh.transpose(0, 1, 3, 2)
    gv = p.transpose(0, 1, 3, 2) @ goh
    gs = p * (gp - (gp * p).sum(axis=-1, keepdims=True))     # softmax's VJP
    gq = (gs @ kh) * scale
    gk = gs.transpose(0, 1, 3, 2) @ qs
    return _merge_heads(gq), _merge_heads(gk), _merge_heads(gv)


def _attention_block(x, p, batch, heads, xp):
    """x + out(attention(ln1(x))) for x (B*T, D); p: ln1 weight and bias, q weight and bias,
    k weight (no bias: the softmax over keys would cancel it), v and out weight and bias."""
    ln_w, ln_b, wq, bq, wk, wv, bv, wo, bo = p
    a, ln = layer_norm_forward(x, ln_w, ln_b, xp=xp)
    o, att = attention_forward(a @ wq.T + bq, a @ wk.T, a @ wv.T + bv, batch, heads, xp)
    return x + (o @ wo.T + bo), (a, ln, o, att)


def _attention_block_backward(g, p, saved):
    """The input gradient and the gradients of `p`, in its order."""
    ln_w, _, wq, _, wk, wv, _, wo, _ = p
    a, ln, o, att = saved
    go, gwo, gbo = linear_backward(g, o, wo)
    gq, gk, gv = attention_backward(go, att)
    ga = gq @ wq + gk @ wk + gv @ wv
    gx, gln_w, gln_b = layer_norm_backward(ga, ln, ln_w)
    return g + gx, [gln_w, gln_b, gq.T @ a, gq.sum(axis=0), gk.T @ a, gv.T @ a,
                    gv.sum(axis=0), gwo, gbo]


def _mlp_block(x, p, xp):
    """x + fc2(gelu(fc1(ln2(x)))) for x (B*T, D); p: ln2 weight, bias, fc1 and fc2 weight and
    bias."""
    ln_w, ln_b, w1, b1, w2, b2 = p
    a, ln = layer_norm_forward(x, ln_w, ln_b, xp=xp)
    h = a @ w1.T + b1
    act, t = gelu_tanh_forward(h, xp)
    return x + (act @ w2.T + b2), (a, ln, h, t, act)


def _mlp_block_backward(g, p, saved):
    ln_w, _, w1, _, w2, _ = p
    a, ln, h, t, act = saved
    gact, gw2, gb2 = linear_backward(g, act, w2)
    ga, gw1, gb1 = linear_backward(gelu_tanh_backward(gact, h, t), a, w1)
    gx, gln_w, gln_b = layer_norm_backward(ga, ln, ln_w)
    return g + gx, [gln_w, gln_b, gw1, gb1, gw2, gb2]


def transformer_step(params, tokens, y, lr, heads, xp=np):
    """Token embedding plus learned positions, one pre-LayerNorm block (multi-head attention,
    then a GELU-tanh MLP, each around a residual), mean over the sequence, linear head;
    cross-entropy, backward, SGD. tokens (B, T) int64, y (B,).

    params: pos (T, D), emb.weight (V, D), then the attention block's nine (ln1, q, k, v, out),
    the MLP block's six (ln2, fc1, fc2) and head.weight, head.bias. Activations are kept as
    (B*T, D) so every projection is one 2-D matmul.
    """
    pos, emb = params[:2]
    p_att, p_mlp = params[2:11], params[11:17]
    wh, bh = params[17:]
    batch, t_len = tokens.shape
    d = emb.shape[1]
    x0 = (emb[tokens] + pos).reshape(batch * t_len, d)
    x1, s_att = _attention_block(x0, p_att, batch, heads, xp)
    x2, s_mlp = _mlp_block(x1, p_mlp, xp)
    pooled = x2.reshape(batch, t_len, d).mean(axis=1)
    loss, gl = softmax_cross_entropy(pooled @ wh.T + bh, y, xp)
    gpooled, gwh, gbh = linear_backward(gl, pooled, wh)
    g2 = xp.repeat(gpooled / t_len, t_len, axis=0)   # the mean's VJP, rows batch-major
    g1, g_mlp = _mlp_block_backward(g2, p_mlp, s_mlp)
    g0, g_att = _attention_block_backward(g1, p_att, s_att)
    gemb = xp.zeros_like(emb)
    xp.add.at(gemb, tokens.reshape(-1), g0)  # repeated tokens add up (CuPy: from v12)
    gpos = g0.reshape(batch, t_len, d).sum(axis=0)
    grads = [gpos, gemb, *g_att, *g_mlp, gwh, gbh]
    sgd(params, grads, lr)
    return loss, grads
