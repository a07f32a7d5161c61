"""Reductions through the op harness (every dim form: None, int, negative, tuple, keepdim,
0-d input), plus PyTorch's rules at ties, stability at 1e4 and -inf, dtypes and errors."""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg

S = (3, 4)
S3 = (2, 3, 4)
NEG_INF = float("-inf")


def _distinct(shape, gap=0.3):
    # Kinked ops (amax, max over dim, ...) are checked without ties: values at least `gap` apart.
    def make(rng):
        n = int(np.prod(shape))
        x = (rng.permutation(n) - n / 2) * gap + rng.uniform(0, gap / 10, size=n)
        return [x.reshape(shape)]
    return make


def _with_zeros(rng):
    # One zero in row 0, two in row 1, none in row 2: each branch of prod's gradient.
    x = rng.uniform(0.5, 1.5, size=S) * rng.choice([-1, 1], size=S)
    x[0, 1] = 0.0
    x[1, 0] = x[1, 3] = 0.0
    return [x]


def _bools(shape):
    def make(rng):
        return [rng.uniform(size=shape) < 0.4]
    return make


def _np_lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_log_softmax(x, axis):
    return np.log(_np_softmax(x, axis))


def _dim_cases(op, method, ref, shape=S3, **kw):
    """One case per way of naming the dims: None, int, negative, tuple, keepdim, 0-d."""
    forms = [
        ("all", {}, {}, shape),
        ("dim1", dict(dim=1), dict(axis=1), shape),
        ("dim-1-keep", dict(dim=-1, keepdim=True), dict(axis=-1, keepdims=True), shape),
        ("dims(0,2)", dict(dim=(0, 2)), dict(axis=(0, 2)), shape),
        ("dims(-1,0)-keep", dict(dim=(-1, 0), keepdim=True), dict(axis=(0, 2), keepdims=True),
         shape),
        ("0d", {}, {}, ()),
    ]
    return [OpCase((op,), lambda x, kw_=kwargs: getattr(x, method)(**kw_),
                   lambda x, kw_=ref_kwargs: ref(x, **kw_), (shp,), name=f"{method}-{label}",
                   **kw)
            for label, kwargs, ref_kwargs, shp in forms]


def _np_var(ddof):
    return lambda x, axis=None, keepdims=False: np.var(x, axis=axis, ddof=ddof, keepdims=keepdims)


