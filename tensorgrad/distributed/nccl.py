"""The "nccl" backend: collectives with NCCL (through `cupy.cuda.nccl`) on CUDA tensors.

Each rank drives one GPU: rank r uses GPU `local_rank` of its node, where `local_rank` is r's
rank among the ranks sharing the node (MPI's shared-memory split), so a node needs at least
as many GPUs as it runs ranks. Rank 0 makes NCCL's unique id and broadcasts it over MPI (a
128-byte tuple, the only thing that is pickled), then every rank joins the communicator.

Collectives are queued on the current CuPy stream of the tensor's device, the stream
tensorgrad's ops run on, so they are ordered after the kernels that produced the tensor and
before those that read the result, without a host synchronisation. A non-contiguous tensor
goes through a contiguous copy on the same stream. `Work.wait()` makes the current stream
wait for the collective (as PyTorch's NCCL Work does); `is_completed()` polls a CUDA event.
`barrier()` synchronises the stream, then meets the other ranks on MPI.

CuPy is imported lazily, inside `NCCLGroup.__init__`: the layering test allows
`cupy.cuda.nccl` here and only inside a function. Imports tensorgrad's backend_api and group.
"""

from .. import backend_api
from .group import DistributedError, ReduceOp, Work

# NumPy/CuPy dtype names -> NCCL datatype constant names (bool goes over as uint8).
_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32",
               "int64": "NCCL_INT64", "uint32": "NCCL_UINT32", "uint64": "NCCL_UINT64",
               "bool": "NCCL_UINT8"}


class NCCLGroup:
    name = "nccl"

    def __init__(self, MPI, comm):
        nccl = _import_nccl()
        self.MPI, self.comm, self.nccl = MPI, comm, nccl
        self.rank, self.world_size = comm.Get_rank(), comm.Get_size()
        self.backend = backend_api.usable_backend("cuda")
        self.cp = self.backend.xp
        self.device_index = _local_gpu(MPI, comm, self.backend)
        self.cp.cuda.Device(self.device_index).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = comm.bcast(uid, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.world_size, uid, self.rank)
        self._ops = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.PRODUCT: nccl.NCCL_PROD,
                     ReduceOp.MAX: nccl.NCCL_MAX, ReduceOp.MIN: nccl.NCCL_MIN}
        # NCCL >= 2.10 averages itself; older ones sum, and we divide on the same stream.
        self._native_avg = nccl.NCCL_AVG if nccl.get_version() >= 21000 else None

    def close(self):
        self.nccl_comm.destroy()
        self.comm.Free()

    # -- collectives -----------------------------------------------------------------------
    def all_reduce(self, tensor, op, async_op):
        with self._on_device(tensor, "all_reduce") as (arr, stream):
            buf = _contiguous(arr)
            nop, divide = self._nccl_op(op, buf.dtype)
            self.nccl_comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._type(buf),
                                     nop, stream.ptr)
            self._finish(tensor, arr, buf, divide)
            return self._work(stream, async_op)

    def broadcast(self, tensor, src, async_op):
        with self._on_device(tensor, "broadcast") as (arr, stream):
            buf = _contiguous(arr)
            self.nccl_comm.bcast(buf.data.ptr, buf.size, self._type(buf), src, stream.ptr)
            self._finish(tensor, arr, buf, False)
            return self._work(stream, async_op)

    def all_gather(self, outputs, tensor, async_op):
        with self._on_device(tensor, "all_gather") as (arr, stream):
            send = _contiguous(arr)
            recv = self.cp.empty((self.world_size,) + send.shape, dtype=send.dtype)
            self.nccl_comm.allGather(send.data.ptr, recv.data.ptr, send.size, self._type(send),
                                     stream.ptr)
            for out, piece in zip(outputs, recv):
                self._finish(out, out._array, piece, False)
            return self._work(stream, async_op)

    def reduce_scatter(self, output, inputs, op, async_op):
        with self._on_device(output, "reduce_scatter") as (arr, stream):
            send = self.cp.stack([t._array for t in inputs])
            recv = _contiguous(arr)
            nop, divide = self._nccl_op(op, send.dtype)
            self.nccl_comm.reduceScatter(send.data.ptr, recv.data.ptr, recv.size,
                                         self._type(send), nop, stream.ptr)
            self._finish(output, arr, recv, divide)
            return self._work(stream, async_op)

    def barrier(self, async_op):
        with self.cp.cuda.Device(self.device_index):
            self.cp.cuda.get_current_stream().synchronize()
        if not async_op:
            self.comm.Barrier()
            return None
        request = self.comm.Ibarrier()
        return Work(request.Test, request.Wait)

    # -- helpers ---------------------------------------------------------------------------
    def _on_device(self, tensor, op):
        if tensor.device.type != "cuda":
            raise DistributedError(
                f"{op}: backend='nccl' works on CUDA tensors, got one on {tensor.device}\n  "
                f"hint: move it with .to('cuda:{self.device_index}'), or use backend='mpi'")
        if (tensor.device.index or 0) != self.device_index:
            raise DistributedError(
                f"{op}: this rank's NCCL communicator drives cuda:{self.device_index} (its rank "
                f"on the node), but the tensor is on {tensor.device}\n  hint: create the "
                f"rank's tensors and model on 'cuda:{self.device_index}'")
        return _DeviceScope(self, tensor)

    def _type(self, buf):
        name = _NCCL_TYPES.get(buf.dtype.name)
        if name is None:
            raise DistributedError(f"backend='nccl' cannot transfer {buf.dtype} tensors\n  "
                                   f"hint: supported dtypes are {', '.join(_NCCL_TYPES)}")
        return getattr(self.nccl, name)

    def _nccl_op(self, op, dtype):
        """(NCCL op, whether to divide by the world size afterwards)."""
        if dtype.kind == "b":  # PyTorch's bool reductions are logical: or for SUM, and for PRODUCT
            op = {ReduceOp.SUM: ReduceOp.MAX, ReduceOp.PRODUCT: ReduceOp.MIN}.get(op, op)
        if op is ReduceOp.AVG:
            if self._native_avg is not None:
                return self._native_avg, False
            return self._ops[ReduceOp.SUM], True
        return self._ops[op], False

    def _finish(self, tensor, arr, buf, divide):
        """Queued after the collective on the same stream: average, copy back, count the write."""
        if divide:
            buf /= self.world_size
        if buf is not arr:
            arr[...] = buf
        tensor._vc[0] += 1

    def _work(self, stream, async_op):
        if not async_op:
            return None
        event = self.cp.cuda.Event(disable_timing=True)
        event.record(stream)
        return Work(lambda: event.done,
                    lambda: self.cp.cuda.get_current_stream().wait_event(event))


