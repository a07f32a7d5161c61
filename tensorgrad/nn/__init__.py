"""tensorgrad.nn: modules, layers, losses, initialisers (torch.nn's names).

Speaks only Tensor: nothing here imports NumPy or CuPy (tests/test_layering.py checks).
"""

from . import functional, init, parallel, utils
from .activation import (
    ELU, GELU, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, ReLU, ReLU6, Sigmoid, SiLU, Softmax,
    Softplus, Tanh,
)
from .container import ModuleDict, ModuleList, Sequential
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d
from .layers import (
    Bilinear, Dropout, Embedding, Flatten, GradientReversal, Identity, Linear, Unflatten,
)
from .loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
    MultiMarginLoss, NLLLoss, SmoothL1Loss,
)
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .parameter import Parameter
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase

__all__ = [
    "functional", "init", "parallel", "utils", "Module", "Parameter", "Sequential", "ModuleList",
    "ModuleDict", "Identity", "Linear", "Bilinear", "Embedding", "Flatten", "Unflatten",
    "Dropout", "GradientReversal", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "ReLU", "ReLU6", "LeakyReLU", "ELU", "Hardtanh",
    "GELU", "SiLU", "Softplus", "Sigmoid", "LogSigmoid", "Tanh", "Softmax", "LogSoftmax",
    "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "MSELoss",
    "L1Loss", "HuberLoss", "SmoothL1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
    "BCEWithLogitsLoss", "MultiMarginLoss", "KLDivLoss",
]
