"""The distributed half of tests/distributed/test_ddp.py, run as `mpiexec -n 2 python
ddp_worker.py OUTDIR`.

Each scenario trains under DistributedDataParallel; rank 0 writes what the test compares to
a single process (OUTDIR/<scenario>.safetensors) and OUTDIR/done.json last. The models,
data and training loop are defined here once and imported by the test for its single-process
runs, so both sides compute the same thing. Every rank seeds its model differently: only
DDP's broadcast of rank 0's parameters can make them agree.
"""

import json
import os
import sys

import tensorgrad as tg
import tensorgrad.distributed  # noqa: F401  (binds tg.distributed)
import tensorgrad.nn.functional as F
from tensorgrad import nn

B = 32          # global batch
STEPS = 10
SEED = 0


# ---- shared with the single-process side ------------------------------------------------------
class WithExtra(nn.Module):
    """An MLP whose `extra` layer joins the loss only where `use_extra` says."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 5))
        self.extra = nn.Linear(20, 5)
        self.use_extra = False

    def forward(self, x):
        out = self.body(x)
        return out + self.extra(x) if self.use_extra else out


def build(kind, seed=SEED):
    tg.manual_seed(seed)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(),
                              nn.Linear(32, 5))
    elif kind == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(4, 6, 3, padding=1), nn.Tanh(), nn.Flatten(),
                              nn.Linear(6 * 4 * 4, 5))
    else:
        model = WithExtra()
    return model.double()


def data(kind, n=B * STEPS):
    g = tg.Generator().manual_seed(1234)
    shape = (1, 8, 8) if kind == "cnn" else (20,)
    x = tg.randn(n, *shape, generator=g, dtype=tg.float64)
    return x, tg.randint(0, 5, (n,), generator=g)


def make_opt(params, kind="sgd"):
    if kind == "adam":
        return tg.optim.Adam(params, lr=1e-2)
    return tg.optim.SGD(params, lr=0.1, momentum=0.9)


def batch(x, y, step, rank=0, world=1, size=B):
    """Rank `rank`'s share of global batch `step` (all of it when world == 1)."""
    local = size // world
    lo = step * size + rank * local
    return x[lo:lo + local], y[lo:lo + local]


def train(model, opt, x, y, steps, rank=0, world=1, start=0):
    for step in range(start, start + steps):
        xb, yb = batch(x, y, step, rank, world)
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()


def train_accumulating(model, opt, x, y, steps, micro, rank=0, world=1, sync=None):
    """Each step: `micro` micro-batches of B, gradients summed, one optimizer step; the
    backward of all but the last runs inside `sync()` (DDP's no_sync) when given."""
    for step in range(steps):
        opt.zero_grad()
        for m in range(micro):
            xb, yb = batch(x, y, step * micro + m, rank, world)
            if sync is not None and m < micro - 1:
                with sync():
                    F.cross_entropy(model(xb), yb).backward()
            else:
                F.cross_entropy(model(xb), yb).backward()
        opt.step()


def params_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ---- the distributed side ---------------------------------------------------------------------
def spread(t):
    """max over ranks minus min over ranks, elementwise, at its largest: 0 when all agree."""
    dist = tg.distributed
    hi, lo = t.detach().clone(), t.detach().clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return (hi - lo).abs().max().item()


def wrap(kind, rank, **kw):
    model = build(kind, seed=SEED + 100 * rank)   # differs per rank until DDP broadcasts
    return tg.nn.parallel.DistributedDataParallel(model, **kw)


def run_match(kind, rank, world):
    ddp = wrap(kind, rank)
    x, y = data(kind)
    train(ddp, make_opt(ddp.parameters()), x, y, STEPS, rank, world)
    return params_of(ddp.module), {"spread": max(spread(p) for p in ddp.parameters())}


