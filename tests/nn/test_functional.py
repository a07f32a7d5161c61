"""tensorgrad.nn.functional against NumPy references written here, gradients by gradcheck.

The losses are composites of ops, so their gradients are checked with
`tg.autograd.gradcheck` directly in float64 (not through the op harness).
"""

import math
import warnings

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad.errors import DTypeError, ShapeError

RNG = np.random.default_rng(0)


def T(a, device="cpu", grad=False):
    a = np.asarray(a)
    return tg.tensor(a, device=device, requires_grad=grad and a.dtype.kind == "f")


def gradcheck(fn, *arrays):
    return tg.autograd.gradcheck(fn, [T(a, grad=True) for a in arrays], eps=1e-6, atol=1e-6,
                                 rtol=1e-4)


def _reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda x: x}[reduction](loss)


# ---- NumPy references ------------------------------------------------------------------------
def np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _rows(x, cdim):
    """Input with the class dimension last, flattened to (elements, C)."""
    return np.moveaxis(x, cdim, -1).reshape(-1, x.shape[cdim])


def np_cross_entropy(x, t, weight=None, ignore_index=-100, reduction="mean", ls=0.0,
                     log_probs=False):
    cdim = 0 if x.ndim == 1 else 1
    c = x.shape[cdim]
    lp = _rows(x if log_probs else np_log_softmax(x, cdim), cdim)
    w_cls = np.ones(c) if weight is None else weight
    if t.dtype.kind == "f":  # class probabilities
        tp = _rows(t, cdim) * (1 - ls) + ls / c
        loss = -(lp * tp * w_cls).sum(axis=1)
        if reduction == "mean":
            return loss.sum() / len(loss)
        return _reduce(loss, reduction) if reduction == "sum" else loss.reshape(
            np.delete(x.shape, cdim))
    flat = t.reshape(-1)
    loss, ws = np.zeros(len(flat)), np.zeros(len(flat))
    for i, k in enumerate(flat):
        if k == ignore_index:
            continue
        ws[i] = w_cls[k]
        loss[i] = (1 - ls) * -lp[i, k] * w_cls[k] + ls / c * -(lp[i] * w_cls).sum()
    if reduction == "mean":
        return loss.sum() / ws.sum()
    return loss.sum() if reduction == "sum" else loss.reshape(t.shape)


def np_bce(x, t, w=None):
    loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log(1 - x), -100))
    return loss if w is None else loss * w


def np_bce_logits(x, t, w=None, pos_weight=None):
    pw = 1.0 if pos_weight is None else pos_weight
    loss = pw * t * np.logaddexp(0, -x) + (1 - t) * np.logaddexp(0, x)
    return loss if w is None else loss * w


def np_multi_margin(x, t, p=1, margin=1.0, weight=None):
    n, c = x.shape
    out = np.zeros(n)
    for i in range(n):
        y = t[i]
        for j in range(c):
            if j != y:
                h = max(0.0, margin - x[i, y] + x[i, j]) ** p
                out[i] += h * (1.0 if weight is None else weight[y])
    return out / c


def _probs(shape, cdim):
    p = RNG.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=cdim, keepdims=True)


# ---- activations, linear ---------------------------------------------------------------------
def test_activation_functions_match_numpy():
    x = RNG.uniform(-3, 3, size=(4, 5))
    t = T(x)
    sig = 1 / (1 + np.exp(-x))
    checks = {
        F.relu(t): np.maximum(x, 0), F.relu6(T(x * 3)): np.clip(x * 3, 0, 6),
        F.leaky_relu(t, 0.1): np.where(x > 0, x, 0.1 * x),
        F.elu(t, 0.7): np.where(x > 0, x, 0.7 * np.expm1(x)),
        F.gelu(t): x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
        F.silu(t): x * sig, F.softplus(t, beta=2.0): np.log1p(np.exp(2 * x)) / 2,
        F.sigmoid(t): sig, F.tanh(t): np.tanh(x), F.logsigmoid(t): np.log(sig),
        F.hardtanh(t, -0.5, 0.5): np.clip(x, -0.5, 0.5),
        F.softmax(t, dim=1): np.exp(np_log_softmax(x, 1)),
        F.log_softmax(t, dim=0): np_log_softmax(x, 0),
    }
    for got, want in checks.items():
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)


