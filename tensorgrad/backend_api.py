"""The Backend protocol and the registry through which core finds backends.

A backend serves one or more device types ("cpu", "cuda", ...). It gives an array namespace
`xp` (NumPy-compatible), transfers, a device context, `synchronize`, a seeded generator,
`availability() -> (ok, reason)`, optional op overrides and capability flags.

Backends are found through the entry-point group `tensorgrad.backends` (the built-ins are
registered there exactly as a third-party backend is) or registered at run time with
`register_backend`. Core never imports a backend module by name: backends import core, not
the other way round. Entry points are read lazily, on the first lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from .errors import DeviceError

ENTRY_POINT_GROUP = "tensorgrad.backends"

# Capability flags a backend may declare in `capabilities`.
CAP_FUSED_OPTIM = "fused_optimizer_updates"
CAP_CUDA_GRAPHS = "cuda_graphs"
CAP_DLPACK = "dlpack"


@runtime_checkable
class Backend(Protocol):
    """What a backend provides. See `backends/__init__.py` for how to write one."""

    name: str
    device_types: tuple[str, ...]
    capabilities: frozenset[str]
    # op name -> forward(xp, *arrays, **attrs); must give the generic op's numbers.
    overrides: Mapping[str, Callable[..., Any]]

    @property
    def xp(self) -> Any: ...

    def availability(self) -> tuple[bool, str]: ...

    def device_context(self, index: int | None) -> Any: ...

    def synchronize(self, index: int | None = None) -> None: ...

    def asarray(self, data: Any, dtype: Any, index: int | None) -> Any: ...

    def to_numpy(self, array: Any) -> Any: ...

    def from_dlpack(self, obj: Any, index: int | None) -> Any: ...

    def generator(self, index: int | None) -> Any: ...

    def manual_seed(self, seed: int) -> None: ...


# ---- optional members ------------------------------------------------------------------------
# A backend may also provide these; they are not part of `Backend` (a backend without them still
# conforms), and `tg.cuda` asks for them by name through `optional_member`, which says which is
# missing. The CuPy backend provides all of them.
@runtime_checkable
class SupportsMemoryStats(Protocol):
    """Device-memory accounting behind tg.cuda.memory_allocated and friends.

    `memory_stats(index)` returns at least {"allocated_bytes": bytes held by live arrays now,
    "peak_allocated_bytes": the most held at once since the start or the last reset,
    "reserved_bytes": bytes the allocator holds from the driver, cached blocks included}.
    """

    def memory_stats(self, index: int | None) -> Mapping[str, int]: ...

    def reset_peak_memory_stats(self, index: int | None) -> None: ...

    def empty_cache(self) -> None: ...


@runtime_checkable
class SupportsGraphCapture(Protocol):
    """Stream capture behind tg.cuda.CUDAGraph (a backend declaring CAP_CUDA_GRAPHS has it).

    `begin_graph_capture(index, mode)` makes a capturing stream current on device `index`
    (mode: "global", "thread_local" or "relaxed") and returns a handle; every allocation made
    until the capture ends must stay alive as long as the graph. `end_graph_capture(handle)`
    ends it (also after an error inside, so the stream leaves capture mode) and returns an
    object with `replay()` (launch on the current stream) that owns those allocations.
    """

    def begin_graph_capture(self, index: int | None, mode: str) -> Any: ...

    def end_graph_capture(self, handle: Any) -> Any: ...


def optional_member(backend, member, purpose):
    """`backend.member`, or a DeviceError naming the backend, the member and what needs it."""
    found = getattr(backend, member, None)
    if found is None:
        raise DeviceError(f"{purpose}: backend {backend.name!r} does not provide {member}()\n"
                          "  hint: it is an optional member of the backend protocol (see "
                          "tensorgrad.backend_api.SupportsMemoryStats / SupportsGraphCapture)")
    return found


_backends: dict[str, Backend] = {}   # name -> backend
_by_type: dict[str, Backend] = {}    # device type -> backend
_load_errors: dict[str, str] = {}    # entry point name -> why it failed to load
_entry_points_read = False
_seed: int | None = None


def register_backend(backend, *, replace=False):
    """Register a backend instance (or class, instantiated with no arguments) at run time.

    Device types it serves must not be served already, unless `replace=True`.
    """
    if isinstance(backend, type):
        backend = backend()
    # Looked up on the class: touching `xp` on the instance may import CuPy.
    missing = [a for a in ("name", "device_types", "xp", "availability", "asarray", "to_numpy")
               if not hasattr(type(backend), a) and a not in vars(backend)]
    if missing:
        raise TypeError(f"register_backend: {type(backend).__name__} lacks {', '.join(missing)}"
                        " of the Backend protocol (tensorgrad.backend_api.Backend)")
    _read_entry_points()
    for t in backend.device_types:
        old = _by_type.get(t)
        if old is not None and old.name != backend.name and not replace:
            raise DeviceError(f"register_backend: device type {t!r} is already served by "
                              f"backend {old.name!r}\n  hint: pass replace=True to override it")
    _backends[backend.name] = backend
    for t in backend.device_types:
        _by_type[t] = backend
    _forget_cached(backend.device_types)
    if _seed is not None and hasattr(backend, "manual_seed"):
        backend.manual_seed(_seed)
    return backend


def unregister_backend(name):
    """Remove a backend registered under `name` (tests use this to clean up)."""
    backend = _backends.pop(name, None)
    if backend is not None:
        for t in backend.device_types:
            if _by_type.get(t) is backend:
                del _by_type[t]
        _forget_cached(backend.device_types)


def _forget_cached(device_types):
    # Dispatch caches each device's backend on its canonical device object (devices.as_device).
    from .devices import _CANONICAL
    for (kind, _), dev in _CANONICAL.items():
        if kind in device_types:
            dev._backend = None


def _read_entry_points():
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _backends:
            continue
        try:
            register_backend(ep.load())
        except Exception as e:  # noqa: BLE001 - kept and reported when the device is asked for
            _load_errors[ep.name] = f"{type(e).__name__}: {e}"


_SHADOW_HINT = (
    "no backend is registered under the entry-point group 'tensorgrad.backends'.\n"
    "  hint: install the project with `pip install -e .` (an uninstalled source tree, or a\n"
    "  repository root placed first on sys.path, e.g. by `python -m pytest`, shadows the\n"
    "  installed package and hides its entry points)")


def get_backend(device_type):
    """The backend serving `device_type`; DeviceError saying why when there is none."""
    backend = _by_type.get(device_type)
    if backend is not None:
        return backend
    _read_entry_points()
    backend = _by_type.get(device_type)
    if backend is not None:
        return backend
    if not _backends:
        raise DeviceError(_SHADOW_HINT)
    why = "; ".join(f"{k}: {v}" for k, v in _load_errors.items())
    raise DeviceError(f"no backend serves device type {device_type!r}"
                      + (f" (backends that failed to load: {why})" if why else "")
                      + f"\n  hint: known device types are {', '.join(sorted(_by_type))}")


def known_device_types():
    _read_entry_points()
    return set(_by_type) | {"cuda"}  # "cuda" is always a known name, usable or not


def availability(device_type):
    """`(ok, reason)` for a device type, never raising."""
    try:
        backend = get_backend(device_type)
    except DeviceError as e:
        if device_type == "cuda":
            return False, ("the GPU backend is not installed: " + str(e).splitlines()[0]
                           + "\n  hint: pip install -e .[cuda12] (or .[cuda13])")
        return False, e.message
    return backend.availability()


def usable_backend(device_type):
    """The backend for `device_type`, checked usable; DeviceError with its reason if not."""
    backend = get_backend(device_type) if device_type != "cuda" else None
    if backend is None:
        ok, reason = availability("cuda")
        if not ok:
            raise DeviceError(f"device 'cuda' is not usable: {reason}")
        backend = _by_type["cuda"]
    else:
        ok, reason = backend.availability()
        if not ok:
            raise DeviceError(f"device {device_type!r} is not usable: {reason}")
    return backend


def registered_backends():
    """Name -> backend for every registered backend."""
    _read_entry_points()
    return dict(_backends)


def manual_seed(seed):
    """Seed every registered backend's generator (and backends registered later)."""
    global _seed
    _seed = int(seed)
    for backend in registered_backends().values():
        ok, _ = backend.availability()
        if ok:
            backend.manual_seed(_seed)


def device_context(backend, index):
    """The backend's device context, or a no-op context for backends without one."""
    ctx = getattr(backend, "device_context", None)
    return nullcontext() if ctx is None else ctx(index)
