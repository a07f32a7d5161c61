"""Linear algebra: matmul (with mm, bmm, mv, dot, outer), einsum, tensordot and norm.

`matmul` takes all of PyTorch's forms: 1-D·1-D (a 0-d dot product), 2-D, 1-D @ 2-D and
2-D @ 1-D (a 1 is prepended or appended, then removed), and batched with broadcast batch
dims. Its VJP is two more matmuls, un-broadcast over the batch dims with the shared helper;
einsum's VJP is one einsum per operand. Both are written in tensorgrad ops, so they are
differentiable again. `linear` (x @ w.T + b, what nn.functional.linear calls) is one op, so
a layer records one node and its weight gradient comes out in the weight's layout. Operands
must share a dtype, as PyTorch requires: no promotion here.
"""

import math
import string

from ..dtypes import _BOOL, _FLOAT
from ..errors import DTypeError, ShapeError, op_error
from ..tensor import Tensor
from ._util import need_tensor, norm_dims
from .binary import where
from .broadcast import broadcast_shapes, unbroadcast
from .registry import apply, register
from .shape import contiguous


def _same_dtype(op, operands):
    """PyTorch refuses mixed dtypes (and bool) in its BLAS-backed ops; so do we."""
    dts = [x.dtype for x in operands]
    if any(d is not dts[0] for d in dts):
        names = " and ".join(d.name for d in dts)
        raise op_error(DTypeError, op, f"expected all operands to have the same dtype, but got "
                       f"{names}", operands, f"convert one first, e.g. other.to(tg.{dts[0].name}) "
                       "or .float() / .double() on both")
    if dts and dts[0].category == _BOOL:
        raise op_error(DTypeError, op, "not implemented for bool operands", operands,
                       "convert them first, e.g. .float() or .long()")


def _fit(x, shape):
    """`x` reshaped to `shape` (no op recorded when it already has it)."""
    return x if tuple(x.shape) == tuple(shape) else x.reshape(tuple(shape))


# ---- matmul ---------------------------------------------------------------------------------
def _matmul(xp, a, b):
    return xp.matmul(a, b)