def test_softmax_implicit_dim_warns_and_follows_pytorch():
    x = T(RNG.uniform(size=(2, 3)))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = F.softmax(x)
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0)


def test_inplace_activations_write_into_the_input():
    x = tg.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    x = tg.tensor([-1.0, 2.0])
    F.leaky_relu(x, 0.5, inplace=True)
    assert x.tolist() == [-0.5, 2.0]


def test_linear_matches_numpy_and_gradchecks():
    x, w, b = RNG.normal(size=(2, 3, 4)), RNG.normal(size=(5, 4)), RNG.normal(size=5)
    np.testing.assert_allclose(F.linear(T(x), T(w), T(b)).numpy(), x @ w.T + b, rtol=1e-12)
    np.testing.assert_allclose(F.linear(T(x), T(w)).numpy(), x @ w.T, rtol=1e-12)
    assert gradcheck(F.linear, x[0], w, b)


def test_linear_shape_error_names_both_shapes():
    with pytest.raises(ShapeError, match=r"(?s)linear: input has 3 features.*\(2, 3\).*\(5, 4\)"
                       r".*hint"):
        F.linear(tg.ones(2, 3), tg.ones(5, 4))


# ---- dropout ---------------------------------------------------------------------------------
def test_dropout_statistics_and_scaling(device):
    x = tg.ones(200, 500, device=device)
    y = F.dropout(x, p=0.3).cpu().numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation


def test_dropout_follows_manual_seed_and_gradient_uses_the_mask():
    tg.manual_seed(3)
    a = F.dropout(tg.ones(50), 0.5).numpy()
    tg.manual_seed(3)
    x = tg.ones(50, requires_grad=True)
    b = F.dropout(x, 0.5)
    np.testing.assert_array_equal(a, b.detach().numpy())
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), a)  # grad = mask / (1 - p) = output here


def test_dropout_identity_cases_and_p_one():
    x = tg.randn(4, 5)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


# ---- one_hot, embedding ----------------------------------------------------------------------
def test_one_hot():
    t = tg.tensor([[0, 2], [1, 0]])
    out = F.one_hot(t)
    assert out.dtype == tg.int64 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy(), np.eye(3, dtype=np.int64)[t.numpy()])
    assert F.one_hot(tg.tensor([1]), num_classes=4).tolist() == [[0, 1, 0, 0]]
    with pytest.raises(IndexError, match="class value 3 is out of range for num_classes=3"):
        F.one_hot(tg.tensor([0, 3]), 3)
    with pytest.raises(DTypeError, match="integer"):
        F.one_hot(tg.tensor([0.0, 1.0]))


def test_embedding_values_and_padding_gradient(device):
    w = T(RNG.normal(size=(5, 3)), device, grad=True)
    idx = tg.tensor([[0, 2, 2], [4, 2, 1]], device=device)
    out = F.embedding(idx, w, padding_idx=2)
    rows = w.detach().cpu().numpy()[idx.cpu().numpy()]
    np.testing.assert_array_equal(out.detach().cpu().numpy(), rows)  # the padding row is read
    (out * 2).sum().backward()
    grad = w.grad.cpu().numpy()
    np.testing.assert_array_equal(grad[2], 0.0)
    np.testing.assert_array_equal(grad[[0, 1, 4]], 2.0)
    np.testing.assert_array_equal(grad[3], 0.0)


def test_embedding_negative_padding_idx_and_errors():
    w = tg.randn(4, 2, requires_grad=True)
    F.embedding(tg.tensor([3, 0]), w, padding_idx=-1).sum().backward()
    assert w.grad.tolist()[3] == [0.0, 0.0] and w.grad.tolist()[0] == [1.0, 1.0]
    with pytest.raises(DTypeError):
        F.embedding(tg.tensor([0.0]), w)


def test_gradient_reversal():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = F.gradient_reversal(x, lambda_=3.0)
    assert y.tolist() == [1.0, 2.0]
    (y * tg.tensor([1.0, -1.0])).sum().backward()
    assert x.grad.tolist() == [-3.0, 3.0]


def test_pad_conv_and_pooling_are_reexported():
    assert F.pad(tg.ones(2), (1, 1)).tolist() == [0.0, 1.0, 1.0, 0.0]
    x = tg.ones(1, 1, 4, 4)
    assert F.conv2d(x, tg.ones(2, 1, 3, 3)).shape == (1, 2, 2, 2)
    assert F.max_pool2d(x, 2).shape == F.avg_pool2d(x, 2).shape == (1, 1, 2, 2)
    assert F.adaptive_avg_pool2d(x, 1).tolist() == [[[[1.0]]]]


