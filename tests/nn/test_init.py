"""tensorgrad.nn.init: statistics of each initialiser against its formula, fans, gains,
orthogonality, reproducibility and errors."""

import math

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.nn import init

SHAPE = (256, 512)  # fan_in 512, fan_out 256


def _values(t):
    return np.asarray(t.tolist(), dtype=np.float64)


def _check_uniform(t, low, high):
    v = _values(t)
    assert v.min() >= low and v.max() <= high
    # The extremes of 131072 draws sit within 0.1 % of the range of its ends.
    span = high - low
    assert v.min() < low + 1e-3 * span and v.max() > high - 1e-3 * span
    assert abs(v.mean() - (low + high) / 2) < 0.01 * span
    assert v.std() == pytest.approx(span / math.sqrt(12), rel=0.01)


def _check_normal(t, mean, std):
    v = _values(t)
    assert abs(v.mean() - mean) < 0.01 * std
    assert v.std() == pytest.approx(std, rel=0.01)


# ---- gains and fans -------------------------------------------------------------------------
@pytest.mark.parametrize("name, param, expected", [
    ("linear", None, 1), ("conv1d", None, 1), ("conv2d", None, 1), ("conv3d", None, 1),
    ("conv_transpose2d", None, 1), ("sigmoid", None, 1), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("leaky_relu", 0, math.sqrt(2)),
    ("selu", None, 0.75),
])
def test_calculate_gain_table(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-12)


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.calculate_gain("leaky_relu", 3) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 3))


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="swish"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.1")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape, fans", [
    ((3, 5), (5, 3)),                  # Linear weight (out, in)
    ((16, 8, 3, 3), (72, 144)),        # Conv2d weight (out, in, kh, kw)
    ((4, 2, 5), (10, 20)),             # Conv1d weight
    ((6, 3, 2, 2, 2), (24, 48)),       # Conv3d weight
])
def test_fan_in_and_fan_out(shape, fans):
    assert init._calculate_fan_in_and_fan_out(tg.empty(*shape)) == fans


def test_fans_match_torch():
    torch = pytest.importorskip("torch")
    for shape in [(3, 5), (16, 8, 3, 3), (4, 2, 5), (6, 3, 2, 2, 2), (7, 0)]:
        assert init._calculate_fan_in_and_fan_out(tg.empty(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))


@pytest.mark.parametrize("fn", [init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_,
                                init.kaiming_normal_, init._calculate_fan_in_and_fan_out])
def test_fan_needs_two_dims(fn):
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        fn(tg.empty(7))


def test_kaiming_rejects_unknown_mode_and_nonlinearity():
    with pytest.raises(ValueError, match="fan_avg"):
        init.kaiming_uniform_(tg.empty(3, 4), mode="fan_avg")
    with pytest.raises(ValueError, match="swish"):
        init.kaiming_normal_(tg.empty(3, 4), nonlinearity="swish")


# ---- statistics -----------------------------------------------------------------------------
def test_uniform_and_normal(device):
    t = tg.empty(*SHAPE, device=device)
    assert init.uniform_(t, -2.0, 3.0) is t
    _check_uniform(t, -2.0, 3.0)
    _check_uniform(init.uniform_(t), 0.0, 1.0)
    _check_normal(init.normal_(t, 1.5, 0.2), 1.5, 0.2)
    _check_normal(init.normal_(t), 0.0, 1.0)
    assert t.device == tg.device(device) and t.dtype == tg.float32


def test_constant_zeros_ones_eye(device):
    t = tg.empty(3, 4, device=device)
    assert init.constant_(t, 2.5) is t and t.tolist() == [[2.5] * 4] * 3
    assert init.zeros_(t).tolist() == [[0.0] * 4] * 3
    assert init.ones_(t).tolist() == [[1.0] * 4] * 3
    assert init.eye_(t).tolist() == np.eye(3, 4).tolist()
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(tg.empty(2, 2, 2))


def test_dirac_preserves_channels():
    w = init.dirac_(tg.empty(4, 2, 3, 3), groups=2)
    v = _values(w)
    assert v.sum() == 4
    for out_ch, in_ch in [(0, 0), (1, 1), (2, 0), (3, 1)]:
        assert v[out_ch, in_ch, 1, 1] == 1
    with pytest.raises(ValueError, match="3, 4, or 5"):
        init.dirac_(tg.empty(3, 3))


def test_xavier(device):
    t = tg.empty(*SHAPE, device=device)
    bound = 1.5 * math.sqrt(6 / (256 + 512))
    _check_uniform(init.xavier_uniform_(t, gain=1.5), -bound, bound)
    _check_normal(init.xavier_normal_(t, gain=0.5), 0.0, 0.5 * math.sqrt(2 / (256 + 512)))


