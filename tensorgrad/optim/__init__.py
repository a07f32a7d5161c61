"""tensorgrad.optim: optimizers and learning-rate schedulers (torch.optim's names).

Speaks only Tensor: nothing here imports NumPy or CuPy (tests/test_layering.py checks).
"""

from .optimizer import Optimizer

__all__ = ["Optimizer"]
