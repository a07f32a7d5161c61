"""Training-step workloads (the nn issue), shared by `report.py` and `bench_training.py`.

Each case is one full training step of a small network: forward, softmax cross-entropy
(mean over the batch, integer class targets), backward, and a hand-written SGD update
(`p -= lr * p.grad` under `no_grad`, then `p.grad = None`), in three implementations:

- "tensorgrad": the model written with `tg.nn` (PyTorch's names), `F.cross_entropy`,
  `loss.backward()`;
- "numpy": the hand-written NumPy step of `baselines_nn.py`;
- "torch": the very same model source with `lib = torch` (PyTorch eager), when installed.

All three start from the same float32 parameters (tensorgrad's initial ones, copied) and see
the same float32 batch. `build(impls, device)` builds them on a `devkit.BenchDevice`: the
models and the batch are moved there and the hand-written step runs with that device's `xp`
(CuPy on CUDA). `flops` counts each case's matmul/conv FLOPs, forward and backward, and
`min_bytes` the parameters read and written plus the batch read. A `TrainingCase` quacks like
`cases.Case` for `report.py`: `build()` returns `cases.Impl`s whose `step()` returns
`(loss, [grads in parameters() order])`, so `cases.check_agree` compares the first step's
loss and every parameter gradient of the three before anything is timed. Later steps keep
training on the same batch (each implementation its own copy of the weights), which changes
values, not the work done.
"""

import functools
import math
from dataclasses import dataclass

import baselines_nn
import devkit
import numpy as np
from cases import F32, TORCH, Impl, matmul_flops, mlp_flops, mlp_param_count

import tensorgrad as tg

IMPLS = ("tensorgrad", "numpy", "torch")
LR = 1e-3  # small: hundreds of steps on one batch stay far from saturated softmax
N_CLASSES = 10

# Sizes of the issue (full) and a preset that finishes in seconds (quick, also the smoke test).
SIZES = {
    "full": {"mlp_widths": (784, 512, 512, 10), "mlp_batches": (64, 1024),
             "cnn": {"batch": 64, "hw": 28}, "lstm": {"seq": 32, "batch": 32, "input": 64,
                                                     "hidden": 128},
             "transformer": {"batch": 32, "seq": 32, "vocab": 1000, "d_model": 64, "heads": 4,
                             "hidden": 256}},
    "quick": {"mlp_widths": (64, 32, 32, 10), "mlp_batches": (8, 32),
              "cnn": {"batch": 4, "hw": 12}, "lstm": {"seq": 4, "batch": 4, "input": 8,
                                                      "hidden": 16},
              "transformer": {"batch": 4, "seq": 8, "vocab": 50, "d_model": 16, "heads": 2,
                              "hidden": 32}},
}
# (baseline impl, max ratio) per case, or a list of them: issue 8's targets.
TARGETS = {"train_mlp_64": [("numpy", 1.3), ("torch", 1.0)], "train_mlp_1024": ("numpy", 1.1),
           "train_cnn": ("numpy", 1.25), "train_lstm": ("numpy", 1.4)}


# ---- the models, one source for tensorgrad and PyTorch ---------------------------------------
def mlp_model(lib, widths):
    nn = lib.nn
    return nn.Sequential(nn.Linear(widths[0], widths[1]), nn.ReLU(),
                         nn.Linear(widths[1], widths[2]), nn.ReLU(),
                         nn.Linear(widths[2], widths[3]))


def cnn_model(lib, hw):
    nn = lib.nn
    side = hw // 4
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * side * side, N_CLASSES))


def lstm_model(lib, n_in, hidden):
    nn = lib.nn

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(n_in, hidden)
            self.head = nn.Linear(hidden, N_CLASSES)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h[-1])

    return LSTMClassifier()


def attention_module(lib, d_model, heads):
    """Multi-head self-attention spelled out with matmul and softmax, so both frameworks run
    the same ops (no fused scaled_dot_product_attention)."""
    nn = lib.nn
    softmax = nn.functional.softmax
    scale = 1 / math.sqrt(d_model // heads)

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(d_model, d_model)
            # no key bias: the softmax over keys cancels it, so its gradient is zero up to
            # rounding, which the relative cross-check between implementations cannot compare
            self.k = nn.Linear(d_model, d_model, bias=False)
            self.v = nn.Linear(d_model, d_model)
            self.out = nn.Linear(d_model, d_model)

        def forward(self, x):
            b, t, d = x.shape

            def split(a):  # (B, T, D) -> (B, heads, T, D/heads)
                return a.reshape(b, t, heads, d // heads).transpose(1, 2)

            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            att = softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
            return self.out((att @ v).transpose(1, 2).reshape(b, t, d))

    return SelfAttention()


def transformer_model(lib, vocab, seq, d_model, heads, hidden):
    """Token embedding plus learned positions, one pre-LayerNorm transformer block, the mean
    over the sequence, a linear head."""
    nn = lib.nn

    class TransformerClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, d_model)
            self.pos = nn.Parameter(lib.randn(seq, d_model) * 0.02)
            self.ln1 = nn.LayerNorm(d_model)
            self.attn = attention_module(lib, d_model, heads)
            self.ln2 = nn.LayerNorm(d_model)
            # tanh-GELU: its closed form is what the NumPy step can write without erf
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(approximate="tanh"),
                                     nn.Linear(hidden, d_model))
            self.head = nn.Linear(d_model, N_CLASSES)

        def forward(self, tokens):
            x = self.emb(tokens) + self.pos
            x = x + self.attn(self.ln1(x))
            x = x + self.mlp(self.ln2(x))
            return self.head(x.mean(1))

    return TransformerClassifier()


