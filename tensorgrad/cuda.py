"""`tg.cuda`: is the GPU usable, how many devices, wait for them. Found through the registry.

>>> import tensorgrad as tg
>>> isinstance(tg.cuda.is_available(), bool)
True
"""

from . import backend_api


def is_available():
    """True when a CUDA backend is installed, CuPy imports and a GPU is visible."""
    ok, _ = backend_api.availability("cuda")
    return ok


def why_unavailable():
    """The reason `is_available()` is False ('' when it is True)."""
    ok, reason = backend_api.availability("cuda")
    return "" if ok else reason


def device_count():
    if not is_available():
        return 0
    backend = backend_api.get_backend("cuda")
    return backend.device_count() if hasattr(backend, "device_count") else 1


def synchronize(device=None):
    """Wait until every queued kernel on `device` (default: the current GPU) has finished."""
    from .devices import as_device
    index = None if device is None else as_device(device).index
    backend_api.usable_backend("cuda").synchronize(index)


def manual_seed(seed):
    if is_available():
        backend_api.get_backend("cuda").manual_seed(seed)


def manual_seed_all(seed):
    manual_seed(seed)