@pytest.mark.parametrize("mode, fan", [("fan_in", 512), ("fan_out", 256)])
def test_kaiming(device, mode, fan):
    t = tg.empty(*SHAPE, device=device)
    # Defaults: a=0 with leaky_relu gives sqrt(2), the ReLU gain.
    bound = math.sqrt(2) * math.sqrt(3 / fan)
    _check_uniform(init.kaiming_uniform_(t, mode=mode), -bound, bound)
    _check_normal(init.kaiming_normal_(t, mode=mode, nonlinearity="relu"), 0.0,
                  math.sqrt(2 / fan))
    gain = math.sqrt(2 / (1 + 0.2 ** 2))
    _check_normal(init.kaiming_normal_(t, a=0.2, mode=mode), 0.0, gain / math.sqrt(fan))


def test_kaiming_uses_receptive_field():
    t = tg.empty(64, 32, 3, 3)
    bound = math.sqrt(3) * init.calculate_gain("tanh") / math.sqrt(32 * 9)
    _check_uniform(init.kaiming_uniform_(t, nonlinearity="tanh"), -bound, bound)


def test_kaiming_on_empty_tensor_warns():
    t = tg.empty(0, 3)
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(t) is t


def test_trunc_normal_stays_in_bounds():
    t = init.trunc_normal_(tg.empty(*SHAPE), mean=0.5, std=1.0, a=0.0, b=2.0)
    v = _values(t)
    assert v.min() >= 0.0 and v.max() <= 2.0
    # Mean of N(0.5, 1) truncated to [0, 2]: mu + (phi(alpha) - phi(beta)) / Z * sigma.
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: (1 + math.erf(x / math.sqrt(2))) / 2  # noqa: E731
    expected = 0.5 + (pdf(-0.5) - pdf(1.5)) / (cdf(1.5) - cdf(-0.5))
    assert v.mean() == pytest.approx(expected, abs=0.01)
    with pytest.raises(ValueError, match="bounds"):
        init.trunc_normal_(tg.empty(3), mean=0.0, std=1.0, a=50.0, b=51.0)


# ---- orthogonal -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(256, 512), (512, 256), (64, 64), (8, 3, 3, 3), (1, 5)])
def test_orthogonal_is_orthonormal(device, shape):
    t = init.orthogonal_(tg.empty(*shape, device=device), gain=2.0)
    m = _values(t).reshape(shape[0], -1)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(gram, 4.0 * np.eye(len(gram)), atol=2e-5)


def test_orthogonal_matches_sign_corrected_qr():
    # Same draw as orthogonal_ makes; Q with R's diagonal positive is unique.
    tg.manual_seed(3)
    a = _values(tg.randn(6, 10)).T
    q, r = np.linalg.qr(a)
    expected = (q * np.sign(np.diag(r))).T
    tg.manual_seed(3)
    t = init.orthogonal_(tg.empty(6, 10))
    np.testing.assert_allclose(_values(t), expected, atol=1e-6)


def test_orthogonal_float64_and_errors():
    t = init.orthogonal_(tg.empty(30, 20, dtype=tg.float64))
    assert t.dtype == tg.float64
    m = _values(t)
    np.testing.assert_allclose(m.T @ m, np.eye(20), atol=1e-12)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(tg.empty(4))


# ---- in place, no grad, reproducible ----------------------------------------------------------
INITS = [
    lambda t: init.uniform_(t, -1, 1), lambda t: init.normal_(t), init.xavier_uniform_,
    init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_, init.orthogonal_,
    init.trunc_normal_, lambda t: init.constant_(t, 0.3), init.zeros_, init.ones_, init.eye_,
]


@pytest.mark.parametrize("fn", INITS)
def test_parameter_stays_a_leaf(fn):
    p = tg.nn.Parameter(tg.zeros(5, 4))
    version = p._version
    assert fn(p) is p
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    assert p._version > version  # written in place: views and optimizers see it


@pytest.mark.parametrize("fn", INITS[:8])
def test_reproducible_under_manual_seed(fn, device):
    a, b = tg.empty(16, 8, device=device), tg.empty(16, 8, device=device)
    tg.manual_seed(7)
    fn(a)
    tg.manual_seed(7)
    fn(b)
    tg.manual_seed(8)
    c = fn(tg.empty(16, 8, device=device))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_initialisers_keep_dtype():
    for dtype in (tg.float16, tg.float64):
        t = init.kaiming_uniform_(tg.empty(32, 16, dtype=dtype))
        assert t.dtype == dtype
        bound = math.sqrt(2) * math.sqrt(3 / 16)
        assert np.abs(_values(t)).max() <= bound * (1 + 1e-3)