# ---- the case --------------------------------------------------------------------------------
@dataclass
class TrainingCase:
    """One network's training step; `build()` gives the implementations, same start."""

    key: str
    title: str
    make_model: object           # (lib) -> module, lib = tensorgrad or torch
    make_batch: object           # () -> (x float32 or int64 tokens, y int64), NumPy
    baseline: object             # (params, x, y, lr) -> (loss, grads), updates params
    target: object = None        # (baseline impl, max ratio), a list of them, or None
    note: str = ""
    metric: str = "time"
    lr: float = LR
    flops: float = 0.0           # matmul/conv FLOPs of forward + backward
    min_bytes: float = 0.0       # parameters read and written, batch read

    def build(self, impls=IMPLS, device=None):
        dev = device or devkit.cpu()
        x, y = self.make_batch()
        tg.manual_seed(0)
        model = self.make_model(tg)
        start = [(name, p.detach().numpy().copy()) for name, p in model.named_parameters()]
        built = {}
        for name in impls:
            if name == "tensorgrad":
                dev.module(tg, model)
                built[name] = _framework_impl(tg, model, dev.tensor(tg, x),
                                              dev.tensor(tg, y), self.lr)
            elif name == "numpy":
                params = [dev.array(a.copy()) for _, a in start]
                xd, yd = dev.array(x), dev.array(y)
                built[name] = Impl(step=lambda params=params, xd=xd, yd=yd: self.baseline(
                    params, xd, yd, self.lr, xp=dev.xp))
            elif name == "torch" and dev.torch_device is not None:
                tmodel = self.make_model(TORCH)
                _load(tmodel, start)
                dev.module(TORCH, tmodel)
                built[name] = _framework_impl(TORCH, tmodel, dev.tensor(TORCH, x),
                                              dev.tensor(TORCH, y), self.lr)
        return built


def _load(tmodel, start):
    """Copy the starting parameters into a torch module, checking names and shapes."""
    tparams = list(tmodel.named_parameters())
    assert [n for n, _ in tparams] == [n for n, _ in start], (
        f"parameter names differ: torch {[n for n, _ in tparams]}, "
        f"tensorgrad {[n for n, _ in start]}")
    with TORCH.no_grad():
        for (name, p), (_, a) in zip(tparams, start, strict=True):
            assert tuple(p.shape) == a.shape, f"{name}: torch {tuple(p.shape)}, tg {a.shape}"
            p.copy_(TORCH.from_numpy(a))


def _framework_impl(lib, model, x, y, lr):
    """The training step as a PyTorch user writes it, without an optimizer."""
    params = list(model.parameters())
    cross_entropy = lib.nn.functional.cross_entropy
    no_grad = lib.no_grad

    def reset():
        for p in params:
            p.grad = None

    def step():
        loss = cross_entropy(model(x), y)
        loss.backward()
        grads = [p.grad for p in params]
        with no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        return loss, grads

    return Impl(step=step, reset=reset)


# ---- inputs ----------------------------------------------------------------------------------
def _batch(seed, shape, n):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=n).astype(np.int64)
    return x, y


def _conv_flops(n, c_in, c_out, k, ho, wo):
    return matmul_flops(c_out, c_in * k * k, n * ho * wo)


