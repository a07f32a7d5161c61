"""Weight initialisers with `torch.nn.init`'s names, formulas and defaults.

Each one fills its tensor in place, under no_grad, and returns it. Random draws come from
`tg.rand` / `tg.randn` on the tensor's own device and dtype, so `tg.manual_seed` makes them
reproducible. Speaks only Tensor, as all of tensorgrad.nn: no array library is imported here.

>>> import tensorgrad as tg
>>> w = tg.nn.Parameter(tg.empty(4, 3))
>>> tg.nn.init.xavier_uniform_(w) is w, w.requires_grad
(True, True)
"""

import math
import warnings

from .. import creation
from ..autograd.graph import no_grad

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_",
           "ones_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_"]

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d")


# ---- gains and fans ------------------------------------------------------------------------
def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as in PyTorch.

    >>> round(calculate_gain("leaky_relu", 0.2), 4)
    1.3868
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            negative_slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    known = list(_LINEAR_FNS) + ["sigmoid", "tanh", "relu", "leaky_relu", "selu"]
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}\n"
                     f"  hint: use one of {known}")


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out): dim 1 times the receptive field, dim 0 times the receptive field."""
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         f"dimensions (got shape {tuple(tensor.shape)})\n  hint: initialise "
                         "1-D tensors (biases) with uniform_, normal_ or zeros_")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# ---- plain fills -----------------------------------------------------------------------------
def _write(tensor, value):
    with no_grad():
        tensor.copy_(value)
    return tensor


def _draw(factory, tensor):
    return factory(*tensor.shape, dtype=tensor.dtype, device=tensor.device)


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with draws from U(a, b)."""
    return _write(tensor, _draw(creation.rand, tensor) * (b - a) + a)


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with draws from N(mean, std²)."""
    return _write(tensor, _draw(creation.randn, tensor) * std + mean)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Fill with draws from N(mean, std²) truncated to [a, b] (by rejection: each draw
    outside the bounds is redrawn until it falls inside)."""
    mass = _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std)
    if not mass > 1e-4:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] holds a fraction {mass:.3g} of "
                         f"N({mean}, {std}²)\n  hint: choose bounds within a few std of mean")
    with no_grad():
        out = _draw(creation.randn, tensor) * std + mean
        for _ in range(10_000):
            outside = (out < a).logical_or(out > b)
            if not outside.any().item():
                break
            fresh = _draw(creation.randn, tensor) * std + mean
            out = fresh.where(outside, out)
        return _write(tensor, out)


def _normal_cdf(x):
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def constant_(tensor, val):
    """Fill with `val`."""
    with no_grad():
        return tensor.fill_(val)


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def eye_(tensor):
    """Fill a 2-D tensor with the identity (ones on the diagonal, zeros elsewhere)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    return _write(tensor, creation.eye(*tensor.shape, dtype=tensor.dtype, device=tensor.device))


def dirac_(tensor, groups=1):
    """Fill a 3-, 4- or 5-D (convolution) weight with the Dirac delta, so the convolution
    preserves its input's channels (in each of `groups` groups)."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got "
                         f"shape {tuple(tensor.shape)}")
    out_per_group = tensor.shape[0] // groups
    if tensor.shape[0] % groups != 0:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups "
                         f"({groups})")
    centre = tuple(s // 2 for s in tensor.shape[2:])
    with no_grad():
        tensor.zero_()
        for g in range(groups):
            for d in range(min(out_per_group, tensor.shape[1])):
                tensor[(g * out_per_group + d, d) + centre] = 1
    return tensor


# ---- scaled by fan ---------------------------------------------------------------------------
def xavier_uniform_(tensor, gain=1.0):
    """Glorot & Bengio (2010): U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """Glorot & Bengio (2010): N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def _empty_warning(tensor, name):
    if 0 in tuple(tensor.shape):
        warnings.warn(f"{name}: initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. (2015): U(-bound, bound) with bound = gain * sqrt(3 / fan)."""
    if _empty_warning(tensor, "kaiming_uniform_"):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. (2015): N(0, std²) with std = gain / sqrt(fan)."""
    if _empty_warning(tensor, "kaiming_normal_"):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


# ---- orthogonal ------------------------------------------------------------------------------
def orthogonal_(tensor, gain=1.0):
    """Saxe et al. (2013): a (semi-)orthogonal matrix, the Q of the QR decomposition of a
    standard normal matrix with R's diagonal made positive, as PyTorch draws it. Dims after
    the first are flattened: rows are orthonormal when rows < cols, else columns are."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, "
                         f"got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    with no_grad():
        flat = creation.randn(rows, cols, dtype=tensor.dtype, device=tensor.device)
        if rows < cols:
            flat = flat.T
        q = _orthonormal_columns(flat)
        if rows < cols:
            q = q.T
        return _write(tensor, (q * gain).reshape(tensor.shape))


def _orthonormal_columns(a):
    """Q of the thin QR of a tall matrix `a`, with R's diagonal positive.

    Classical Gram-Schmidt with re-orthogonalisation ("twice is enough", Giraud et al. 2005),
    in float64: orthogonal to rounding for any numerically full-rank `a`. Gram-Schmidt's R
    has a positive diagonal by construction, which is the sign convention PyTorch imposes
    on its Householder QR.
    """
    work = a.double()
    q = creation.zeros(*work.shape, dtype=work.dtype, device=work.device)
    for j in range(work.shape[1]):
        v = work[:, j]
        if j:
            done = q[:, :j]
            for _ in range(2):
                v = v - done @ (done.T @ v)
        q[:, j] = v / v.norm()
    return q.to(a.dtype)
