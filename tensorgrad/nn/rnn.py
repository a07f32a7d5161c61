"""Recurrent layers: `RNN` (tanh or relu), `LSTM`, `GRU` and their cells, as torch.nn has them.

Equations, gate orders (LSTM i, f, g, o; GRU r, z, n with n = tanh(W_in x + b_in + r * (W_hn h
+ b_hn))), parameter names (`weight_ih_l0`, ..., `bias_hh_l1_reverse`), shapes and the default
initialisation U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) are PyTorch's.

Backpropagation through time stays linear in the sequence length: the input projection of a
whole layer is one matmul over all steps. An LSTM or GRU layer is then ONE fused op
(`tensorgrad.ops.rnn_ops.lstm_layer` / `gru_layer`: the recurrence as array code, its
recurrent weight gradient one matmul over all steps), and LSTMCell one fused `lstm_cell`
node. The plain RNN loops in Python: `_Steps` cuts the projection into its T steps with ONE
graph node (whose backward stacks the T step gradients; a slice per step would pad each
step's gradient to the full sequence, quadratic in T), and the outputs are joined by one
`stack`. The engine is iterative, so long sequences need no recursion.

Speaks only Tensor: imports no array library.
"""

import math
import warnings
from collections import namedtuple

from ..autograd.function import Function
from ..creation import empty, zeros
from ..errors import ShapeError
from ..ops import cat, stack
from ..ops.rnn_ops import gru_layer, lstm_cell, lstm_layer
from ..tensor import Tensor
from .functional import dropout as _dropout
from .init import uniform_
from .module import Module
from .parameter import Parameter


# ---- one time step of each cell, on the projected input xw = x @ W_ih.T + b_ih -------------
def _tanh_step(xw, h, w_hh_t, b_hh):
    return (xw + h @ w_hh_t).tanh()  # b_hh is folded into xw


def _relu_step(xw, h, w_hh_t, b_hh):
    return (xw + h @ w_hh_t).relu()


def _lstm_step(xw, state, w_hh_t, b_hh):
    h, c = state
    out = lstm_cell(xw + h @ w_hh_t, c)  # one fused node: [h | c]
    hid = c.shape[-1]
    return out[..., :hid], out[..., hid:]


