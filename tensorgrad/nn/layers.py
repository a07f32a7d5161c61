"""Basic layers: Identity, Linear, Bilinear, Embedding, Flatten, Unflatten, Dropout,
GradientReversal, with torch.nn's names, parameter names and default initialisation.

Also the shared `need_tensor_input` and `input_shape_error` that Linear, Conv2d, pooling and
the norm layers raise for an input that is not a Tensor, or of the wrong rank or feature
count. Speaks only Tensor: imports no array library.
"""

import math

from .. import creation
from ..autograd.graph import no_grad
from ..errors import ShapeError
from ..ops import einsum
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


def input_shape_error(module, expected, got, hint):
    """ShapeError: `<repr of the layer> expects input <expected>; got <shape>` and a hint."""
    return ShapeError(f"{module!r} expects input {expected}; got {tuple(got)}\n"
                      f"  hint: {hint}")


def need_tensor_input(module, input):
    """TypeError unless `input` is a Tensor: a list or NumPy array has no device or graph, and
    would otherwise fail later with an AttributeError (or a message naming an inner op)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{type(module).__name__}: input must be a Tensor, got "
                        f"{type(input).__name__}\n  hint: wrap it with tg.tensor(...)")


def _factory(device, dtype):
    return {"device": device, "dtype": dtype}


class Identity(Module):
    """Returns its input unchanged; takes and ignores any constructor arguments.

    >>> import tensorgrad as tg
    >>> tg.nn.Identity(54, unused="x")(tg.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features).

    Weight and bias start U(-1/sqrt(in_features), 1/sqrt(in_features)), as PyTorch's.

    >>> import tensorgrad as tg
    >>> lin = tg.nn.Linear(4, 3)
    >>> lin, lin(tg.ones(2, 4)).shape
    (Linear(in_features=4, out_features=3, bias=True), (2, 3))
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        add_weight_and_bias(self, (out_features, in_features), bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        reset_fan_in_uniform(self)

    def forward(self, input):
        need_tensor_input(self, input)
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise self._shape_error(input.shape)
        return F.linear(input, self.weight, self.bias)

    def _shape_error(self, shape):
        n = self.in_features
        if len(shape) == 0:
            hint = f"a 0-d tensor has no feature dimension; pass a tensor of shape (..., {n})"
        elif len(shape) > 2 and math.prod(shape[1:]) == n:
            hint = (f"flatten the non-batch dimensions first: nn.Flatten() or x.flatten(1) "
                    f"gives {(shape[0], n)}")
        else:
            hint = (f"the input has {shape[-1]} features in its last dimension: use "
                    f"Linear({shape[-1]}, {self.out_features}) here, or make the previous "
                    f"layer produce {n} features")
        return input_shape_error(self, f"(..., {n})", shape, hint)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


def add_weight_and_bias(module, weight_shape, bias, device, dtype):
    """Register `weight` (uninitialised) and `bias` (size weight_shape[0], or None)."""
    kw = _factory(device, dtype)
    module.weight = Parameter(creation.empty(weight_shape, **kw))
    if bias:
        module.bias = Parameter(creation.empty((weight_shape[0],), **kw))
    else:
        module.register_parameter("bias", None)


def reset_fan_in_uniform(module):
    """PyTorch's default for Linear and Conv2d: kaiming_uniform_(a=sqrt(5)) on the weight,
    which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias."""
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(module.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(module.bias, -bound, bound)


class Bilinear(Module):
    """y_k = x1^T W_k x2 + b_k, with W of shape (out_features, in1_features, in2_features).

    Weight and bias start U(-1/sqrt(in1_features), 1/sqrt(in1_features)), as PyTorch's.

    >>> import tensorgrad as tg
    >>> tg.nn.Bilinear(2, 3, 4)(tg.ones(5, 2), tg.ones(5, 3)).shape
    (5, 4)
    """

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None,
                 dtype=None):
        super().__init__()
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        add_weight_and_bias(self, (out_features, in1_features, in2_features), bias, device,
                            dtype)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in1_features) if self.in1_features > 0 else 0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        for x, n, name in ((input1, self.in1_features, "input1"),
                           (input2, self.in2_features, "input2")):
            if x.ndim == 0 or x.shape[-1] != n:
                raise input_shape_error(self, f"{name} (..., {n})", x.shape,
                                        f"{name}'s last dimension must be {n}")
        out = einsum("...i,oij,...j->...o", input1, self.weight, input2)
        return out if self.bias is None else out + self.bias

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: row i of `weight` (num_embeddings, embedding_dim) for index i.

    The weight starts N(0, 1), with the row `padding_idx` zeroed; that row gets no gradient.

    >>> import tensorgrad as tg
    >>> emb = tg.nn.Embedding(10, 3, padding_idx=0)
    >>> emb, emb(tg.tensor([[0, 2]])).shape
    (Embedding(10, 3, padding_idx=0), (1, 2, 3))
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *, _weight=None,
                 _freeze=False, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = _check_padding_idx(padding_idx, num_embeddings)
        if _weight is None:
            self.weight = Parameter(creation.empty((num_embeddings, embedding_dim),
                                                   **_factory(device, dtype)),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ShapeError(f"Embedding: _weight has shape {tuple(_weight.shape)}, "
                                 f"expected {(num_embeddings, embedding_dim)}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None):
        """An Embedding whose weight is `embeddings` (2-D), frozen unless freeze=False."""
        if embeddings.ndim != 2:
            raise ShapeError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, _weight=embeddings, _freeze=freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"


def _check_padding_idx(padding_idx, num_embeddings):
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                         f"[-{num_embeddings}, {num_embeddings})")
    return padding_idx % num_embeddings


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default.

    >>> import tensorgrad as tg
    >>> tg.nn.Flatten()(tg.ones(2, 3, 4)).shape
    (2, 12)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim `dim` into `unflattened_size`: the inverse of Flatten.

    >>> import tensorgrad as tg
    >>> tg.nn.Unflatten(1, (3, 4))(tg.ones(2, 12)).shape
    (2, 3, 4)
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """Zeroes each element with probability p in training, scaling the rest by 1/(1-p);
    the identity in eval mode.

    >>> import tensorgrad as tg
    >>> tg.nn.Dropout(0.3).eval()(tg.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class GradientReversal(Module):
    """The identity forward; multiplies the gradient by -lambda_ backward (domain adaptation,
    Ganin & Lempitsky 2015).

    >>> import tensorgrad as tg
    >>> x = tg.ones(2, requires_grad=True)
    >>> tg.nn.GradientReversal(0.5)(x).sum().backward()
    >>> x.grad.tolist()
    [-0.5, -0.5]
    """

    def __init__(self, lambda_=1.0):
        super().__init__()
        self.lambda_ = lambda_

    def forward(self, input):
        return F.gradient_reversal(input, self.lambda_)

    def extra_repr(self):
        return f"lambda_={self.lambda_}"
