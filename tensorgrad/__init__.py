"""tensorgrad: a tensor autodiff framework with PyTorch's API on NumPy and CuPy backends.

>>> import tensorgrad as tg
>>> w = tg.tensor([2.0, -1.0], requires_grad=True)
>>> loss = (w * w).sum()
>>> loss.backward()
>>> w.grad.tolist()
[4.0, -2.0]

Public re-exports only; each name lives in the module the README's architecture names.
"""

from . import (autograd, backend_api, cuda, data, diagnostics, distributed, dtypes, errors, func,
               nn, ops, optim, utils, viz)
from .autograd import (enable_grad, inference_mode, is_grad_enabled,
                       is_inference_mode_enabled, no_grad, set_grad_enabled)
from .creation import (
    arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, frombuffer, full,
    full_like, linspace, manual_seed, ones, ones_like, rand, rand_like, randint, randint_like,
    randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from .devices import device, get_default_device, set_default_device
from .dtypes import (
    bool_, double, float, float16, float32, float64, get_default_dtype, half, int, int8, int16,
    int32, int64, long, promote_types, result_type, set_default_dtype, short, uint8,
)
from .dtypes import dtype as dtype
from .errors import AnomalyError, DeviceError, DTypeError, GraphError, ShapeError, TensorGradError
from .errors import CheckpointError
from .ops import *  # noqa: F403 - every op family's public functions
from .ops.broadcast import broadcast_shapes
from .serialization import load, save
from .random import Generator
from .tensor import Tensor, is_tensor

bool = bool_  # tg.bool, as torch.bool (a dtype; Python's bool stays builtins.bool)

__version__ = "0.1.0"
