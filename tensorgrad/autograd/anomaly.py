"""Anomaly mode: `with tg.autograd.detect_anomaly():` finds the op that first makes a NaN.

While it is on, every recorded op remembers the user's line that created it (`Node.trace`),
and the checks below run after every recorded forward and every VJP:

- forward: the output has a NaN, or an Inf although every input (tensor, Python scalar or
  attribute) was finite. So `x.masked_fill(mask, float("-inf"))` and a softmax over it pass,
  while `log(0)`, `1 / 0` and float overflow do not.
- backward: a gradient the VJP returns has a NaN, or an Inf although the incoming gradient
  and the node's saved inputs and output were finite (`sqrt`'s gradient at 0, say).

Either raises `AnomalyError` naming the op (`LogBackward0` for a VJP), each operand's shape
and statistics (min and max of the finite entries, count of NaN and Inf) and the line that
created the node. The statistics are read on the host, which anomaly mode alone pays for.

Off (the default) it costs the one `graph._anomaly.enabled` check per recorded op that the
registry and the engine make anyway. The switch is process-wide, as in PyTorch.

Imports nothing from tensorgrad but errors and autograd.graph (installed into its seam).
"""

import functools
import sys

from ..errors import AnomalyError, format_location, frame_summary, user_frame
from . import graph


class _Anomaly(graph._AnomalyState):
    """The checks installed as `graph._anomaly`; `enabled` and `check_nan` are the switches."""

    def __init__(self):
        self.enabled = False
        self.check_nan = True

    def on_forward(self, node, inputs, out):
        if node.trace is None:
            frame = user_frame(sys._getframe(1))
            node.trace = frame_summary(frame) if frame is not None else ()
        if self.check_nan and _kind(out._array) and not _all_finite(out._array):
            _check_forward(node, inputs, out)

    def on_backward(self, node, g, grads):
        if not self.check_nan:
            return
        for i, gi in enumerate(grads):
            a = getattr(gi, "_array", None)  # a Function's selector hands on a bundle: skip it
            if a is not None and _kind(a) and not _all_finite(a):
                _check_backward(node, g, i, gi)


_state = graph._anomaly = _Anomaly()


# ---- the switches ----------------------------------------------------------------------------
def is_anomaly_enabled():
    """True while anomaly mode is on (off by default)."""
    return _state.enabled


def is_anomaly_check_nan_enabled():
    """True while anomaly mode checks for NaN and Inf (not only records where nodes came from)."""
    return _state.check_nan


class set_detect_anomaly:
    """Turn anomaly mode on or off: at once as a call, or for a block as a context manager.

    >>> import tensorgrad as tg
    >>> _ = tg.autograd.set_detect_anomaly(True)
    >>> tg.autograd.is_anomaly_enabled()
    True
    >>> _ = tg.autograd.set_detect_anomaly(False)
    """

    def __init__(self, mode, check_nan=True):
        self.prev = (_state.enabled, _state.check_nan)
        _state.enabled = bool(mode)
        _state.check_nan = bool(check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.enabled, _state.check_nan = self.prev
        return False


class detect_anomaly:
    """Context manager (and decorator) that turns anomaly mode on inside it.

    >>> import tensorgrad as tg
    >>> x = tg.tensor([0.0, 1.0], requires_grad=True)
    >>> with tg.autograd.detect_anomaly():
    ...     x.log()
    Traceback (most recent call last):
    ...
    tensorgrad.errors.AnomalyError: log: the forward output has 1 Inf from finite inputs...
    """

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self.prev = (_state.enabled, _state.check_nan)
        _state.enabled, _state.check_nan = True, bool(self.check_nan)
        return self

    def __exit__(self, *exc):
        _state.enabled, _state.check_nan = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)
        return wrapper


# ---- the checks ------------------------------------------------------------------------------
def _kind(a):
    # Only floating and complex arrays can hold NaN or Inf.
    return getattr(getattr(a, "dtype", None), "kind", "") in "fc"


def _all_finite(a):
    return bool(_xp(a).isfinite(a).all())


def _xp(a):
    mod = type(a).__module__.split(".")[0]
    return sys.modules.get(mod) or sys.modules["numpy"]