CASES = (
    _dim_cases("sum", "sum", np.sum)
    + _dim_cases("mean", "mean", np.mean)
    + _dim_cases("var", "var", _np_var(1))[:-1]
    + _dim_cases("std", "std", lambda x, **k: np.std(x, ddof=1, **k))[:-1]
    + _dim_cases("prod", "prod", np.prod, low=0.5, high=1.5)
    + _dim_cases("logsumexp", "logsumexp", _np_lse)
    + [
        OpCase(("var",), lambda x: x.var(dim=1, correction=0), lambda x: np.var(x, axis=1), (S,),
               name="var-correction0"),
        OpCase(("var",), lambda x: tg.var(x, 0, False, True),
               lambda x: np.var(x, axis=0, keepdims=True), (S,), name="var-unbiased-False"),
        OpCase(("std",), lambda x: x.std(dim=-1, unbiased=False), lambda x: np.std(x, axis=-1),
               (S,), name="std-unbiased-False"),
        OpCase(("std",), lambda x: tg.std(x, correction=2), lambda x: np.std(x, ddof=2), (S,),
               name="std-correction2"),
        OpCase(("prod",), lambda x: x.prod(dim=1), lambda x: np.prod(x, axis=1),
               make=_with_zeros, name="prod-zeros-dim1"),
        OpCase(("prod",), lambda x: x.prod(), np.prod, make=_with_zeros, name="prod-zeros-all"),
        OpCase(("prod",), lambda x: x.prod(dim=(0, 1), keepdim=True),
               lambda x: np.prod(x, keepdims=True), make=_with_zeros, name="prod-zeros-tuple"),
        # Kinked: max/min/amax/amin, first order only, on inputs without ties.
        OpCase(("max",), lambda x: x.max(), np.max, make=_distinct(S3), second_order=False,
               name="max-full"),
        OpCase(("min",), lambda x: tg.min(x), np.min, make=_distinct(S3), second_order=False,
               name="min-full"),
        OpCase(("amax",), lambda x: x.amax(dim=(0, -1)), lambda x: np.amax(x, axis=(0, 2)),
               make=_distinct(S3), second_order=False, name="amax-tuple"),
        OpCase(("amax",), lambda x: tg.amax(x, 1, keepdim=True),
               lambda x: np.amax(x, axis=1, keepdims=True), make=_distinct(S3),
               second_order=False, name="amax-dim1-keep"),
        OpCase(("amin",), lambda x: x.amin(-2), lambda x: np.amin(x, axis=-2),
               make=_distinct(S3), second_order=False, name="amin-dim-2"),
        OpCase(("amax",), lambda x: x.amax(), np.amax, make=_distinct(()),
               second_order=False, name="amax-0d"),
        OpCase(("max_dim", "argmax"), lambda x: x.max(1).values, lambda x: np.max(x, axis=1),
               make=_distinct(S3), second_order=False, name="max-dim1"),
        OpCase(("max_dim",), lambda x: x.max(dim=-1, keepdim=True)[0],
               lambda x: np.max(x, axis=-1, keepdims=True), make=_distinct(S3),
               second_order=False, name="max-dim-1-keep"),
        OpCase(("max_dim",), lambda x: tg.max(x, 0).values, lambda x: x, make=_distinct(()),
               second_order=False, name="max-dim-0d"),
        OpCase(("min_dim", "argmin"), lambda x: tg.min(x, dim=0).values,
               lambda x: np.min(x, axis=0), make=_distinct(S3), second_order=False,
               name="min-dim0"),
        OpCase(("max_dim", "argmax"), lambda x: x.max(1).indices, lambda x: np.argmax(x, 1),
               make=_distinct(S3), differentiable=False, name="max-dim1-indices"),
        OpCase(("argmax",), lambda x: x.argmax(), lambda x: np.argmax(x), make=_distinct(S3),
               differentiable=False, name="argmax-flat"),
        OpCase(("argmax",), lambda x: tg.argmax(x, dim=-1, keepdim=True),
               lambda x: np.argmax(x, axis=-1, keepdims=True), make=_distinct(S3),
               differentiable=False, name="argmax-dim-1-keep"),
        OpCase(("argmin",), lambda x: x.argmin(1), lambda x: np.argmin(x, 1),
               make=_distinct(S3), differentiable=False, name="argmin-dim1"),
        OpCase(("argmin",), lambda x: x.argmin(keepdim=True),
               lambda x: np.argmin(x, keepdims=True), make=_distinct(S),
               differentiable=False, name="argmin-flat-keep"),
        # softmax / log_softmax / cumsum: one dim at a time.
        OpCase(("softmax",), lambda x: tg.softmax(x, dim=-1), lambda x: _np_softmax(x, -1),
               (S3,), name="softmax-dim-1"),
        OpCase(("softmax",), lambda x: x.softmax(0), lambda x: _np_softmax(x, 0), (S,),
               name="softmax-dim0"),
        OpCase(("softmax",), lambda x: x.softmax(0), lambda x: np.ones_like(x), ((),),
               name="softmax-0d"),
        OpCase(("log_softmax",), lambda x: tg.log_softmax(x, 1),
               lambda x: _np_log_softmax(x, 1), (S3,), name="log_softmax-dim1"),
        OpCase(("log_softmax",), lambda x: x.log_softmax(dim=-1),
               lambda x: _np_log_softmax(x, -1), (S,), name="log_softmax-dim-1"),
        OpCase(("cumsum",), lambda x: x.cumsum(1), lambda x: np.cumsum(x, 1), (S3,),
               name="cumsum-dim1"),
        OpCase(("cumsum",), lambda x: tg.cumsum(x, dim=-1), lambda x: np.cumsum(x, -1), (S,),
               name="cumsum-dim-1"),
        OpCase(("cumsum",), lambda x: x.cumsum(0), lambda x: x, ((),), name="cumsum-0d"),
        # any / all: bool results, no gradient.
        OpCase(("any",), lambda x: x.any(), np.any, make=_bools(S), differentiable=False,
               name="any-all-dims"),
        OpCase(("any",), lambda x: tg.any(x, dim=1, keepdim=True),
               lambda x: np.any(x, axis=1, keepdims=True), make=_bools(S3),
               differentiable=False, name="any-dim1-keep"),
        OpCase(("all",), lambda x: x.all(dim=(0, -1)), lambda x: np.all(x, axis=(0, 2)),
               make=_bools(S3), differentiable=False, name="all-tuple"),
        OpCase(("all",), lambda x: x.gt(-1.5).all(0), lambda x: np.all(x > -1.5, axis=0),
               (S,), differentiable=False, name="all-of-comparison"),
    ]
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


def _np(t):
    return t.detach().cpu().numpy()


def _grad(fn, data, device):
    x = tg.tensor(data, device=device, dtype=tg.float64, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.tolist()


# ---- ties: full reductions split, reductions over a dim route to the index ---------------------
def test_full_reductions_split_the_gradient_among_ties(device):
    data = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    assert _grad(lambda x: x.max(), data, device) == [[0, 0.5, 0.5], [0, 0, 0]]
    assert _grad(lambda x: x.amax(dim=1), data, device) == [[0, 0.5, 0.5], [0.5, 0.5, 0]]
    assert _grad(lambda x: x.amin(dim=0), data, device) == [[1, 0, 0], [0, 1, 1]]
    assert _grad(lambda x: tg.min(x), [[1.0, 1.0], [1.0, 4.0]], device) == [[1 / 3] * 2,
                                                                              [1 / 3, 0]]


NAN = float("nan")


def _nan_grad(fn, data, device):
    # The gradient, with NaN written as None so that lists compare.
    return [[None if g != g else g for g in row] for row in _grad(fn, data, device)]


def test_full_max_and_min_send_the_gradient_to_nan(device):
    # PyTorch: a NaN is the extremum, so the NaNs are the tied elements and share the gradient.
    assert _grad(lambda x: x.max(), [[1.0, NAN, 2.0]], device) == [[0, 1, 0]]
    assert _grad(lambda x: tg.min(x), [[1.0, NAN, 2.0]], device) == [[0, 1, 0]]
    assert _grad(lambda x: x.max(), [[1.0, NAN], [2.0, NAN]], device) == [[0, 0.5], [0, 0.5]]
    assert _grad(lambda x: x.min(), [[NAN, NAN]], device) == [[0.5, 0.5]]


def test_amax_and_amin_give_a_nan_slice_a_nan_gradient(device):
    # PyTorch's amax/amin find no element equal to a NaN result: the whole slice gets NaN.
    data = [[1.0, NAN, 2.0], [3.0, 1.0, 3.0]]
    assert _nan_grad(lambda x: x.amax(dim=1), data, device) == [[None] * 3, [0.5, 0, 0.5]]
    assert _nan_grad(lambda x: x.amin(dim=1, keepdim=True), data, device) == [[None] * 3,
                                                                              [0, 1, 0]]
    assert _nan_grad(lambda x: x.amax(), data, device) == [[None] * 3] * 2


def test_max_over_a_dim_routes_the_gradient_to_the_first_nan(device):
    data = [[1.0, NAN, 2.0, NAN], [3.0, 1.0, 3.0, 0.0]]
    x = tg.tensor(data, device=device)
    assert x.max(1).indices.tolist() == [1, 0] and x.argmin(1).tolist() == [1, 3]
    assert _grad(lambda x: x.max(dim=1).values, data, device) == [[0, 1, 0, 0], [1, 0, 0, 0]]
    assert _grad(lambda x: x.min(dim=1).values, data, device) == [[0, 1, 0, 0], [0, 0, 0, 1]]


def test_max_over_a_dim_routes_the_gradient_to_the_returned_index(device):
    data = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    x = tg.tensor(data, device=device)
    values, indices = x.max(dim=1)
    assert values.tolist() == [3.0, 2.0] and indices.tolist() == [1, 0]
    assert indices.dtype == tg.int64
    assert _grad(lambda x: x.max(dim=1).values, data, device) == [[0, 1, 0], [1, 0, 0]]
    assert _grad(lambda x: x.min(0, True).values, data, device) == [[1, 0, 0], [0, 1, 1]]


def test_max_with_a_tensor_second_argument_is_maximum(device):
    a = tg.tensor([1.0, 5.0], device=device)
    b = tg.tensor([3.0, 2.0], device=device)
    assert tg.max(a, b).tolist() == [3.0, 5.0]
    assert a.min(b).tolist() == [1.0, 2.0]
    assert tg.max(a, other=b).tolist() == [3.0, 5.0]


def test_max_returns_a_named_tuple_with_keepdim(device):
    x = tg.tensor([[1.0, 5.0], [7.0, 2.0]], device=device)
    out = tg.max(x, 1, keepdim=True)
    assert type(out).__name__ == "max" and out._fields == ("values", "indices")
    assert out.values.shape == (2, 1) and out.indices.tolist() == [[1], [0]]


# ---- stability: 1e4 and -inf ------------------------------------------------------------------
def test_logsumexp_is_finite_for_large_logits(device):
    x = tg.tensor([[1e4, 1e4], [-1e4, -1e4 + 1]], device=device, requires_grad=True)
    out = x.logsumexp(1)
    np.testing.assert_allclose(out.tolist(), [1e4 + np.log(2), -1e4 + 1 + np.log1p(np.e ** -1)],
                               rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(_np(x.grad), _np_softmax(np.array([[0, 0], [0, 1.0]]), 1),
                               rtol=1e-5)


def test_logsumexp_with_minus_inf(device):
    x = tg.tensor([[0.0, NEG_INF, 0.0], [NEG_INF] * 3], device=device, dtype=tg.float64,
                  requires_grad=True)
    out = tg.logsumexp(x, dim=1)
    assert out.tolist() == [np.log(2), NEG_INF]  # an all -inf row gives -inf, not nan
    (g,) = tg.autograd.grad(out.sum(), x, create_graph=True)
    assert g.tolist() == [[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]
    (gg,) = tg.autograd.grad((g * g).sum(), x)
    assert np.isfinite(_np(gg)).all()


@pytest.mark.parametrize("fn", [tg.softmax, tg.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_is_stable_at_1e4_and_minus_inf(fn, device):
    data = [[1e4, 0.0, -1e4], [0.0, NEG_INF, 0.0], [5.0, 5.0, NEG_INF]]
    x = tg.tensor(data, device=device, requires_grad=True)
    out = fn(x, dim=1)
    expected = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    got = _np(out)
    if fn is tg.log_softmax:
        got = np.exp(got)
        assert got.dtype == np.float32 and out.tolist()[1][1] == NEG_INF
    np.testing.assert_allclose(got, expected, atol=1e-7)
    assert not np.isnan(_np(out)).any()
    w = tg.tensor([[1.0, 2.0, 3.0]] * 3, device=device)
    finite = tg.where(out > -1e30, out, 0.0)  # log-probs of -inf are masked out of the loss
    (g,) = tg.autograd.grad((finite * w).sum(), x, create_graph=True)
    assert np.isfinite(_np(g)).all()
    (gg,) = tg.autograd.grad((g * g).sum(), x)
    assert np.isfinite(_np(gg)).all()


def test_softmax_gradient_matches_the_closed_form_near_minus_inf(device):
    x = tg.tensor([0.0, 1.0, NEG_INF], device=device, dtype=tg.float64, requires_grad=True)
    y = x.softmax(0)
    (y * tg.tensor([1.0, -1.0, 5.0], device=device, dtype=tg.float64)).sum().backward()
    p = _np_softmax(np.array([0.0, 1.0]), 0)
    g = p * (np.array([1.0, -1.0]) - p @ np.array([1.0, -1.0]))
    np.testing.assert_allclose(x.grad.tolist(), list(g) + [0.0], rtol=1e-12)


# ---- prod with zeros: the gradient is the product of the others ----------------------------------
def test_prod_gradient_with_zeros(device):
    data = [[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]]
    assert _grad(lambda x: x.prod(1), data, device) == [[0, 6, 0], [0, 0, 0], [8, 4, 2]]
    x = tg.tensor([2.0, 0.0, 3.0, 0.0], device=device, dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(x.prod(), x, create_graph=True)
    assert g.tolist() == [0, 0, 0, 0]
    # The mixed second derivative of the two zeros is the product of the rest, 6.
    (h,) = tg.autograd.grad(g.sum(), x)
    assert h.tolist() == [0, 6, 0, 6]


# ---- dtypes --------------------------------------------------------------------------------------
def test_integer_reductions_give_int64(device):
    x = tg.tensor([[1, 2], [3, 4]], dtype=tg.int32, device=device)
    for out in (x.sum(), x.sum(0), x.prod(), x.cumsum(1), tg.tensor([True, True]).sum()):
        assert out.dtype == tg.int64
    assert x.sum().item() == 10 and x.prod().item() == 24 and x.cumsum(1).tolist() == [[1, 3],
                                                                                        [3, 7]]
    assert x.sum(dtype=tg.float64).dtype == tg.float64
    assert x.argmax().dtype == tg.int64 and x.max().dtype == tg.int32


def test_mean_and_var_of_integers_raise_dtype_error(device):
    x = tg.tensor([1, 2, 3], device=device)
    for fn in (tg.mean, tg.var, tg.std):
        with pytest.raises(tg.DTypeError, match="floating"):
            fn(x)
    assert x.mean(dtype=tg.float32).item() == 2.0
    with pytest.raises(tg.DTypeError, match="softmax"):
        tg.softmax(x, 0)
    assert tg.logsumexp(x, 0).dtype == tg.float32  # as PyTorch, logsumexp promotes


def test_any_all_give_bool(device):
    x = tg.tensor([[0.0, 1.0], [0.0, 0.0]], device=device)
    assert x.any().dtype == tg.bool and x.any(1).tolist() == [True, False]
    assert x.all().tolist() is False and (x >= 0).all().tolist() is True


def test_full_reduction_is_a_writable_0d_tensor(device):
    s = tg.tensor([1.0, 2.0], device=device).sum()
    with tg.no_grad():
        s += 1
    assert s.item() == 4.0 and s.shape == ()


# ---- arguments and errors ----------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda x: x.sum(3), lambda x: x.mean((0, -4)), lambda x: x.var(2), lambda x: x.amax(5),
    lambda x: x.max(dim=2), lambda x: x.argmax(-3), lambda x: x.softmax(2),
    lambda x: x.log_softmax(-3), lambda x: x.cumsum(2), lambda x: x.logsumexp(2),
    lambda x: x.prod(9), lambda x: x.any(2),
], ids=["sum", "mean", "var", "amax", "max", "argmax", "softmax", "log_softmax", "cumsum",
        "logsumexp", "prod", "any"])
def test_out_of_range_dim_raises_shape_error_naming_the_op(call, device):
    x = tg.ones(2, 3, device=device)
    with pytest.raises(tg.ShapeError) as info:
        call(x)
    msg = str(info.value)
    name = msg.split(":")[0]
    assert name in ("sum", "mean", "var", "amax", "max", "argmax", "softmax", "log_softmax",
                    "cumsum", "logsumexp", "prod", "any")
    assert "(2, 3)" in msg and "hint:" in msg


def test_numpy_aliases(device):
    x = tg.tensor(np.arange(6.0).reshape(2, 3), device=device)
    assert x.sum(axis=1, keepdims=True).tolist() == [[3.0], [12.0]]
    assert tg.mean(x, axis=0).tolist() == [1.5, 2.5, 3.5]
    assert x.amax(axis=(0, 1)).item() == 5.0
    assert x.max(axis=1).indices.tolist() == [2, 2]
    assert x.argmin(axis=1, keepdims=True).tolist() == [[0], [0]]
    assert x.cumsum(axis=0).tolist() == [[0, 1, 2], [3, 5, 7]]
    np.testing.assert_allclose(_np(x.softmax(axis=1)), _np_softmax(_np(x), 1), rtol=1e-6)
    assert x.var(axis=1, ddof=0).tolist() == pytest.approx([2 / 3, 2 / 3])
    with pytest.raises(TypeError, match="alias"):
        x.sum(dim=0, axis=1)


def test_var_std_correction_forms(device):
    data = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 9.0]])
    x = tg.tensor(data, device=device, dtype=tg.float64)
    np.testing.assert_allclose(x.var().item(), np.var(data, ddof=1))
    np.testing.assert_allclose(x.var(correction=0).tolist(), np.var(data))
    np.testing.assert_allclose(x.var(1, unbiased=False).tolist(), np.var(data, axis=1))
    np.testing.assert_allclose(x.var(False).item(), np.var(data))  # legacy var(unbiased)
    np.testing.assert_allclose(x.std(0, correction=0).tolist(), np.std(data, axis=0))
    np.testing.assert_allclose(x.std(unbiased=True).item(), np.std(data, ddof=1))
    with pytest.raises(TypeError, match="both"):
        x.var(unbiased=False, correction=0)


def test_std_gradient_of_a_constant_slice_is_zero(device):
    g = _grad(lambda x: x.std(1), [[2.0, 2.0], [1.0, 3.0]], device)
    np.testing.assert_allclose(g, [[0, 0], [-0.5 ** 0.5, 0.5 ** 0.5]], rtol=1e-12)


# ---- cross-check against PyTorch where it is installed -------------------------------------
def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    data = rng.normal(size=(3, 4, 5))
    data[0, 1, 2] = 0.0
    calls = [lambda m, x: m.prod(x, 1), lambda m, x: m.var(x, (0, 2), correction=0),
             lambda m, x: m.std(x, -1, keepdim=True), lambda m, x: m.logsumexp(x, 2),
             lambda m, x: m.softmax(x, 1), lambda m, x: m.log_softmax(x, 0),
             lambda m, x: m.cumsum(x, 2), lambda m, x: m.amax(x, (1, 2)),
             lambda m, x: m.max(x, 1).values, lambda m, x: m.min(x)]
    for call in calls:
        a = tg.tensor(data, requires_grad=True)
        b = torch.tensor(data, requires_grad=True)
        out_a, out_b = call(tg, a), call(torch, b)
        np.testing.assert_allclose(_np(out_a), _np(out_b), rtol=1e-12)
        w = rng.normal(size=out_b.shape)
        (out_a * tg.tensor(w)).sum().backward()
        (out_b * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(_np(a.grad), _np(b.grad), rtol=1e-10, atol=1e-12)
