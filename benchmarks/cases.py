"""The core benchmark workloads, shared by `report.py` and `bench_core.py`.

A `Case` builds, from one set of float32 input arrays, up to three implementations of the same
forward+backward computation:

- "tensorgrad": the forward written against the PyTorch API (`lib` is `tensorgrad`), then
  `loss.backward()`;
- "numpy": the hand-written NumPy forward and backward of `baselines.py`;
- "torch": the very same forward source with `lib = torch` (PyTorch eager), when installed.

Every implementation is an `Impl` whose `step()` runs one forward+backward and returns
`(loss, [grads...])`; `reset()` drops the gradients the last step left on the leaves, so that
peak memory is measured from the same starting point for all. PyTorch is optional: without
it `TORCH` is None and no "torch" Impl is built.

`build(impls, device)` builds them on a `devkit.BenchDevice` (default the CPU): the inputs
are moved there, the "numpy" implementation is the same hand-written code run with that
device's array namespace (`xp=cupy` on CUDA, so it reads "CuPy by hand" there), and PyTorch
runs on the same device when it can. Each case also carries `flops` (its matmul/conv
multiply-adds x 2, forward and backward) and `min_bytes` (the bytes any implementation must
at least read and write: inputs, outputs, gradients), from which `report.py` derives the
physical lower bound of its time.
"""

import math
from dataclasses import dataclass, field

import baselines
import devkit
import numpy as np
from devkit import TORCH  # noqa: F401 - re-exported: training_cases, optim_cases, bench_*

import tensorgrad as tg

IMPLS = ("tensorgrad", "numpy", "torch")

# Sizes of the issue (full) and a preset that finishes in seconds (quick, also the smoke test).
SIZES = {
    "full": {"per_op": 8, "memory_bound": 4096, "matmul": (1024, 2048), "mlp_batch": 1024},
    "quick": {"per_op": 8, "memory_bound": 256, "matmul": (64, 128), "mlp_batch": 64},
}
MLP_WIDTHS = (784, 512, 512, 10)


@dataclass
class Impl:
    """One implementation of a case: `step()` is the timed forward+backward."""

    step: object
    reset: object = lambda: None

    def peak_memory(self):
        """Peak bytes traced by tracemalloc during one `step()`, from a clean start."""
        return devkit.tracemalloc_peak(self.step, self.reset)


@dataclass
class Case:
    """A workload: its inputs, which of them get gradients, and its forward in both APIs."""

    key: str
    title: str
    make_inputs: object          # () -> list of float32 numpy arrays
    needs_grad: tuple            # one bool per input
    forward: object              # (lib, *tensors) -> scalar loss, lib = tensorgrad or torch
    baseline: object             # (*arrays) -> (loss, grads), hand-written NumPy
    metric: str = "time"         # "time" (seconds per call) or "memory" (peak bytes)
    target: object = None        # (baseline impl, max ratio), a list of them, or None
    note: str = ""
    flops: float = 0.0           # matmul/conv FLOPs of forward + backward (0: none)
    min_bytes: float = 0.0       # bytes read + written at the very least
    extra: dict = field(default_factory=dict)

    def build(self, impls=IMPLS, device=None):
        """Build the requested implementations on `device` (a `devkit.BenchDevice`, default
        the CPU); those not available there are left out."""
        dev = device or devkit.cpu()
        arrays = self.make_inputs()
        built = {}
        for name in impls:
            if name == "tensorgrad":
                built[name] = _framework_impl(tg, dev, self.forward, arrays, self.needs_grad)
            elif name == "numpy":
                xs = [dev.array(a) for a in arrays]
                built[name] = Impl(step=lambda xs=xs: self.baseline(*xs, xp=dev.xp))
            elif name == "torch" and dev.torch_device is not None:
                built[name] = _framework_impl(TORCH, dev, self.forward, arrays,
                                              self.needs_grad)
        return built


def _framework_impl(lib, dev, forward, arrays, needs_grad):
    """Leaves share the input arrays (on the CPU); each step sets their `.grad` to None first
    (as `zero_grad(set_to_none=True)`), so gradients are freshly allocated, as in the
    baseline."""
    leaves = [dev.tensor(lib, a).requires_grad_(bool(ng))
              for a, ng in zip(arrays, needs_grad, strict=True)]
    params = [t for t in leaves if t.requires_grad]

    def reset():
        for p in params:
            p.grad = None

    def step():
        reset()
        loss = forward(lib, *leaves)
        loss.backward()
        return loss, [p.grad for p in params]

    return Impl(step=step, reset=reset)


def to_numpy(x):
    """A result of any implementation, on any device, as a float64 NumPy array."""
    if hasattr(x, "detach"):     # a tensorgrad or PyTorch tensor
        x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
        x = x.numpy()
    elif hasattr(x, "get") and not isinstance(x, np.ndarray):   # a CuPy array
        x = x.get()
    return np.asarray(x, dtype=np.float64)