def _gru_step(xw, h, w_hh_t, b_hh):
    gh = h @ w_hh_t
    if b_hh is not None:
        gh = gh + b_hh  # kept apart: b_hn sits inside r * (W_hn h + b_hn)
    x_r, x_z, x_n = xw.chunk(3, -1)
    h_r, h_z, h_n = gh.chunk(3, -1)
    r = (x_r + h_r).sigmoid()
    z = (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    return n + z * (h - n)  # (1 - z) * n + z * h


# ---- a whole layer in one fused op, on the projected input of all steps xw (T, N, G*H) ------
def _lstm_layer(xw, state, w_hh, b_hh, reverse):
    h0, c0 = state
    out = lstm_layer(xw, h0, c0, w_hh, reverse)  # [h_t | c_t] per step
    hid = h0.shape[-1]
    last = out[0 if reverse else -1]
    return out[..., :hid], (last[..., :hid], last[..., hid:])


def _gru_layer(xw, h0, w_hh, b_hh, reverse):
    out = gru_layer(xw, h0, w_hh, b_hh, reverse)
    return out, out[0 if reverse else -1]


# gates: rows of W_ih per unit; fold: b_hh may be added to the input projection; layer: the
# fused op for a whole layer (None: a Python loop over `step`).
_Mode = namedtuple("_Mode", ["gates", "step", "fold", "lstm", "layer"])
_MODES = {
    "RNN_TANH": _Mode(1, _tanh_step, True, False, None),
    "RNN_RELU": _Mode(1, _relu_step, True, False, None),
    "LSTM": _Mode(4, _lstm_step, True, True, _lstm_layer),
    "GRU": _Mode(3, _gru_step, False, False, _gru_layer),
}


def _project(x, w_ih, b_ih, b_hh, mode):
    """x @ W_ih.T + b_ih (+ b_hh where the mode allows), over any leading dimensions."""
    out = x.reshape(-1, x.shape[-1]) @ w_ih.T
    if b_ih is not None:
        out = out + b_ih
    if b_hh is not None and mode.fold:
        out = out + b_hh
    return out.reshape(tuple(x.shape[:-1]) + (w_ih.shape[0],))


class _Steps(Function):
    """The T steps of a (T, ...) tensor as T outputs of one node: backward stacks their
    gradients, so cutting a sequence costs O(size) in backward instead of O(T * size)."""

    @staticmethod
    def forward(ctx, x):
        return tuple(x.unbind(0))

    @staticmethod
    def backward(ctx, *grads):
        return stack(grads)


def _run_direction(x, state, weights, mode, reverse):
    """One layer in one direction over x (T, N, I): all hidden outputs (T, N, H), final state."""
    w_ih, w_hh, b_ih, b_hh = weights
    if mode.layer is not None:
        return mode.layer(_project(x, w_ih, b_ih, b_hh, mode), state, w_hh, b_hh, reverse)
    steps = _Steps.apply(_project(x, w_ih, b_ih, b_hh, mode))
    w_hh_t = w_hh.T  # one transpose node; the engine sums the steps' gradients into it
    outs = []
    for t in (range(len(steps) - 1, -1, -1) if reverse else range(len(steps))):
        state = mode.step(steps[t], state, w_hh_t, b_hh)
        outs.append(state[0] if mode.lstm else state)
    if reverse:
        outs.reverse()
    return stack(outs), state


def _shape(t):
    return tuple(t.shape)


def _check_sizes(name, input_size, hidden_size, num_layers=1):
    for what, v in (("input_size", input_size), ("hidden_size", hidden_size),
                    ("num_layers", num_layers)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name}: {what} should be of type int, got {type(v).__name__}")
    if hidden_size <= 0:
        raise ValueError(f"{name}: hidden_size must be greater than zero, got {hidden_size}")
    if num_layers <= 0:
        raise ValueError(f"{name}: num_layers must be greater than zero, got {num_layers}")


def _reset_uniform(module):
    """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), in order."""
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
    for p in module.parameters():
        uniform_(p, -bound, bound)


# ---- the multi-layer modules -------------------------------------------------------------
class RNNBase(Module):
    """What RNN, LSTM and GRU share: parameters per layer and direction, input and state
    checks, the layer loop with dropout between layers."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        _check_sizes(name, input_size, hidden_size, num_layers)
        _check_dropout(name, dropout, num_layers)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = 0
        self._mode = _MODES[mode]
        self._flat_weights_names = []
        for layer in range(num_layers):
            for suffix in (("", "_reverse") if bidirectional else ("",)):
                self._add_layer(layer, suffix, device, dtype)
        self.reset_parameters()

    def _add_layer(self, layer, suffix, device, dtype):
        rows = self._mode.gates * self.hidden_size
        cols = self.input_size if layer == 0 else self.hidden_size * self.num_directions
        shapes = {"weight_ih": (rows, cols), "weight_hh": (rows, self.hidden_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        for kind, shape in shapes.items():
            name = f"{kind}_l{layer}{suffix}"
            setattr(self, name, Parameter(empty(shape, dtype=dtype, device=device)))
            self._flat_weights_names.append(name)

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def reset_parameters(self):
        _reset_uniform(self)

    def flatten_parameters(self):
        """A no-op, kept so scripts written for cuDNN's packed weights run unchanged."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        """The parameters grouped per layer and direction, as PyTorch lists them."""
        per = 4 if self.bias else 2
        flat = self._flat_weights
        return [flat[i:i + per] for i in range(0, len(flat), per)]

    def _weights(self, layer, direction):
        suffix = "_reverse" if direction else ""
        return tuple(getattr(self, f"{kind}_l{layer}{suffix}", None)
                     for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(self, input, hx=None):
        x, batched = self._check_input(input)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        if not batched:
            x = x.unsqueeze(1)
        states = self._initial_states(hx, x, batched)
        x, finals = self._layers(x, states)
        if not batched:
            x = x.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, self._final_hidden(finals, batched)

    def _layers(self, x, states):
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                out, state = _run_direction(x, states[k], self._weights(layer, d), self._mode,
                                            reverse=d == 1)
                outs.append(out)
                finals.append(state)
            x = outs[0] if len(outs) == 1 else cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout)  # inverted: kept values scaled by 1/(1-p)
        return x, finals

    # -- checks and states -------------------------------------------------------------------
    def _check_input(self, input):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
            raise ShapeError(f"{name}: expected input to be 2-D (L, H_in) unbatched or 3-D "
                             f"{layout} batched, got {input.ndim}-D input of shape "
                             f"{_shape(input)}\n  hint: add or remove the batch dimension")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input.size(-1) must be equal to input_size. Expected "
                             f"{self.input_size}, got {input.shape[-1]} (input of shape "
                             f"{_shape(input)})\n  hint: the last dimension holds the features; "
                             f"build the layer with input_size={input.shape[-1]} or fix the "
                             "input")
        return input, input.ndim == 3

    def _expected_hidden(self, x):
        return (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)

    def _check_hidden(self, h, x, batched, what="hx"):
        name = type(self).__name__
        expected = self._expected_hidden(x)
        if not isinstance(h, Tensor):
            raise TypeError(f"{name}: {what} must be a Tensor, got {type(h).__name__}")
        want_ndim = 3 if batched else 2
        if h.ndim != want_ndim:
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise ShapeError(f"{name}: for {kind} input, {what} should also be {want_ndim}-D "
                             f"but got a {h.ndim}-D tensor of shape {_shape(h)}\n  hint: "
                             f"expected shape {expected if batched else expected[::2]}")
        shape = _shape(h) if batched else (h.shape[0], 1, h.shape[1])
        if shape != expected:
            shown = expected if batched else expected[::2]
            raise ShapeError(f"{name}: expected {what} of shape {shown} (num_layers * "
                             f"num_directions, batch, hidden_size), got {_shape(h)}\n  hint: "
                             f"{what} is never batch-first; its first dimension is "
                             f"num_layers * num_directions = {expected[0]}")
        return h if batched else h.unsqueeze(1)

    def _zeros(self, x):
        return zeros(x.shape[1], self.hidden_size, dtype=x.dtype, device=x.device)

    def _initial_states(self, hx, x, batched):
        n = self.num_layers * self.num_directions
        if hx is None:
            return [self._zeros(x) for _ in range(n)]
        h = self._check_hidden(hx, x, batched)
        return [h[k] for k in range(n)]

    def _final_hidden(self, finals, batched):
        h_n = stack(finals)
        return h_n if batched else h_n.squeeze(1)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for attr, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, attr) != default:
                s += f", {attr}={getattr(self, attr)}"
        return s


