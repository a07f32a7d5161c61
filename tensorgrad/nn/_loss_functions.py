"""The loss functions of tensorgrad.nn.functional (re-exported there), PyTorch's formulas.

Every loss takes `reduction="mean" | "sum" | "none"`. Class-index losses gather the target
class with `ignore_index` entries masked out; a weighted mean divides by the summed weights
of the targets that count, as PyTorch does. Cross entropy goes through log_softmax, so logits
of magnitude 1e4 stay finite; BCE with logits goes through logsigmoid for the same reason.

Speaks only Tensor: imports no array library and never touches a raw backend array.
"""

import warnings

from .. import creation, cuda, dtypes
from ..errors import DTypeError, ShapeError, describe
from ..ops import activation as _act
from ..ops import elementwise as _ew
from ..ops.binary import where
from ..ops.broadcast import broadcast_shapes
from ..ops.indexing import IndexOutOfRange, gather
from ..ops.join import stack
from ..ops.softmax import log_softmax, softmax_cross_entropy
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


# ---- shared checks and reductions -----------------------------------------------------------
def _check_reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _target_error(cls, name, problem, input, target, hint):
    return cls(f"{name}: {problem}\n  input: {describe(input)}\n  target: {describe(target)}\n"
               f"  hint: {hint}")


def _disagreement(a, b):
    """`: at dimension -1 the sizes are 4 (input) and 5 (target)`, lined up from the right."""
    if len(a) != len(b):
        return f": the input has {len(a)} dimension(s) and the target {len(b)}"
    d = next(i for i in range(1, len(a) + 1) if a[-i] != b[-i])
    return f": at dimension {-d} the sizes are {a[-d]} (input) and {b[-d]} (target)"


def _need_tensors(name, input, target):
    for arg, x in (("input", input), ("target", target)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}(): argument '{arg}' must be a Tensor, not "
                            f"{type(x).__name__}\n  hint: wrap it with tg.tensor(...)")
    if not input.dtype.is_floating_point:
        raise DTypeError(f"{name}: input must be floating point, got {describe(input)}\n"
                         "  hint: convert it, e.g. input.float()")


def _pointwise(name, input, target, strict=False):
    """Check an elementwise loss's operands; an integer target is cast to the input's dtype.

    Shapes that differ but broadcast are accepted with PyTorch's warning (strict: refused,
    as PyTorch's BCE does), since (N, 1) against (N,) silently makes an (N, N) loss.
    """
    _need_tensors(name, input, target)
    if target.shape != input.shape:
        hint = (f"make them the same shape, e.g. target.reshape({tuple(input.shape)}) or "
                "input.squeeze(-1)")
        try:
            broadcast_shapes(input.shape, target.shape)
        except ShapeError:
            strict = True
        if strict:
            raise _target_error(ShapeError, name, "target shape does not match the input shape"
                                f"{_disagreement(input.shape, target.shape)}", input, target,
                                hint)
        warnings.warn(f"{name}: using a target size {tuple(target.shape)} that is different to "
                      f"the input size {tuple(input.shape)}; they are broadcast, which is "
                      "likely wrong. Please ensure they have the same size.", UserWarning,
                      stacklevel=3)
    if not target.dtype.is_floating_point:
        target = target.to(input.dtype)
    return target


# ---- regression losses ----------------------------------------------------------------------
def mse_loss(input, target, reduction="mean"):
    """Mean squared error: (input - target)^2, reduced."""
    _check_reduction(reduction, "mse_loss")
    d = input - _pointwise("mse_loss", input, target)
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):
    """Mean absolute error |input - target|, reduced (gradient 0 where they are equal)."""
    _check_reduction(reduction, "l1_loss")
    return _reduce((input - _pointwise("l1_loss", input, target)).abs(), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta), with d = input - target."""
    _check_reduction(reduction, "huber_loss")
    if not delta > 0:  # NaN fails too
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got "
                           f"delta={delta}\n  hint: delta is where the loss turns from "
                           "quadratic to linear; pass a positive value (default 1.0)")
    d = input - _pointwise("huber_loss", input, target)
    ad = d.abs()
    return _reduce(where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (plain L1 for beta = 0)."""
    _check_reduction(reduction, "smooth_l1_loss")
    if not beta >= 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got "
                           f"beta={beta}\n  hint: pass beta >= 0 (0 gives the plain L1 loss)")
    d = input - _pointwise("smooth_l1_loss", input, target)
    ad = d.abs()
    if beta == 0:
        return _reduce(ad, reduction)
    return _reduce(where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta), reduction)


