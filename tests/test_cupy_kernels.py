"""The fused CuPy kernels (backends/cupy_kernels.py, cupy_optim_kernels.py) against the generic
forwards of the ops they override.

- Anywhere: every key of the override table names a registered op, each override has the
  generic forward's signature, and the backend wires the table (it loads without CuPy).
- xp = "cuda": the generic forward run with xp=cupy against the override, on the same
  inputs, to DESIGN.md's tolerances (1e-6 relative in float32, 1e-12 in float64). Skips, with
  tg.cuda.why_unavailable(), where no GPU is usable.
- xp = "emulated": the kernels' CUDA C compiled for the CPU (tests/cupy_emulator.py) against
  the generic forward over NumPy. This checks every kernel's arithmetic where no GPU is
  present; the tolerance is looser (EMULATED below) because NumPy's vectorised exp/tanh and
  the C library's differ by an ulp, which cancellation (1 + tanh near -1) amplifies. On the
  GPU both sides call the same CUDA math functions.
"""

import inspect
import itertools
import shutil

import numpy as np
import pytest
from cupy_emulator import CXX, EmulatedCuPy
from harness import PARITY
from tensorgrad.backends import cupy_kernels

import tensorgrad as tg
from tensorgrad import backend_api
from tensorgrad.ops.registry import OPS

EMULATED = {"float32": dict(rtol=2e-5, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-13)}
DTYPES = ("float32", "float64")


# ---- the table, on any machine --------------------------------------------------------------
def test_every_override_names_a_registered_op_with_its_signature():
    for name, fn in cupy_kernels.OVERRIDES.items():
        assert name in OPS, f"{name} is no registered op"
        want = inspect.signature(OPS[name].forward)
        assert inspect.signature(fn) == want, f"{name}: {inspect.signature(fn)} != {want}"


def test_the_table_covers_the_fusion_targets():
    targets = {"sigmoid", "silu", "gelu", "bias_act", "relu_backward", "sigmoid_backward",
               "tanh_backward", "silu_backward", "gelu_backward", "softmax_cross_entropy",
               "softmax_cross_entropy_backward", "sgd_step", "adam_step", "adagrad_step",
               "rmsprop_step"}
    assert targets <= set(cupy_kernels.OVERRIDES)


def test_the_cupy_backend_wires_the_table():
    backend = backend_api.registered_backends()["cupy"]
    assert backend.kernel_table() is cupy_kernels.OVERRIDES
    if tg.cuda.is_available():
        assert backend.overrides is cupy_kernels.OVERRIDES


# ---- parity, on the GPU or emulated -----------------------------------------------------------
@pytest.fixture(scope="module", params=[
    pytest.param("emulated", marks=pytest.mark.skipif(CXX is None, reason="no C++ compiler")),
    pytest.param("cuda", marks=pytest.mark.skipif(
        not tg.cuda.is_available(), reason=f"cuda not usable: {tg.cuda.why_unavailable()}"))])
def xp(request):
    if request.param == "cuda":
        import cupy
        yield cupy
        return
    emulator = EmulatedCuPy()
    yield emulator
    shutil.rmtree(emulator.workdir, ignore_errors=True)


def _on(xp, a):
    return a.copy() if isinstance(xp, EmulatedCuPy) else xp.asarray(a)


def _host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _generic_xp(xp):
    return np if isinstance(xp, EmulatedCuPy) else xp


def _tol(xp, dtype):
    return (EMULATED if isinstance(xp, EmulatedCuPy) else PARITY)[dtype]


def _same(xp, got, want, dtype, what):
    np.testing.assert_allclose(_host(got), _host(want), equal_nan=True, err_msg=what,
                               **_tol(xp, dtype))


def _run(xp, name, arrays, attrs, dtype):
    """Override and generic forward on copies of the same inputs; both results, host-side."""
    ours = [_on(xp, a) for a in arrays]
    theirs = [_on(xp, a) for a in arrays]
    got = cupy_kernels.OVERRIDES[name](xp, *ours, **attrs)
    want = OPS[name].forward(_generic_xp(xp), *theirs, **attrs)
    return got, want, ours, theirs


EDGES = [0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 5.5, -5.5, 10.0, -10.0,
         20.0, -20.0, 27.5, -27.5, 40.0, -40.0, 100.0, -100.0, 1e4, -1e4]