def _matmul_vjp(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    # The 1-D forms are the 2-D ones with a 1 prepended (input) or appended (other).
    a2 = _fit(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = _fit(b, b.shape + (1,)) if b.ndim == 1 else b
    batch = broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    g2 = _fit(g, batch + (a2.shape[-2], b2.shape[-1]))
    if need_a and need_b:
        g2 = _dense(g2)
    ga = _fit(unbroadcast(matmul(g2, b2.mT), a2.shape), a.shape) if need_a else None
    gb = _fit(unbroadcast(matmul(a2.mT, g2), b2.shape), b.shape) if need_b else None
    return ga, gb


MATMUL = register("matmul", _matmul, _matmul_vjp, save_inputs=True)


def _inner(shape, first):
    # The size matmul contracts: the last dim of the first operand, dim -2 (or the only
    # dim) of the second.
    return shape[-1] if first or len(shape) == 1 else shape[-2]


def _swap(shape):
    return shape[:-2] + (shape[-1], shape[-2]) if len(shape) >= 2 else shape


def _inner_hint(sa, sb):
    k = sa[-1]
    tries = ((sa, _swap(sb), "transpose the second operand (other.mT; other.T for 2-D)"),
             (_swap(sa), sb, "transpose the first operand (input.mT; input.T for 2-D)"),
             (_swap(sa), _swap(sb), "transpose both operands"))
    for ta, tb, how in tries:
        if (ta, tb) != (sa, sb) and _inner(ta, True) == _inner(tb, False):
            return f"{ta} @ {tb} would fit: {how}"
    if len(sb) == 1:
        return f"the second operand needs {k} elements, to match the last dim of the first"
    need = sb[:-2] + (k, sb[-1])
    return (f"the second operand needs {k} rows (dim -2), e.g. {sa} @ {need}; "
            "the inner sizes must match")


def _check_matmul(a, b, op="matmul"):
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        raise op_error(ShapeError, op, f"both arguments to matmul need to be at least 1D, but "
                       f"they are {len(sa)}D and {len(sb)}D", (a, b),
                       "use * (or tg.mul) to scale by a 0-d tensor")
    _same_dtype(op, (a, b))
    ka, kb = _inner(sa, True), _inner(sb, False)
    if ka != kb:
        where = "the length" if len(sb) == 1 else "dim -2"
        raise op_error(ShapeError, op, f"shapes {sa} and {sb} cannot be multiplied: the inner "
                       f"sizes {ka} (last dim of the first operand) and {kb} ({where} of the "
                       "second) differ", (a, b), _inner_hint(sa, sb))
    ba, bb = sa[:-2], sb[:-2]
    try:
        broadcast_shapes(ba, bb)
    except ShapeError:
        raise op_error(ShapeError, op, f"the batch dims {ba} of {sa} and {bb} of {sb} cannot be "
                       "broadcast together", (a, b), "batch dims (all but the last two) broadcast "
                       "like elementwise ops, lined up from the right: each pair of sizes must "
                       "match or one of them be 1") from None


def matmul(input, other):
    """Matrix product with PyTorch's 1-D, 2-D, batched and broadcast forms.

    >>> import tensorgrad as tg
    >>> (tg.ones(2, 1, 3, 4) @ tg.ones(5, 4, 2)).shape
    (2, 5, 3, 2)
    """
    need_tensor(input, "matmul")
    need_tensor(other, "matmul", "other")
    _check_matmul(input, other)
    return apply(MATMUL, (input, other))


def _need_ndim(op, operands, ndims, hint):
    if tuple(x.ndim for x in operands) != ndims:
        got = " and ".join(f"{x.ndim}D" for x in operands)
        want = " and ".join(f"{n}D" for n in ndims)
        raise op_error(ShapeError, op, f"expected {want} tensors, but got {got}", operands, hint)


def mm(input, mat2):
    _need_ndim("mm", (input, mat2), (2, 2), "use matmul for 1-D or batched operands")
    _check_matmul(input, mat2, "mm")
    return apply(MATMUL, (input, mat2))


def bmm(input, mat2):
    _need_ndim("bmm", (input, mat2), (3, 3), "use matmul to broadcast batch dims")
    if input.shape[0] != mat2.shape[0]:
        raise op_error(ShapeError, "bmm", f"batch sizes {input.shape[0]} and {mat2.shape[0]} "
                       "differ", (input, mat2), "bmm needs equal batch sizes; matmul "
                       "broadcasts a batch size of 1")
    _check_matmul(input, mat2, "bmm")
    return apply(MATMUL, (input, mat2))


def mv(input, vec):
    _need_ndim("mv", (input, vec), (2, 1), "mv multiplies a matrix by a vector; see matmul")
    _check_matmul(input, vec, "mv")
    return apply(MATMUL, (input, vec))


def dot(input, tensor):
    """The dot product of two 1-D tensors of the same length (a 0-d tensor)."""
    need_tensor(input, "dot")
    need_tensor(tensor, "dot", "tensor")
    _need_ndim("dot", (input, tensor), (1, 1), "flatten them first, or use matmul / "
               "(a * b).sum(dim)")
    _check_matmul(input, tensor, "dot")
    return apply(MATMUL, (input, tensor))


def outer(input, vec2):
    """The outer product of two 1-D tensors: out[i, j] = input[i] * vec2[j]."""
    need_tensor(input, "outer")
    need_tensor(vec2, "outer", "vec2")
    _need_ndim("outer", (input, vec2), (1, 1), "flatten them first")
    return input.reshape((input.shape[0], 1)) * vec2


# ---- linear ---------------------------------------------------------------------------------
def _linear(xp, x, w, b=None):
    if x.ndim > 2:
        # (..., in) as one (rows, in) matmul: a stacked matmul runs one small BLAS call per
        # leading index (32 calls for a (32, 32, 64) sequence batch, twice as slow).
        rows = math.prod(x.shape[:-1])  # not -1: that cannot be inferred when in == 0
        out = xp.matmul(x.reshape(rows, x.shape[-1]), w.T).reshape(x.shape[:-1] + (w.shape[0],))
    else:
        out = xp.matmul(x, w.T)
    if b is not None:
        out += b  # into the product, which is fresh: no second output array
    return out


def _linear_vjp(ctx, g):
    # One node for x @ w.T + b. The weight's gradient comes out as g.T @ x, already in w's
    # (out, in) layout: the matmul-of-a-transpose route made a transposed, non-contiguous
    # gradient that every later elementwise pass (the optimizer's update) read across strides.
    x, w = ctx.inputs[0], ctx.inputs[1]
    need = ctx.needs_input_grad
    if need[0] and need[1]:
        g = _dense(g)
    gx = None
    if need[0]:
        gx = apply(MATMUL, (_rows(g), w))
        if g.ndim != 2:
            gx = gx.reshape(ctx.in_meta[0][0])
    gw = apply(MATMUL, (_rows(g).mT, _rows(x))) if need[1] else None
    if len(need) == 2:
        return gx, gw
    gb = None
    if need[2]:
        gb = g.sum(dim=tuple(range(g.ndim - 1))) if g.ndim > 1 else g
    return gx, gw, gb


def _dense(g):
    """g made contiguous once when two products read it. BLAS takes no broadcast (stride-0)
    operand, such as the gradient of a .sum(): each matmul would copy it again."""
    return g if g._array.flags.c_contiguous else contiguous(g)


def _rows(t):
    # (..., n) as (rows, n), so one matmul sums the weight's gradient over every leading dim.
    return t if t.ndim == 2 else t.reshape((-1, t.shape[-1]))


LINEAR = register("linear", _linear, _linear_vjp, save_inputs=True)


def linear(input, weight, bias=None):
    """input @ weight.T + bias as one op, for input (..., in), weight (out, in), bias (out,).

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.linalg import linear
    >>> linear(tg.ones(2, 3), tg.ones(4, 3), tg.zeros(4)).shape
    (2, 4)
    """
    operands = (input, weight) if bias is None else (input, weight, bias)
    if _fits_linear(input, weight, bias):
        return apply(LINEAR, operands)
    for i, x in enumerate(operands):
        need_tensor(x, "linear", ("input", "weight", "bias")[i])
    _same_dtype("linear", operands)
    if input.ndim == 0 or weight.ndim != 2 or input.shape[-1] != weight.shape[1] \
            or bias is not None and tuple(bias.shape) != (weight.shape[0],):
        shapes = ", ".join(str(tuple(x.shape)) for x in operands)
        raise op_error(ShapeError, "linear", f"shapes {shapes} do not fit", operands,
                       "input (..., in_features), weight (out_features, in_features), bias "
                       "(out_features,)")
    return apply(LINEAR, operands)


def _fits_linear(x, w, b):
    """The common case, checked in one expression: every layer's forward asks it. Anything
    else takes the checks that explain what is wrong."""
    if not (isinstance(x, Tensor) and isinstance(w, Tensor)):
        return False
    xa, wa = x._array, w._array
    return (wa.ndim == 2 and xa.ndim > 0 and xa.shape[-1] == wa.shape[1]
            and xa.dtype is wa.dtype and xa.dtype.kind in "fc"
            and (b is None or isinstance(b, Tensor) and b._array.dtype is wa.dtype
                 and b._array.shape == (wa.shape[0],)))


# ---- einsum --------------------------------------------------------------------------------
def _einsum(xp, *arrays, equation):
    return xp.einsum(equation, *arrays, optimize=len(arrays) > 2)


def _einsum_vjp(ctx, g, equation):
    ins, out = equation.split("->")
    ins = ins.split(",")
    return tuple(_einsum_grad(ctx, g, ins, out, i) if need else None
                 for i, need in enumerate(ctx.needs_input_grad))


def _einsum_grad(ctx, g, ins, out, i):
    """One einsum of g with the other operands, back to operand i's subscripts."""
    from ..creation import eye, ones
    shape, dtype, device = ctx.in_meta[i]
    terms, args = [out], [g]
    for j, x in enumerate(ctx.inputs):
        if j != i:
            terms.append(ins[j])
            args.append(x)
    have = set("".join(terms))
    free = iter(c for c in string.ascii_letters if c not in set("".join(ins) + out))
    target, first = "", {}
    for axis, c in enumerate(ins[i]):
        if c in first:  # a repeated letter (a diagonal): a fresh letter tied to it by eye
            f = next(free)
            terms.append(c + f)
            args.append(eye(shape[first[c]], shape[axis], dtype=g.dtype, device=device))
            c = f
        elif c not in have:  # summed over in this operand only: constant along it
            terms.append(c)
            args.append(ones(shape[axis], dtype=g.dtype, device=device))
        first.setdefault(c, axis)
        target += c
    grad = einsum(",".join(terms) + "->" + target, *args)
    # Sum where operand i was broadcast (size 1), expand where the others were.
    kept = tuple(1 if s == 1 else d for s, d in zip(shape, grad.shape, strict=True))
    grad = unbroadcast(grad, kept)
    return grad if tuple(grad.shape) == tuple(shape) else grad.expand(shape)


EINSUM = register("einsum", _einsum, _einsum_vjp, save_inputs=True)


def _einsum_error(equation, operands, problem, hint):
    return op_error(ShapeError, "einsum", f"{problem} in {equation!r}", operands, hint)


def _expand_ellipsis(equation, operands):
    """(input subscripts, output subscripts), with each '...' replaced by spare letters."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise _einsum_error(equation, operands, f"{len(ins)} operand subscripts for "
                            f"{len(operands)} operands", "give one comma-separated term each")
    spare = [c for c in string.ascii_letters if c not in lhs + rhs]
    # Each operand's '...' covers the dims its letters leave; they line up from the right.
    n_of = [x.ndim - len(t) + 3 if "..." in t else 0 for t, x in zip(ins, operands, strict=True)]
    n_ell = max(n_of, default=0)
    ell = "".join(spare[:n_ell])
    terms = [t.replace("...", ell[n_ell - n:]) for t, n in zip(ins, n_of, strict=True)]
    if arrow:
        out = rhs.replace("...", ell)
    else:  # implicit: ellipsis dims, then the letters used once, in alphabetical order
        once = [c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1]
        out = ell + "".join(sorted(once))
    return terms, out


def _check_einsum(equation, operands, terms, out):
    sizes = {}
    for t, x in zip(terms, operands, strict=True):
        if len(t) != x.ndim or not all(c in string.ascii_letters for c in t):
            raise _einsum_error(equation, operands, f"subscripts {t!r} do not fit an operand of "
                                f"shape {tuple(x.shape)}", "give one letter per dimension "
                                "(a-z, A-Z), or '...' for the rest")
        for c, n in zip(t, x.shape, strict=True):
            if sizes.get(c, 1) != 1 and n != 1 and sizes[c] != n:
                raise _einsum_error(equation, operands, f"letter {c!r} has sizes {sizes[c]} "
                                    f"and {n}", "a letter must have one size in every operand "
                                    "(or size 1, which broadcasts)")
            sizes[c] = n if sizes.get(c, 1) == 1 else sizes[c]
    bad = [c for c in out if c not in sizes or out.count(c) > 1]
    if bad:
        raise _einsum_error(equation, operands, f"output letter {bad[0]!r} is not in any input "
                            "or is repeated", "each output letter must appear once, and in an "
                            "input")


def einsum(equation, *operands):
    """Einstein summation, with PyTorch's signature (operands may also come as one list).

    >>> import tensorgrad as tg
    >>> tg.einsum("ij,jk->ik", tg.ones(2, 3), tg.ones(3, 4)).shape
    (2, 4)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum(): must provide at least one operand")
    for k, x in enumerate(operands):
        need_tensor(x, "einsum", f"operands[{k}]")
    _same_dtype("einsum", operands)
    terms, out = _expand_ellipsis(equation, operands)
    _check_einsum(equation, operands, terms, out)
    return apply(EINSUM, tuple(operands), {"equation": ",".join(terms) + "->" + out})


def tensordot(a, b, dims=2):
    """Contract the last `dims` dims of `a` with the first of `b`, or the listed pairs."""
    need_tensor(a, "tensordot", "a")
    need_tensor(b, "tensordot", "b")
    if isinstance(dims, int):
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    da = [d % max(a.ndim, 1) for d in da]
    db = [d % max(b.ndim, 1) for d in db]
    letters = iter(string.ascii_letters)
    ta = [next(letters) for _ in range(a.ndim)]
    tb = [next(letters) for _ in range(b.ndim)]
    if len(da) != len(db):
        raise op_error(ShapeError, "tensordot", f"dims lists {da} and {db} differ in length",
                       (a, b), "pair each contracted dim of a with one of b")
    for i, j in zip(da, db, strict=True):
        tb[j] = ta[i]
    out = [c for k, c in enumerate(ta) if k not in da] + [c for k, c in enumerate(tb)
                                                          if k not in db]
    return einsum(f"{''.join(ta)},{''.join(tb)}->{''.join(out)}", a, b)


# ---- norm ----------------------------------------------------------------------------------
def _norm(xp, x, p, dims, keepdim):
    if p == 2:
        return xp.sqrt(xp.sum(x * x, axis=dims, keepdims=keepdim))
    ax = xp.abs(x)
    if p == 1:
        return xp.sum(ax, axis=dims, keepdims=keepdim)
    if p == math.inf:
        return xp.max(ax, axis=dims, keepdims=keepdim)
    if p == -math.inf:
        return xp.min(ax, axis=dims, keepdims=keepdim)
    if p == 0:
        return xp.sum(x != 0, axis=dims, keepdims=keepdim).astype(x.dtype)
    return xp.sum(ax ** p, axis=dims, keepdims=keepdim) ** (1.0 / p)


def _norm_vjp(ctx, g, p, dims, keepdim):
    (x,) = ctx.inputs
    out = ctx.out
    if not keepdim:  # put the reduced dims back as size 1, so g and out broadcast over x
        kept = tuple(1 if d in dims else n for d, n in enumerate(x.shape))
        g, out = _fit(g, kept), _fit(out, kept)
    if p == 0:
        from ..creation import zeros_like
        return (zeros_like(x),)
    if p == 1:
        return (g * x.sign(),)
    if p in (math.inf, -math.inf):
        # Ties share the gradient evenly, as PyTorch's amax does.
        w = (x.abs() == out).to(x.dtype)
        return (g * x.sign() * w / w.sum(dim=dims, keepdim=True),)
    # PyTorch's rule: the gradient is 0 where the norm is 0 (not nan); the inner where keeps
    # the division finite, so that second order through the outer one stays finite too.
    zero = out == 0
    safe = where(zero, 1, out)
    scale = where(zero, 0, g / (safe if p == 2 else safe ** (p - 1)))
    if p == 2:
        return (x * scale,)
    if p < 1:
        # |x|**(p-1) is inf at x == 0, and sign(0) * inf is nan: PyTorch's gradient there is 0.
        # The inner where keeps the power finite, for second order through the outer one.
        at_zero = x == 0
        term = where(at_zero, 0, x.sign() * where(at_zero, 1, x.abs()) ** (p - 1))
        return (term * scale,)
    return (x.sign() * x.abs() ** (p - 1) * scale,)


NORM = register("norm", _norm, _norm_vjp, save_inputs=True, save_out=True, smooth=False)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The vector p-norm over `dim` (all dims when None): p = 2 / "fro", 1, inf, -inf, 0 or
    any other real. The gradient is 0 where the norm is 0, as in PyTorch.

    >>> import tensorgrad as tg
    >>> tg.norm(tg.tensor([3.0, 4.0])).item()
    5.0
    """
    need_tensor(input, "norm")
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str) or not isinstance(p, (int, float)):
        raise ValueError(f"norm: unsupported p={p!r}\n  hint: use p='fro', 2, 1, inf, -inf, 0 "
                         "or another real number ('nuc' is not supported)")
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype.category != _FLOAT:
        raise op_error(DTypeError, "norm", f"expected a floating-point input, got "
                       f"{input.dtype.name}", (input,), "convert it first, e.g. x.float()")
    dims = norm_dims(dim, input.ndim, "norm")
    return apply(NORM, (input,), {"p": float(p), "dims": dims, "keepdim": bool(keepdim)})


def _rmatmul(self, other):
    return matmul(other, self)


METHODS = {"matmul": matmul, "__matmul__": matmul, "__rmatmul__": _rmatmul, "mm": mm,
           "bmm": bmm, "mv": mv, "dot": dot, "outer": outer, "ger": outer, "norm": norm}
__all__ = ["matmul", "mm", "bmm", "mv", "dot", "outer", "einsum", "tensordot", "norm"]
