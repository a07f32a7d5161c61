"""tensorgrad.nn.utils: gradient clipping and parameter flattening, checked against NumPy."""

import math

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.nn import Parameter
from tensorgrad.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _params_with_grads(device, scale=1.0, dtype=tg.float32):
    rng = np.random.default_rng(0)
    params = []
    for shape in SHAPES:
        p = Parameter(tg.zeros(*shape, dtype=dtype, device=device))
        p.grad = tg.tensor(rng.standard_normal(shape) * scale, dtype=dtype, device=device)
        params.append(p)
    return params


def _flat_grads(params):
    return np.concatenate([np.asarray(p.grad.tolist(), dtype=np.float64).ravel()
                           for p in params])


# ---- clip_grad_norm_ ------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, math.inf, "inf"])
def test_clip_grad_norm_scales_to_max_norm(device, norm_type):
    params = _params_with_grads(device, scale=3.0)
    before = _flat_grads(params)
    expected_total = np.linalg.norm(before, ord=float(norm_type))
    total = clip_grad_norm_(params, max_norm=0.5, norm_type=norm_type)
    assert isinstance(total, tg.Tensor) and total.ndim == 0
    assert total.device == tg.device(device)
    assert total.item() == pytest.approx(expected_total, rel=1e-5)
    coef = 0.5 / (expected_total + 1e-6)
    np.testing.assert_allclose(_flat_grads(params), before * coef, rtol=1e-5)
    assert np.linalg.norm(_flat_grads(params), ord=float(norm_type)) == pytest.approx(
        0.5, rel=1e-4)


def test_clip_grad_norm_below_max_is_a_no_op(device):
    params = _params_with_grads(device, scale=0.01)
    before = _flat_grads(params)
    total = clip_grad_norm_(params, max_norm=10.0)
    assert total.item() == pytest.approx(np.linalg.norm(before), rel=1e-5)
    np.testing.assert_array_equal(_flat_grads(params), before)


def test_clip_grad_norm_accepts_a_tensor_a_generator_and_skips_missing_grads():
    p = Parameter(tg.zeros(2))
    p.grad = tg.tensor([3.0, 4.0])
    assert clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.tolist(), [0.6, 0.8], rtol=1e-5)
    no_grad = Parameter(tg.ones(3))
    q = Parameter(tg.zeros(1))
    q.grad = tg.tensor([-2.0])
    total = clip_grad_norm_((x for x in [no_grad, q]), 1.0)
    assert total.item() == pytest.approx(2.0) and no_grad.grad is None
    assert q.grad.item() == pytest.approx(-1.0, rel=1e-5)


def test_clip_grad_norm_without_grads_returns_zero():
    total = clip_grad_norm_([Parameter(tg.ones(3))], 1.0)
    assert isinstance(total, tg.Tensor) and total.item() == 0.0


def test_clip_grad_norm_mixed_dtypes_promote():
    params = _params_with_grads("cpu")[:2]
    params.append(_params_with_grads("cpu", dtype=tg.float64)[2])
    expected = np.linalg.norm(_flat_grads(params))
    total = clip_grad_norm_(params, 1e9)
    assert total.dtype == tg.float64
    assert total.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 when clipping
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_clip_grad_norm_error_if_nonfinite(bad):
    params = _params_with_grads("cpu")
    params[1].grad = tg.tensor([1.0, bad, 0.0, 0.0, 0.0])
    before = _flat_grads(params)
    with pytest.raises(RuntimeError, match=r"(?s)non-finite \((inf|nan)\).*error_if_nonfinite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(_flat_grads(params), before)  # nothing was scaled
    total = clip_grad_norm_(params, 1.0, error_if_nonfinite=False)
    assert not math.isfinite(total.item())


def test_get_total_norm_matches_numpy():
    tensors = [p.grad for p in _params_with_grads("cpu")]
    flat = np.concatenate([np.asarray(t.tolist()).ravel() for t in tensors])
    assert get_total_norm(tensors, 1.0).item() == pytest.approx(np.abs(flat).sum(), rel=1e-5)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    params = _params_with_grads("cpu", scale=2.0)
    ref = [torch.nn.Parameter(torch.zeros(*s)) for s in SHAPES]
    for r, p in zip(ref, params):
        r.grad = torch.tensor(p.grad.tolist())
    expected = torch.nn.utils.clip_grad_norm_(ref, 1.5, norm_type=3.0)
    total = clip_grad_norm_(params, 1.5, norm_type=3.0)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    for r, p in zip(ref, params):
        np.testing.assert_allclose(p.grad.tolist(), r.grad.tolist(), rtol=1e-5)


# ---- clip_grad_value_ -----------------------------------------------------------------------
def test_clip_grad_value(device):
    params = _params_with_grads(device, scale=2.0)
    before = _flat_grads(params)
    assert clip_grad_value_(params, 1.25) is None
    np.testing.assert_allclose(_flat_grads(params), np.clip(before, -1.25, 1.25), rtol=1e-6)
    assert params[0].grad.device == tg.device(device)
    p = Parameter(tg.zeros(2))
    p.grad = tg.tensor([-5.0, 0.5])
    clip_grad_value_(p, 1)
    assert p.grad.tolist() == [-1.0, 0.5]


# ---- vectors ---------------------------------------------------------------------------------
def _params(device):
    rng = np.random.default_rng(1)
    return [Parameter(tg.tensor(rng.standard_normal(s), dtype=tg.float32, device=device))
            for s in SHAPES]


def test_parameters_to_vector(device):
    params = _params(device)
    vec = parameters_to_vector(params)
    expected = np.concatenate([np.asarray(p.tolist()).ravel() for p in params])
    assert vec.shape == (12 + 5 + 8,) and vec.device == tg.device(device)
    np.testing.assert_allclose(vec.tolist(), expected, rtol=1e-7)


def test_parameters_to_vector_is_differentiable():
    params = _params("cpu")
    (parameters_to_vector(params) * 2).sum().backward()
    for p in params:
        assert p.grad.tolist() == np.full(p.shape, 2.0).tolist()


def test_vector_round_trip(device):
    params = _params(device)
    ids = [id(p) for p in params]
    new = tg.arange(25, dtype=tg.float32, device=device)
    vector_to_parameters(new, params)
    assert [id(p) for p in params] == ids
    assert all(p.is_leaf and p.requires_grad for p in params)
    assert params[0].tolist() == np.arange(12).reshape(3, 4).tolist()
    assert params[1].tolist() == list(range(12, 17))
    assert params[2].tolist() == np.arange(17, 25).reshape(2, 2, 2).tolist()
    assert parameters_to_vector(params).tolist() == new.tolist()
    with tg.no_grad():
        new.mul_(0)  # the parameters hold copies, not views of the vector
    assert params[1].tolist() == list(range(12, 17))


def test_vector_to_parameters_size_mismatch():
    params = _params("cpu")
    with pytest.raises(tg.ShapeError, match=r"24 elements.*hold 25"):
        vector_to_parameters(tg.zeros(24), params)
    with pytest.raises(ValueError, match="26"):  # ShapeError is a ValueError too
        vector_to_parameters(tg.zeros(26), params)
    with pytest.raises(TypeError, match="list"):
        vector_to_parameters([0.0] * 25, params)
