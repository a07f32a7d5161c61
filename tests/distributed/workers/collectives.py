"""Run under `mpiexec -n N`: every collective of tg.distributed on deterministic per-rank data.

Usage: python collectives.py OUT_DIR BACKEND DEVICE   (BACKEND "mpi" | "nccl", DEVICE "cpu" |
"cuda" | "alt"; with "cuda" each rank uses the GPU of its rank on the node; "alt" is the test
suite's second backend, whose to_numpy copies as a GPU's does, so MPI stages through host
buffers as it does for GPU tensors). Each rank writes
OUT_DIR/rank<r>.json mapping case names to results (nested lists); tests/distributed/
test_collectives.py computes the same reductions locally and compares. `rank_values` is
imported from there too, so both sides build the same inputs.
"""

import json
import sys
import time
from pathlib import Path

OPS = ("SUM", "AVG", "PRODUCT", "MAX", "MIN")


def rank_values(rank):
    """Rank r's 2x3 input: i * (r + 1) - 3 * r for i = 0..5 (ranks differ, with ties)."""
    return [[i * (rank + 1) - 3 * rank for i in range(row * 3, row * 3 + 3)] for row in range(2)]


def main(out_dir, backend, device_kind):
    import tensorgrad as tg
    import tensorgrad.distributed as dist

    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = _device(device_kind)
    res = {"rank": rank, "world": world, "backend": dist.get_backend(),
           "initialized": dist.is_initialized()}

    def t(values=None, dtype=tg.float64):
        return tg.tensor(rank_values(rank) if values is None else values, dtype=dtype,
                         device=device)

    for name in OPS:
        op = getattr(dist.ReduceOp, name)
        x = t()
        assert dist.all_reduce(x, op=op) is None
        res[f"all_reduce_{name}"] = x.tolist()
        y = t(dtype=tg.float32)
        res[f"all_reduce_async_{name}"] = _async(dist.all_reduce(y, op=op, async_op=True), y)
    for name, dtype in (("int64", tg.int64), ("float16", tg.float16)):
        for op_name in ("SUM", "MAX"):
            x = t(dtype=dtype)
            dist.all_reduce(x, op=getattr(dist.ReduceOp, op_name))
            res[f"all_reduce_{name}_{op_name}"] = x.tolist()
    for op_name in ("SUM", "PRODUCT"):  # on bools, a logical or / and, as in PyTorch
        mask = t() < 1.5
        dist.all_reduce(mask, op=getattr(dist.ReduceOp, op_name))
        res[f"all_reduce_bool_{op_name}"] = mask.tolist()
    _non_contiguous(tg, dist, t, res)
    _broadcast(tg, dist, t, res, device)
    _gather_scatter(tg, dist, t, res, device, world)
    res["barrier_waited"] = _barrier(dist, Path(out_dir), rank)
    _sampler(tg, res)

    dist.destroy_process_group()
    if device_kind == "alt":  # staged results are written back inside the device's context
        res["alt_contexts_entered"] = tg.backend_api.get_backend("alt").contexts_entered
    res["initialized_after_destroy"] = dist.is_initialized()
    try:
        dist.all_reduce(t())
    except dist.DistributedError as e:
        res["error_after_destroy"] = str(e)
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(res))


def _device(kind):
    if kind == "cpu":
        return "cpu"
    if kind == "alt":  # the test suite's second backend: its memory counts as off the host
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from alt_backend import AltBackend

        from tensorgrad import backend_api
        backend_api.register_backend(AltBackend())
        return "alt"
    from mpi4py import MPI
    node = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank = node.Get_rank()
    node.Free()
    return f"cuda:{local_rank}"


def _async(work, x):
    deadline = time.monotonic() + 20
    while not work.is_completed():  # polling is what drives MPI's progress
        assert time.monotonic() < deadline, "the asynchronous collective never completed"
    assert work.wait() is True
    return x.tolist()


def _non_contiguous(tg, dist, t, res):
    """A transposed view: the result must land in the view and so in its base."""
    for mode in ("sync", "async"):
        base = t().T.contiguous()           # (3, 2), so base.T is a non-contiguous (2, 3)
        view = base.T
        work = dist.all_reduce(view, op=dist.ReduceOp.SUM, async_op=mode == "async")
        if work is not None:
            work.wait()
        res[f"non_contiguous_{mode}_view"] = view.tolist()
        res[f"non_contiguous_{mode}_base"] = base.tolist()


def _broadcast(tg, dist, t, res, device):
    x = t()
    v0 = x._version
    dist.broadcast(x, src=1 % dist.get_world_size())
    res["broadcast_from_1"] = x.tolist()
    res["broadcast_bumps_version"] = x._version > v0
    y = t(dtype=tg.float32)
    dist.broadcast(y, src=0, async_op=True).wait()
    res["broadcast_async_from_0"] = y.tolist()
    p = tg.nn.Parameter(t())            # a leaf that requires grad, as DDP broadcasts
    dist.broadcast(p, src=0)
    res["broadcast_parameter"] = p.tolist()
    res["broadcast_parameter_is_leaf"] = p.is_leaf and p.requires_grad


def _gather_scatter(tg, dist, t, res, device, world):
    outs = [tg.zeros(2, 3, dtype=tg.float64, device=device) for _ in range(world)]
    assert dist.all_gather(outs, t()) is None
    res["all_gather"] = [o.tolist() for o in outs]
    outs = [tg.zeros(2, 3, dtype=tg.int64, device=device) for _ in range(world)]
    dist.all_gather(outs, t(dtype=tg.int64), async_op=True).wait()
    res["all_gather_async_int64"] = [o.tolist() for o in outs]
    for name in ("SUM", "AVG", "MAX"):
        inputs = [t() * (i + 1) for i in range(world)]   # input i goes to rank i
        out = tg.zeros(2, 3, dtype=tg.float64, device=device)
        dist.reduce_scatter(out, inputs, op=getattr(dist.ReduceOp, name))
        res[f"reduce_scatter_{name}"] = out.tolist()


def _barrier(dist, out_dir, rank):
    """The last rank writes a marker only after a pause; after the barrier rank 0 must see it."""
    marker = out_dir / "barrier_marker"
    if rank == dist.get_world_size() - 1:
        time.sleep(0.5)
        marker.write_text("here")
    dist.barrier()
    seen = marker.exists()
    dist.barrier(async_op=True).wait()
    return seen


def _sampler(tg, res):
    """Defaults come from the process group; set_epoch reshuffles the same way on every rank."""
    sampler = tg.data.DistributedSampler(range(11), seed=3)
    res["sampler_epoch0"] = list(sampler)
    sampler.set_epoch(5)
    res["sampler_epoch5"] = list(sampler)
    res["sampler_len"] = len(sampler)


if __name__ == "__main__":
    main(*sys.argv[1:4])
