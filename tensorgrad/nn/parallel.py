"""`DistributedDataParallel`: one model replica per process, gradients averaged in buckets.

    tg.distributed.init_process_group("mpi")          # launched with `mpiexec -n N python ...`
    model = tg.nn.parallel.DistributedDataParallel(build_model())
    for x, y in loader:                               # each rank reads its shard of the batch
        opt.zero_grad()
        loss_fn(model(x), y).backward()               # gradients arrive averaged over ranks
        opt.step()

Construction broadcasts rank 0's parameters and buffers, so every replica starts equal. The
parameters are laid out, in reverse order (gradients arrive roughly from the last layer
back), in flat buckets of at most `bucket_cap_mb` megabytes, one dtype and device each. A
gradient hook on every parameter copies its gradient into its bucket's slot; a full bucket
starts a non-blocking allreduce at once (buckets are posted in index order, so every rank
posts the same sequence of collectives), and each later hook polls the requests still in
flight, which is what makes MPI progress them while the other buckets fill.

Where the averaged gradients land. tensorgrad's engine runs a leaf's hooks as soon as its
gradient is complete, mid-backward, right before adding it to `.grad`: so a bucket whose
parameters are done is on the wire while backward goes on through the earlier layers (the
tests check bucket 0 is posted before layer 0's VJP runs). There is no end-of-backward
callback, so the hook of the last parameter to receive its gradient finishes the round: it
posts the remaining buckets, waits for all of them, copies the averages back into the other
parameters' `.grad` and returns the average for its own parameter (having zeroed an existing
`.grad`, so the engine's accumulation leaves exactly the average). When `backward()`
returns, `.grad` holds the averaged gradients and `opt.step()` needs no call of ours.
`finish_gradient_sync()` checks that the last round completed; the next forward does too.

A gradient already in `.grad` (accumulated under `no_sync()`, or by an earlier backward)
joins the allreduce, so N ranks on a global batch B reach the parameters one process reaches
on B, up to float rounding. Parameters that get no gradient: by default every parameter that
requires grad must get one in each backward, and when one does not, the next forward (or
`finish_gradient_sync()`) raises naming it. With `find_unused_parameters=True`, each forward
walks the output's graph, and the parameters it cannot reach count as ready at once (their
slot holds their `.grad`, or zeros); a parameter no rank used keeps `.grad` None.

Speaks only Tensor, as all of tensorgrad.nn: the buckets are tensors filled with `copy_`
under no_grad, and the collectives are tensorgrad.distributed's.
"""

import weakref
from contextlib import contextmanager

from ..autograd.graph import is_grad_enabled, no_grad
from ..creation import zeros
from ..ops.join import cat
from ..tensor import Tensor
from .module import Module

__all__ = ["DistributedDataParallel"]

_MB = 1024 * 1024


def _dist():
    from .. import distributed  # imported late: nn must import without MPI present
    return distributed


class _Bucket:
    """A flat tensor holding the gradients of some parameters, and its allreduce request."""

    def __init__(self, index, members, dtype, device):
        self.index, self.members = index, members   # members: indices into DDP._params
        self.numel = 0
        self.offsets = []
        self.flat = None
        self.dtype, self.device = dtype, device
        self.pending = 0        # members still without a gradient this round
        self.work = None        # the in-flight allreduce

    def allocate(self, params):
        for i in self.members:
            self.offsets.append(self.numel)
            self.numel += params[i].numel()
        self.flat = zeros(self.numel, dtype=self.dtype, device=self.device)
        ends = self.offsets[1:] + [self.numel]
        return {i: self.flat[a:b] for i, a, b in zip(self.members, self.offsets, ends)}