# ---- normalization ---------------------------------------------------------------------------
def test_layer_norm_matches_numpy_and_gradchecks():
    x, w, b = RNG.normal(size=(2, 3, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    mu = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    want = (x - mu) / np.sqrt(var + 1e-5) * w + b
    np.testing.assert_allclose(F.layer_norm(T(x), (3, 4), T(w), T(b)).numpy(), want, rtol=1e-10)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 4, w, b), x[0], w[0], b[0])
    with pytest.raises(ShapeError, match="layer_norm: normalized_shape"):
        F.layer_norm(T(x), (4, 3))


def test_batch_norm_training_updates_running_stats():
    x = RNG.normal(2.0, 3.0, size=(4, 3, 2, 2))
    w, b = RNG.normal(size=3), RNG.normal(size=3)
    rm, rv = tg.zeros(3, dtype=tg.float64), tg.ones(3, dtype=tg.float64)
    out = F.batch_norm(T(x), rm, rv, T(w), T(b), training=True, momentum=0.2)
    mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    shape = (1, 3, 1, 1)
    want = (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5)
    want = want * w.reshape(shape) + b.reshape(shape)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10)
    n = x.size / 3
    np.testing.assert_allclose(rm.numpy(), 0.2 * mu, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.8 + 0.2 * var * n / (n - 1), rtol=1e-12)
    assert not rm.requires_grad


def test_batch_norm_eval_uses_running_stats_and_gradchecks():
    x = RNG.normal(size=(3, 2))
    rm, rv = np.array([0.5, -1.0]), np.array([2.0, 0.5])
    out = F.batch_norm(T(x), T(rm), T(rv), eps=1e-3)
    np.testing.assert_allclose(out.numpy(), (x - rm) / np.sqrt(rv + 1e-3), rtol=1e-12)
    w, b = RNG.normal(size=2), RNG.normal(size=2)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                     x, w, b)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(tg.ones(1, 3), None, None, training=True)
    with pytest.raises(ShapeError, match=r"running_mean should have shape \(3,\)"):
        F.batch_norm(tg.ones(2, 3), tg.zeros(4), tg.ones(3))


# ---- regression losses -----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_match_numpy(reduction):
    x, t = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    d = x - t
    ad = np.abs(d)
    refs = {
        "mse_loss": (F.mse_loss, d * d),
        "l1_loss": (F.l1_loss, ad),
        "huber_loss": (lambda a, b, reduction: F.huber_loss(a, b, reduction, delta=0.8),
                       np.where(ad < 0.8, 0.5 * d * d, 0.8 * (ad - 0.4))),
        "smooth_l1_loss": (lambda a, b, reduction: F.smooth_l1_loss(a, b, reduction, beta=0.8),
                           np.where(ad < 0.8, 0.5 * d * d / 0.8, ad - 0.4)),
    }
    for name, (fn, loss) in refs.items():
        got = fn(T(x), T(t), reduction=reduction).numpy()
        np.testing.assert_allclose(got, _reduce(loss, reduction), rtol=1e-12, err_msg=name)


def test_regression_losses_gradcheck():
    x = RNG.normal(size=(2, 3))
    t = x + RNG.choice([-1, 1], size=x.shape) * RNG.uniform(0.2, 1.5, size=x.shape)
    t[np.abs(np.abs(x - t) - 1.0) < 0.1] += 0.3  # off the Huber switch at |d| = 1
    for fn in (F.mse_loss, F.l1_loss, F.huber_loss, F.smooth_l1_loss):
        assert gradcheck(fn, x, t)


def test_mismatched_regression_shapes_warn_or_raise():
    with pytest.warns(UserWarning, match="target size"):
        out = F.mse_loss(tg.ones(3, 1), tg.zeros(3), reduction="none")
    assert out.shape == (3, 3)
    with pytest.raises(ShapeError, match=r"(?s)mse_loss: target shape.*\(3, 2\).*\(4,\).*hint"):
        F.mse_loss(tg.ones(3, 2), tg.zeros(4))
    with pytest.raises(ValueError, match="reduction must be"):
        F.l1_loss(tg.ones(2), tg.ones(2), reduction="avg")


