"""The `tg.device` value and the default-device rules.

The default device comes from, in order: the innermost `with tg.device(...)` block,
`tg.set_default_device(...)`, the environment variable `TENSORGRAD_DEVICE`, else "cpu".
"auto" resolves, when the device is built, to "cuda" if a GPU is usable, else "cpu".
A device never checks that it is usable when built (only "auto" asks); allocating on it does.

Knows the backend registry only by name (backend_api), never a backend module.
"""

import os
import threading

from .errors import DeviceError

ENV_VAR = "TENSORGRAD_DEVICE"


class device:
    """A device such as `tg.device("cpu")` or `tg.device("cuda:1")`; also a context manager.

    >>> import tensorgrad as tg
    >>> str(tg.device("cuda:1")), tg.device("cpu") == "cpu"
    ('cuda:1', True)
    """

    __slots__ = ("type", "index", "_backend")

    def __init__(self, spec, index=None):
        self._backend = None  # cached by dispatch on the canonical instances (as_device)
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise DeviceError(f"device: expected a string like 'cpu' or 'cuda:0', got {spec!r}")
        spec = spec.strip().lower()
        if spec == "auto":
            spec = _resolve_auto()
        kind, _, num = spec.partition(":")
        if num:
            if not num.isdigit() or index is not None:
                raise DeviceError(f"device: cannot parse {spec!r}\n"
                                  "  hint: write 'cpu', 'cuda' or 'cuda:N'")
            index = int(num)
        if not kind.isidentifier():
            raise DeviceError(f"device: cannot parse {spec!r}\n"
                              "  hint: write 'cpu', 'cuda' or 'cuda:N'")
        _check_known(kind, spec)
        self.type = kind
        self.index = index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + (
            ")" if self.index is None else f", index={self.index})")

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except DeviceError:
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))

    def __enter__(self):
        _state.stack.append(self)
        return self

    def __exit__(self, *exc):
        _state.stack.pop()
        return False


def _check_known(kind, spec):
    from . import backend_api
    if kind not in backend_api.known_device_types():
        choices = ", ".join(sorted(backend_api.known_device_types()))
        raise DeviceError(f"device: unknown device type {spec!r}\n"
                          f"  hint: known device types are {choices} (and 'auto')")


def _resolve_auto():
    from . import backend_api
    ok, _ = backend_api.availability("cuda")
    return "cuda" if ok else "cpu"


class _State(threading.local):
    def __init__(self):
        self.stack = []


_state = _State()
_default = None  # set by set_default_device


def set_default_device(spec):
    """Make `spec` the device new tensors are created on (None: back to the env/cpu rule)."""
    global _default
    _default = None if spec is None else device(spec)


def get_default_device():
    """The device new tensors go to, by the rule in this module's docstring."""
    if _state.stack:
        return _state.stack[-1]
    if _default is not None:
        return _default
    env = os.environ.get(ENV_VAR)
    if not env:
        return _CPU
    try:
        return device(env)
    except DeviceError as e:
        raise DeviceError(f"{ENV_VAR}={env!r} is not a valid device\n  {e.message}\n"
                          "  hint: set it to 'cpu', 'cuda', 'cuda:N' or 'auto'") from None


def as_device(spec):
    """`None` → the default device; a string or device → the canonical device object.

    Tensors carry canonical devices (one object per device), so dispatch compares them with
    `is`. Off the CPU they always carry an index ("cuda:0"), as PyTorch's do.
    """
    if spec is None:
        d = get_default_device()
    elif isinstance(spec, device):
        d = spec
    else:
        d = device(spec)
    index = None if d.type == "cpu" else (d.index or 0)
    canonical = _CANONICAL.get((d.type, index))
    if canonical is None:
        canonical = _CANONICAL[(d.type, index)] = device(d.type, index)
    return canonical


_CANONICAL = {}


_CPU = device.__new__(device)
_CPU.type, _CPU.index, _CPU._backend = "cpu", None, None
