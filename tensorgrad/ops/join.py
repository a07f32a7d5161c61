"""Ops that cut tensors apart or put them together: narrow, split/chunk/unbind, cat/stack,
pad, repeat/tile.

Cutting is one op, `narrow` (a view), whose VJP pads the gradient back with zeros; the
constant `pad`'s VJP narrows it again, so the pair is linear and differentiable to any order.
split/chunk/unbind cut with narrow too, but record one node for all the pieces (`Split`, a
multi-output Function) whose backward joins the pieces' gradients with a single cat/stack.
Reflect/replicate/circular padding and repeat/tile are assembled from narrow, flip, expand,
reshape and cat, so their gradients come from those ops'. Semantics are PyTorch's:
`split(x, 2)` takes a chunk size, `repeat` is NumPy's tile, pad widths are listed from the
last dimension backwards.
"""

import math

from ..autograd.function import Function
from ..dtypes import result_type
from ..errors import ShapeError, op_error
from ..tensor import Tensor
from ._util import alias, need_tensor, norm_dim
from .registry import apply, register
from .shape import _shape_arg, broadcast_to, clone, flip, reshape, to_dtype


# ---- narrow: the one slicing op --------------------------------------------------------
def _narrow(xp, x, dim, start, length):
    return x[(slice(None),) * dim + (slice(start, start + length),)]


def _narrow_vjp(ctx, g, dim, start, length):
    size = ctx.in_meta[0][0][dim]
    widths = [(0, 0)] * g.ndim
    widths[dim] = (start, size - start - length)
    return (apply(PAD, (g,), {"widths": tuple(widths), "value": 0}),)


NARROW = register("narrow", _narrow, _narrow_vjp, view=True)


def narrow(input, dim, start, length):
    """The `length` elements from `start` along `dim` (a view; negative start counts back).

    >>> import tensorgrad as tg
    >>> tg.arange(5).narrow(0, -2, 2).tolist()
    [3, 4]
    """
    need_tensor(input, "narrow")
    if input.ndim == 0:
        raise ShapeError("narrow: cannot be applied to a 0-d tensor\n  hint: reshape it first")
    d = norm_dim(dim, input.ndim, "narrow")
    size = input.shape[d]
    start, length = int(start), int(length)
    if start < 0:
        start += size
    if not (0 <= start <= size and 0 <= length <= size - start):
        raise ShapeError(f"narrow: start {start} and length {length} do not fit dimension {d} "
                         f"(size {size}) of a tensor of shape {tuple(input.shape)}\n  hint: "
                         f"need 0 <= start and start + length <= {size}")
    return apply(NARROW, (input,), {"dim": d, "start": start, "length": length})


def _select(input, dim, index):
    # input[..., index, ...] along `dim`, without that dimension.
    piece = narrow(input, dim, index, 1)
    return reshape(piece, input.shape[:dim] + input.shape[dim + 1:])


# ---- split / chunk / unbind ------------------------------------------------------------
def _pieces(input, d, sizes, drop=False):
    """The pieces of `input` along dimension `d` (without it if `drop`), one graph node."""
    if len(sizes) == 1 and not drop:
        return (narrow(input, d, 0, sizes[0]),)
    return Split.apply(input, d, tuple(sizes), drop)


class Split(Function):
    """All the pieces of a split/chunk/unbind as one multi-output node. A narrow node per
    piece would pad each piece's gradient back to full size: k pieces, k full-size arrays
    and k - 1 additions (quadratic for unbind); here backward joins them with one cat, or
    one stack for unbind, zeros standing in for pieces that got no gradient."""

    @staticmethod
    def forward(ctx, input, d, sizes, drop):
        ctx.set_materialize_grads(False)
        ctx.d, ctx.sizes, ctx.drop, ctx.shape = d, sizes, drop, input.shape
        out, start = [], 0
        for size in sizes:
            piece = narrow(input, d, start, size)
            out.append(reshape(piece, piece.shape[:d] + piece.shape[d + 1:]) if drop else piece)
            start += size
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        from ..creation import zeros
        like = next(g for g in grads if g is not None)
        d, shape = ctx.d, ctx.shape
        full = []
        for g, size in zip(grads, ctx.sizes, strict=True):
            if g is None:
                piece = shape[:d] + (() if ctx.drop else (size,)) + shape[d + 1:]
                g = zeros(piece, dtype=like.dtype, device=like.device)
            full.append(g)
        joined = stack(full, d) if ctx.drop else cat(full, d)
        return joined, None, None, None