def check_agree(case, outputs, rtol=1e-3):
    """Raise AssertionError unless every implementation's loss and grads match NumPy's.

    `outputs` maps impl name to a step's result. float32 sums of millions of terms differ in
    rounding between libraries, so the tolerance is relative to each output's largest value.
    """
    ref = [to_numpy(outputs["numpy"][0])] + [to_numpy(g) for g in outputs["numpy"][1]]
    for name, (loss, grads) in outputs.items():
        got = [to_numpy(loss)] + [to_numpy(g) for g in grads]
        assert len(got) == len(ref), f"{case.key}: {name} returned {len(got)} outputs"
        for i, (g, r) in enumerate(zip(got, ref, strict=True)):
            scale = max(float(np.max(np.abs(r))), 1e-30)
            assert g.shape == r.shape, f"{case.key}: {name} output {i} shape {g.shape}"
            err = float(np.max(np.abs(g - r))) if r.size else 0.0
            assert err <= rtol * scale, (
                f"{case.key}: {name} output {i} differs from NumPy by {err:.3g} "
                f"(scale {scale:.3g})")


# ---- the workloads ---------------------------------------------------------------------------
def _normal(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _per_op_forward(lib, a, b):
    return (a * b + a).sum()


def _memory_bound_forward(lib, x, w, b):
    return lib.relu(x * w + b).sum()


def _matmul_forward(lib, a, b):
    return (a @ b).sum()


def _mlp_forward(lib, x, w1, b1, w2, b2, w3, b3):
    h = lib.relu(x @ w1 + b1)
    h = lib.relu(h @ w2 + b2)
    return (h @ w3 + b3).sum()


def _mlp_inputs(batch, seed=3):
    rng = np.random.default_rng(seed)
    arrays = [_normal(rng, batch, MLP_WIDTHS[0])]
    for fan_in, fan_out in zip(MLP_WIDTHS[:-1], MLP_WIDTHS[1:], strict=True):
        bound = 1 / math.sqrt(fan_in)
        arrays.append(_normal(rng, fan_in, fan_out, scale=bound))
        arrays.append(_normal(rng, fan_out, scale=bound))
    return arrays


F32 = 4  # bytes per float32


def matmul_flops(m, k, n):
    """FLOPs of one (m, k) @ (k, n) product: a multiply and an add per term."""
    return 2 * m * k * n


def mlp_flops(batch, widths, input_grad=False):
    """Forward and backward matmul FLOPs of a Linear stack: forward, the weight gradients, and
    the input gradients of every layer but the first (unless `input_grad`)."""
    layers = list(zip(widths[:-1], widths[1:]))
    fwd = sum(matmul_flops(batch, i, o) for i, o in layers)
    dx = sum(matmul_flops(batch, o, i) for i, o in layers[(0 if input_grad else 1):])
    return 2 * fwd + dx


def mlp_param_count(widths):
    return sum(i * o + o for i, o in zip(widths[:-1], widths[1:]))


def get_cases(quick=False):
    """The cases of the core suite, in report order, at full or quick sizes."""
    s = SIZES["quick" if quick else "full"]
    n, m = s["per_op"], s["memory_bound"]
    widths = "-".join(map(str, MLP_WIDTHS))
    cases = [
        # inputs a, b; gradients ga, gb; the loss
        Case("per_op", f"per-op overhead: (a*b + a).sum(), {n} elements",
             lambda: _seeded(0, (n,), (n,)),
             (True, True), _per_op_forward, baselines.per_op,
             target=("torch", 0.6), note="3 ops forward + backward",
             min_bytes=F32 * (4 * n + 1)),
        # read x, w, b; write gx, gw, gb (one fused pass could do it all)
        Case("memory_bound", f"memory-bound: relu(x*w + b).sum(), x {m}x{m}, w, b ({m},)",
             lambda: _seeded(1, (m, m), (m,), (m,)),
             (True, True, True), _memory_bound_forward, baselines.memory_bound,
             target=("numpy", 1.3), min_bytes=F32 * 2 * (m * m + 2 * m)),
    ]
    for k in s["matmul"]:
        # forward A @ B, backward G @ B^T and A^T @ G: three k^3 products
        cases.append(Case(f"matmul_{k}", f"matmul: (A @ B).sum(), {k}x{k}",
                          lambda k=k: _seeded(2, (k, k), (k, k)),
                          (True, True), _matmul_forward, baselines.matmul,
                          target=("numpy", 1.03), flops=3 * matmul_flops(k, k, k),
                          min_bytes=F32 * 4 * k * k))
    b = s["mlp_batch"]
    n_params = mlp_param_count(MLP_WIDTHS)
    mlp = dict(make_inputs=lambda: _mlp_inputs(b), needs_grad=(False,) + (True,) * 6,
               forward=_mlp_forward, baseline=baselines.mlp)
    cases.append(Case("mlp_time", f"MLP {widths} relu, batch {b}: time", **mlp,
                      flops=mlp_flops(b, MLP_WIDTHS),
                      min_bytes=F32 * (b * MLP_WIDTHS[0] + 2 * n_params)))
    cases.append(Case("mlp_memory", f"MLP {widths} relu, batch {b}: peak memory", **mlp,
                      metric="memory", target=("numpy", 1.2), note="tracemalloc"))
    return cases


def _seeded(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [_normal(rng, *shape) for shape in shapes]
