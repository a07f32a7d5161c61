"""`repr` of tensors, in PyTorch's style (`tensor([1., 2.], requires_grad=True)`)."""

import numpy as np


def tensor_repr(t):
    arr = t._backend.to_numpy(t._array)
    if arr.dtype.kind == "f":
        # PyTorch prints whole numbers as `1.` and anything else with 4 fixed decimals.
        finite = arr[np.isfinite(arr)]
        whole = bool(np.all(finite == np.round(finite)))
        body = np.array2string(arr, separator=", ", prefix="tensor(", precision=4,
                               suppress_small=True, threshold=1000, edgeitems=3,
                               floatmode="maxprec" if whole else "fixed")
    else:
        body = np.array2string(arr, separator=", ", prefix="tensor(", threshold=1000)
    extras = []
    if t._device.type != "cpu":
        extras.append(f"device='{t._device}'")
    from .dtypes import get_default_dtype, int64
    d = t.dtype
    default_shown = d is get_default_dtype() or d is int64 or d.name == "bool"
    if not default_shown or arr.size == 0:
        extras.append(f"dtype={d!r}")
    if t._node is not None:
        extras.append(f"grad_fn={t._node.name()}")
    elif t._rg:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
