"""`tg.cuda`: is the GPU usable, how many devices, wait for them, how much memory the tensors
hold, and CUDA graphs, with PyTorch's names. Found through the registry: the backend serving
"cuda" (CuPy's, or a third party's) provides the memory and capture members as optional parts
of its protocol (backend_api.SupportsMemoryStats, SupportsGraphCapture). Where no GPU is
usable every call that needs one raises DeviceError saying why, as allocating there does.

>>> import tensorgrad as tg
>>> isinstance(tg.cuda.is_available(), bool)
True
"""

import threading

from . import backend_api
from .backend_api import CAP_CUDA_GRAPHS
from .errors import DeviceError


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


def _index(device, fn):
    """The GPU index `device` names: None (the current GPU), an int, "cuda:N" or a tg.device."""
    if device is None or (isinstance(device, int) and not isinstance(device, bool)):
        return device
    from .devices import as_device
    d = as_device(device)
    if d.type != "cuda":
        raise DeviceError(f"tg.cuda.{fn}: expected a cuda device, got {d}\n  hint: pass "
                          "None (the current GPU), an index, or 'cuda:N'")
    return d.index


def synchronize(device=None):
    """Wait until every queued kernel on `device` (default: the current GPU) has finished."""
    backend_api.usable_backend("cuda").synchronize(_index(device, "synchronize"))


def manual_seed(seed):
    if is_available():
        backend_api.get_backend("cuda").manual_seed(seed)


def manual_seed_all(seed):
    manual_seed(seed)


# ---- memory ---------------------------------------------------------------------------------
def _stats(fn, device):
    backend = backend_api.usable_backend("cuda")
    stats = backend_api.optional_member(backend, "memory_stats", f"tg.cuda.{fn}")
    return stats(_index(device, fn))


def memory_allocated(device=None):
    """Bytes of GPU memory held by live tensors on `device` (default: the current GPU).

    Counts the blocks tensorgrad's allocator hands out (CuPy's memory pool, rounded up to
    512 bytes), not the cache it keeps for reuse: that is `memory_reserved`.
    """
    return _stats("memory_allocated", device)["allocated_bytes"]


def max_memory_allocated(device=None):
    """The most bytes `memory_allocated` reached since the start or `reset_peak_memory_stats`.

    >>> import tensorgrad as tg
    >>> if tg.cuda.is_available():
    ...     tg.cuda.reset_peak_memory_stats()
    ...     x = tg.zeros(1024, 1024, device="cuda")
    ...     assert tg.cuda.max_memory_allocated() >= 4 * 1024 * 1024
    """
    return _stats("max_memory_allocated", device)["peak_allocated_bytes"]


def memory_reserved(device=None):
    """Bytes the allocator holds from the driver on `device`: live blocks and its cache."""
    return _stats("memory_reserved", device)["reserved_bytes"]


def reset_peak_memory_stats(device=None):
    """Start `max_memory_allocated` afresh from the current `memory_allocated`."""
    backend = backend_api.usable_backend("cuda")
    backend_api.optional_member(backend, "reset_peak_memory_stats",
                                "tg.cuda.reset_peak_memory_stats")(
        _index(device, "reset_peak_memory_stats"))


def empty_cache():
    """Give the allocator's cached, unused blocks back to the driver (other processes see the
    memory free again; tensors are untouched). Not allowed during a graph capture."""
    backend = backend_api.usable_backend("cuda")
    backend_api.optional_member(backend, "empty_cache", "tg.cuda.empty_cache")()


# ---- CUDA graphs ----------------------------------------------------------------------------
_capture = threading.local()  # .depth: captures in progress on this thread
_MODES = ("global", "thread_local", "relaxed")


def is_current_stream_capturing():
    """True inside `with tg.cuda.graph(...)` on this thread: nothing may read the GPU then."""
    return getattr(_capture, "depth", 0) > 0