def _x(dtype, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([EDGES, rng.uniform(-8, 8, n), rng.uniform(-0.5, 0.5, 200)])
    return x.astype(dtype)


FORWARDS = [("sigmoid", {}), ("silu", {}), ("gelu", {"approximate": "none"}),
            ("gelu", {"approximate": "tanh"})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,attrs", FORWARDS, ids=["sigmoid", "silu", "gelu", "gelu_tanh"])
def test_activation_forward(xp, name, attrs, dtype):
    got, want, _, _ = _run(xp, name, [_x(dtype)], attrs, dtype)
    assert _host(got).dtype == np.dtype(dtype)
    _same(xp, got, want, dtype, name)


def _backward_inputs(name, dtype):
    x = _x(dtype)
    g = np.random.default_rng(1).uniform(-2, 2, x.shape).astype(dtype)
    if name == "relu_backward":
        return [g, np.maximum(x, 0)]  # out has exact zeros: the gradient there is 0
    if name == "sigmoid_backward":
        return [g, (1 / (1 + np.exp(-x.astype(np.float64)))).astype(dtype)]
    if name == "tanh_backward":
        return [g, np.tanh(x)]
    return [g, x]


BACKWARDS = [("relu_backward", {}), ("sigmoid_backward", {}), ("tanh_backward", {}),
             ("silu_backward", {}), ("gelu_backward", {"approximate": "none"}),
             ("gelu_backward", {"approximate": "tanh"})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,attrs", BACKWARDS,
                         ids=["relu", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh"])
def test_activation_backward(xp, name, attrs, dtype):
    got, want, _, _ = _run(xp, name, _backward_inputs(name, dtype), attrs, dtype)
    _same(xp, got, want, dtype, name)
    if isinstance(xp, EmulatedCuPy) and name in ("relu_backward", "sigmoid_backward",
                                                 "tanh_backward"):
        np.testing.assert_array_equal(got, want)  # no libm call: the same roundings exactly


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"])
def test_bias_act(xp, activation, dtype):
    rng = np.random.default_rng(2)
    for shape in [(64, 33), (4, 5, 33), (33,)]:
        x = rng.uniform(-6, 6, shape).astype(dtype)
        x.reshape(-1)[:len(EDGES)] = EDGES[:x.size]
        bias = rng.uniform(-1, 1, 33).astype(dtype)
        got, want, _, _ = _run(xp, "bias_act", [x, bias], {"activation": activation}, dtype)
        _same(xp, got, want, dtype, f"bias_act {activation} {shape}")


def test_float16_falls_back_to_the_generic_forward(xp):
    x = _x("float16")
    for name, attrs in FORWARDS:
        got, want, _, _ = _run(xp, name, [x], attrs, "float16")
        np.testing.assert_array_equal(_host(got), _host(want))


# ---- softmax cross entropy ------------------------------------------------------------------
def _logits(dtype, n=257, c=10, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, (n, c))
    x[0] = 1e4 * np.arange(c) / c  # large but finite logits: the shift keeps them finite
    x[1] = 0.0                     # a tie across every class
    x[2, 3] = 50.0
    target = rng.integers(0, c, n)
    target[::7] = -100             # ignore_index
    target[2] = 3
    return x.astype(dtype), target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_dtype", ["int64", "int32"])
def test_softmax_cross_entropy(xp, dtype, target_dtype):
    x, target = _logits(dtype)
    target = target.astype(target_dtype)
    attrs = {"dim": 1, "ignore_index": -100}
    (loss, (shift, log_s)), (want, (want_shift, want_log_s)), _, _ = _run(
        xp, "softmax_cross_entropy", [x, target], attrs, dtype)
    _same(xp, loss, want, dtype, "loss")
    assert _host(loss)[::7].tolist() == [0.0] * len(_host(loss)[::7])
    _same(xp, shift, want_shift, dtype, "shift")
    _same(xp, log_s, want_log_s, dtype, "log_s")
    assert _host(log_s).shape == _host(want_log_s).shape == (x.shape[0], 1)

    g = np.random.default_rng(4).uniform(-1, 1, x.shape[0]).astype(dtype)
    arrays = [g, x, target, _host(want_shift), _host(want_log_s)]
    got, want, _, _ = _run(xp, "softmax_cross_entropy_backward", arrays, attrs, dtype)
    _same(xp, got, want, dtype, "softmax_cross_entropy_backward")
    assert not _host(got)[::7].any()  # ignored samples get no gradient


def test_softmax_cross_entropy_other_layouts_fall_back(xp):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 5))
    target = rng.integers(0, 4, (3, 5))
    got, want, _, _ = _run(xp, "softmax_cross_entropy", [x, target],
                           {"dim": 1, "ignore_index": -100}, "float64")
    np.testing.assert_array_equal(_host(got[0]), _host(want[0]))


# ---- optimizer updates ----------------------------------------------------------------------
def _exhaustive(xp):
    # Emulated kernels compile with the host compiler one source at a time: a covering subset
    # there (every flag on and off at least once); every combination on the GPU.
    return not isinstance(xp, EmulatedCuPy)


def _subset(every, exhaustive):
    return every if exhaustive else every[::3] + [every[-1]]


def _state(dtype, signed, positive=0, shape=(7, 13), seed=6):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-2, 2, shape) for _ in range(signed)]
    arrays += [rng.uniform(0.1, 2, shape) for _ in range(positive)]
    return [a.astype(dtype) for a in arrays]


