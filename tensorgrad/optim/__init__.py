"""tensorgrad.optim: optimizers and learning-rate schedulers (torch.optim's names).

Speaks only Tensor: nothing here imports NumPy or CuPy (tests/test_layering.py checks).
"""

from . import lr_scheduler
from .first_order import SGD, Adagrad, Adam, AdamW, RMSprop
from .lbfgs import LBFGS
from .optimizer import Optimizer
from .second_order import ConjugateGradient, LevenbergMarquardt, Newton

__all__ = ["Optimizer", "lr_scheduler", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW",
           "LBFGS", "ConjugateGradient", "Newton", "LevenbergMarquardt"]
