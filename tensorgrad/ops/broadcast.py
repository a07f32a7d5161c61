"""Broadcasting: the shape rule, and `unbroadcast`, the only un-broadcasting code.

Every binary op's VJP reaches `unbroadcast` (through `binary._binary_vjp_grads` or directly)
to sum the incoming gradient back to each input's shape.
"""

from ..errors import ShapeError


def broadcast_shapes(*shapes, op="broadcast"):
    """NumPy's broadcasting rule, with an error that names the op and the shapes."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(-ndim, 0):
        size = 1
        for s in shapes:
            if len(s) >= -axis:
                d = s[axis]
                if d != 1:
                    if size != 1 and d != size:
                        raise _mismatch(op, shapes, axis)
                    size = d
        out.append(size)
    return tuple(out)


def _mismatch(op, shapes, axis):
    shown = " and ".join(str(tuple(s)) for s in shapes)
    sizes = ", ".join(str(s[axis]) for s in shapes if len(s) >= -axis)
    return ShapeError(
        f"{op}: shapes {shown} cannot be broadcast together: at dimension {axis} the sizes are "
        f"{sizes}\n  hint: broadcasting lines shapes up from the right; each pair of sizes must "
        "match or one of them be 1 (use unsqueeze/reshape to add a size-1 dimension)")


def unbroadcast(g, shape):
    """Sum `g` down to `shape`: over the leading axes it added, and where `shape` had size 1.

    >>> import tensorgrad as tg
    >>> unbroadcast(tg.ones(2, 3, 4), (3, 1)).shape
    (3, 1)
    """
    shape = tuple(shape)
    gshape = g.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and gshape[lead + i] != 1)
    if axes:
        g = g.sum(dim=axes, keepdim=True)
    if lead:
        g = g.reshape(shape)
    return g
