"""Loss edge cases where PyTorch's behaviour is a contract: batches whose targets are all
ignored, binary cross entropy at and beyond the ends of [0, 1], and invalid Huber / smooth L1
parameters. The expected numbers are PyTorch 2's; the cross-check at the end recomputes them
with PyTorch when it is installed."""

import math
import warnings

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad import nn

# The float32 nearest 1e-12: PyTorch's floor on x (1 - x) in the BCE gradient.
EPS32 = float(np.float32(1e-12))
IGNORED = -100


def _grad(x):
    return x.grad.detach().cpu().numpy()


# ---- every target ignored ------------------------------------------------------------------
def _ignored_losses(device="cpu"):
    weight = tg.tensor([0.5, 2.0, 1.0], dtype=tg.float64, device=device)
    return {
        "nll": lambda x, t: F.nll_loss(F.log_softmax(x, 1), t),
        "nll_weighted": lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, weight=weight),
        "cross_entropy": lambda x, t: F.cross_entropy(x, t),
        "cross_entropy_weighted": lambda x, t: F.cross_entropy(x, t, weight=weight),
        "label_smoothing": lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
        "label_smoothing_weighted": lambda x, t: F.cross_entropy(x, t, weight=weight,
                                                                 label_smoothing=0.1),
        "module": lambda x, t: nn.CrossEntropyLoss(ignore_index=IGNORED)(x, t),
    }


@pytest.mark.parametrize("name", list(_ignored_losses()))
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4)])
def test_all_ignored_targets_give_a_nan_mean_but_zero_gradients(device, name, shape):
    # One fully padded batch must not write NaN into the weights: PyTorch's gradient is 0.
    x = tg.tensor(np.random.default_rng(0).standard_normal(shape), device=device,
                  requires_grad=True)
    t = tg.full((shape[0],) + shape[2:], IGNORED, dtype=tg.int64, device=device)
    loss = _ignored_losses(device)[name](x, t)
    assert math.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(_grad(x), np.zeros(shape))


@pytest.mark.parametrize("reduction, expected", [("sum", 0.0), ("none", None)])
def test_all_ignored_targets_with_sum_or_none(reduction, expected):
    x = tg.randn(2, 3, dtype=tg.float64, requires_grad=True)
    t = tg.tensor([IGNORED, IGNORED])
    loss = F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.2)
    assert loss.sum().item() == 0.0 and (expected is None or loss.item() == expected)
    loss.sum().backward()
    np.testing.assert_array_equal(_grad(x), np.zeros((2, 3)))


def test_some_ignored_targets_still_average_over_the_counted_ones():
    x = tg.tensor([[0.1, 0.2, 0.3], [0.5, -1.0, 2.0]], dtype=tg.float64, requires_grad=True)
    loss = F.nll_loss(F.log_softmax(x, 1), tg.tensor([IGNORED, 2]))
    logp = x[1].detach().numpy() - np.log(np.exp(x[1].detach().numpy()).sum())
    assert loss.item() == pytest.approx(-logp[2], rel=1e-12)
    loss.backward()
    assert np.all(_grad(x)[0] == 0) and np.all(np.isfinite(_grad(x)))


def test_counted_targets_of_zero_weight_give_nan_gradients_as_in_pytorch():
    # Not an ignored batch: the weights of the counted targets sum to 0, so the mean is 0/0
    # and PyTorch's gradient is NaN too (only ignore_index entries get an exact 0).
    x = tg.randn(2, 3, dtype=tg.float64, requires_grad=True)
    w = tg.tensor([0.0, 0.0, 1.0], dtype=tg.float64)
    loss = F.nll_loss(F.log_softmax(x, 1), tg.tensor([0, 1]), weight=w)
    loss.backward()
    assert math.isnan(loss.item()) and np.all(np.isnan(_grad(x)))


# ---- binary cross entropy ------------------------------------------------------------------
@pytest.mark.parametrize("values, found", [
    ([0.5, 1.5], r"found values in \[0.5, 1.5\]"),
    ([-1e-10, 0.5], r"found values in \[-1e-10, 0.5\]"),
    ([0.5, float("nan")], "found NaN"),
])
def test_bce_refuses_inputs_outside_zero_one(device, values, found):
    x = tg.tensor(values, device=device)
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1, "
                       + found):
        F.binary_cross_entropy(x, tg.ones(2, device=device))
    with pytest.raises(RuntimeError, match="binary_cross_entropy_with_logits"):
        nn.BCELoss()(x, tg.ones(2, device=device))


def test_bce_of_an_empty_batch_is_nan_without_raising():
    assert math.isnan(F.binary_cross_entropy(tg.zeros(0), tg.zeros(0)).item())


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_bce_gradient_at_zero_and_one_is_pytorchs(device, dtype):
    # PyTorch: d/dx = (x - t) / max(x (1 - x), eps), so 0 where x = t, +-1/eps where not.
    x = tg.tensor([0.0, 1.0, 1.0, 0.0], dtype=dtype, device=device, requires_grad=True)
    t = tg.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype, device=device)
    loss = F.binary_cross_entropy(x, t, reduction="sum")
    assert loss.item() == pytest.approx(200.0)  # each log is clamped at -100
    loss.backward()
    np.testing.assert_allclose(_grad(x), [0.0, 0.0, 1 / EPS32, -1 / EPS32], rtol=1e-6)