class DistributedDataParallel(Module):
    """Data parallelism over the processes of `tg.distributed`'s process group.

    `module` is replicated (rank 0's parameters and buffers win), gradients are averaged
    across ranks during backward, and `model.module` is the wrapped model (its state dict
    keys carry the prefix `module.`, as in PyTorch).

    Args: `broadcast_buffers` re-broadcasts rank 0's buffers before every forward (batch
    norm statistics stay equal); `bucket_cap_mb` caps each gradient bucket; with
    `find_unused_parameters`, parameters a forward does not reach are handled rather than
    reported. `device_ids`/`output_device` are accepted for PyTorch compatibility: a model
    lives on one device per process here, wherever `module` is.
    """

    def __init__(self, module, device_ids=None, output_device=None, broadcast_buffers=True,
                 bucket_cap_mb=25, find_unused_parameters=False):
        super().__init__()
        dist = _dist()
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: the default process group is not "
                               "initialized\n  hint: call tg.distributed.init_process_group("
                               "'mpi') first, and launch with `mpiexec -n N python script.py`")
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got "
                             f"{bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.bucket_cap_mb = bucket_cap_mb
        self._world = dist.get_world_size()
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._require_sync = True
        _broadcast_tensors(list(module.parameters()) + list(module.buffers()))
        self._build_buckets(int(bucket_cap_mb * _MB))
        self._reset_round()
        me = weakref.ref(self)
        self._hook_handles = [p.register_hook(_make_hook(me, i))
                              for i, p in enumerate(self._params)]

    # -- layout --------------------------------------------------------------------------
    def _build_buckets(self, cap_bytes):
        """Parameters in reverse order into buckets of at most `cap_bytes` (at least one
        parameter each), one (dtype, device) per bucket, numbered in the order they open."""
        open_, buckets = {}, []
        for i in reversed(range(len(self._params))):
            p = self._params[i]
            key = (p.dtype, str(p.device))
            b = open_.get(key)
            if b is None:
                b = open_[key] = _Bucket(len(buckets), [], p.dtype, p.device)
                buckets.append(b)
                b.nbytes = 0
            b.members.append(i)
            b.nbytes += p.numel() * p.element_size()
            if b.nbytes >= cap_bytes:
                del open_[key]
        self._buckets = buckets
        self._bucket_of = [None] * len(self._params)
        self._slots = [None] * len(self._params)
        for b in buckets:
            for i, slot in b.allocate(self._params).items():
                self._bucket_of[i], self._slots[i] = b, slot

    @property
    def buckets(self):
        """The names of the parameters in each bucket, buckets in the order they are
        allreduced (the layout `bucket_cap_mb` gave)."""
        return [[self._names[i] for i in b.members] for b in self._buckets]

    # -- the round: one forward and its backward ------------------------------------------
    def _reset_round(self):
        self._armed = False        # a forward prepared this round
        self._ready = [False] * len(self._params)
        self._expected = 0         # hooks still to come this round
        self._fired = 0            # hooks that came
        self._next_post = 0        # the next bucket to post
        self._used_work = self._used = None
        for b in self._buckets:
            b.pending, b.work = len(b.members), None

    def _arm(self, out):
        """Prepare to reduce the gradients of the backward of `out`."""
        self._armed = True
        self._expected = len(self._params)
        if not self.find_unused_parameters:
            return
        reached = _reachable_leaves(out)
        used = [id(p) in reached for p in self._params]
        self._used = _flags(used, self._params)
        self._used_work = _dist().all_reduce(self._used, async_op=True)
        self._expected = sum(used)
        for i, u in enumerate(used):
            if not u:
                self._mark_ready(i, None)
        if self._expected == 0:
            self._finish(None)

    def _on_grad(self, i, g):
        """Parameter `i`'s hook: `g` is its gradient from this backward."""
        if not self._armed:
            return None
        if self._ready[i]:
            raise RuntimeError(self._twice_message(i))
        self._mark_ready(i, g)
        self._fired += 1
        if self._fired < self._expected:
            self._poll()
            return None
        return self._finish(i)

    def _mark_ready(self, i, g):
        """Fill parameter i's slot with its whole gradient (what `.grad` will hold locally)."""
        p = self._params[i]
        slot, old = self._slots[i].view(p.shape), p.grad
        with no_grad():  # copy_ into the view: one strided copy, even of a transposed grad
            if g is not None:
                slot.copy_(g)
                if old is not None:
                    slot.add_(old)
            elif old is not None:
                slot.copy_(old)
            else:
                slot.zero_()
        self._ready[i] = True
        b = self._bucket_of[i]
        b.pending -= 1
        if b.pending == 0:
            self._post_ready()

    def _post_ready(self):
        """Post the allreduce of every ready bucket whose predecessors are posted."""
        buckets = self._buckets
        while self._next_post < len(buckets) and buckets[self._next_post].pending == 0:
            b = buckets[self._next_post]
            b.work = _dist().all_reduce(b.flat, async_op=True)
            self._next_post += 1

    def _poll(self):
        """Test the oldest request in flight: MPI progresses communication inside calls."""
        for b in self._buckets[:self._next_post]:
            if not b.work.is_completed():
                return

    def _finish(self, last):
        """All gradients are in: wait, average, write back; return `last`'s new gradient."""
        self._post_ready()
        used = self._wait_used()
        with no_grad():
            for b in self._buckets:
                b.work.wait()
                b.flat.div_(self._world)
            for i, p in enumerate(self._params):
                if i != last:
                    _write_grad(p, self._slots[i], used is None or used[i])
            out = None
            if last is not None:
                p = self._params[last]
                if p.grad is not None:
                    p.grad.zero_()  # the engine adds `out` to it next: exactly the average
                out = self._slots[last].view(p.shape).clone()
        self._reset_round()
        return out

    def _wait_used(self):
        if self._used_work is None:
            return None
        self._used_work.wait()
        return [x > 0 for x in self._used.tolist()]

    # -- checks ---------------------------------------------------------------------------
    def _missing(self):
        return [n for n, r in zip(self._names, self._ready) if not r]

    def _unfinished_message(self):
        missing = self._missing()
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        return (f"DistributedDataParallel: the last backward finished without a gradient for "
                f"{len(missing)} parameter(s): {shown}; their gradients were not averaged "
                "across ranks\n  hint: pass find_unused_parameters=True when some parameters "
                "do not take part in the loss, or freeze them with requires_grad_(False) "
                "before wrapping the model")

    def _twice_message(self, i):
        return (f"DistributedDataParallel: parameter {self._names[i]} received a second "
                "gradient before every parameter received its first, so this round can never "
                "finish\n  hint: " + self._unfinished_message().split("\n  hint: ")[1])

    def finish_gradient_sync(self):
        """Check the last backward's gradients were averaged; raise naming those that were not.

        Not needed before `opt.step()`: the averaged gradients are in `.grad` when
        `backward()` returns. Call it to fail early, e.g. in a loop that skips forwards.
        """
        if self._armed and self._fired > 0:
            raise RuntimeError(self._unfinished_message())

    # -- forward, no_sync -------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        self.finish_gradient_sync()
        if self._armed:   # a forward whose backward never ran: drain what it posted
            self._drain()
        if self.broadcast_buffers:
            _broadcast_tensors(list(self.module.buffers()))
        out = self.module(*args, **kwargs)
        if self._require_sync and is_grad_enabled() and _requires_grad(out):
            self._arm(out)
        return out

    def _drain(self):
        for b in self._buckets[:self._next_post]:
            b.work.wait()
        if self._used_work is not None:
            self._used_work.wait()
        self._reset_round()

    @contextmanager
    def no_sync(self):
        """Skip the allreduce for the backward of forwards run inside: gradients accumulate
        locally in `.grad`, and the first synchronized backward after averages the sum.

            for x, y in micro_batches[:-1]:
                with model.no_sync():
                    loss_fn(model(x), y).backward()     # local accumulation only
            loss_fn(model(x_last), y_last).backward()   # averages the sum of all of them
        """
        prev, self._require_sync = self._require_sync, False
        try:
            yield
        finally:
            self._require_sync = prev