def test_kl_div_matches_numpy():
    logq = np_log_softmax(RNG.normal(size=(3, 4)), 1)
    p = _probs((3, 4), 1)
    p[0, 0] = 0.0  # 0 log 0 = 0
    want = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0) - p * logq
    np.testing.assert_allclose(F.kl_div(T(logq), T(p), reduction="sum").numpy(), want.sum())
    np.testing.assert_allclose(F.kl_div(T(logq), T(p), reduction="batchmean").numpy(),
                               want.sum() / 3)
    logp = np.log(_probs((3, 4), 1))
    np.testing.assert_allclose(F.kl_div(T(logq), T(logp), reduction="none", log_target=True)
                               .numpy(), np.exp(logp) * (logp - logq), rtol=1e-12)
    assert gradcheck(lambda a: F.kl_div(a, T(p), reduction="batchmean"), logq)


# ---- binary cross entropy --------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_matches_numpy(reduction):
    x, t = RNG.uniform(0.05, 0.95, size=(3, 4)), RNG.uniform(size=(3, 4))
    w = RNG.uniform(0.5, 2, size=4)
    got = F.binary_cross_entropy(T(x), T(t), T(w), reduction=reduction).numpy()
    np.testing.assert_allclose(got, _reduce(np_bce(x, t, w), reduction), rtol=1e-12)
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction), x, t)


def test_bce_log_is_clamped_at_minus_100():
    x = tg.tensor([0.0, 1.0, 0.5], requires_grad=True)
    loss = F.binary_cross_entropy(x, tg.tensor([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.tolist(), [100.0, 100.0, math.log(2)], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_numpy(reduction):
    x, t = RNG.normal(size=(3, 4)) * 3, RNG.uniform(size=(3, 4))
    w, pw = RNG.uniform(0.5, 2, size=(3, 1)), RNG.uniform(0.5, 3, size=4)
    fn = F.binary_cross_entropy_with_logits
    got = fn(T(x), T(t), T(w), reduction=reduction, pos_weight=T(pw)).numpy()
    np.testing.assert_allclose(got, _reduce(np_bce_logits(x, t, w, pw), reduction), rtol=1e-12)
    got = fn(T(x), T(t), reduction=reduction).numpy()
    np.testing.assert_allclose(got, _reduce(np_bce_logits(x, t), reduction), rtol=1e-12)
    assert gradcheck(lambda a, b: fn(a, b, reduction=reduction, pos_weight=T(pw)), x, t)


def test_bce_with_logits_is_stable_for_large_logits(device):
    x = tg.tensor([1e3, -1e3, 1e3, -1e3], device=device, requires_grad=True)
    t = tg.tensor([1.0, 0.0, 0.0, 1.0], device=device)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.tolist(), [0.0, 0.0, 1e3, 1e3], atol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.tolist(), [0.0, 0.0, 1.0, -1.0], atol=1e-6)


def test_bce_shape_mismatch_raises():
    with pytest.raises(ShapeError, match=r"(?s)binary_cross_entropy: target shape.*\(4, 1\)"
                       r".*\(4,\).*hint"):
        F.binary_cross_entropy(tg.full((4, 1), 0.5), tg.ones(4))
    with pytest.raises(ShapeError, match="binary_cross_entropy_with_logits"):
        F.binary_cross_entropy_with_logits(tg.zeros(4, 1), tg.ones(4))


# ---- cross entropy / nll ---------------------------------------------------------------------
CE_CONFIGS = [
    dict(),
    dict(weight=True),
    dict(ignore_index=1),
    dict(weight=True, ignore_index=2),
    dict(label_smoothing=0.2),
    dict(weight=True, ignore_index=0, label_smoothing=0.3),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("cfg", CE_CONFIGS, ids=lambda c: "-".join(c) or "plain")
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 2), (4,)], ids=["NC", "NCHW", "C"])
def test_cross_entropy_class_indices(shape, cfg, reduction):
    x = RNG.normal(size=shape) * 2
    cdim = 0 if len(shape) == 1 else 1
    t = RNG.integers(0, shape[cdim], size=shape[:cdim] + shape[cdim + 1:])
    if "ignore_index" in cfg:  # at least one target that counts
        t = np.where(np.arange(t.size).reshape(t.shape) == 0, 3 - cfg["ignore_index"], t)
    weight = RNG.uniform(0.5, 2, size=shape[cdim]) if cfg.get("weight") else None
    kw = dict(ignore_index=cfg.get("ignore_index", -100), reduction=reduction,
              label_smoothing=cfg.get("label_smoothing", 0.0))
    got = F.cross_entropy(T(x), T(t), None if weight is None else T(weight), **kw)
    want = np_cross_entropy(x, t, weight, kw["ignore_index"], reduction, kw["label_smoothing"])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda a: F.cross_entropy(a, T(t), None if weight is None else T(weight),
                                               **kw), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2), (4,)], ids=["NC", "NCL", "C"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.25])
