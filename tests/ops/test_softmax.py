"""softmax_cross_entropy and its backward op through the op harness, plus cross_entropy, which
runs them, against the log_softmax + pick it replaced. (softmax, log_softmax, logsumexp and
cumsum, the rest of ops/softmax.py, have their cases in test_reduce.py.)"""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad.ops.registry import apply
from tensorgrad.ops.softmax import SOFTMAX_CROSS_ENTROPY_BACKWARD, softmax_cross_entropy

IGNORE = -100


def _np_log_softmax(x, dim):
    m = x.max(axis=dim, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=dim, keepdims=True))


def _np_sce(x, t, dim):
    valid = t != IGNORE
    picked = np.take_along_axis(_np_log_softmax(x, dim), np.expand_dims(np.where(valid, t, 0), dim),
                                axis=dim)
    return np.where(valid, -np.squeeze(picked, dim), 0.0)


def _np_sce_backward(g, x, t, dim):
    valid = t != IGNORE
    p = np.exp(_np_log_softmax(x, dim))
    onehot = np.arange(x.shape[dim]).reshape([-1 if d == dim else 1 for d in range(x.ndim)])
    onehot = onehot == np.expand_dims(t, dim)
    return np.expand_dims(np.where(valid, g, 0), dim) * (p - onehot)


def _scores(shape, dim, ignored=True):
    def make(rng):
        x = rng.normal(0, 2, shape)
        t_shape = shape[:dim] + shape[dim + 1:]
        t = rng.integers(0, shape[dim], t_shape)
        if ignored and t.size > 1:
            t.reshape(-1)[1] = IGNORE
        return [x, t]
    return make


def _sce_case(shape, dim, name, ignored=True):
    return OpCase(("softmax_cross_entropy",),
                  lambda x, t: softmax_cross_entropy(x, t, dim, IGNORE),
                  lambda x, t: _np_sce(x, t, dim), make=_scores(shape, dim, ignored), grad=(0,),
                  name=name)


def _with_g(shape, dim):
    def make(rng):
        x, t = _scores(shape, dim)(rng)
        return [rng.uniform(-1, 1, t.shape), x, t]
    return make


def _sce_backward(dim):
    def fn(g, x, t):
        # The residuals the forward would pass: constants, recomputed for each x.
        with tg.no_grad():
            shift = x.detach().amax(dim=dim, keepdim=True)
            log_s = (x.detach() - shift).exp().sum(dim, keepdim=True).log()
        return apply(SOFTMAX_CROSS_ENTROPY_BACKWARD, (g, x, t, shift, log_s),
                     {"dim": dim, "ignore_index": IGNORE})
    return fn


CASES = [
    _sce_case((6, 5), 1, "softmax_cross_entropy-2d"),
    _sce_case((3, 4, 5), 1, "softmax_cross_entropy-3d"),
    _sce_case((5,), 0, "softmax_cross_entropy-1d", ignored=False),
    OpCase(("softmax_cross_entropy_backward",), _sce_backward(1),
           lambda g, x, t: _np_sce_backward(g, x, t, 1), make=_with_g((6, 5), 1), grad=(0, 1),
           name="softmax_cross_entropy_backward-2d"),
    OpCase(("softmax_cross_entropy_backward",), _sce_backward(1),
           lambda g, x, t: _np_sce_backward(g, x, t, 1), make=_with_g((2, 3, 4), 1),
           grad=(0, 1), name="softmax_cross_entropy_backward-3d"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- cross_entropy runs the fused op: the numbers of log_softmax + pick -----------------------
def _apart(x, t, weight, reduction):
    # What cross_entropy computed before the fused op: log_softmax, then nll_loss.
    return F.nll_loss(F.log_softmax(x, 1), t, weight=weight, reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignored", [False, True])
def test_cross_entropy_matches_log_softmax_and_nll(device, reduction, weighted, ignored):
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 3, (8, 5))
    ts = rng.integers(0, 5, 8)
    if ignored:
        ts[[2, 5]] = IGNORE
    weight = tg.tensor(rng.uniform(0.5, 2, 5), device=device) if weighted else None
    results = []
    for f in (F.cross_entropy, _apart):
        x = tg.tensor(xs, device=device, requires_grad=True)
        loss = f(x, tg.tensor(ts, device=device), weight=weight, reduction=reduction)
        (loss.sum() if reduction == "none" else loss).backward()
        results.append((loss.detach().cpu().numpy(), x.grad.cpu().numpy()))
    (fused, gf), (apart, ga) = results
    np.testing.assert_allclose(fused, apart, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gf, ga, rtol=1e-6, atol=1e-7)


def test_cross_entropy_second_order_through_the_fused_op():
    x = tg.randn(4, 3, dtype=tg.float64, requires_grad=True)
    t = tg.tensor([0, 2, IGNORE, 1])
    assert tg.autograd.gradgradcheck(lambda x: F.cross_entropy(x, t), [x])
    assert tg.autograd.gradgradcheck(lambda x: F.cross_entropy(x, t, reduction="sum"), [x])


def test_cross_entropy_keeps_its_target_checks():
    x = tg.randn(3, 4)
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(x, tg.tensor([0, 4, 1]))
    with pytest.raises(tg.DTypeError, match="integer"):
        softmax_cross_entropy(x, tg.tensor([0.0, 1.0, 2.0]))


def test_softmax_cross_entropy_is_stable_for_large_logits():
    x = tg.tensor([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], requires_grad=True)
    loss = softmax_cross_entropy(x, tg.tensor([1, 2]))
    np.testing.assert_allclose(loss.tolist(), [1e4, np.log(3)], rtol=1e-6)
    loss.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
