"""`tg.distributed`: a process group over MPI ranks and collectives on tensors, with
torch.distributed's names.

>>> import tensorgrad as tg
>>> import tensorgrad.distributed as dist
>>> dist.is_initialized()
False

Launch one process per rank with MPI, e.g. `mpiexec -n 4 python train.py`; each calls
`dist.init_process_group("mpi")` (or `"nccl"` for one GPU per rank) and then collectives:

    dist.init_process_group("mpi")
    t = tg.full((3,), float(dist.get_rank()))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)     # in place, on every rank
    work = dist.all_reduce(g, async_op=True)     # overlap: poll work.is_completed(), then wait()
    dist.destroy_process_group()

Backends: "mpi" passes the tensors' buffers to mpi4py (CPU tensors without a copy when
contiguous; GPU tensors through a host staging copy, which works with any MPI build), see
`tensorgrad/distributed/mpi.py`; "nccl" runs NCCL through CuPy on the tensors' CUDA stream,
see `tensorgrad/distributed/nccl.py`. mpi4py is imported by `init_process_group`, not here:
`pip install -e .[distributed]` installs it with Open MPI. After `init_process_group`, an
uncaught exception on any rank prints that rank's traceback and aborts the whole job
(`MPI_Abort`), instead of leaving the other ranks waiting forever.

Core-level package: imports tensorgrad's core modules only; never numpy, cupy (the nccl
module imports `cupy.cuda.nccl` lazily) nor a backend module.
"""

from .collectives import all_gather, all_reduce, barrier, broadcast, reduce_scatter
from .group import (
    DistributedError,
    ReduceOp,
    Work,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
)

__all__ = [
    "DistributedError", "ReduceOp", "Work", "all_gather", "all_reduce", "barrier", "broadcast",
    "destroy_process_group", "get_backend", "get_rank", "get_world_size", "init_process_group",
    "is_initialized", "reduce_scatter",
]
