"""`Parameter`: a Tensor that a Module registers as one of its learnable weights.

Knows only Tensor; imports no array library.
"""

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and registers itself on a Module.

    It shares storage with the tensor it wraps, as PyTorch's does.

    >>> import tensorgrad as tg
    >>> p = tg.nn.Parameter(tg.zeros(2))
    >>> p.requires_grad, p.is_leaf
    (True, True)
    """

    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            from ..creation import empty
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: expected a Tensor, got {type(data).__name__}\n"
                            "  hint: wrap the values first, e.g. Parameter(tg.tensor(values))")
        # A detached alias of `data` (same storage and version counter), retyped in place:
        # Parameter adds no slots, so the two classes share one memory layout.
        p = data.detach()
        p.__class__ = cls
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data=None, requires_grad=True):
        pass  # everything happened in __new__; Tensor.__init__ must not run again

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