def split(tensor, split_size_or_sections, dim=0):
    """Pieces of `tensor` along `dim`: an int is the size of each piece (the last may be
    smaller), a list gives every piece's size (PyTorch's semantics, not NumPy's).

    >>> import tensorgrad as tg
    >>> x = tg.arange(5)
    >>> [p.shape[0] for p in x.split(2)], [p.shape[0] for p in x.split([1, 4])]
    ([2, 2, 1], [1, 4])
    """
    need_tensor(tensor, "split")
    d = norm_dim(dim, tensor.ndim, "split")
    n = tensor.shape[d]
    if not isinstance(split_size_or_sections, (list, tuple)):
        s = int(split_size_or_sections)
        if s < 0 or (s == 0 and n != 0):
            raise ShapeError(f"split: split_size must be positive, got {s} (dimension {d} has "
                             f"size {n})")
        sizes = [s] * (n // s) + ([n % s] if n % s else []) if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ShapeError(f"split: split sizes {sizes} must be >= 0 and sum exactly to {n} "
                             f"(the size of dimension {d} of {tuple(tensor.shape)})\n  hint: "
                             "pass an int to cut pieces of that size")
    return _pieces(tensor, d, sizes)


def chunk(input, chunks, dim=0):
    """Split into `chunks` pieces of ceil(size / chunks) (fewer when that covers it first)."""
    need_tensor(input, "chunk")
    if chunks <= 0:
        raise ShapeError(f"chunk: chunks must be positive, got {chunks}")
    d = norm_dim(dim, input.ndim, "chunk")
    n = input.shape[d]
    if n == 0:
        return _pieces(input, d, [0] * chunks)
    return split(input, math.ceil(n / chunks), d)


def unbind(input, dim=0):
    """The slices along `dim`, each without that dimension."""
    need_tensor(input, "unbind")
    d = norm_dim(dim, input.ndim, "unbind")
    if input.shape[d] <= 1:
        return tuple(_select(input, d, i) for i in range(input.shape[d]))
    return _pieces(input, d, [1] * input.shape[d], drop=True)


# ---- cat / stack -----------------------------------------------------------------------
def _cat(xp, *arrays, dim, sizes):
    return xp.concatenate(arrays, axis=dim)


def _cat_vjp(ctx, g, dim, sizes):
    grads, start = [], 0
    for need, size in zip(ctx.needs_input_grad, sizes, strict=True):
        grads.append(narrow(g, dim, start, size) if need else None)
        start += size
    return tuple(grads)


CAT = register("cat", _cat, _cat_vjp)


def _stack(xp, *arrays, dim):
    return xp.stack(arrays, axis=dim)


def _stack_vjp(ctx, g, dim):
    return tuple(_select(g, dim, i) if need else None
                 for i, need in enumerate(ctx.needs_input_grad))


STACK = register("stack", _stack, _stack_vjp)


def _tensor_list(tensors, op):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}(): expected a list or tuple of Tensors, got "
                        f"{type(tensors).__name__}\n  hint: {op}([a, b], dim=0)")
    for i, t in enumerate(tensors):
        need_tensor(t, op, f"tensors[{i}]")
    if not tensors:
        raise ValueError(f"{op}(): expected a non-empty list of Tensors")
    dt = result_type(*tensors)  # torch.cat promotes: int32 with float16 gives float16
    return [to_dtype(t, dt) for t in tensors]