class _DeviceScope:
    """`with` block on the tensor's GPU: yields (the tensor's array, the current stream)."""

    def __init__(self, group, tensor):
        self.group, self.tensor = group, tensor
        self._ctx = backend_api.device_context(group.backend, tensor.device.index)

    def __enter__(self):
        self._ctx.__enter__()
        return self.tensor._array, self.group.cp.cuda.get_current_stream()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _import_nccl():
    try:
        from cupy.cuda import nccl  # lazy: core never imports CuPy at module level
    except ImportError as e:
        nccl, why = None, f"{type(e).__name__}: {e}"
    else:
        why = "cupy.cuda.nccl.available is False"
    if nccl is None or not getattr(nccl, "available", True):
        raise DistributedError(
            f"init_process_group: backend='nccl' needs NCCL, which CuPy cannot load ({why})\n"
            "  hint: pip install nvidia-nccl-cu12 (or -cu13, matching CuPy), or use "
            "backend='mpi'")
    return nccl


def _contiguous(arr):
    return arr if arr.flags.c_contiguous else arr.copy()


def _local_gpu(MPI, comm, backend):
    """This rank's GPU: its rank among the ranks on its node; an error when there are more
    ranks on the node than GPUs."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        local_rank, local_size = node.Get_rank(), node.Get_size()
    finally:
        node.Free()
    n_gpus = backend.device_count() if hasattr(backend, "device_count") else 1
    if local_size > n_gpus:
        raise DistributedError(
            f"init_process_group: backend='nccl' needs one GPU per rank, but {local_size} ranks "
            f"share node {MPI.Get_processor_name()!r}, which has {n_gpus} visible GPU(s)\n  "
            f"hint: start at most {n_gpus} rank(s) per node (e.g. mpiexec --map-by "
            f"ppr:{n_gpus}:node), or use backend='mpi'")
    return local_rank