def test_cross_entropy_probability_targets(shape, weighted, reduction, ls):
    cdim = 0 if len(shape) == 1 else 1
    x, p = RNG.normal(size=shape), _probs(shape, cdim)
    weight = RNG.uniform(0.5, 2, size=shape[cdim]) if weighted else None
    got = F.cross_entropy(T(x), T(p), None if weight is None else T(weight),
                          reduction=reduction, label_smoothing=ls)
    want = np_cross_entropy(x, p, weight, reduction=reduction, ls=ls)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert gradcheck(lambda a, b: F.cross_entropy(a, b, reduction=reduction,
                                                  label_smoothing=ls), x, p)


def test_cross_entropy_is_stable_for_huge_logits(device):
    x = tg.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], device=device, requires_grad=True)
    t = tg.tensor([1, 2], device=device)
    loss = F.cross_entropy(x, t, reduction="none")
    np.testing.assert_allclose(loss.tolist(), [2e4, math.log(2)], rtol=1e-6)
    loss.sum().backward()
    g = x.grad.cpu().numpy()
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [[1, -1, 0], [0, 0.5, -0.5]], atol=1e-6)


def test_label_smoothing_counts_zero_weight_targets_as_pytorch():
    # Only ignored entries drop out of the smoothing term; a class weight of 0 does not.
    x, t = RNG.normal(size=(4, 3)), np.array([0, 1, 2, 1])
    w = np.array([1.0, 0.0, 2.0])
    for reduction in ("mean", "none"):
        got = F.cross_entropy(T(x), T(t), T(w), reduction=reduction, label_smoothing=0.4)
        want = np_cross_entropy(x, t, w, reduction=reduction, ls=0.4)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert np.all(want[[1, 3]] != 0)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_cross_entropy_all_ignored_mean_is_nan():
    out = F.cross_entropy(tg.zeros(2, 3), tg.tensor([-100, -100]))
    assert math.isnan(out.item())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_numpy(reduction):
    lp = np_log_softmax(RNG.normal(size=(4, 3, 2)), 1)
    t = np.array([[0, 2], [1, 1], [2, -100], [0, 1]])
    w = RNG.uniform(0.5, 2, size=3)
    got = F.nll_loss(T(lp), T(t), T(w), reduction=reduction)
    want = np_cross_entropy(lp, t, w, reduction=reduction, log_probs=True)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert gradcheck(lambda a: F.nll_loss(a, T(t), T(w), reduction=reduction), lp)


def test_cross_entropy_target_errors():
    x = tg.zeros(4, 3)
    with pytest.raises(ShapeError, match=r"(?s)cross_entropy: a float target.*\(4, 3\).*"
                       r"\(4, 5\).*hint: .*target\.argmax\(1\)"):
        F.cross_entropy(x, tg.zeros(4, 5))  # one-hot floats of the wrong width
    with pytest.raises(ShapeError, match=r"(?s)target shape \(4, 1\) does not fit input shape "
                       r"\(4, 3\).*hint: drop the extra dimension: target\.squeeze\(1\)"):
        F.cross_entropy(x, tg.zeros(4, 1, dtype=tg.int64))
    with pytest.raises(ShapeError, match=r"(?s)target shape \(5,\) does not fit"):
        F.cross_entropy(x, tg.zeros(5, dtype=tg.int64))
    with pytest.raises(DTypeError, match="must be floating point"):
        F.cross_entropy(x, tg.zeros(4, 3, dtype=tg.int64))
    with pytest.raises(DTypeError, match="integer"):
        F.nll_loss(x, tg.zeros(4))
    with pytest.raises(ShapeError, match=r"weight should have one value per class, shape \(3,\)"):
        F.cross_entropy(x, tg.zeros(4, dtype=tg.int64), weight=tg.ones(4))