def cnn_cost(b, hw):
    """(FLOPs, parameter count) of the CNN step: each conv and the linear layer forward and
    weight gradient, input gradients for all but the first conv (the input needs none)."""
    side = hw // 4
    c1 = _conv_flops(b, 1, 8, 3, hw, hw)
    c2 = _conv_flops(b, 8, 16, 3, hw // 2, hw // 2)
    fc = matmul_flops(b, 16 * side * side, N_CLASSES)
    flops = 2 * c1 + 3 * c2 + 3 * fc
    params = 8 * 9 + 8 + 16 * 8 * 9 + 16 + 16 * side * side * N_CLASSES + N_CLASSES
    return flops, params


def lstm_cost(t, b, n_in, hid):
    """(FLOPs, parameter count) of the LSTM step: input and recurrent projections forward and
    their weight gradients, the hidden-state gradient through T-1 steps, the head x 3."""
    proj_in = matmul_flops(t * b, n_in, 4 * hid)
    proj_h = matmul_flops(t * b, hid, 4 * hid)
    dh = matmul_flops((t - 1) * b, 4 * hid, hid)
    head = matmul_flops(b, hid, N_CLASSES)
    flops = 2 * proj_in + 2 * proj_h + dh + 3 * head
    params = 4 * hid * (n_in + hid + 2) + hid * N_CLASSES + N_CLASSES
    return flops, params


def _tokens(seed, batch, seq, vocab):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, size=(batch, seq)).astype(np.int64)
    y = rng.integers(0, N_CLASSES, size=batch).astype(np.int64)
    return x, y


def transformer_cost(b, t, vocab, d, heads, hidden):
    """(FLOPs, parameter count) of the transformer step: the q, k, v, out and MLP projections,
    per head the scores q kᵀ and the weighted sum p v, and the head, each forward and both
    operands' gradients (x 3: every activation needs one). The embedding lookup and its
    scatter-add move bytes only."""
    n = b * t
    proj = 4 * matmul_flops(n, d, d) + 2 * matmul_flops(n, d, hidden)
    attn = 2 * b * heads * matmul_flops(t, d // heads, t)
    flops = 3 * (proj + attn + matmul_flops(b, d, N_CLASSES))
    params = (vocab * d + t * d + 4 * d + 4 * d * d + 3 * d + 2 * d * hidden + hidden + d
              + d * N_CLASSES + N_CLASSES)
    return flops, params


def get_cases(quick=False):
    """The training-step cases, in report order, at full or quick sizes."""
    s = SIZES["quick" if quick else "full"]
    widths = s["mlp_widths"]
    wname = "-".join(map(str, widths))
    cases = []
    # targets by position: the quick sizes' keys differ from the full ones
    for batch, name in zip(s["mlp_batches"], ("train_mlp_64", "train_mlp_1024"), strict=True):
        cases.append(TrainingCase(
            f"train_mlp_{batch}", f"train step: MLP {wname} relu, batch {batch}",
            lambda lib: mlp_model(lib, widths),
            lambda batch=batch: _batch(10, (batch, widths[0]), batch),
            baselines_nn.mlp_step, target=TARGETS[name],
            flops=mlp_flops(batch, widths),
            min_bytes=F32 * (batch * widths[0] + 2 * mlp_param_count(widths))))
    b, hw = s["cnn"]["batch"], s["cnn"]["hw"]
    flops, n_params = cnn_cost(b, hw)
    cases.append(TrainingCase(
        "train_cnn", f"train step: CNN conv3x3(1→8)-relu-pool2-conv3x3(8→16)-relu-pool2-"
        f"linear→10, pad 1, batch {b} of 1x{hw}x{hw}",
        lambda lib: cnn_model(lib, hw), lambda: _batch(11, (b, 1, hw, hw), b),
        baselines_nn.cnn_step, target=TARGETS["train_cnn"], flops=flops,
        min_bytes=F32 * (b * hw * hw + 2 * n_params)))
    t = s["lstm"]
    flops, n_params = lstm_cost(t["seq"], t["batch"], t["input"], t["hidden"])
    cases.append(TrainingCase(
        "train_lstm", f"train step: LSTM seq {t['seq']}, batch {t['batch']}, input "
        f"{t['input']}, hidden {t['hidden']}, linear head→10 on h_T",
        lambda lib: lstm_model(lib, t["input"], t["hidden"]),
        lambda: _batch(12, (t["seq"], t["batch"], t["input"]), t["batch"]),
        baselines_nn.lstm_step, target=TARGETS["train_lstm"], flops=flops,
        min_bytes=F32 * (t["seq"] * t["batch"] * t["input"] + 2 * n_params)))
    cases.append(_transformer_case(s["transformer"]))
    return cases


def _transformer_case(c):
    b, t, d, h = c["batch"], c["seq"], c["d_model"], c["heads"]
    flops, n_params = transformer_cost(b, t, c["vocab"], d, h, c["hidden"])
    return TrainingCase(
        "train_transformer", f"train step: transformer block, embedding {c['vocab']}x{d} + "
        f"positions, pre-LN {h}-head attention, GELU-tanh MLP {c['hidden']}, mean-pool, "
        f"linear→10; seq {t}, batch {b}",
        lambda lib: transformer_model(lib, c["vocab"], t, d, h, c["hidden"]),
        lambda: _tokens(13, b, t, c["vocab"]),
        functools.partial(baselines_nn.transformer_step, heads=h), flops=flops,
        min_bytes=8 * b * t + F32 * 2 * n_params)   # int64 tokens, parameters