def _check_dropout(name, dropout, num_layers):
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
            or not 0 <= dropout <= 1:
        raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the "
                         f"probability of an element being zeroed, got {dropout!r}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(f"{name}: dropout option adds dropout after all but last recurrent "
                      "layer, so non-zero dropout expects num_layers greater than 1, but got "
                      f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), per layer.

    Input (L, N, H_in), (N, L, H_in) with batch_first, or (L, H_in) unbatched; returns
    (output, h_n) with output (L, N, D * H_out) and h_n (num_layers * D, N, H_out).

    >>> import tensorgrad as tg
    >>> rnn = tg.nn.RNN(3, 5, num_layers=2, bidirectional=True)
    >>> out, h_n = rnn(tg.zeros(7, 2, 3))
    >>> out.shape, h_n.shape
    ((7, 2, 10), (4, 2, 5))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select from 'tanh' "
                             "or 'relu'")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, PyTorch's gate order (i, f, g, o):
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t).

    Returns (output, (h_n, c_n)); `hx` is a tuple (h_0, c_0), each (num_layers * D, N, H).

    >>> import tensorgrad as tg
    >>> lstm = tg.nn.LSTM(3, 4, batch_first=True)
    >>> out, (h_n, c_n) = lstm(tg.zeros(2, 6, 3))
    >>> out.shape, h_n.shape, c_n.shape
    ((2, 6, 4), (1, 2, 4), (1, 2, 4))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        if proj_size:
            raise NotImplementedError("LSTM: proj_size is not supported\n  hint: add an "
                                      "nn.Linear after the LSTM instead")
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)

    def _initial_states(self, hx, x, batched):
        n = self.num_layers * self.num_directions
        if hx is None:
            return [(self._zeros(x), self._zeros(x)) for _ in range(n)]
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}\n"
                            "  hint: pass lstm(x, (h_0, c_0))")
        h = self._check_hidden(hx[0], x, batched, "h_0 (hx[0])")
        c = self._check_hidden(hx[1], x, batched, "c_0 (hx[1])")
        return [(h[k], c[k]) for k in range(n)]

    def _final_hidden(self, finals, batched):
        h_n, c_n = stack([h for h, _ in finals]), stack([c for _, c in finals])
        return (h_n, c_n) if batched else (h_n.squeeze(1), c_n.squeeze(1))


class GRU(RNNBase):
    """Gated recurrent unit, PyTorch's gate order (r, z, n):
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.

    >>> import tensorgrad as tg
    >>> out, h_n = tg.nn.GRU(3, 4, num_layers=2)(tg.zeros(5, 3))
    >>> out.shape, h_n.shape
    ((5, 4), (2, 4))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)


# The cells live in rnn_cell.py; re-exported here, where torch.nn.modules.rnn has them.
from .rnn_cell import GRUCell, LSTMCell, RNNCell, RNNCellBase  # noqa: E402, F401

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