def test_class_index_out_of_range_is_named():
    with pytest.raises(IndexError, match=r"cross_entropy: target class index 3 is out of range "
                       r"for 3 classes(?s:.*)ignore_index=-100"):
        F.cross_entropy(tg.zeros(2, 3), tg.tensor([0, 3]))
    with pytest.raises(IndexError, match="target class index -1"):
        F.nll_loss(tg.zeros(2, 3), tg.tensor([-1, 0]))
    with pytest.raises(IndexError, match="multi_margin_loss: target class index 5"):
        F.multi_margin_loss(tg.zeros(2, 3), tg.tensor([5, 0]))


# ---- multi margin ----------------------------------------------------------------------------
def _margin_inputs():
    x = RNG.normal(size=(4, 5))
    t = RNG.integers(0, 5, size=4)
    # Keep every hinge term off its kink at 0.
    z = 1.0 - x[np.arange(4), t][:, None] + x
    x = np.where(np.abs(z) < 0.05, x + 0.2, x)
    return x, t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss_matches_numpy(p, reduction):
    x, t = _margin_inputs()
    w = RNG.uniform(0.5, 2, size=5)
    for weight in (None, w):
        got = F.multi_margin_loss(T(x), T(t), p=p, margin=1.0,
                                  weight=None if weight is None else T(weight),
                                  reduction=reduction)
        want = _reduce(np_multi_margin(x, t, p, 1.0, weight), reduction)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert gradcheck(lambda a: F.multi_margin_loss(a, T(t), p=p, weight=T(w),
                                                   reduction=reduction), x)


def test_multi_margin_loss_unbatched_and_errors():
    x = np.array([0.1, 0.2, 0.4, 0.8])
    got = F.multi_margin_loss(T(x), tg.tensor(3)).item()
    assert got == pytest.approx(np_multi_margin(x[None], np.array([3]))[0])
    with pytest.raises(ValueError, match="p == 1 and p == 2"):
        F.multi_margin_loss(T(x), tg.tensor(3), p=3)


# ---- optional cross-checks against PyTorch ---------------------------------------------------
def test_losses_against_torch_if_present():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x, t = RNG.normal(size=(3, 4, 2)), RNG.integers(0, 4, size=(3, 2))
    t[0, 0] = 1
    w = RNG.uniform(0.5, 2, size=4)
    kw = dict(ignore_index=1, label_smoothing=0.1)
    ours = F.cross_entropy(T(x), T(t), T(w), **kw).item()
    theirs = tf.cross_entropy(torch.tensor(x), torch.tensor(t), torch.tensor(w), **kw).item()
    assert ours == pytest.approx(theirs, rel=1e-12)
    x2, t2 = RNG.normal(size=(3, 4)), RNG.integers(0, 4, size=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = tf.multi_margin_loss(torch.tensor(x2), torch.tensor(t2), p=2, margin=0.7,
                                      weight=torch.tensor(w)).item()
    ours = F.multi_margin_loss(T(x2), T(t2), p=2, margin=0.7, weight=T(w)).item()
    assert ours == pytest.approx(theirs, rel=1e-12)
    rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    tf.batch_norm(torch.tensor(x), rm, rv, training=True)
    rm2, rv2 = tg.zeros(4, dtype=tg.float64), tg.ones(4, dtype=tg.float64)
    F.batch_norm(T(x), rm2, rv2, training=True)
    np.testing.assert_allclose(rv2.numpy(), rv.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rm2.numpy(), rm.numpy(), rtol=1e-12)


def test_losses_have_second_derivatives():
    # Newton / LM optimizers differentiate the losses twice.
    x, t = RNG.normal(size=(3, 4)), np.array([0, 3, 1])
    w = T(RNG.uniform(0.5, 2, size=4))
    inputs = [T(x, grad=True)]
    assert tg.autograd.gradgradcheck(
        lambda a: F.cross_entropy(a, T(t), w, label_smoothing=0.1), inputs, atol=1e-5, rtol=1e-3)
    y = RNG.uniform(size=(3, 4))
    assert tg.autograd.gradgradcheck(
        lambda a: F.binary_cross_entropy_with_logits(a, T(y), pos_weight=w), inputs,
        atol=1e-5, rtol=1e-3)
    assert tg.autograd.gradgradcheck(
        lambda a: F.layer_norm(a, (4,)), inputs, atol=1e-5, rtol=1e-3)
