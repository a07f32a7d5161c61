"""The "mpi" backend: collectives through mpi4py's buffer interface.

Buffers go to mpi4py as arrays, never as Python lists or pickles: mpi4py reads the array's
buffer (pointer, length and typecode, so float16, integer and bool tensors keep their type).
A CPU tensor whose storage is one contiguous, writable block is handed over as it is and the
result lands in it directly; other CPU tensors (a transposed view, say) go through a
contiguous copy that is written back. GPU tensors are staged: copied to a host buffer (which
waits for the tensor's stream), reduced there by MPI, and copied back. This works with any
MPI build, CUDA-aware or not; `backend="nccl"` is the fast path for GPUs.

Asynchronous collectives (`async_op=True`) use MPI's non-blocking calls (`Iallreduce`,
`Ibcast`, ...) and return a `Work` whose `is_completed()` calls `Request.Test()`: polling it
between other work is what lets MPI make progress on the transfer.

Imports tensorgrad's backend_api and group module only (host buffers come from the "cpu"
backend's array namespace); mpi4py is handed over by `init_process_group`.
"""

from .. import backend_api
from .group import ReduceOp, Work


class MPIGroup:
    name = "mpi"

    def __init__(self, MPI, comm):
        self.MPI, self.comm = MPI, comm
        self.rank, self.world_size = comm.Get_rank(), comm.Get_size()
        self._host_xp = backend_api.get_backend("cpu").xp
        self._ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
                     ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN}
        # MPI defines no arithmetic on booleans; PyTorch's bool reductions are logical.
        self._bool_ops = {ReduceOp.SUM: MPI.LOR, ReduceOp.MAX: MPI.LOR,
                          ReduceOp.PRODUCT: MPI.LAND, ReduceOp.MIN: MPI.LAND}

    def close(self):
        self.comm.Free()

    # -- collectives -----------------------------------------------------------------------
    def all_reduce(self, tensor, op, async_op):
        arr = tensor._array
        buf = _stage(tensor)

        def finish():
            self._average(buf, op)
            _unstage(tensor, arr, buf)

        args = (self.MPI.IN_PLACE, buf, self._mpi_op(op, buf.dtype))
        return self._run("Allreduce", args, finish, async_op)

    def broadcast(self, tensor, src, async_op):
        arr = tensor._array
        buf = _stage(tensor)
        return self._run("Bcast", (buf, src), lambda: _unstage(tensor, arr, buf), async_op)

    def all_gather(self, outputs, tensor, async_op):
        send = _stage(tensor)
        recv = self._host_xp.empty((self.world_size,) + send.shape, dtype=send.dtype)
        targets = [out._array for out in outputs]

        def finish():
            for out, arr, piece in zip(outputs, targets, recv):
                _unstage(out, arr, piece)

        return self._run("Allgather", (send, recv), finish, async_op)

    def reduce_scatter(self, output, inputs, op, async_op):
        send = self._host_xp.stack([_stage(t) for t in inputs])  # one contiguous block
        arr = output._array
        recv = _stage(output)

        def finish():
            self._average(recv, op)
            _unstage(output, arr, recv)

        args = (send, recv, self._mpi_op(op, send.dtype))
        return self._run("Reduce_scatter_block", args, finish, async_op)

    def barrier(self, async_op):
        return self._run("Barrier", (), None, async_op)

    # -- helpers ---------------------------------------------------------------------------
    def _run(self, name, args, finish, async_op):
        """The blocking call `name`, or its non-blocking twin (`I` + name) wrapped in a Work."""
        if not async_op:
            getattr(self.comm, name)(*args)
            if finish is not None:
                finish()
            return None
        request = getattr(self.comm, "I" + name.lower())(*args)
        return Work(request.Test, request.Wait, finish)

    def _mpi_op(self, op, dtype):
        return (self._bool_ops if dtype.kind == "b" else self._ops)[op]

    def _average(self, buf, op):
        if op is ReduceOp.AVG:
            self._host_xp.divide(buf, self.world_size, out=buf)


def _stage(tensor):
    """The host array MPI reads and writes for `tensor`: its own storage when that is one
    contiguous writable host block, else a copy (from the GPU, or made contiguous)."""
    host = tensor._backend.to_numpy(tensor._array)  # the array itself on host backends
    if not (host.flags.c_contiguous and host.flags.writeable):
        host = host.copy()
    return host


def _unstage(tensor, arr, host):
    """Put the collective's result `host` into `arr` (the tensor's storage) unless it is
    already there, and count the write on the tensor's version counter."""
    if host is not arr:
        backend, index = tensor._backend, tensor.device.index
        with backend_api.device_context(backend, index):
            arr[...] = backend.asarray(host, host.dtype, index)
    tensor._vc[0] += 1
