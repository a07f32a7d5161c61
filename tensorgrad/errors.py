"""The error tree of tensorgrad, and the helpers that format its messages.

Every error is a `TensorGradError` and also the built-in exception a Python user would catch
(`ShapeError` is a `ValueError` for NumPy users and a `RuntimeError` for PyTorch users).
Messages have three parts: what failed and in which op; each operand's shape, dtype and
device; and a `hint:` saying what would fit. An error tensorgrad raises also points, on its
second line, at the user's line that called the op: the first stack frame outside this
package (`  at train.py:42 in forward: y = self.fc(x)`).

This module imports nothing from tensorgrad: every other module may raise these.
"""

import linecache
import os
import sys

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_frame(frame):
    """The first frame at or above `frame` whose code lies outside tensorgrad, or None."""
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return frame


def frame_summary(frame):
    """`(file, line, function)` of a frame, kept instead of the frame (which pins locals)."""
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name


def format_location(where):
    """`file:line in function: source text`; the source is read only when shown."""
    filename, lineno, func = where
    text = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno} in {func}" + (f": {text}" if text else "")


class TensorGradError(Exception):
    """Base class of every error tensorgrad raises on purpose.

    Built inside tensorgrad, it remembers the user's line that led there and shows it after
    the first line of the message; built by user code, it shows just its message.
    """

    _where = None

    def __init__(self, *args):
        super().__init__(*args)
        caller = sys._getframe(1)
        while caller.f_code.co_filename == __file__:  # op_error and subclasses' __init__
            caller = caller.f_back
        if caller.f_code.co_filename.startswith(_PACKAGE):
            frame = user_frame(caller)
            if frame is not None:
                self._where = frame_summary(frame)

    @property
    def message(self):
        """The message without the location line (for wrapping in another error)."""
        return Exception.__str__(self)  # not KeyError's, which would quote it

    def __str__(self):
        text = self.message
        if self._where is None:
            return text
        first, sep, rest = text.partition("\n")
        return f"{first}\n  at {format_location(self._where)}{sep}{rest}"


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


class StateDictError(TensorGradError, KeyError, RuntimeError):
    """A strict `load_state_dict` met missing or unexpected keys. PyTorch raises RuntimeError
    there; a KeyError too, so code written for either catches it."""


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