def _graph_backend(what):
    backend = backend_api.usable_backend("cuda")
    if CAP_CUDA_GRAPHS not in getattr(backend, "capabilities", ()):
        raise DeviceError(f"{what}: the backend {backend.name!r} serving 'cuda' cannot capture "
                          f"CUDA graphs (it does not declare the {CAP_CUDA_GRAPHS!r} "
                          "capability)\n  hint: run the step eagerly")
    return backend


class CUDAGraph:
    """GPU work recorded once and replayed with one launch, as torch.cuda.CUDAGraph.

    Capture with `with tg.cuda.graph(g): ...` (or `capture_begin()` / `capture_end()`), then
    `g.replay()` reruns every kernel the block launched, on the same memory, without Python.
    Inputs and outputs are tensors that exist across replays ("static"): refill the inputs
    with `copy_` before a replay and read the outputs after it. See `graph` for the rules.
    `reset()` drops the graph and the memory it kept; capture again after it.
    """

    def __init__(self):
        self._backend = _graph_backend("tg.cuda.CUDAGraph()")
        self._handle = None  # a capture in progress
        self._graph = None   # the captured graph

    def capture_begin(self, pool=None, capture_error_mode="relaxed"):
        """Start recording the GPU work of this thread on a side stream of the default GPU."""
        if pool is not None:
            raise ValueError("CUDAGraph.capture_begin: sharing a memory pool between graphs "
                             "(pool=) is not supported; each graph keeps its own memory")
        if capture_error_mode not in _MODES:
            raise ValueError(f"CUDAGraph.capture_begin: capture_error_mode must be one of "
                             f"{', '.join(_MODES)}, got {capture_error_mode!r}")
        if self._handle is not None or self._graph is not None:
            raise DeviceError("CUDAGraph.capture_begin: this graph already holds a capture\n"
                              "  hint: call reset() first, or use a new CUDAGraph")
        from .devices import get_default_device
        default = get_default_device()
        index = default.index if default.type == "cuda" else 0
        begin = backend_api.optional_member(self._backend, "begin_graph_capture",
                                            "tg.cuda.CUDAGraph.capture_begin")
        self._handle = begin(index, capture_error_mode)
        _capture.depth = getattr(_capture, "depth", 0) + 1

    def capture_end(self):
        """Stop recording; the graph is then ready to `replay()`."""
        if self._handle is None:
            raise DeviceError("CUDAGraph.capture_end: no capture in progress\n  hint: call "
                              "capture_begin() first, or use `with tg.cuda.graph(g):`")
        handle, self._handle = self._handle, None
        _capture.depth -= 1
        end = backend_api.optional_member(self._backend, "end_graph_capture",
                                          "tg.cuda.CUDAGraph.capture_end")
        self._graph = end(handle)

    def replay(self):
        """Launch the captured work again (asynchronously, on the current stream)."""
        if self._graph is None:
            raise DeviceError("CUDAGraph.replay: nothing captured\n  hint: capture first with "
                              "`with tg.cuda.graph(g): ...`")
        self._graph.replay()

    def reset(self):
        """Drop the captured graph and the memory it kept alive."""
        if self._handle is not None:
            raise DeviceError("CUDAGraph.reset: a capture is in progress; end it first")
        self._graph = None

    def __repr__(self):
        state = "capturing" if self._handle is not None else (
            "captured" if self._graph is not None else "empty")
        return f"CUDAGraph({state})"