def run_match_alt(rank, world):
    """The MLP scenario with model and data on the test suite's second backend ("alt"), whose
    memory counts as off the host: DDP's buckets live there and every allreduce stages
    through a host copy, the path GPU tensors take with backend="mpi"."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from alt_backend import AltBackend
    tg.backend_api.register_backend(AltBackend())
    ddp = tg.nn.parallel.DistributedDataParallel(build("mlp", seed=SEED + 100 * rank).to("alt"))
    x, y = data("mlp")
    train(ddp, make_opt(ddp.parameters()), x.to("alt"), y.to("alt"), STEPS, rank, world)
    params = {n: p.detach().to("cpu") for n, p in ddp.module.named_parameters()}
    return params, {"spread": max(spread(p) for p in ddp.parameters()),
                    "bucket_devices": sorted({str(b.device) for b in ddp._buckets})}


def run_no_sync(rank, world):
    ddp = wrap("mlp", rank)
    x, y = data("mlp")
    opt = make_opt(ddp.parameters())
    xb, yb = batch(x, y, 0, rank, world)
    with ddp.no_sync():
        F.cross_entropy(ddp(xb), yb).backward()
    local_spread = max(spread(p.grad) for p in ddp.parameters())  # > 0: nothing averaged
    opt.zero_grad()
    train_accumulating(ddp, opt, x, y, 3, 3, rank, world, sync=ddp.no_sync)
    return params_of(ddp.module), {"local_spread": local_spread}


def run_buckets(rank, world):
    """A tiny bucket cap; log when each allreduce is posted and each gradient arrives."""
    dist, events = tg.distributed, []
    real_all_reduce = dist.all_reduce

    def logged(tensor, *args, **kwargs):
        work = real_all_reduce(tensor, *args, **kwargs)
        events.append(["post", tensor.numel(), bool(kwargs.get("async_op"))])
        if work is not None:
            test = work.is_completed
            work.is_completed = lambda: events.append(["poll"]) or test()
        return work

    ddp = wrap("mlp", rank, bucket_cap_mb=0.002)
    for name, p in ddp.module.named_parameters():
        p.register_hook(lambda g, name=name: events.append(["grad", name]))
    # The gradient of layer 0's output arrives when backward has passed layers 4 and 2 and
    # is about to run layer 0's VJP: bucket 0 (layer 4, and 2 at this cap) is on the wire.
    def watch(module, inputs, out):
        out.register_hook(lambda g: events.append(["layer 0 output grad"]))

    ddp.module[0].register_forward_hook(watch)
    x, y = data("mlp")
    dist.all_reduce = logged
    try:
        xb, yb = batch(x, y, 0, rank, world)
        F.cross_entropy(ddp(xb), yb).backward()
        events.append(["backward returned"])
    finally:
        dist.all_reduce = real_all_reduce
    grads = {n: p.grad.clone() for n, p in ddp.module.named_parameters()}
    sizes = {n: p.numel() for n, p in ddp.module.named_parameters()}
    numels = [sum(sizes[n] for n in names) for names in ddp.buckets]
    return grads, {"events": events, "bucket_numels": numels, "buckets": ddp.buckets}


def run_checkpoint(rank, world, outdir):
    """Ten Adam steps straight, against five, a checkpoint by rank 0, and five more."""
    x, y = data("mlp")
    ddp = wrap("mlp", rank)
    opt = make_opt(ddp.parameters(), "adam")
    train(ddp, opt, x, y, STEPS, rank, world)
    straight = params_of(ddp.module)

    ddp = wrap("mlp", rank)
    opt = make_opt(ddp.parameters(), "adam")
    train(ddp, opt, x, y, STEPS // 2, rank, world)
    path = os.path.join(outdir, "ckpt.safetensors")
    if rank == 0:
        tg.save({"model": ddp.state_dict(), "optimizer": opt.state_dict()}, path)
    tg.distributed.barrier()
    state = tg.load(path)
    ddp = wrap("mlp", rank, bucket_cap_mb=0.001)  # a fresh process, other buckets
    opt = make_opt(ddp.parameters(), "adam")
    ddp.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    train(ddp, opt, x, y, STEPS - STEPS // 2, rank, world, start=STEPS // 2)
    resumed = params_of(ddp.module)
    out = {f"straight.{k}": v for k, v in straight.items()}
    out.update({f"resumed.{k}": v for k, v in resumed.items()})
    return out, {"spread": max(spread(p) for p in ddp.parameters())}


def run_unused_default(rank, world):
    """Without find_unused_parameters, an unused parameter is reported, not waited for."""
    ddp = wrap("extra", rank)
    x, y = data("mlp")
    xb, yb = batch(x, y, 0, rank, world)
    F.cross_entropy(ddp(xb), yb).backward()
    try:
        ddp(xb)
    except RuntimeError as e:
        return {}, {"error": str(e)}
    return {}, {"error": None}


def run_unused_found(rank, world):
    """find_unused_parameters: unused everywhere keeps grad None; used on rank 0 only is
    averaged with rank 1's zeros; training matches one process on the global batch."""
    ddp = wrap("extra", rank, find_unused_parameters=True)
    x, y = data("mlp")
    opt = make_opt(ddp.parameters())
    train(ddp, opt, x, y, 3, rank, world)
    never = ddp.module.extra.weight.grad is None
    ddp.module.use_extra = rank == 0
    opt.zero_grad()
    xb, yb = batch(x, y, 3, rank, world)
    F.cross_entropy(ddp(xb), yb).backward()
    g = ddp.module.extra.weight.grad
    has = tg.tensor([0.0 if g is None else 1.0])
    tg.distributed.all_reduce(has, op=tg.distributed.ReduceOp.MIN)
    info = {"never_used_grad_none": never, "all_ranks_have_grad": has.item() == 1.0,
            "rank0_only_spread": spread(g) if has.item() == 1.0 else -1.0}
    return params_of(ddp.module), info


def main(outdir):
    tg.distributed.init_process_group(backend="mpi")
    rank, world = tg.distributed.get_rank(), tg.distributed.get_world_size()
    scenarios = {
        "mlp": lambda: run_match("mlp", rank, world),
        "cnn": lambda: run_match("cnn", rank, world),
        "mlp_alt": lambda: run_match_alt(rank, world),
        "no_sync": lambda: run_no_sync(rank, world),
        "buckets": lambda: run_buckets(rank, world),
        "checkpoint": lambda: run_checkpoint(rank, world, outdir),
        "unused_default": lambda: run_unused_default(rank, world),
        "unused_found": lambda: run_unused_found(rank, world),
    }
    info = {"world": world}
    for name, run in scenarios.items():
        tensors, info[name] = run()
        if rank == 0:
            tg.save(tensors, os.path.join(outdir, f"{name}.safetensors"))
    if rank == 0:
        with open(os.path.join(outdir, "done.json"), "w") as f:
            json.dump(info, f)
    tg.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
