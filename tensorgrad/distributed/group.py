"""The default process group: starting it, asking it for rank and size, tearing it down.

`init_process_group` imports mpi4py (which starts MPI) only when called, so `import
tensorgrad` never needs MPI. It takes the rank and world size from the MPI communicator,
builds the backend's group (`mpi.MPIGroup` or `nccl.NCCLGroup`) and installs an excepthook
that aborts the whole MPI job when a rank dies of an uncaught exception: without it the other
ranks would wait forever in their next collective.

Imports tensorgrad's errors and backend_api, and mpi4py lazily; never numpy, cupy nor a
backend module.
"""

import enum
import os
import sys

from .. import backend_api
from ..errors import TensorGradError

BACKENDS = ("mpi", "nccl")
_MPI_HINT = "pip install -e .[distributed]  (installs mpi4py and Open MPI from wheels)"


class DistributedError(TensorGradError, RuntimeError):
    """The process group is missing, misused, or cannot start on this machine."""


class ReduceOp(enum.Enum):
    """How `all_reduce` and `reduce_scatter` combine the ranks' values, as torch's ReduceOp."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MAX = "max"
    MIN = "min"

    def __repr__(self):
        return f"ReduceOp.{self.name}"


class Work:
    """The handle an asynchronous collective returns (`async_op=True`), as torch's Work.

    `is_completed()` polls the transport once (for MPI, `Request.Test()`, which is also what
    lets MPI make progress) and `wait()` blocks until the result is in the tensor. Whatever
    has to happen after the transfer (copying back from a staging buffer, dividing for AVG)
    runs exactly once, on whichever of the two first sees the transfer done.
    """

    def __init__(self, poll, block, finish=None):
        self._poll, self._block, self._finish = poll, block, finish
        self._done = False

    def _complete(self):
        self._done = True
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()

    def is_completed(self):
        if not self._done and self._poll():
            self._complete()
        return self._done

    def wait(self):
        if not self._done:
            self._block()
            self._complete()
        return True


class _State:
    group = None       # the backend's group object (MPIGroup or NCCLGroup)
    hook = None        # the excepthook we installed, to restore the previous one


def import_mpi():
    """mpi4py's MPI module (importing it starts MPI); a clear error naming the extra if absent."""
    # Open MPI's default non-blocking allreduce (a binomial tree) runs 2-9x slower than its
    # blocking one on 1-10 MB buffers; DDP's buckets use it, so ask for the ring unless the
    # user chose. Read by Open MPI when MPI starts, i.e. on this import.
    os.environ.setdefault("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring")
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ModuleNotFoundError(
            f"tensorgrad.distributed needs mpi4py and an MPI runtime, which are not installed "
            f"({e})\n  hint: {_MPI_HINT}", name="mpi4py") from e
    return MPI


def init_process_group(backend="mpi", *, comm=None):
    """Join the process group of every rank `mpiexec` started (or of `comm`'s ranks).

    `backend="mpi"` runs the collectives through mpi4py on host buffers; `"nccl"` runs them
    with NCCL on each rank's GPU (one GPU per rank on a node). Launch with
    `mpiexec -n N python train.py`.

    >>> import tensorgrad as tg
    >>> tg.distributed.is_initialized()
    False
    """
    if _State.group is not None:
        raise DistributedError("init_process_group: the process group is already initialized"
                               "\n  hint: call destroy_process_group() first")
    if backend not in BACKENDS:
        raise ValueError(f"init_process_group: unknown backend {backend!r}; "
                         f"expected one of {', '.join(map(repr, BACKENDS))}")
    if backend == "nccl":
        _check_gpus_present()
    MPI = import_mpi()
    parent = MPI.COMM_WORLD if comm is None else comm
    _install_abort_hook(MPI, parent.Get_rank())
    group_comm = parent.Dup()  # our collectives never match the user's messages on `parent`
    # On failure the duplicate is not freed: freeing may wait for ranks that will never come,
    # and the error, if uncaught, aborts the job anyway.
    _State.group = _make_group(backend, MPI, group_comm)


def _make_group(backend, MPI, comm):
    if backend == "nccl":
        from .nccl import NCCLGroup
        return NCCLGroup(MPI, comm)
    from .mpi import MPIGroup
    return MPIGroup(MPI, comm)


def _check_gpus_present():
    ok, reason = backend_api.availability("cuda")
    if not ok:
        raise DistributedError(
            f"init_process_group: backend='nccl' needs a CUDA GPU for every rank, but CUDA is "
            f"not usable here: {reason}\n  hint: use backend='mpi' on machines without GPUs")


def _install_abort_hook(MPI, rank):
    previous = sys.excepthook

    def abort_on_uncaught(exc_type, exc, tb):
        try:
            previous(exc_type, exc, tb)  # the rank's traceback, as Python would print it
            sys.stderr.write(f"tensorgrad.distributed: rank {rank} raised an uncaught "
                             f"{exc_type.__name__}; aborting the MPI job so that the other "
                             "ranks do not wait for it forever\n")
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            MPI.COMM_WORLD.Abort(1)

    abort_on_uncaught.previous = previous
    sys.excepthook = _State.hook = abort_on_uncaught


def destroy_process_group():
    """Leave the process group (collective: every rank calls it) and restore the excepthook."""
    group = require_group("destroy_process_group")
    _State.group = None
    try:
        group.close()
    finally:
        if _State.hook is not None and sys.excepthook is _State.hook:
            sys.excepthook = _State.hook.previous
        _State.hook = None


def is_initialized():
    """True between `init_process_group` and `destroy_process_group`."""
    return _State.group is not None


def require_group(op):
    """The current group; DistributedError saying so when `init_process_group` was not called."""
    if _State.group is None:
        raise DistributedError(
            f"{op}: the default process group has not been initialized\n  hint: call "
            "tg.distributed.init_process_group('mpi') first, and launch the script with "
            "`mpiexec -n N python script.py`")
    return _State.group


def get_rank():
    """This process's rank in the group, 0 .. world_size - 1."""
    return require_group("get_rank").rank


def get_world_size():
    """The number of processes in the group."""
    return require_group("get_world_size").world_size


def get_backend():
    """The group's backend name: "mpi" or "nccl"."""
    return require_group("get_backend").name
