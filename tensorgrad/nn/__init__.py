"""tensorgrad.nn: modules, layers, losses, initialisers (torch.nn's names).

Speaks only Tensor: nothing here imports NumPy or CuPy (tests/test_layering.py checks).
"""

from .module import Module, ModuleDict, ModuleList, Sequential
from .parameter import Parameter

__all__ = ["Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