def _cat_check(tensors, d):
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != first.ndim:
            raise op_error(ShapeError, "cat", f"tensors must have the same number of "
                           f"dimensions; tensor 0 has {first.ndim} and tensor {i} has {t.ndim}",
                           tensors, "unsqueeze or reshape them to one rank first")
        bad = next((k for k in range(t.ndim) if k != d and t.shape[k] != first.shape[k]), None)
        if bad is not None:
            raise op_error(
                ShapeError, "cat", f"sizes of tensors must match except in dimension {d}; at "
                f"dimension {bad} tensor 0 has size {first.shape[bad]} but tensor {i} has size "
                f"{t.shape[bad]}", tensors,
                f"every tensor needs tensor 0's size in every dimension but dim={d}; slice or "
                f"pad them to match, or concatenate along dim={bad}")


def cat(tensors, dim=0, *, axis=None):
    """Join tensors along an existing dimension `dim`; dtypes promote as in torch.cat.

    >>> import tensorgrad as tg
    >>> tg.cat([tg.zeros(2, 3), tg.ones(1, 3)]).shape
    (3, 3)
    """
    dim = alias(dim, axis, "dim", "axis", "cat", default=0)
    tensors = _tensor_list(tensors, "cat")
    # PyTorch skips legacy empty 1-D tensors, so `out = cat([tensor([]), x])` works.
    kept = [t for t in tensors if t.shape != (0,)] or tensors[:1]
    if any(t.ndim == 0 for t in kept):
        raise op_error(ShapeError, "cat", "zero-dimensional tensors cannot be concatenated",
                       kept, "use stack, or unsqueeze(0) each tensor first")
    d = norm_dim(dim, kept[0].ndim, "cat")
    _cat_check(kept, d)
    return apply(CAT, tuple(kept), {"dim": d, "sizes": tuple(t.shape[d] for t in kept)})


concat = concatenate = cat


def stack(tensors, dim=0, *, axis=None):
    """Join equally shaped tensors along a new dimension `dim`."""
    dim = alias(dim, axis, "dim", "axis", "stack", default=0)
    tensors = _tensor_list(tensors, "stack")
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != first.shape:
            raise op_error(ShapeError, "stack", f"expects each tensor to be equal size, but got "
                           f"{tuple(first.shape)} at entry 0 and {tuple(t.shape)} at entry {i}",
                           tensors, "every tensor must have the same shape; use cat to join "
                           "along an existing dimension")
    d = norm_dim(dim, first.ndim + 1, "stack")
    return apply(STACK, tuple(tensors), {"dim": d})


# ---- pad --------------------------------------------------------------------------------
def _pad(xp, x, widths, value):
    shape = tuple(s + a + b for s, (a, b) in zip(x.shape, widths, strict=True))
    out = xp.full(shape, value, dtype=x.dtype)
    out[tuple(slice(a, a + s) for s, (a, _) in zip(x.shape, widths, strict=True))] = x
    return out


def _pad_vjp(ctx, g, widths, value):
    shape = ctx.in_meta[0][0]
    for d, (before, after) in enumerate(widths):
        if before or after:
            g = narrow(g, d, before, shape[d])
    return (g,)


PAD = register("pad", _pad, _pad_vjp)


