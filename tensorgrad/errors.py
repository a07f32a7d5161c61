"""The error tree of tensorgrad, and the helpers that format its messages.

Every error is a `TensorGradError` and also the built-in exception a Python user would catch
(`ShapeError` is a `ValueError` for NumPy users and a `RuntimeError` for PyTorch users).
Messages have three parts: what failed and in which op; each operand's shape, dtype and
device; and a `hint:` saying what would fit.

This module imports nothing from tensorgrad: every other module may raise these.
"""


class TensorGradError(Exception):
    """Base class of every error tensorgrad raises on purpose."""


class ShapeError(TensorGradError, ValueError, RuntimeError):
    """Operand shapes do not fit the op (or a VJP returned a wrongly shaped gradient)."""


class DeviceError(TensorGradError, RuntimeError):
    """A device is unusable, unknown, or two operands live on different devices."""


class DTypeError(TensorGradError, TypeError, RuntimeError):
    """Operand dtypes do not fit the op."""


class GraphError(TensorGradError, RuntimeError):
    """The autograd graph cannot be used as asked (freed, modified in place, ...)."""


class AnomalyError(TensorGradError, RuntimeError):
    """Anomaly mode found a NaN, or an Inf made from finite inputs."""


class CheckpointError(TensorGradError, ValueError):
    """A checkpoint file is truncated, tampered with, or not a safetensors file."""


def describe(x):
    """One operand as `(shape) dtype on device`, for error messages."""
    shape = getattr(x, "shape", None)
    if shape is None:
        return f"{type(x).__name__} {x!r}"
    dtype = getattr(x, "dtype", "?")
    device = getattr(x, "device", "?")
    return f"{tuple(shape)} {dtype} on {device}"


def op_error(cls, op, problem, operands=(), hint=None):
    """Build `cls` with the three-part message: op and problem, operands, hint."""
    lines = [f"{op}: {problem}"]
    for i, x in enumerate(operands):
        lines.append(f"  operand {i}: {describe(x)}")
    if hint:
        lines.append(f"  hint: {hint}")
    return cls("\n".join(lines))
