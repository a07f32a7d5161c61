"""layer_norm through the op harness (tensorgrad/ops/normalization.py).

The forward is compared with a NumPy reference; gradients by gradcheck and gradgradcheck in
float64, with and without weight and bias, over one and two normalized dims and 1-D to 3-D
inputs. Then: one graph node, the first-order VJP (from the forward's residuals) against the
create_graph one (recomputed with tensorgrad ops), dtypes, errors, and an optional
cross-check of values and gradients against torch.nn.functional.layer_norm.
"""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad.errors import DTypeError, ShapeError


def _ln_ref(k, eps=1e-5):
    """NumPy layer norm over the last `k` dims, with optional weight and bias."""
    def ref(x, w=None, b=None):
        dims = tuple(range(x.ndim - k, x.ndim))
        xhat = (x - x.mean(axis=dims, keepdims=True)) / np.sqrt(x.var(axis=dims, keepdims=True)
                                                               + eps)
        return xhat * (1 if w is None else w) + (0 if b is None else b)
    return ref


def _bias_only(x, b):
    return F.layer_norm(x, b.shape, None, b)


# (input shape, normalized shape, which of weight / bias)
LAYOUTS = [((3, 4), (4,), "wb"), ((3, 4), (4,), ""), ((3, 4), (4,), "w"),
           ((2, 3, 4), (4,), "wb"), ((2, 3, 4), (3, 4), "wb"), ((2, 3, 4), (3, 4), ""),
           ((5,), (5,), "wb")]


def _case(shape, norm, affine):
    shapes = (shape,) + (norm,) * len(affine)
    return OpCase(("layer_norm",), lambda x, *wb: F.layer_norm(x, norm, *wb), _ln_ref(len(norm)),
                  shapes, name=f"layer_norm{list(shape)}-{list(norm)}-{affine or 'plain'}")


CASES = [
    *(_case(*layout) for layout in LAYOUTS),
    OpCase(("layer_norm",), _bias_only, lambda x, b: _ln_ref(1)(x, None, b), ((3, 4), (4,)),
           name="layer_norm-bias-only"),
    OpCase(("layer_norm",), lambda x, w, b: F.layer_norm(x, 4, w, b, eps=0.5),
           _ln_ref(1, eps=0.5), ((3, 4), (4,), (4,)), name="layer_norm-eps"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


def _inputs(shape, norm, device="cpu", dtype=tg.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [tg.tensor(rng.standard_normal(s), dtype=dtype, device=device, requires_grad=True)
            for s in (shape, norm, norm)]


def test_one_node_for_the_whole_layer():
    x, w, b = _inputs((2, 3, 4), (4,))
    out = F.layer_norm(x, (4,), w, b)
    assert out.grad_fn.name() == "LayerNormBackward0"
    assert [e is not None for e in out.grad_fn.edges] == [True, True, True]
    assert tg.nn.LayerNorm(4)(x).grad_fn.name() == "LayerNormBackward0"


@pytest.mark.parametrize("norm,affine", [((4,), True), ((3, 4), True), ((4,), False)])
def test_first_order_and_create_graph_vjps_agree(device, norm, affine):
    # The first-order VJP reads the forward's residuals; under create_graph it recomputes
    # them with tensorgrad ops. Both must give the same gradients.
    x, w, b = _inputs((2, 3, 4), norm, device)
    ins = (x, w, b) if affine else (x,)
    g = tg.tensor(np.random.default_rng(1).standard_normal((2, 3, 4)), device=device)
    out = F.layer_norm(x, norm, *ins[1:])
    plain = tg.autograd.grad(out, ins, g, retain_graph=True)
    graphed = tg.autograd.grad(out, ins, g, create_graph=True)
    assert graphed[0].requires_grad  # dx depends on x (and w): second order exists
    for a, c in zip(plain, graphed, strict=True):
        np.testing.assert_allclose(a.detach().cpu().numpy(), c.detach().cpu().numpy(),
                                   rtol=1e-12, atol=1e-12)


def test_only_the_needed_gradients(device):
    x, w, b = _inputs((3, 4), (4,), device)
    w.requires_grad_(False)
    F.layer_norm(x, 4, w, b).sum().backward()
    assert w.grad is None and x.grad is not None and b.grad is not None
    gb = F.layer_norm(x.detach(), 4, w, b)
    (g,) = tg.autograd.grad(gb.sum(), (b,))
    assert g.tolist() == [3.0] * 4


def test_float32_stays_float32_and_matches_numpy_at_size(device):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((64, 256)) * 3 + 5).astype(np.float32)
    w, b = rng.uniform(0.5, 2, 256).astype(np.float32), rng.standard_normal(256).astype(
        np.float32)
    xt, wt, bt = (tg.tensor(a, device=device) for a in (x, w, b))
    out = F.layer_norm(xt, (256,), wt, bt)
    assert out.dtype is tg.float32
    want = _ln_ref(1)(x.astype(np.float64), w, b)
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-5, atol=1e-5)


def test_mixed_dtypes_promote_as_before():
    x = tg.randn(2, 4)
    w = tg.ones(4, dtype=tg.float64, requires_grad=True)
    out = F.layer_norm(x, 4, w)
    assert out.dtype is tg.float64
    out.sum().backward()
    assert w.grad.dtype is tg.float64


def test_output_changed_in_place_leaves_the_gradient_right():
    # Without weight and bias the output is a copy of x̂, not the residual itself.
    x, _, _ = _inputs((3, 4), (4,))
    c = tg.tensor(np.random.default_rng(3).standard_normal((3, 4)))
    (want,) = tg.autograd.grad((F.layer_norm(x, 4) * c).sum(), (x,))
    y = F.layer_norm(x, 4)
    y2 = y + 0.0  # add saves no input, so changing y later is allowed
    with tg.no_grad():
        y.mul_(0)  # writes into y's storage
    (got,) = tg.autograd.grad((y2 * c).sum(), (x,))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_errors():
    with pytest.raises(ShapeError, match=r"layer_norm: normalized_shape \(4, 3\) does not "
                                         r"match[\s\S]*hint"):
        F.layer_norm(tg.zeros(2, 3, 4), (4, 3))
    with pytest.raises(ShapeError, match=r"at least 1-dimensional[\s\S]*hint"):
        F.layer_norm(tg.zeros(2, 3), ())
    with pytest.raises(DTypeError, match="layer_norm: expected a floating-point input"):
        F.layer_norm(tg.ones(2, 4, dtype=tg.int64), 4)


def test_matches_torch_if_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for shape, norm, affine in LAYOUTS:
        arrays = [rng.standard_normal(shape)] + [rng.standard_normal(norm) for _ in affine]
        ours = [tg.tensor(a, requires_grad=True) for a in arrays]
        theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
        wb = dict(zip(("weight", "bias"), theirs[1:]))
        t_out = torch.nn.functional.layer_norm(theirs[0], norm, **wb)
        g_out = F.layer_norm(ours[0], norm, *ours[1:])
        np.testing.assert_allclose(g_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        cot = rng.standard_normal(shape)
        (t_out * torch.tensor(cot)).sum().backward()
        (g_out * tg.tensor(cot)).sum().backward()
        for a, b in zip(theirs, ours, strict=True):
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-11,
                                       err_msg=f"{shape} {norm} {affine}")
