"""tensorgrad.nn.functional: the function form of every layer, activation and loss.

PyTorch's names and signatures (`torch.nn.functional`). Activations are registered ops
(tensorgrad/ops/activation.py), as are conv2d and the pooling functions (ops/conv.py,
ops/pool.py) and layer_norm (ops/normalization.py); everything else here is composed from
public Tensor ops, so gradients (and gradients of gradients) come from the ops' VJPs. The
losses live in `_loss_functions.py` and are re-exported here.

Speaks only Tensor: imports no array library and never touches a raw backend array
(tests/test_layering.py checks).

>>> import tensorgrad as tg
>>> import tensorgrad.nn.functional as F
>>> F.relu(tg.tensor([-1.0, 2.0])).tolist()
[0.0, 2.0]
"""

import warnings

from .. import creation
from ..autograd.graph import no_grad
from ..errors import DTypeError, ShapeError, describe
from ..ops import activation as _act
from ..ops import elementwise as _ew
from ..ops.conv import conv2d
from ..ops.indexing import IndexOutOfRange
from ..ops.join import pad
from ..ops.linalg import linear as _linear
from ..ops.normalization import layer_norm
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..ops.softmax import log_softmax as _log_softmax
from ..ops.softmax import softmax as _softmax
from ..tensor import Tensor
from ._loss_functions import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    multi_margin_loss,
    nll_loss,
    smooth_l1_loss,
)

# ---- activations ----------------------------------------------------------------------------
sigmoid = _ew.sigmoid
tanh = _ew.tanh
logsigmoid = _act.logsigmoid
gradient_reversal = _act.gradient_reversal
leaky_relu_ = _act.leaky_relu_
elu_ = _act.elu_
hardtanh_ = _act.hardtanh_


def relu(input, inplace=False):
    """max(x, 0); gradient 0 at 0."""
    return input.relu_() if inplace else _ew.relu(input)


def relu_(input):
    return input.relu_()


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x where x > 0, else negative_slope * x."""
    fn = _act.leaky_relu_ if inplace else _act.leaky_relu
    return fn(input, negative_slope)


def elu(input, alpha=1.0, inplace=False):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return (_act.elu_ if inplace else _act.elu)(input, alpha)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clamp(x, min_val, max_val), gradient 0 at the bounds."""
    return (_act.hardtanh_ if inplace else _act.hardtanh)(input, min_val, max_val)


def relu6(input, inplace=False):
    """min(max(x, 0), 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def gelu(input, approximate="none"):
    """x * Phi(x), exact (erf) or with PyTorch's tanh approximation (approximate="tanh")."""
    return _act.gelu(input, approximate)