def _pad_pairs(input, pad):
    """PyTorch's pad tuple (last dim first) as {dim: (before, after)}."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ShapeError(f"pad: the pad tuple {pad} must have an even length of at most "
                         f"2 * ndim = {2 * input.ndim} for an input of shape "
                         f"{tuple(input.shape)}\n  hint: (left, right) pads the last dimension, "
                         "(left, right, top, bottom) the last two, and so on")
    return {input.ndim - 1 - i: (pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)}


def _constant_pad(x, pairs, value):
    for d, (a, b) in pairs.items():  # negative widths crop
        if a < 0 or b < 0:
            keep = x.shape[d] + min(a, 0) + min(b, 0)
            if keep < 0:
                raise ShapeError(f"pad: dimension {d} of size {x.shape[d]} plus padding "
                                 f"({a}, {b}) gives a negative size")
            x = narrow(x, d, -min(a, 0), keep)
    widths = [(0, 0)] * x.ndim
    for d, (a, b) in pairs.items():
        widths[d] = (max(a, 0), max(b, 0))
    if not any(a or b for a, b in widths):
        return x
    return apply(PAD, (x,), {"widths": tuple(widths), "value": value})


def _reflect(x, d, a, b):
    n = x.shape[d]
    return [flip(narrow(x, d, 1, a), d), x, flip(narrow(x, d, n - 1 - b, b), d)]


def _replicate(x, d, a, b):
    n = x.shape[d]

    def edge(i, k):
        shape = x.shape[:d] + (k,) + x.shape[d + 1:]
        return broadcast_to(narrow(x, d, i, 1), shape)
    return [edge(0, a), x, edge(n - 1, b)]


def _circular(x, d, a, b):
    n = x.shape[d]
    return [narrow(x, d, n - a, a), x, narrow(x, d, 0, b)]


_MODES = {"reflect": _reflect, "replicate": _replicate, "circular": _circular}
_LIMIT = {"reflect": lambda n, w: w < n, "replicate": lambda n, w: n > 0 or w == 0,
          "circular": lambda n, w: w <= n}


def pad(input, pad, mode="constant", value=None):
    """Pad with PyTorch's convention: `pad` lists (before, after) pairs starting from the LAST
    dimension, so (1, 2) pads the last dim, (1, 1, 2, 2) the last two (left, right, top,
    bottom). Modes: "constant" (with `value`, negative widths crop), "reflect", "replicate",
    "circular".

    >>> import tensorgrad as tg
    >>> tg.pad(tg.ones(2, 3), (1, 1, 0, 2)).shape
    (4, 5)
    """
    need_tensor(input, "pad")
    pairs = _pad_pairs(input, pad)
    if mode == "constant":
        return _constant_pad(input, pairs, 0 if value is None else value)
    if mode not in _MODES:
        raise ValueError(f"pad: unknown mode {mode!r}\n  hint: use one of 'constant', "
                         "'reflect', 'replicate', 'circular'")
    if value:
        raise ValueError(f"pad: padding mode {mode!r} doesn't take a value argument")
    x = input
    for d, (a, b) in pairs.items():
        n = x.shape[d]
        if min(a, b) < 0 or not (_LIMIT[mode](n, a) and _LIMIT[mode](n, b)):
            raise ShapeError(f"pad: {mode} padding ({a}, {b}) does not fit dimension {d} of "
                             f"size {n} of the input {tuple(input.shape)}\n  hint: reflect "
                             "needs widths < size, circular widths <= size, all of them >= 0")
        if a or b:
            x = cat([p for p in _MODES[mode](x, d, a, b) if p.shape[d]], d)
    return x


# ---- repeat / tile: expand, then copy into place ----------------------------------------
def _tile(input, reps, op):
    if any(r < 0 for r in reps):
        raise ShapeError(f"{op}: repeats must be >= 0, got {reps}")
    shape = (1,) * (len(reps) - input.ndim) + tuple(input.shape)
    interleaved = tuple(v for s in shape for v in (1, s))
    expanded = tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s))
    out = reshape(input, interleaved)
    out = broadcast_to(out, expanded)
    out = reshape(out, tuple(r * s for r, s in zip(reps, shape, strict=True)))
    return clone(out) if all(r == 1 for r in reps) else out  # always a copy, as PyTorch


def repeat(input, *sizes):
    """PyTorch's repeat (NumPy's tile): `x.repeat(2, 1)` stacks two copies along dim 0."""
    need_tensor(input, "repeat")
    sizes = _shape_arg(sizes, "repeat")
    if len(sizes) < input.ndim:
        raise ShapeError(f"repeat: got {len(sizes)} repeats {sizes} for a tensor of shape "
                         f"{tuple(input.shape)}\n  hint: give at least one per dimension "
                         "(tile accepts fewer)")
    return _tile(input, sizes, "repeat")


def tile(input, *dims):
    """Like repeat, but fewer `dims` than dimensions are padded with 1s on the left."""
    need_tensor(input, "tile")
    dims = _shape_arg(dims, "tile")
    return _tile(input, (1,) * (input.ndim - len(dims)) + dims, "tile")


METHODS = {"narrow": narrow, "split": split, "chunk": chunk, "unbind": unbind,
           "repeat": repeat, "tile": tile}
__all__ = ["narrow", "split", "chunk", "unbind", "cat", "concat", "concatenate", "stack",
           "pad", "tile"]
