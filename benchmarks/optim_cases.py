"""Optimizer-step workloads (the optim issue), for `report.py`.

One optimizer step over 100 parameter tensors of mixed sizes (about 10 M float32 numbers in
all; a geometric spread of matrices and vectors, like a network's weights and biases), with
fixed gradients, in three implementations:

- "tensorgrad": `tg.optim.SGD(momentum=0.9)` / `tg.optim.Adam`, `opt.step()`;
- "numpy": the same update written by hand as in-place NumPy with `out=` into one scratch
  array per parameter allocated once: the honest minimum of memory passes;
- "torch": `torch.optim.SGD` / `Adam` with its default (foreach) implementation.

All three start from the same parameters and see the same gradients; `step()` returns
`(0.0, parameters)`, so `cases.check_agree` compares the parameters after the first step
before anything is timed. Later steps keep updating (values change, the work does not).
On another device (`build(impls, device)`) the parameters and gradients live there and the
hand-written update runs with its `xp` (CuPy on CUDA). `min_bytes` is the traffic an update
cannot avoid: SGD reads p, g, buf and writes p, buf (5 arrays); Adam reads p, g, m, v and
writes p, m, v (7 arrays).
"""

import math
from dataclasses import dataclass

import devkit
import numpy as np
from cases import F32, TORCH, Impl

import tensorgrad as tg

IMPLS = ("tensorgrad", "numpy", "torch")
N_TENSORS = 100
SIZES = {"full": 10_000_000, "quick": 100_000}
SGD_KW = {"lr": 0.01, "momentum": 0.9}
ADAM_KW = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}


def shapes(total, n=N_TENSORS, seed=0):
    """n shapes, matrices (rows, 64) and vectors alternating, geometric sizes summing ~total."""
    rng = np.random.default_rng(seed)
    weights = np.exp(rng.uniform(0, math.log(1000), n))
    counts = np.maximum(1, (weights / weights.sum() * total).astype(int))
    return [(max(1, int(c) // 64), 64) if i % 2 == 0 else (int(c),)
            for i, c in enumerate(counts)]


def _arrays(total):
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes(total)]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes(total)]
    return params, grads


# ---- hand-written NumPy updates ----------------------------------------------------------------
def numpy_sgd(params, grads, lr, momentum, xp=np):
    """SGD with momentum, PyTorch's rule (the first step copies the gradient into the buffer)."""
    bufs = [None] * len(params)
    scratch = [xp.empty_like(p) for p in params]

    def step():
        for i, (p, g, s) in enumerate(zip(params, grads, scratch)):
            if bufs[i] is None:
                bufs[i] = g.copy()
            else:
                bufs[i] *= momentum
                bufs[i] += g
            xp.multiply(bufs[i], -lr, out=s)
            p += s
        return 0.0, params
    return step


def numpy_adam(params, grads, lr, betas, eps, xp=np):
    """Adam, PyTorch's rule, one scratch array per parameter."""
    b1, b2 = betas
    ms = [xp.zeros_like(p) for p in params]
    vs = [xp.zeros_like(p) for p in params]
    scratch = [xp.empty_like(p) for p in params]
    count = [0]

    def step():
        count[0] += 1
        bc2_sqrt = math.sqrt(1 - b2 ** count[0])
        step_size = lr / (1 - b1 ** count[0])
        for p, g, m, v, s in zip(params, grads, ms, vs, scratch):
            m *= b1
            xp.multiply(g, 1 - b1, out=s)
            m += s
            v *= b2
            xp.multiply(g, g, out=s)
            s *= 1 - b2
            v += s
            xp.sqrt(v, out=s)
            s += eps * bc2_sqrt
            xp.divide(m, s, out=s)
            s *= -step_size * bc2_sqrt
            p += s
        return 0.0, params
    return step


# ---- the case ----------------------------------------------------------------------------------
@dataclass
class OptimCase:
    """One optimizer's step over the mixed parameter set; `build()` gives the implementations."""

    key: str
    title: str
    optimizer: str               # torch.optim / tg.optim class name
    kwargs: dict
    baseline: object             # (params, grads, **kwargs) -> step()
    total: int
    target: tuple = None
    note: str = ""
    metric: str = "time"
    flops: float = 0.0
    min_bytes: float = 0.0

    def build(self, impls=IMPLS, device=None):
        dev = device or devkit.cpu()
        params, grads = _arrays(self.total)
        built = {}
        for name in impls:
            if name == "tensorgrad":
                built[name] = _framework_impl(tg, dev, self, params, grads)
            elif name == "numpy":
                built[name] = Impl(step=self.baseline(
                    [dev.array(p.copy()) for p in params], [dev.array(g) for g in grads],
                    xp=dev.xp, **self.kwargs))
            elif name == "torch" and dev.torch_device is not None:
                built[name] = _framework_impl(TORCH, dev, self, params, grads)
        return built


def _framework_impl(lib, dev, case, params, grads):
    ps = [dev.tensor(lib, p.copy()).requires_grad_() for p in params]
    for p, g in zip(ps, grads, strict=True):
        p.grad = dev.tensor(lib, g)
    opt = getattr(lib.optim, case.optimizer)(ps, **case.kwargs)

    def step():
        opt.step()
        return 0.0, ps
    return Impl(step=step)


def get_cases(quick=False):
    """The optimizer-step cases, in report order, at full or quick sizes."""
    total = SIZES["quick" if quick else "full"]
    n = sum(math.prod(s) for s in shapes(total))
    what = f"{N_TENSORS} tensors, {n / 1e6:.3g} M numbers"
    return [
        OptimCase("optim_sgd", f"optimizer step: SGD momentum 0.9, {what}", "SGD", SGD_KW,
                  numpy_sgd, total, target=("numpy", 1.2), min_bytes=F32 * 5 * n),
        OptimCase("optim_adam", f"optimizer step: Adam, {what}", "Adam", ADAM_KW,
                  numpy_adam, total, target=("numpy", 1.2), min_bytes=F32 * 7 * n),
    ]