def _check_update(xp, name, arrays, attrs, dtype):
    """arrays: param, grad, then the state (None where the op takes none). Everything the op
    writes must match; grad must be untouched; the param array itself is returned."""
    ours = [None if a is None else _on(xp, a) for a in arrays]
    theirs = [None if a is None else _on(xp, a) for a in arrays]
    got = cupy_kernels.OVERRIDES[name](xp, *ours, **attrs)
    OPS[name].forward(_generic_xp(xp), *theirs, **attrs)
    assert got is ours[0], f"{name}: must return the param array it updated in place"
    np.testing.assert_array_equal(_host(ours[1]), arrays[1])
    for i, a in enumerate(arrays):
        if a is None or i == 1:
            continue
        if isinstance(xp, EmulatedCuPy):  # +-*/ and sqrt round alike everywhere: bit for bit
            np.testing.assert_array_equal(ours[i], theirs[i], err_msg=f"{name} {attrs}: {i}")
        else:
            _same(xp, ours[i], theirs[i], dtype, f"{name} {attrs}: array {i}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_step(xp, dtype):
    every = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x, init_buffer=i)
             for m, d, n, w, x, i in itertools.product((0.0, 0.9), (0.0, 0.1), (False, True),
                                                       (0.0, 0.01), (False, True), (False, True))
             if m or not (d or n or i)]
    for flags in _subset(every, _exhaustive(xp)):
        param, grad, buf = _state(dtype, 3)
        arrays = [param, grad, buf if flags["momentum"] else None]
        _check_update(xp, "sgd_step", arrays, dict(lr=0.1, **flags), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_step(xp, dtype):
    every = [dict(amsgrad=a, decoupled=d, weight_decay=w, maximize=x)
             for a, d, w, x in itertools.product((False, True), (False, True), (0.0, 0.02),
                                                 (False, True))]
    for flags in _subset(every, _exhaustive(xp)):
        for step in (1, 10):
            param, grad, m, v, vmax = _state(dtype, 3, positive=2)
            arrays = [param, grad, m, v, vmax if flags["amsgrad"] else None]
            attrs = dict(step=step, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, **flags)
            _check_update(xp, "adam_step", arrays, attrs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_step(xp, dtype):
    for wd, maximize in itertools.product((0.0, 0.05), (False, True)):
        param, grad, state_sum = _state(dtype, 2, positive=1)
        attrs = dict(step=3, lr=0.1, lr_decay=0.01, weight_decay=wd, eps=1e-10,
                     maximize=maximize)
        _check_update(xp, "adagrad_step", [param, grad, state_sum], attrs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsprop_step(xp, dtype):
    every = list(itertools.product((0.0, 0.05), (False, True), (False, True), (0.0, 0.9)))
    for wd, maximize, centered, momentum in _subset(every, _exhaustive(xp)):
        param, grad, buf, square_avg, grad_avg = _state(dtype, 3, positive=2)
        grad_avg = grad_avg * 0.1  # keeps square_avg - grad_avg**2 positive when centered
        arrays = [param, grad, square_avg, grad_avg if centered else None,
                  buf if momentum else None]
        attrs = dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=wd, momentum=momentum,
                     centered=centered, maximize=maximize)
        _check_update(xp, "rmsprop_step", arrays, attrs, dtype)


def test_optimizer_float16_falls_back(xp):
    param, grad, m, v = _state("float16", 2, positive=2)
    attrs = dict(step=2, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-4, weight_decay=0.0,
                 amsgrad=False, maximize=False, decoupled=True)
    ours = [_on(xp, a) for a in (param, grad, m, v)] + [None]
    theirs = [_on(xp, a) for a in (param, grad, m, v)] + [None]
    cupy_kernels.OVERRIDES["adam_step"](xp, *ours, **attrs)
    OPS["adam_step"].forward(_generic_xp(xp), *theirs, **attrs)
    np.testing.assert_array_equal(_host(ours[0]), _host(theirs[0]))


# ---- through tensorgrad, on the GPU ---------------------------------------------------------
@pytest.mark.skipif(not tg.cuda.is_available(),
                    reason=f"cuda not usable: {tg.cuda.why_unavailable()}")
def test_cross_entropy_training_step_matches_without_overrides():
    from harness import without_overrides

    def step():
        tg.manual_seed(0)
        model = tg.nn.Sequential(tg.nn.Linear(20, 32), tg.nn.GELU(), tg.nn.Linear(32, 5))
        model.to("cuda")
        opt = tg.optim.Adam(model.parameters(), lr=1e-2)
        x = tg.randn(64, 20, device="cuda")
        y = tg.randint(0, 5, (64,), device="cuda")
        for _ in range(3):
            opt.zero_grad()
            loss = tg.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        return [p.cpu().numpy() for p in model.parameters()] + [loss.item()]

    fused = step()
    with without_overrides("cuda"):
        generic = step()
    for a, b in zip(fused, generic):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