def kl_div(input, target, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise: input holds log-probabilities.

    reduction="batchmean" divides the sum by the batch size (the true KL divergence);
    "mean" averages over all elements, as PyTorch's does.
    """
    if reduction != "batchmean":
        _check_reduction(reduction, "kl_div")
    target = _pointwise("kl_div", input, target)
    if log_target:
        loss = _ew.exp(target) * (target - input)
    else:
        pos = target > 0  # 0 log 0 = 0 (xlogy); log only ever sees positive numbers
        loss = where(pos, target * _ew.log(where(pos, target, 1.0)), 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


# ---- binary cross entropy -------------------------------------------------------------------
# PyTorch's floor on x (1 - x) in the BCE gradient (x - t) / max(x (1 - x), eps): its C++
# constant is the float32 nearest 1e-12, which float64 gradients show.
_BCE_EPS = 9.999999960041972e-13


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-(t log x + (1 - t) log(1 - x)) for probabilities x, logs clamped at -100.

    As in PyTorch: an input outside [0, 1] raises, and the gradient is
    (x - t) / max(x (1 - x), 1e-12), finite at x = 0 and 1.
    """
    _check_reduction(reduction, "binary_cross_entropy")
    target = _pointwise("binary_cross_entropy", input, target, strict=True)
    log_x, log_1mx = _bce_logs(input, _check_probabilities(input))
    loss = -(target * log_x + (1 - target) * log_1mx)
    return _reduce(loss if weight is None else loss * weight, reduction)


def _check_probabilities(input):
    """Raise unless every element is in [0, 1] (NaN is not), as PyTorch does; return whether
    any is so near 0 or 1 that the gradient's floor applies (see _bce_logs).

    Two reductions and one host read; inside a CUDA graph capture, where no host read is
    allowed, the check is skipped and every element is treated as near an edge.
    """
    if cuda.is_current_stream_capturing():
        return True
    if not input.numel():
        return False
    x = input.detach()
    lo, hi = stack([x.amin(), x.amax()]).tolist()
    if not (0 <= lo and hi <= 1):
        found = "NaN" if lo != lo or hi != hi else f"values in [{lo:g}, {hi:g}]"
        raise RuntimeError(f"binary_cross_entropy: all elements of input should be between 0 "
                           f"and 1, found {found}\n  input: {describe(input)}\n  hint: pass "
                           "probabilities, e.g. sigmoid(logits), or pass the logits to "
                           "binary_cross_entropy_with_logits (more stable too)")
    return lo * (1 - lo) < _BCE_EPS or hi * (1 - hi) < _BCE_EPS  # x (1 - x) is least at an end


def _bce_logs(x, near_edge):
    """(log x, log(1 - x)) as PyTorch's BCE uses them.

    Their values are clamped at -100 (x = 0 or 1 gives a finite loss); their gradients are
    (1 - x) / D and -x / D with D = max(x (1 - x), 1e-12), so the loss's gradient is
    PyTorch's (x - t) / D. Where D > 1e-12 no clamp acts and these are the plain logs; log1p
    keeps log(1 - x) exact for small x.
    """
    if not near_edge:
        return _ew.log(x), _ew.log1p(-x)
    if x.dtype == dtypes.float16:  # 1 / eps overflows half precision: work in float32
        return tuple(y.to(x.dtype) for y in _bce_edge_logs(x.to(dtypes.float32)))
    return _bce_edge_logs(x)


def _bce_edge_logs(x):
    """_bce_logs where some element is near 0 or 1."""
    v = x.detach()
    inner = v * (1 - v) >= _BCE_EPS
    xs = where(inner, x, 0.5)  # the plain logs (and their gradients) only see inner points
    pos, below_one = v > 0, v < 1
    log_v = where(pos, _ew.log(where(pos, v, 1.0)), -100.0).clamp(min=-100.0)
    log_1mv = where(below_one, _ew.log1p(-where(below_one, v, 0.0)), -100.0).clamp(min=-100.0)
    # Near an edge: the clamped value, differentiated as (x - x^2 / 2) / eps and -x^2 / (2 eps).
    edge_log_x = log_v + _zero_with_gradient((x - x * x / 2) / _BCE_EPS)
    edge_log_1mx = log_1mv + _zero_with_gradient(-(x * x) / (2 * _BCE_EPS))
    return where(inner, _ew.log(xs), edge_log_x), where(inner, _ew.log1p(-xs), edge_log_1mx)


def _zero_with_gradient(f):
    """Exactly 0 in value, f's gradient in backward."""
    return f - f.detach()


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """BCE of sigmoid(input), computed as (1 - t) x - w log sigmoid(x): finite for any x.

    pos_weight (one value per class, the last dimension) weighs the positive term.
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    target = _pointwise("binary_cross_entropy_with_logits", input, target, strict=True)
    log_sig = _act.logsigmoid(input)
    if pos_weight is not None:
        log_sig = log_sig * ((pos_weight - 1) * target + 1)
    loss = (1 - target) * input - log_sig
    return _reduce(loss if weight is None else loss * weight, reduction)


# ---- class-index losses ---------------------------------------------------------------------
def _class_dim(name, input):
    if input.ndim == 0:
        raise ShapeError(f"{name}: input must have a class dimension, got {describe(input)}\n"
                         "  hint: pass scores of shape (C,), (N, C) or (N, C, d1, ...)")
    return 0 if input.ndim == 1 else 1


def _index_shape(input, cdim):
    return tuple(input.shape[:cdim]) + tuple(input.shape[cdim + 1:])


def _check_index_target(name, input, target, cdim):
    """Class indices: an integer tensor with the input's shape minus the class dimension."""
    want = _index_shape(input, cdim)
    if target.dtype.is_floating_point or target.dtype.name == "bool":
        raise _target_error(DTypeError, name, "class-index targets must be an integer tensor",
                            input, target, f"pass class indices as target.long(), shape {want}")
    if tuple(target.shape) != want:
        extra = (target.ndim == len(want) + 1 and tuple(target.shape[:cdim + 1]) ==
                 tuple(input.shape[:cdim]) + (1,))
        hint = (f"drop the extra dimension: target.squeeze({cdim})" if extra else
                f"class indices need shape {want} (one per sample); class probabilities "
                f"(float) need the input's shape {tuple(input.shape)}")
        raise _target_error(ShapeError, name, f"target shape {tuple(target.shape)} does not fit "
                            f"input shape {tuple(input.shape)}", input, target, hint)


def _check_classes(name, target, valid, n_classes, ignore_index):
    """A class index outside [0, C) (other than ignore_index) is an error, as in PyTorch."""
    bad = ((target < 0) | (target >= n_classes)) & valid
    if target.numel() and bool(bad.any().item()):
        value = int(target[bad].reshape(-1)[0].item())
        ignore = "" if ignore_index is None else f", or equal ignore_index={ignore_index}"
        raise IndexOutOfRange(f"{name}: target class index {value} is out of range for "
                              f"{n_classes} classes\n  hint: class indices must lie in "
                              f"[0, {n_classes - 1}]{ignore}")


def _check_weight(name, weight, n_classes):
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise ShapeError(f"{name}: weight should have one value per class, shape "
                         f"({n_classes},); got {describe(weight)}\n  hint: pass a 1-D tensor "
                         f"of {n_classes} class weights")


def _nll(name, logp, target, weight, ignore_index, cdim):
    """(-w[t] logp[t] per element, the weights w[t] that count, the mask of counted entries).

    w is None where every weight is 1 and the mask None where nothing is ignored: the common
    case (indices in range, ignore_index absent) then costs only a gather.
    """
    valid = _counted(name, target, logp.shape[cdim], ignore_index)
    if valid is None:
        loss = -gather(logp, cdim, target.unsqueeze(cdim)).squeeze(cdim)
        if weight is None:
            return loss, None, None
        w = weight[target]
        return loss * w, w, None
    safe = where(valid, target, 0)  # ignored entries read class 0, then count 0
    picked = gather(logp, cdim, safe.unsqueeze(cdim)).squeeze(cdim)
    w = valid.to(logp.dtype) if weight is None else weight[safe] * valid
    return -picked * w, w, valid


def _counted(name, target, n_classes, ignore_index):
    """The mask of targets that count, or None when all do; out-of-range indices raise.

    The check reads two numbers on the host; inside a CUDA graph capture, where that is not
    allowed, it is skipped and every target other than ignore_index counts.
    """
    if cuda.is_current_stream_capturing():
        return target != ignore_index
    if target.numel():
        lo, hi = int(target.min().item()), int(target.max().item())
        if 0 <= lo and hi < n_classes and not lo <= ignore_index <= hi:
            return None
    valid = target != ignore_index
    _check_classes(name, target, valid, n_classes, ignore_index)
    return valid


def _fused_nll(input, target, weight, ignore_index, cdim):
    """What _nll gives for logp = log_softmax(input), through one softmax_cross_entropy op:
    (loss, weights that count, mask of counted entries or None)."""
    valid = _counted("cross_entropy", target, input.shape[cdim], ignore_index)
    loss = softmax_cross_entropy(input, target, cdim, ignore_index)  # 0 where ignored
    if valid is None:
        w = None if weight is None else weight[target]
    else:
        w = valid.to(input.dtype) if weight is None else weight[where(valid, target, 0)] * valid
    return (loss if weight is None else loss * w), w, valid


def _weighted_reduce(loss, w, reduction, valid=None):
    """Reduce a class-index loss; "mean" divides by the summed weights w of counted targets.

    When every target is ignored, PyTorch's mean is 0/0 = NaN but its gradient 0 (ignored
    entries get none); dividing by the raw 0 would make the gradient inf * 0 = NaN, so the
    division sees 1 there and the NaN is put in afterwards (where passes it no gradient).
    Counted targets whose weights sum to 0 still give NaN gradients, as in PyTorch.
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if w is None:
        return loss.mean()
    if valid is None:
        return loss.sum() / w.sum()
    none_counted = ~valid.any()
    mean = loss.sum() / where(none_counted, 1.0, w.sum())
    return where(none_counted, float("nan"), mean)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log likelihood of log-probabilities `input` at class indices `target`.

    input (C,), (N, C) or (N, C, d1, ...); target (), (N,) or (N, d1, ...). A weighted mean
    divides by the sum of the weights of the non-ignored targets.
    """
    _check_reduction(reduction, "nll_loss")
    _need_tensors("nll_loss", input, target)
    cdim = _class_dim("nll_loss", input)
    _check_index_target("nll_loss", input, target, cdim)
    _check_weight("nll_loss", weight, input.shape[cdim])
    loss, w, valid = _nll("nll_loss", input, target, weight, ignore_index, cdim)
    return _weighted_reduce(loss, w, reduction, valid)


def _is_probability_target(input, target):
    if tuple(target.shape) == tuple(input.shape) and input.ndim > 0:
        if not target.dtype.is_floating_point:
            cdim = 0 if input.ndim == 1 else 1
            raise _target_error(
                DTypeError, "cross_entropy", "a target of the input's shape holds class "
                "probabilities and must be floating point", input, target,
                f"convert it with target.float(), or pass class indices of shape "
                f"{_index_shape(input, cdim)}")
        return True
    return False


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross entropy of logits `input` against class indices or class probabilities.

    input (C,), (N, C) or (N, C, d1, ...). target: integer class indices of the input's shape
    without the class dimension, or float probabilities of the input's shape. Computed
    through log_softmax, so large logits stay finite. label_smoothing mixes the target with
    the uniform distribution, as PyTorch defines it (weights included).

    >>> import tensorgrad as tg
    >>> import tensorgrad.nn.functional as F
    >>> round(F.cross_entropy(tg.tensor([[1e4, 0.0]]), tg.tensor([1])).item())
    10000
    """
    _check_reduction(reduction, "cross_entropy")
    _need_tensors("cross_entropy", input, target)
    cdim = _class_dim("cross_entropy", input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    _check_weight("cross_entropy", weight, input.shape[cdim])
    if _is_probability_target(input, target):
        logp = log_softmax(input, cdim)
        return _ce_probabilities(logp, target, weight, reduction, label_smoothing, cdim)
    if target.dtype.is_floating_point:
        raise _target_error(
            ShapeError, "cross_entropy", f"a float target is read as class probabilities, "
            f"which need the input's shape {tuple(input.shape)}", input, target,
            f"pass probabilities of shape {tuple(input.shape)}, or class indices as an "
            f"integer tensor of shape {_index_shape(input, cdim)} (e.g. target.argmax({cdim}))")
    _check_index_target("cross_entropy", input, target, cdim)
    if label_smoothing == 0:  # the common case: one fused op, no log_softmax tensor
        loss, w, valid = _fused_nll(input, target, weight, ignore_index, cdim)
        return _weighted_reduce(loss, w, reduction, valid)
    logp = log_softmax(input, cdim)
    loss, w, valid = _nll("cross_entropy", logp, target, weight, ignore_index, cdim)
    nll = _weighted_reduce(loss, w, reduction, valid)
    smooth = -(logp if weight is None else logp * _class_view(weight, logp, cdim)).sum(cdim)
    if valid is not None:
        smooth = smooth * valid  # only ignored entries drop out, not zero-weight ones
    smooth = _weighted_reduce(smooth, w, reduction, valid)
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / input.shape[cdim])


def _class_view(weight, input, cdim):
    return weight.reshape((-1,) + (1,) * (input.ndim - cdim - 1))


def _ce_probabilities(logp, target, weight, reduction, label_smoothing, cdim):
    n_classes = logp.shape[cdim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
    prod = logp * target
    if weight is not None:
        prod = prod * _class_view(weight, logp, cdim)
    if reduction == "none":
        return -prod.sum(cdim)
    total = -prod.sum()
    return total / (logp.numel() // n_classes) if reduction == "mean" else total


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """Multiclass hinge loss: sum over i != y of max(0, margin - x[y] + x[i])^p / C.

    input (N, C) or (C,), target (N,) or (); weight[y] scales each sample's terms.
    """
    _check_reduction(reduction, "multi_margin_loss")
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported, got {p}")
    _need_tensors("multi_margin_loss", input, target)
    if input.ndim > 2:
        raise ShapeError(f"multi_margin_loss: input must be (N, C) or (C,), got "
                         f"{describe(input)}\n  hint: flatten the extra dimensions first")
    cdim = _class_dim("multi_margin_loss", input)
    _check_index_target("multi_margin_loss", input, target, cdim)
    n_classes = input.shape[cdim]
    _check_weight("multi_margin_loss", weight, n_classes)
    _check_classes("multi_margin_loss", target, target == target, n_classes, None)
    idx = target.unsqueeze(cdim)
    z = _ew.relu(margin - gather(input, cdim, idx) + input)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * weight[idx]
    others = creation.arange(n_classes, device=input.device) != idx  # i != y
    return _reduce((z * others).sum(cdim) / n_classes, reduction)
