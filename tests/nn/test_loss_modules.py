"""Loss modules: each equals its functional form under every reduction, keeps its options
(weights and pos_weight as buffers), maps the legacy size_average/reduce flags as PyTorch
does, and prints as PyTorch does."""

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad import nn
from tensorgrad.autograd import gradcheck

REDUCTIONS = ["none", "mean", "sum"]


def _np(t):
    return t.detach().cpu().numpy()


def _data(device):
    rng = np.random.default_rng(0)

    def t(a, **kw):
        return tg.tensor(np.asarray(a), device=device, **kw)
    logits = t(rng.standard_normal((6, 4)), dtype=tg.float32)
    return {
        "x": logits,
        "y": t(rng.standard_normal((6, 4)), dtype=tg.float32),
        "prob": t(rng.uniform(0.05, 0.95, (6, 4)), dtype=tg.float32),
        "bin": t(rng.integers(0, 2, (6, 4)), dtype=tg.float32),
        "cls": t(np.array([0, 3, 1, 1, -100, 2])),
        "cls_ok": t(np.array([0, 3, 1, 1, 2, 2])),
        "soft": t(rng.dirichlet(np.ones(4), 6), dtype=tg.float32),
        "w": t(np.array([0.5, 1.0, 2.0, 1.5]), dtype=tg.float32),
    }


# (module factory, functional form, input key, target key)
CASES = {
    "mse": (lambda r: nn.MSELoss(reduction=r), lambda i, t, r: F.mse_loss(i, t, reduction=r),
            "x", "y"),
    "l1": (lambda r: nn.L1Loss(reduction=r), lambda i, t, r: F.l1_loss(i, t, reduction=r),
           "x", "y"),
    "huber": (lambda r: nn.HuberLoss(reduction=r, delta=0.5),
              lambda i, t, r: F.huber_loss(i, t, reduction=r, delta=0.5), "x", "y"),
    "smooth_l1": (lambda r: nn.SmoothL1Loss(reduction=r, beta=0.5),
                  lambda i, t, r: F.smooth_l1_loss(i, t, reduction=r, beta=0.5), "x", "y"),
    "ce": (lambda r: nn.CrossEntropyLoss(reduction=r),
           lambda i, t, r: F.cross_entropy(i, t, reduction=r), "x", "cls"),
    "ce_weighted_smoothed": (
        lambda r, w=None: nn.CrossEntropyLoss(weight=w, reduction=r, label_smoothing=0.1),
        lambda i, t, r, w=None: F.cross_entropy(i, t, weight=w, reduction=r,
                                                label_smoothing=0.1), "x", "cls"),
    "ce_probabilities": (lambda r: nn.CrossEntropyLoss(reduction=r),
                         lambda i, t, r: F.cross_entropy(i, t, reduction=r), "x", "soft"),
    "ce_ignore_index": (lambda r: nn.CrossEntropyLoss(ignore_index=1, reduction=r),
                        lambda i, t, r: F.cross_entropy(i, t, ignore_index=1, reduction=r),
                        "x", "cls_ok"),
    "nll": (lambda r, w=None: nn.NLLLoss(weight=w, reduction=r),
            lambda i, t, r, w=None: F.nll_loss(i, t, weight=w, reduction=r), "x", "cls"),
    "bce": (lambda r, w=None: nn.BCELoss(weight=w, reduction=r),
            lambda i, t, r, w=None: F.binary_cross_entropy(i, t, weight=w, reduction=r),
            "prob", "bin"),
    "bce_logits": (
        lambda r, w=None: nn.BCEWithLogitsLoss(weight=w, reduction=r, pos_weight=w),
        lambda i, t, r, w=None: F.binary_cross_entropy_with_logits(
            i, t, weight=w, reduction=r, pos_weight=w), "x", "bin"),
    "multi_margin": (lambda r, w=None: nn.MultiMarginLoss(p=2, margin=0.5, weight=w,
                                                          reduction=r),
                     lambda i, t, r, w=None: F.multi_margin_loss(i, t, p=2, margin=0.5,
                                                                 weight=w, reduction=r),
                     "x", "cls_ok"),
}
WEIGHTED = ["ce_weighted_smoothed", "nll", "bce", "bce_logits", "multi_margin"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_module_equals_functional(device, name, reduction):
    make, fn, ikey, tkey = CASES[name]
    d = _data(device)
    if name == "nll":
        d["x"] = F.log_softmax(d["x"], 1)
    out = make(reduction)(d[ikey], d[tkey])
    expected = fn(d[ikey], d[tkey], reduction)
    assert out.shape == expected.shape and out.device == tg.device(device)
    np.testing.assert_allclose(_np(out), _np(expected), rtol=1e-6, atol=1e-7)
    if reduction == "none":
        assert out.shape != ()
    else:
        assert out.shape == ()


@pytest.mark.parametrize("name", ["mse", "l1", "huber", "smooth_l1", "bce", "bce_logits"])
def test_reductions_relate(name):
    make, _, ikey, tkey = CASES[name]
    d = _data("cpu")
    none = _np(make("none")(d[ikey], d[tkey]))
    assert none.shape == (6, 4)
    assert make("mean")(d[ikey], d[tkey]).item() == pytest.approx(none.mean(), rel=1e-5)
    assert make("sum")(d[ikey], d[tkey]).item() == pytest.approx(none.sum(), rel=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", WEIGHTED)
def test_weighted_module_equals_functional(name, reduction):
    make, fn, ikey, tkey = CASES[name]
    d = _data("cpu")
    w = d["w"]
    module = make(reduction, w)
    out = module(d[ikey], d[tkey])
    np.testing.assert_allclose(_np(out), _np(fn(d[ikey], d[tkey], reduction, w)), rtol=1e-6)
    assert module.weight is w
    assert "weight" in module.state_dict()
    unweighted = make(reduction)(d[ikey], d[tkey])
    assert not np.allclose(_np(out), _np(unweighted))


def test_numpy_references():
    d = _data("cpu")
    x, y = _np(d["x"]).astype(np.float64), _np(d["y"]).astype(np.float64)
    assert nn.MSELoss()(d["x"], d["y"]).item() == pytest.approx(((x - y) ** 2).mean(), rel=1e-5)
    assert nn.L1Loss(reduction="sum")(d["x"], d["y"]).item() == pytest.approx(
        np.abs(x - y).sum(), rel=1e-5)
    a = np.abs(x - y)
    huber = np.where(a < 0.5, 0.5 * a ** 2, 0.5 * (a - 0.25)).mean()
    assert nn.HuberLoss(delta=0.5)(d["x"], d["y"]).item() == pytest.approx(huber, rel=1e-5)
    cls = _np(d["cls_ok"])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    ce = -logp[np.arange(6), cls].mean()
    assert nn.CrossEntropyLoss()(d["x"], d["cls_ok"]).item() == pytest.approx(ce, rel=1e-5)
    t = _np(d["bin"])
    bce = -(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 / (1 + np.exp(x)))).mean()
    assert nn.BCEWithLogitsLoss()(d["x"], d["bin"]).item() == pytest.approx(bce, rel=1e-5)
    margins = np.maximum(0, 1 - x[np.arange(6), cls][:, None] + x)
    margins[np.arange(6), cls] = 0
    assert nn.MultiMarginLoss()(d["x"], d["cls_ok"]).item() == pytest.approx(
        margins.sum(1).mean() / 4, rel=1e-5)


def test_loss_gradients():
    x = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)
    target = tg.tensor([1, 0, 3])
    assert gradcheck(lambda x: nn.CrossEntropyLoss(label_smoothing=0.2)(x, target), (x,))
    y = tg.randn(3, 4, dtype=tg.float64)
    assert gradcheck(lambda x: nn.HuberLoss(delta=0.3)(x, y), (x,))


