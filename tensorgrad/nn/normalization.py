"""BatchNorm1d, BatchNorm2d and LayerNorm: parameters, running-stat buffers, train/eval
behaviour and input checks over `F.batch_norm` / `F.layer_norm`.

State-dict keys are PyTorch's: weight, bias, running_mean, running_var, num_batches_tracked.
Speaks only Tensor: imports no array library.
"""

from .. import creation, dtypes
from ..autograd.graph import no_grad
from . import functional as F
from . import init
from .layers import input_shape_error, need_tensor_input
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d; subclasses say which input ranks they take."""

    _ranks = ()
    _layouts = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        kw = {"device": device, "dtype": dtype}
        if affine:
            self.weight = Parameter(creation.empty((num_features,), **kw))
            self.bias = Parameter(creation.empty((num_features,), **kw))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, **kw))
            self.register_buffer("running_var", creation.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked",
                                 creation.tensor(0, dtype=dtypes.int64, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _upgrade_state_dict(self, state_dict, prefix):
        # Checkpoints from before num_batches_tracked existed (PyTorch < 0.4.1) lack it;
        # PyTorch loads them and keeps this module's current count, so do we.
        key = prefix + "num_batches_tracked"
        if self.num_batches_tracked is not None and key not in state_dict:
            state_dict[key] = self.num_batches_tracked

    def forward(self, input):
        need_tensor_input(self, input)
        self._check_input(input.shape)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                # Cumulative moving average: one host read per training step, as PyTorch.
                factor = 1.0 / self.num_batches_tracked.item()
        # Batch statistics in training, and in eval too when no running stats are kept.
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def _check_input(self, shape):
        c = self.num_features
        if len(shape) in self._ranks and shape[1] == c:
            return
        raise input_shape_error(self, self._layouts.format(c=c), shape,
                                self._hint(shape))

    def _hint(self, shape):
        name = type(self).__name__
        if len(shape) == 4 and name != "BatchNorm2d":
            return "(N, C, H, W) images take BatchNorm2d"
        if len(shape) in (2, 3) and name == "BatchNorm2d":
            return "(N, C) features and (N, C, L) sequences take BatchNorm1d"
        if len(shape) < 2:
            return "batch norm needs a batch: stack samples into (N, C, ...) with N >= 2"
        if len(shape) not in self._ranks:
            return f"{name} takes {' or '.join(f'{r}-D' for r in self._ranks)} input"
        return (f"the input has {shape[1]} channels at dim 1: use {name}({shape[1]}) here, "
                f"or make the previous layer produce {self.num_features}")

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) input, per channel C.

    Training normalizes with the batch statistics and updates running_mean and running_var
    (the unbiased batch variance) by `momentum` (None: a cumulative average); eval mode
    uses the running statistics.

    >>> import tensorgrad as tg
    >>> bn = tg.nn.BatchNorm1d(3)
    >>> bn, bn(tg.randn(4, 3)).shape
    (BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True), (4, 3))
    """

    _ranks = (2, 3)
    _layouts = "(N, {c}) or (N, {c}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) input, per channel C (see BatchNorm1d).

    >>> import tensorgrad as tg
    >>> tg.nn.BatchNorm2d(3)(tg.randn(2, 3, 4, 4)).shape
    (2, 3, 4, 4)
    """

    _ranks = (4,)
    _layouts = "(N, {c}, H, W)"


class LayerNorm(Module):
    """Normalizes over the last len(normalized_shape) dimensions of each sample, then scales
    by `weight` and shifts by `bias` (both of shape normalized_shape).

    >>> import tensorgrad as tg
    >>> ln = tg.nn.LayerNorm(4)
    >>> ln, ln(tg.randn(2, 4)).shape
    (LayerNorm((4,), eps=1e-05, elementwise_affine=True), (2, 4))
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        kw = {"device": device, "dtype": dtype}
        if elementwise_affine:
            self.weight = Parameter(creation.empty(self.normalized_shape, **kw))
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = Parameter(creation.empty(self.normalized_shape, **kw))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        need_tensor_input(self, input)
        n = len(self.normalized_shape)
        if input.ndim < n or tuple(input.shape[input.ndim - n:]) != self.normalized_shape:
            expected = "(*, " + ", ".join(map(str, self.normalized_shape)) + ")"
            raise input_shape_error(self, expected, input.shape,
                                    f"the last {n} dimension(s) of the input must be "
                                    f"{self.normalized_shape}")
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