def silu(input, inplace=False):
    """x * sigmoid(x)."""
    return (_act.silu_ if inplace else _act.silu)(input)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, linear where beta * x > threshold."""
    return _act.softplus(input, beta, threshold)


def _softmax_dim(name, ndim, stacklevel):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", UserWarning, stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along `dim` (PyTorch's implicit dim, with a warning, if None)."""
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim, _stacklevel)
    return _softmax(input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along `dim`: stable for logits of any size."""
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim, _stacklevel)
    return _log_softmax(input, dim, dtype)


# ---- linear, dropout ------------------------------------------------------------------------
def linear(input, weight, bias=None):
    """input @ weight.T + bias, for input (..., in_features) and weight (out, in).

    >>> import tensorgrad as tg
    >>> import tensorgrad.nn.functional as F
    >>> F.linear(tg.ones(2, 3), tg.ones(4, 3), tg.zeros(4)).shape
    (2, 4)
    """
    if weight.ndim == 2 and input.ndim >= 1 and input.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input has {input.shape[-1]} features in its last dimension "
                         f"but weight expects {weight.shape[1]}\n  input: {describe(input)}\n"
                         f"  weight: {describe(weight)}\n  hint: the input's last dimension "
                         f"must be in_features = weight.shape[1] = {weight.shape[1]}")
    if weight.ndim == 2 and input.ndim >= 1 and (bias is None or bias.shape == weight.shape[:1]):
        return _linear(input, weight, bias)  # one node, and w's gradient in w's layout
    out = input.matmul(weight.T if weight.ndim == 2 else weight)
    return out if bias is None else out + bias


def _check_p(p, name):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (while training).

    The mask comes from `tg.rand_like`, so it follows `tg.manual_seed`. Identity when not
    training or p = 0; p = 1 gives zeros.
    """
    _check_p(p, "dropout")
    if not training or p == 0:
        return input
    if p == 1:
        return input.mul_(0) if inplace else input * 0
    keep = creation.rand_like(input) >= p  # P(keep) = 1 - p: rand is uniform on [0, 1)
    scale = 1.0 / (1.0 - p)
    if inplace:
        return input.mul_(keep).mul_(scale)
    return input * keep * scale


# ---- one_hot, embedding ---------------------------------------------------------------------
def _need_integer(x, name, arg):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument '{arg}' must be a Tensor, not {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype.name == "bool":
        raise DTypeError(f"{name}: expected an integer tensor of class indices for '{arg}', "
                         f"got {describe(x)}\n  hint: convert it, e.g. {arg}.long()")


def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape tensor.shape + (num_classes,), with 1 at each index.

    >>> import tensorgrad as tg
    >>> import tensorgrad.nn.functional as F
    >>> F.one_hot(tg.tensor([0, 2]), 3).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    _need_integer(tensor, "one_hot", "tensor")
    if num_classes == -1:
        if tensor.numel() == 0:
            raise ValueError("one_hot: can not infer the number of classes from an empty "
                             "tensor\n  hint: pass num_classes")
        num_classes = int(tensor.max().item()) + 1
    if tensor.numel():
        lo, hi = int(tensor.min().item()), int(tensor.max().item())
        if lo < 0 or hi >= num_classes:
            raise IndexOutOfRange(
                f"one_hot: class value {lo if lo < 0 else hi} is out of range for "
                f"num_classes={num_classes}\n  hint: class values must lie in "
                f"[0, {num_classes - 1}]")
    classes = creation.arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).long()


def embedding(input, weight, padding_idx=None):
    """The rows of `weight` at the integer `input`: weight[input].

    Entries equal to `padding_idx` still read their row, but send it no gradient.
    """
    _need_integer(input, "embedding", "input")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"{describe(weight)}\n  hint: build it as tg.randn(num, dim)")
    out = weight[input]
    if padding_idx is None:
        return out
    n = weight.shape[0]
    if not -n <= padding_idx < n:
        raise IndexOutOfRange(f"embedding: padding_idx {padding_idx} is out of range for "
                              f"{n} embeddings\n  hint: use a value in [{-n}, {n - 1}]")
    pad_row = (input == padding_idx % n).unsqueeze(-1)
    return _ew.where(pad_row, out.detach(), out) if out.requires_grad else out


# ---- normalization --------------------------------------------------------------------------
def _affine(out, weight, bias, shape):
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def _normalize(input, dims):
    """The mean over `dims`, the centred input, and its biased variance (all keepdim)."""
    mean = input.mean(dims, keepdim=True)
    xc = input - mean
    return mean, xc, (xc * xc).mean(dims, keepdim=True)


def _check_stats(input, tensors):
    c = input.shape[1]
    for name, t in tensors.items():
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"batch_norm: {name} should have shape ({c},), one value per "
                             f"channel of input {describe(input)}; got {describe(t)}\n"
                             "  hint: channels are dimension 1 of the input")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalize each channel (dimension 1) over the batch and spatial dimensions.

    Training: batch statistics, and running_mean/running_var (if given) move towards them by
    `momentum`, in place and untracked; the running variance uses the unbiased estimate, as
    PyTorch does. Otherwise the running statistics are used.
    """
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: expected input of shape (N, C, ...), got "
                         f"{describe(input)}\n  hint: add a batch dimension, x.unsqueeze(0)")
    _check_stats(input, {"running_mean": running_mean, "running_var": running_var,
                         "weight": weight, "bias": bias})
    c = input.shape[1]
    shape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        dims = (0,) + tuple(range(2, input.ndim))
        mean, xc, var = _normalize(input, dims)
        _update_running(input, mean, var, running_mean, running_var, momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var must be given when not "
                             "training\n  hint: pass training=True to use batch statistics")
        xc, var = input - running_mean.reshape(shape), running_var.reshape(shape)
    return _affine(xc * _ew.rsqrt(var + eps), weight, bias, shape)


def _update_running(input, mean, var, running_mean, running_var, momentum):
    c = input.shape[1]
    n = input.numel() // c
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input {describe(input)}\n  hint: use a batch of 2 or more, or "
                         "eval mode")
    with no_grad():
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean.reshape(c) * momentum)
        if running_var is not None:
            unbiased = var.reshape(c) * (n / (n - 1))
            running_var.mul_(1 - momentum).add_(unbiased * momentum)


__all__ = [
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "gelu", "silu",
    "softplus", "sigmoid", "tanh", "hardtanh", "hardtanh_", "logsigmoid", "softmax",
    "log_softmax", "gradient_reversal", "linear", "dropout", "one_hot", "embedding", "pad",
    "layer_norm", "batch_norm", "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss",
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "multi_margin_loss", "kl_div", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
]