def test_buffers_options_and_reprs():
    w, pw = tg.ones(3), tg.full((3,), 2.0)
    ce = nn.CrossEntropyLoss(weight=w, ignore_index=2, label_smoothing=0.1)
    assert (ce.ignore_index, ce.label_smoothing, ce.reduction) == (2, 0.1, "mean")
    assert list(ce.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    bce = nn.BCEWithLogitsLoss(pos_weight=pw)
    assert list(bce.state_dict()) == ["pos_weight"] and bce.pos_weight is pw
    assert bce.double().pos_weight.dtype == tg.float64
    mm = nn.MultiMarginLoss(p=2, margin=0.3)
    assert (mm.p, mm.margin) == (2, 0.3)
    assert nn.HuberLoss(delta=2.0).delta == 2.0
    for cls in (nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.SmoothL1Loss, nn.CrossEntropyLoss,
                nn.NLLLoss, nn.BCELoss, nn.BCEWithLogitsLoss, nn.MultiMarginLoss, nn.KLDivLoss):
        assert repr(cls()) == f"{cls.__name__}()"
        assert cls().reduction == "mean"
    with pytest.raises(ValueError, match="p == 1 and p == 2"):
        nn.MultiMarginLoss(p=3)


@pytest.mark.parametrize("size_average,reduce,expected", [
    (None, None, "mean"), (False, None, "sum"), (True, False, "none"), (None, False, "none"),
    (True, True, "mean"),
])
def test_legacy_size_average_and_reduce(size_average, reduce, expected):
    if size_average is None and reduce is None:
        assert nn.MSELoss(size_average, reduce).reduction == expected
        return
    with pytest.warns(UserWarning, match="size_average and reduce"):
        assert nn.MSELoss(size_average, reduce).reduction == expected
    with pytest.warns(UserWarning):
        assert nn.CrossEntropyLoss(None, size_average, -100, reduce).reduction == expected


def test_bad_reduction_is_reported_at_call():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")(tg.zeros(2), tg.zeros(2))


def test_kl_div_module():
    rng = np.random.default_rng(3)
    logp = F.log_softmax(tg.tensor(rng.standard_normal((3, 4))), 1)
    target = tg.tensor(rng.dirichlet(np.ones(4), 3))
    for reduction in ("batchmean", "sum", "none"):
        out = nn.KLDivLoss(reduction=reduction)(logp, target)
        np.testing.assert_allclose(_np(out), _np(F.kl_div(logp, target, reduction=reduction)))
    ref = (_np(target) * (np.log(_np(target)) - _np(logp))).sum() / 3
    assert nn.KLDivLoss(reduction="batchmean")(logp, target).item() == pytest.approx(ref)
    log_t = tg.log(target)
    out = nn.KLDivLoss(reduction="sum", log_target=True)(logp, log_t)
    assert out.item() == pytest.approx(ref * 3)
