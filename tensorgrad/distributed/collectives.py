"""The collectives, with torch.distributed's signatures: argument checks, then the group's
backend (`mpi.MPIGroup` or `nccl.NCCLGroup`) does the transfer.

Every collective writes its result into the given tensors in place (their storage, so views
see it, and their version counter is bumped, as any in-place write). Autograd is not
involved: like PyTorch's, these are plain data movement.

With `async_op=True` a collective returns a `Work` (`wait()`, `is_completed()`); otherwise it
returns None once the result is in place. Calling one before `init_process_group` raises
`DistributedError` saying so.

Imports tensorgrad's group module, errors and Tensor only.
"""

from ..errors import DeviceError, DTypeError, ShapeError, describe
from ..tensor import Tensor
from .group import ReduceOp, require_group


def all_reduce(tensor, op=ReduceOp.SUM, async_op=False):
    """Combine `tensor` across the ranks with `op`; every rank gets the result, in place.

    `ReduceOp.AVG` is the sum divided by the world size (floating-point tensors only).
    """
    group = require_group("all_reduce")
    _check_tensor("all_reduce", tensor)
    _check_op("all_reduce", op, tensor)
    return group.all_reduce(tensor, op, async_op)


def broadcast(tensor, src=0, async_op=False):
    """Copy rank `src`'s `tensor` into `tensor` on every other rank."""
    group = require_group("broadcast")
    _check_tensor("broadcast", tensor)
    _check_rank("broadcast", src, group.world_size)
    return group.broadcast(tensor, src, async_op)


def all_gather(tensor_list, tensor, async_op=False):
    """Fill `tensor_list[i]` with rank i's `tensor` (one entry per rank, same shape and dtype)."""
    group = require_group("all_gather")
    _check_tensor("all_gather", tensor)
    _check_list("all_gather", "tensor_list", tensor_list, tensor, group.world_size)
    return group.all_gather(list(tensor_list), tensor, async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, async_op=False):
    """Reduce `input_list[i]` across the ranks with `op` and leave the result in rank i's
    `output` (each rank passes one input per rank, shaped like `output`)."""
    group = require_group("reduce_scatter")
    _check_tensor("reduce_scatter", output)
    _check_op("reduce_scatter", op, output)
    _check_list("reduce_scatter", "input_list", input_list, output, group.world_size)
    return group.reduce_scatter(output, list(input_list), op, async_op)


def barrier(async_op=False):
    """Wait until every rank has reached this call."""
    return require_group("barrier").barrier(async_op)


# ---- argument checks -----------------------------------------------------------------------
def _check_tensor(op, tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(tensor).__name__}")


def _check_op(op, reduce_op, tensor):
    if not isinstance(reduce_op, ReduceOp):
        raise TypeError(f"{op}: op should be a tg.distributed.ReduceOp (SUM, AVG, PRODUCT, MAX, "
                        f"MIN), got {reduce_op!r}")
    if reduce_op is ReduceOp.AVG and not tensor.dtype.is_floating_point:
        raise DTypeError(f"{op}: ReduceOp.AVG needs a floating-point tensor, got "
                         f"{describe(tensor)}\n  hint: reduce with ReduceOp.SUM and divide, "
                         "or convert with .float() first")


def _check_rank(op, rank, world_size):
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"{op}: src should be a rank in [0, {world_size - 1}], got {rank!r}")


def _check_list(op, name, tensors, like, world_size):
    if not isinstance(tensors, (list, tuple)) or len(tensors) != world_size:
        got = len(tensors) if isinstance(tensors, (list, tuple)) else type(tensors).__name__
        raise ValueError(f"{op}: {name} should hold one tensor per rank ({world_size}), "
                         f"got {got}")
    for i, t in enumerate(tensors):
        _check_tensor(op, t)
        if t.shape != like.shape:
            raise ShapeError(f"{op}: {name}[{i}] is {describe(t)}, but the tensor is "
                             f"{describe(like)}\n  hint: every entry needs the tensor's shape")
        if t.dtype != like.dtype:
            raise DTypeError(f"{op}: {name}[{i}] is {describe(t)}, but the tensor is "
                             f"{describe(like)}\n  hint: every entry needs the tensor's dtype")
        if t.device != like.device:
            raise DeviceError(f"{op}: {name}[{i}] is {describe(t)}, but the tensor is "
                              f"{describe(like)}\n  hint: every entry needs the tensor's device")