class graph:  # noqa: N801 - torch.cuda.graph's name
    """`with tg.cuda.graph(g):` records the block's GPU work into the CUDAGraph `g`.

    What runs inside is recorded, not executed; `g.replay()` executes it. So:
    - static shapes and static memory: the graph replays the kernels on the very arrays the
      capture used. Inputs are tensors made before the capture and refilled with
      `static_x.copy_(batch)`; outputs (the loss, the parameters) are read after `replay()`.
    - no host synchronisation inside: no `.item()`, `.tolist()`, `.numpy()`, `.cpu()`,
      printing a tensor, `bool(t)`, nor Python branches on tensor values; and no tensors
      made from host data (`tg.tensor(...)`, `.to("cuda")` of a CPU tensor): a replay would
      not copy them again. (cross_entropy skips its host-side check of the class indices
      inside a capture for this reason.)
    - warm up first: run the step eagerly once or more before capturing, so every kernel is
      compiled and loaded, cuBLAS has its workspace, and the optimizer state exists (Adam
      creates exp_avg on its first step).
    - gradients must stay in place: call `opt.zero_grad(set_to_none=False)` inside the
      capture, so backward accumulates into the same .grad arrays on every replay (the
      default, set_to_none=True, would leave a fresh array per capture that the replays no
      longer zero).
    - Python numbers are baked in: the learning rate, and Adam/AdamW's bias correction, which
      follows a step count kept in Python. A replayed Adam step reuses the count it was
      captured with; SGD, RMSprop and Adagrad without lr_decay do not depend on it. Re-capture
      after changing the learning rate.
    - memory: every block allocated during the capture stays reserved for the graph until
      `g.reset()` (CuPy's pool would otherwise hand a freed intermediate to another tensor
      while the graph still writes it). `capture_error_mode` defaults to "relaxed", not
      PyTorch's "global": the pool may have to cudaMalloc during the capture, which CUDA
      forbids in the other modes.
    pool= and stream= (sharing memory between graphs, choosing the side stream) are not
    supported. On a machine without a usable GPU, or with a backend lacking the
    "cuda_graphs" capability, building the CUDAGraph raises DeviceError saying why.

    Capturing a whole training step (forward, backward, optimizer) and replaying it:

    >>> import tensorgrad as tg
    >>> if tg.cuda.is_available():
    ...     model = tg.nn.Linear(8, 1).to("cuda")
    ...     opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ...     static_x, static_y = tg.randn(32, 8, device="cuda"), tg.randn(32, 1, device="cuda")
    ...     def step():
    ...         opt.zero_grad(set_to_none=False)
    ...         loss = tg.nn.functional.mse_loss(model(static_x), static_y)
    ...         loss.backward()
    ...         opt.step()
    ...         return loss
    ...     _ = step()                      # warm-up, eagerly
    ...     g = tg.cuda.CUDAGraph()
    ...     with tg.cuda.graph(g):
    ...         static_loss = step()
    ...     for _ in range(10):
    ...         static_x.copy_(tg.randn(32, 8, device="cuda"))
    ...         g.replay()                  # static_loss and the parameters update
    """

    def __init__(self, cuda_graph, pool=None, stream=None, capture_error_mode="relaxed"):
        if not isinstance(cuda_graph, CUDAGraph):
            raise TypeError(f"tg.cuda.graph: expected a tg.cuda.CUDAGraph, got "
                            f"{type(cuda_graph).__name__}")
        if stream is not None:
            raise ValueError("tg.cuda.graph: choosing the capture stream (stream=) is not "
                             "supported; the capture runs on a side stream of its own")
        self.cuda_graph = cuda_graph
        self.pool = pool
        self.capture_error_mode = capture_error_mode

    def __enter__(self):
        self.cuda_graph.capture_begin(self.pool, self.capture_error_mode)
        return self.cuda_graph

    def __exit__(self, exc_type, exc, tb):
        try:
            self.cuda_graph.capture_end()
        except Exception as end_error:
            self.cuda_graph.reset()
            if exc is None:
                raise DeviceError(f"tg.cuda.graph: the capture failed: {end_error}\n  hint: "
                                  "nothing inside may synchronise with the host (.item(), "
                                  ".cpu(), printing a tensor); warm up before capturing") \
                    from end_error
        if exc is not None:
            self.cuda_graph.reset()  # the body did not finish: the graph is incomplete
            if hasattr(exc, "add_note"):
                exc.add_note("(raised inside `with tg.cuda.graph(...)`: a capture records "
                             "work without running it, so nothing there may read the GPU "
                             "from the host: .item(), .cpu(), printing a tensor)")
        return False
