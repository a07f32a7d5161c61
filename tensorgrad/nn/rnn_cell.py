"""The recurrent cells: `RNNCell`, `LSTMCell`, `GRUCell` (one time step each), as torch.nn
has them. They share rnn.py's step functions, parameter layout and initialisation.

Speaks only Tensor: imports no array library.
"""

from ..creation import empty, zeros
from ..errors import ShapeError
from ..tensor import Tensor
from .module import Module
from .parameter import Parameter
from .rnn import _MODES, _check_sizes, _project, _reset_uniform, _shape


class RNNCellBase(Module):
    """What the cells share: weight_ih, weight_hh, bias_ih, bias_hh and the shape checks."""

    def __init__(self, mode, input_size, hidden_size, bias, device=None, dtype=None):
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self._mode = _MODES[mode]
        rows = self._mode.gates * hidden_size
        self.weight_ih = Parameter(empty(rows, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(rows, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(rows, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(rows, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self)

    def _step(self, input, state):
        xw = _project(input, self.weight_ih, self.bias_ih, self.bias_hh, self._mode)
        return self._mode.step(xw, state, self.weight_hh.T, self.bias_hh)

    def _check_input(self, input):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input of shape (N, {self.input_size}) or "
                             f"({self.input_size},) (input_size={self.input_size}), got "
                             f"{_shape(input)}\n  hint: a cell takes one time step; loop over "
                             "the sequence, or use the multi-layer module")
        return input.ndim == 2

    def _hidden(self, h, input, batched, what="hx"):
        name = type(self).__name__
        expected = (input.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        if h is None:
            return zeros(*expected, dtype=input.dtype, device=input.device)
        if not isinstance(h, Tensor):
            raise TypeError(f"{name}: {what} must be a Tensor, got {type(h).__name__}")
        if _shape(h) != expected:
            raise ShapeError(f"{name}: expected {what} of shape {expected} (batch, "
                             f"hidden_size) to match the input {_shape(input)}, got "
                             f"{_shape(h)}\n  hint: {what} needs the input's batch size and "
                             f"hidden_size={self.hidden_size}")
        return h

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu); input (N, H_in) or (H_in,).

    >>> import tensorgrad as tg
    >>> tg.nn.RNNCell(3, 4)(tg.zeros(2, 3)).shape
    (2, 4)
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select from "
                             "'tanh' or 'relu'")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, bias, device,
                         dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        batched = self._check_input(input)
        return self._step(input, self._hidden(hx, input, batched))


class LSTMCell(RNNCellBase):
    """One LSTM step: returns (h', c'); `hx` is a tuple (h, c) or None for zeros.

    >>> import tensorgrad as tg
    >>> h, c = tg.nn.LSTMCell(3, 4)(tg.zeros(3))
    >>> h.shape, c.shape
    ((4,), (4,))
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        batched = self._check_input(input)
        if hx is None:
            hx = (None, None)
        elif not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        state = (self._hidden(hx[0], input, batched, "h (hx[0])"),
                 self._hidden(hx[1], input, batched, "c (hx[1])"))
        return self._step(input, state)


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n, as GRU); input (N, H_in) or (H_in,).

    >>> import tensorgrad as tg
    >>> tg.nn.GRUCell(3, 4)(tg.zeros(2, 3), tg.zeros(2, 4)).shape
    (2, 4)
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        batched = self._check_input(input)
        return self._step(input, self._hidden(hx, input, batched))


__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