def _counts(a):
    """(NaN count, Inf count) of an array; (0, 0) for integer and bool arrays."""
    if not _kind(a):
        return 0, 0
    xp = _xp(a)
    return int(xp.isnan(a).sum()), int(xp.isinf(a).sum())


def _finite_value(x):
    """False for a NaN/Inf Python scalar, or a tensor (or array) with a NaN or Inf."""
    a = getattr(x, "_array", x)
    if isinstance(a, (float, complex)):
        return a == a and abs(a) != float("inf")
    return not _kind(a) or _all_finite(a)


def _check_forward(node, inputs, out):
    nan, inf = _counts(out._array)
    values = list(inputs) + [v for v in node.attrs.values() if isinstance(v, (float, complex))]
    finite_inputs = all(_finite_value(x) for x in values)
    if not nan and not finite_inputs:
        return  # an Inf made from an Inf (a -inf mask, a softmax over one): allowed
    what = f"{nan} NaN" if nan else f"{inf} Inf"
    lines = [f"{node.op.name}: the forward output has {what}" + (
        " from finite inputs" if finite_inputs else
        " (an input already had NaN or Inf: it was made outside the recorded graph, by the "
        "data or by an update under no_grad)")]
    lines += _operand_lines("input", list(inputs))
    lines.append(f"  output: {_stats(out._array)}")
    lines.append(f"  created at {_where(node)}")
    lines.append("  hint: " + _FORWARD_HINT)
    raise AnomalyError("\n".join(lines))


def _check_backward(node, g, i, gi):
    nan, inf = _counts(gi._array)
    incoming = list(g.grads) if hasattr(g, "grads") else [g]
    saved = list(node.inputs or ())
    if node.out_array is not None:
        saved.append(node.out_array)
    if not nan and not all(_finite_value(x) for x in incoming + saved if x is not None):
        return  # an Inf passed on from a non-finite gradient or saved value: not this VJP's
    what = f"{nan} NaN" if nan else f"{inf} Inf"
    lines = [f"{node.name()}: the gradient it returned for input {i} has {what}"]
    lines += _operand_lines("incoming gradient", incoming)
    lines += _operand_lines("saved", [x for x in saved if hasattr(x, "shape")])
    lines.append(f"  gradient for input {i}: {_stats(gi._array)}")
    lines.append(f"  the forward {node.op.name} was created at {_where(node)}")
    lines.append(f"  hint: {_BACKWARD_HINT}")
    raise AnomalyError("\n".join(lines))


_FORWARD_HINT = ("look for log/sqrt/division of zero or negative values and for overflow; "
                 "clamp the input (x.clamp(min=1e-12)), add an eps, or use the fused op "
                 "(log_softmax, cross_entropy, logsumexp)")
_BACKWARD_HINT = ("the forward was finite but its derivative is not at these inputs (sqrt or "
                  "pow at 0, a division by a tiny value); keep the input away from the "
                  "singular point (x.clamp(min=eps)) or add an eps inside the op")


def _operand_lines(label, xs):
    lines = []
    for k, x in enumerate(xs):
        a = getattr(x, "_array", x)
        name = label if len(xs) == 1 else f"{label} {k}"
        if hasattr(a, "shape"):
            lines.append(f"  {name}: {_stats(a)}")
        elif x is not None:
            lines.append(f"  {name}: {type(x).__name__} {x!r}")
    return lines


def _stats(a):
    """`(2, 3) float32: min -1.5, max 4, 1 NaN, 0 Inf` (min and max of the finite entries)."""
    head = f"{tuple(a.shape)} {a.dtype}"
    if a.size == 0:
        return head + ": empty"
    xp = _xp(a)
    if not _kind(a):
        return f"{head}: min {a.min().item()}, max {a.max().item()}"
    nan, inf = _counts(a)
    finite = a[xp.isfinite(a)]
    if a.dtype.kind == "c":
        finite = abs(finite)
    rng = (f"min {finite.min().item():.6g}, max {finite.max().item():.6g}" if finite.size
           else "no finite entries")
    return f"{head}: {rng}, {nan} NaN, {inf} Inf"


def _where(node):
    return format_location(node.trace) if node.trace else "(no line outside tensorgrad)"