# ---- helpers ----------------------------------------------------------------------------------
def _make_hook(ddp_ref, i):
    def hook(g):
        ddp = ddp_ref()
        return None if ddp is None else ddp._on_grad(i, g)
    return hook


def _write_grad(p, slot, used):
    if p.grad is not None:
        p.grad.copy_(slot.view(p.shape))
    elif used:
        p.grad = slot.view(p.shape).clone()


def _flags(used, params):
    dtype = params[0].dtype if params else None
    device = params[0].device if params else None
    t = zeros(len(used), dtype=dtype, device=device)
    with no_grad():
        for i, u in enumerate(used):
            if u:
                t[i] = 1.0
    return t


def _broadcast_tensors(tensors):
    """Give every rank rank 0's values: one broadcast per (dtype, device) group."""
    groups = {}
    for t in tensors:
        groups.setdefault((t.dtype, str(t.device)), []).append(t)
    dist = _dist()
    with no_grad():
        for group in groups.values():
            flat = cat([t.reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view(t.shape))
                offset += n


def _tensors_in(out):
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors_in(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors_in(v)


def _requires_grad(out):
    return any(t.requires_grad for t in _tensors_in(out))


def _reachable_leaves(out):
    """ids of the leaf tensors the graph of `out` reaches (an explicit stack: no recursion)."""
    leaves, seen = set(), set()
    stack = []
    for t in _tensors_in(out):
        if t.grad_fn is None:
            leaves.add(id(t))
        else:
            stack.append(t.grad_fn)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for e in node.edges:
            if isinstance(e, Tensor):
                leaves.add(id(e))
            elif e is not None:
                stack.append(e)
    return leaves
