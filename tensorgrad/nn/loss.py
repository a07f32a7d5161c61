"""Loss modules: thin wrappers over tensorgrad.nn.functional with torch.nn's names and
constructor arguments (including the deprecated size_average / reduce pair).

Class weights and pos_weight are buffers, as in PyTorch, so they move with `.to()` and
appear in `state_dict`. Speaks only Tensor: imports no array library.
"""

import warnings

from . import functional as F
from .module import Module


def _legacy_reduction(size_average, reduce):
    """PyTorch's mapping of the deprecated (size_average, reduce) flags to `reduction`."""
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  "reduction='mean', 'sum' or 'none' instead.", UserWarning, stacklevel=4)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean (or sum, or none) of (input - target)^2.

    >>> import tensorgrad as tg
    >>> tg.nn.MSELoss()(tg.tensor([1.0, 3.0]), tg.tensor([0.0, 0.0])).item()
    5.0
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean (or sum, or none) of |input - target|.

    >>> import tensorgrad as tg
    >>> tg.nn.L1Loss(reduction="sum")(tg.tensor([1.0, -3.0]), tg.zeros(2)).item()
    4.0
    """

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Squared error below `delta`, linear above it.

    >>> import tensorgrad as tg
    >>> tg.nn.HuberLoss()(tg.tensor([0.5, 3.0]), tg.zeros(2)).item()
    1.3125
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Huber loss divided by `beta`: squared error / (2 beta) below beta, linear above.

    >>> import tensorgrad as tg
    >>> tg.nn.SmoothL1Loss()(tg.tensor([0.5, 3.0]), tg.zeros(2)).item()
    1.3125
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class KLDivLoss(_Loss):
    """KL divergence with `input` as log-probabilities (and `target` too if log_target).

    >>> import tensorgrad as tg
    >>> tg.nn.KLDivLoss(reduction="batchmean")
    KLDivLoss()
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits (N, C, ...) against class indices (N, ...) or class
    probabilities (N, C, ...), with optional class weights, ignore_index and label smoothing.

    >>> import tensorgrad as tg
    >>> loss = tg.nn.CrossEntropyLoss()(tg.zeros(2, 4), tg.tensor([1, 3]))
    >>> round(loss.item(), 4)
    1.3863
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C, ...) at class indices (N, ...).

    >>> import tensorgrad as tg
    >>> tg.nn.NLLLoss()(tg.tensor([[-1.0, -2.0]]), tg.tensor([1])).item()
    2.0
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities in [0, 1] (log clamped at -100, as PyTorch).

    >>> import tensorgrad as tg
    >>> round(tg.nn.BCELoss()(tg.tensor([0.5]), tg.tensor([1.0])).item(), 4)
    0.6931
    """

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid plus binary cross entropy in one stable step; pos_weight scales the positive
    term per class.

    >>> import tensorgrad as tg
    >>> round(tg.nn.BCEWithLogitsLoss()(tg.tensor([0.0]), tg.tensor([1.0])).item(), 4)
    0.6931
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class MultiMarginLoss(_WeightedLoss):
    """Multi-class hinge loss: mean over classes i != y of max(0, margin - x[y] + x[i])^p.

    >>> import tensorgrad as tg
    >>> tg.nn.MultiMarginLoss()(tg.tensor([[0.0, 0.0]]), tg.tensor([0])).item()
    0.5
    """

    def __init__(self, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError("only p == 1 and p == 2 supported")
        if weight is not None and weight.ndim != 1:
            raise ValueError(f"MultiMarginLoss: expected weight to be None or 1D tensor, got "
                             f"shape {tuple(weight.shape)}")
        self.p, self.margin = p, margin

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin,
                                   weight=self.weight, reduction=self.reduction)
