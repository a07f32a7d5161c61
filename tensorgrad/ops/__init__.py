"""Every op family, imported so that registration runs, and the Tensor methods they define.

Each family module lists its Tensor methods in `METHODS` (name -> function or property) and
its `tg.` functions in `__all__`; this package attaches the first to `Tensor` and re-exports
the second. An op is defined once, in its family, never in tensor.py.
"""

from ..tensor import Tensor
from . import (
    activation,
    binary,
    conv,
    elementwise,
    indexing,
    inplace,
    join,
    linalg,
    normalization,
    optim_ops,
    pool,
    reduce,
    rnn_ops,
    shape,
    softmax,
)
from .registry import OPS, apply, register

FAMILIES = (elementwise, binary, reduce, softmax, shape, join, indexing, linalg, inplace,
            activation, conv, pool, optim_ops, rnn_ops, normalization)


def _install_methods():
    from .. import creation
    for module in FAMILIES + (creation,):
        for name, fn in module.METHODS.items():
            setattr(Tensor, name, fn)


_install_methods()

__all__ = ["OPS", "apply", "register"] + [n for m in FAMILIES for n in getattr(m, "__all__", ())]
for _m in FAMILIES:
    for _n in getattr(_m, "__all__", ()):
        globals()[_n] = getattr(_m, _n)