def test_bce_gradient_near_the_ends_with_soft_targets_weights_and_mean():
    x = tg.tensor([0.0, 1.0, 1e-13, 0.4], dtype=tg.float64, requires_grad=True)
    t = tg.tensor([0.3, 0.3, 0.3, 0.3], dtype=tg.float64)
    w = tg.tensor([1.0, 2.0, 0.5, 1.0], dtype=tg.float64)
    F.binary_cross_entropy(x, t, weight=w).backward()
    xs = np.array([0.0, 1.0, 1e-13, 0.4])
    expected = (xs - 0.3) / np.maximum(xs * (1 - xs), EPS32) * [1.0, 2.0, 0.5, 1.0] / 4
    np.testing.assert_allclose(_grad(x), expected, rtol=1e-12)


def test_bce_at_the_ends_in_half_precision_stays_finite_in_value():
    # 1 / eps overflows float16, so the edge terms are formed in float32: the loss is
    # PyTorch's; the gradient is inf where it overflows (as PyTorch's), 0 where x = t (PyTorch
    # gives NaN there: its eps underflows to 0 in half, making 0 / 0).
    x = tg.tensor([0.0, 1.0, 0.5, 1.0], dtype=tg.float16, requires_grad=True)
    t = tg.tensor([0.0, 0.0, 1.0, 1.0], dtype=tg.float16)
    loss = F.binary_cross_entropy(x, t, reduction="sum")
    assert loss.dtype == tg.float16 and loss.item() == pytest.approx(100.6875)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the cast of 1e12 to half overflows
        loss.backward()
    assert _grad(x).tolist() == [0.0, math.inf, -2.0, 0.0]


def test_bce_is_precise_for_small_probabilities():
    # log(1 - x) loses x below float32's epsilon; log1p(-x) keeps it (PyTorch: 1.0000001e-07).
    loss = F.binary_cross_entropy(tg.tensor([1e-7]), tg.tensor([0.0]))
    assert loss.item() == pytest.approx(1.000000082740371e-07, rel=1e-7)


def test_bce_second_order_inside_the_interval():
    x = tg.tensor([0.2, 0.5, 0.9], dtype=tg.float64, requires_grad=True)
    t = tg.tensor([0.0, 0.7, 1.0], dtype=tg.float64)
    assert tg.autograd.gradgradcheck(lambda v: F.binary_cross_entropy(v, t), (x,))


# ---- Huber and smooth L1 parameters --------------------------------------------------------
@pytest.mark.parametrize("delta", [0.0, -1.0, float("nan")])
def test_huber_refuses_a_non_positive_delta(delta):
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values "
                       "for delta"):
        F.huber_loss(tg.ones(2), tg.zeros(2), delta=delta)
    with pytest.raises(RuntimeError, match="delta"):
        nn.HuberLoss(delta=delta)(tg.ones(2), tg.zeros(2))


def test_smooth_l1_refuses_a_negative_beta_and_takes_zero():
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values "
                       "for beta"):
        F.smooth_l1_loss(tg.ones(2), tg.zeros(2), beta=-1.0)
    with pytest.raises(RuntimeError, match="beta"):
        nn.SmoothL1Loss(beta=-0.5)(tg.ones(2), tg.zeros(2))
    assert F.smooth_l1_loss(tg.ones(2), tg.zeros(2), beta=0.0).item() == 1.0


# ---- against PyTorch itself ----------------------------------------------------------------
def _bce_both(torch, x, t, w, reduction):
    out = []
    for lib, fn in ((torch, torch.nn.functional.binary_cross_entropy),
                    (tg, F.binary_cross_entropy)):
        xx, tt = lib.tensor(x.copy(), requires_grad=True), lib.tensor(t.copy())
        loss = fn(xx, tt, weight=None if w is None else lib.tensor(w.copy()),
                  reduction=reduction)
        loss.sum().backward()
        out.append((loss.detach().numpy(), xx.grad.numpy()))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_matches_pytorch(dtype, reduction, weighted):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 9).astype(dtype)
    x[:5] = [0.0, 1.0, 1e-13, np.nextafter(np.array(1, dtype), np.array(0, dtype)), 1e-30]
    t = np.concatenate([rng.integers(0, 2, 4), rng.uniform(0, 1, 5)]).astype(dtype)
    w = rng.uniform(0.5, 2, 9).astype(dtype) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (l_ref, g_ref), (l_got, g_got) = _bce_both(torch, x, t, w, reduction)
    rtol = 2e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(l_got, l_ref, rtol=rtol)
    # atol: inside (0, 1) PyTorch computes (x - t) / (x (1 - x)), autograd t / x terms, whose
    # float32 roundings differ by an ulp of the terms where x is near t.
    np.testing.assert_allclose(g_got, g_ref, rtol=rtol, atol=1e-6 if dtype == "float32" else 0)


def test_all_ignored_matches_pytorch():
    torch = pytest.importorskip("torch")
    xa = np.array([[0.1, 0.2, 0.3], [0.5, -1.0, 2.0]])
    for ls in (0.0, 0.1):
        grads = []
        for lib, fn in ((torch, torch.nn.functional.cross_entropy), (tg, F.cross_entropy)):
            x = lib.tensor(xa.copy(), requires_grad=True)
            loss = fn(x, lib.tensor([IGNORED, IGNORED]), label_smoothing=ls)
            loss.backward()
            assert math.isnan(loss.item())
            grads.append(x.grad.numpy())
        np.testing.assert_array_equal(grads[1], grads[0])
