"""What the fused CuPy kernels share: the kernel cache, the dtype rule, C literals, and the
device functions that mirror NumPy's clip / maximum and tensorgrad's sigmoid.

Imports no array library: `xp` (cupy, or a stand-in on the CPU in the tests) is passed in.
"""

# The generic ops round after every arithmetic step (one CuPy ufunc each); NVRTC's default
# would contract a*b+c into one fused multiply-add that rounds once, an ulp away from them.
OPTIONS = ("--fmad=false",)

_cache = {}


def kernel(xp, key, build):
    """The kernel `build(xp)` makes, built once per (array module, key) and then reused.

    CuPy compiles it on its first call for each dtype and device, and caches that too.
    """
    k = _cache.get((xp, key))
    if k is None:
        k = _cache[(xp, key)] = build(xp)
    return k


def floating(*arrays):
    """True when the arrays share one dtype, float32 or float64: what the kernels are written
    for (their parameters share one type T)."""
    return arrays[0].dtype.char in "fd" and all(a.dtype == arrays[0].dtype for a in arrays)


def lit(value):
    """A Python float as a C literal cast to the kernel's dtype, as CuPy casts a scalar."""
    return f"(T){float(value)!r}"


BASE_PREAMBLE = """
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
// np.clip and np.maximum: NaN in, NaN out.
template <typename F> __device__ F tg_clip(F x, F lo, F hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}
template <typename F> __device__ F tg_maximum(F a, F b) {
    return (isnan(a) || isnan(b)) ? a + b : (a > b ? a : b);
}
// elementwise._sigmoid: exp of a non-positive number only; max(e, x >= 0) / (e + 1).
template <typename F> __device__ F tg_sigmoid(F x) {
    F e = exp(-fabs(x));
    return tg_maximum(e, (F)(x >= (F)0)) / (e + (F)1);
}
"""
