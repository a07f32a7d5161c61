"""Conv2d and the 2-D pooling modules: parameters, defaults, checks and reprs over the
`tg.conv2d` / `tg.max_pool2d` / `tg.avg_pool2d` / `tg.adaptive_avg_pool2d` ops.

Speaks only Tensor: imports no array library.
"""


from .. import ops
from ..errors import ShapeError
from .layers import add_weight_and_bias, input_shape_error, need_tensor_input, reset_fan_in_uniform
from .module import Module

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


class Conv2d(Module):
    """2-D convolution over (N, C_in, H, W) or unbatched (C_in, H, W) input.

    `padding` is an int, a pair, "valid" or "same"; `padding_mode` one of "zeros",
    "reflect", "replicate", "circular". The weight has shape
    (out_channels, in_channels // groups, kH, kW) and starts, like the bias,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch's.

    >>> import tensorgrad as tg
    >>> conv = tg.nn.Conv2d(1, 8, 3, padding=1)
    >>> conv, conv(tg.ones(2, 1, 5, 5)).shape
    (Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), (2, 8, 5, 5))
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__()
        _check_conv_args(in_channels, out_channels, groups, padding, padding_mode, stride)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation, self.groups = _pair(dilation), groups
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups) + self.kernel_size
        add_weight_and_bias(self, shape, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        reset_fan_in_uniform(self)

    def forward(self, input):
        need_tensor_input(self, input)
        self._check_input(input.shape)
        padding = self.padding
        if self.padding_mode != "zeros":
            (top, bottom), (left, right) = self._explicit_padding()
            # tg.pad lists the last dimension first: (left, right, top, bottom).
            input = ops.pad(input, (left, right, top, bottom), mode=self.padding_mode)
            padding = 0
        return ops.conv2d(input, self.weight, self.bias, self.stride, padding, self.dilation,
                          self.groups)

    def _explicit_padding(self):
        """((top, bottom), (left, right)); "same" puts the odd pixel after, as PyTorch."""
        if self.padding == "valid":
            return ((0, 0), (0, 0))
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return tuple((t // 2, t - t // 2) for t in totals)
        return tuple((p, p) for p in self.padding)

    def _check_input(self, shape):
        c = self.in_channels
        expected = f"(N, {c}, H, W) or ({c}, H, W)"
        if len(shape) not in (3, 4) or shape[-3] != c:
            raise input_shape_error(self, expected, shape, self._channel_hint(shape))
        pads = self._explicit_padding()
        for i, name in enumerate(("height", "width")):
            span = self.dilation[i] * (self.kernel_size[i] - 1) + 1
            size = shape[-2 + i] + sum(pads[i])
            if size < span:
                raise input_shape_error(
                    self, expected, shape, f"the padded {name} {size} is smaller than the "
                    f"kernel's extent {span}: use a larger input, more padding or a smaller "
                    "kernel")

    def _channel_hint(self, shape):
        c = self.in_channels
        if len(shape) == 4 and shape[-1] == c:
            return "the input looks channels-last (N, H, W, C): use x.permute(0, 3, 1, 2)"
        if c == 1 and len(shape) == 2:
            return "a single (H, W) image needs a channel dimension: x.unsqueeze(0)"
        if c == 1 and len(shape) == 3:
            return "a batch of one-channel (N, H, W) images needs x.unsqueeze(1)"
        if len(shape) not in (3, 4):
            return f"Conv2d takes 3-D or 4-D input, this one is {len(shape)}-D"
        return (f"the input has {shape[-3]} channels: use Conv2d({shape[-3]}, "
                f"{self.out_channels}, ...) here, or make the previous layer produce {c}")

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _check_conv_args(in_channels, out_channels, groups, padding, padding_mode, stride):
    if groups <= 0:
        raise ValueError("groups must be a positive integer")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                         f"({out_channels}) must both be divisible by groups ({groups})")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got "
                         f"padding_mode='{padding_mode}'")
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                             "{'valid', 'same'}")
        if padding == "same" and _pair(stride) != (1, 1):
            raise ValueError("padding='same' is not supported for strided convolutions")


def _check_pool_input(module, input):
    need_tensor_input(module, input)
    if input.ndim not in (3, 4):
        raise ShapeError(f"{module!r} expects input (N, C, H, W) or (C, H, W); got "
                         f"{tuple(input.shape)}\n  hint: pooling takes 3-D or 4-D input")


class MaxPool2d(Module):
    """Max over kernel_size windows; stride defaults to kernel_size.

    >>> import tensorgrad as tg
    >>> pool = tg.nn.MaxPool2d(2)
    >>> pool, pool(tg.ones(1, 1, 4, 4)).shape
    (MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False), (1, 1, 2, 2))
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        _check_pool_input(self, input)
        return ops.max_pool2d(input, self.kernel_size, self.stride, self.padding,
                              self.dilation, ceil_mode=self.ceil_mode,
                              return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over kernel_size windows; stride defaults to kernel_size.

    >>> import tensorgrad as tg
    >>> pool = tg.nn.AvgPool2d(2)
    >>> pool, pool(tg.ones(1, 1, 4, 4)).shape
    (AvgPool2d(kernel_size=2, stride=2, padding=0), (1, 1, 2, 2))
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        _check_pool_input(self, input)
        return ops.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                              ceil_mode=self.ceil_mode,
                              count_include_pad=self.count_include_pad,
                              divisor_override=self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Mean pooling to a fixed output_size (an int, a pair, None keeps that dimension).

    >>> import tensorgrad as tg
    >>> pool = tg.nn.AdaptiveAvgPool2d(1)
    >>> pool, pool(tg.ones(2, 3, 5, 7)).shape
    (AdaptiveAvgPool2d(output_size=1), (2, 3, 1, 1))
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        _check_pool_input(self, input)
        return ops.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
