"""The optimizer update ops (tensorgrad/ops/optim_ops.py) through the op harness.

Each case runs one update and returns the parameter and every state tensor, concatenated, so
the harness compares all that the op writes with a NumPy reference written here out of place
(from PyTorch's documented algorithms, with lerp where PyTorch uses it, so the reference is
not the op's own formulation). Then: the ops write in place (same objects, same leaves),
bump the version counter of every tensor written, leave the gradient alone, and refuse
mismatched or recorded tensors.
"""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.errors import DeviceError, DTypeError, GraphError, ShapeError
from tensorgrad.ops.optim_ops import adagrad_step_, adam_step_, rmsprop_step_, sgd_step_

SHAPE = (3, 4)


def _flat(*ts):
    return tg.cat([t.reshape(-1) for t in ts])


def _nflat(*arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def _make(n_signed, n_positive):
    """param, grad and signed state arrays, then non-negative ones (second moments)."""
    def make(rng):
        return ([rng.uniform(-2, 2, SHAPE) for _ in range(n_signed)]
                + [rng.uniform(0.1, 2, SHAPE) for _ in range(n_positive)])
    return make


def _direction(p, g, wd, maximize):
    return (-g if maximize else g) + wd * p


# ---- SGD -----------------------------------------------------------------------------------
def _sgd_case(momentum=0.0, dampening=0.0, nesterov=False, wd=0.0, maximize=False,
              init=False):
    kw = dict(lr=0.1, momentum=momentum, dampening=dampening, nesterov=nesterov,
              weight_decay=wd, maximize=maximize)

    def fn(p, g, buf):
        if momentum == 0:
            return _flat(sgd_step_(p, g, None, **kw))
        return _flat(sgd_step_(p, g, buf, init_buffer=init, **kw), buf)

    def ref(p, g, buf):
        d = _direction(p, g, wd, maximize)
        if momentum == 0:
            return _nflat(p - 0.1 * d)
        buf = d.copy() if init else momentum * buf + (1 - dampening) * d
        step = d + momentum * buf if nesterov else buf
        return _nflat(p - 0.1 * step, buf)

    name = f"sgd_step[m={momentum},damp={dampening},nest={nesterov},wd={wd},max={maximize}," \
           f"init={init}]"
    return OpCase(("sgd_step",), fn, ref, make=_make(3, 0), differentiable=False, name=name)


# ---- Adam / AdamW --------------------------------------------------------------------------
def _adam_case(step=3, wd=0.0, amsgrad=False, maximize=False, decoupled=False):
    kw = dict(step=step, lr=0.01, beta1=0.8, beta2=0.9, eps=1e-3, weight_decay=wd,
              amsgrad=amsgrad, maximize=maximize, decoupled=decoupled)

    def fn(p, g, m, v, vmax):
        out = adam_step_(p, g, m, v, vmax if amsgrad else None, **kw)
        return _flat(out, m, v, *((vmax,) if amsgrad else ()))

    def ref(p, g, m, v, vmax):
        if decoupled:
            p = p * (1 - 0.01 * wd)
            d = -g if maximize else g
        else:
            d = _direction(p, g, wd, maximize)
        m = m + (1 - 0.8) * (d - m)                       # lerp, as PyTorch writes it
        v = 0.9 * v + (1 - 0.9) * d * d
        vmax = np.maximum(vmax, v)
        v_hat = (vmax if amsgrad else v) / (1 - 0.9 ** step)
        m_hat = m / (1 - 0.8 ** step)
        p = p - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-3)
        return _nflat(p, m, v, *((vmax,) if amsgrad else ()))

    name = f"adam_step[t={step},wd={wd},ams={amsgrad},max={maximize},decoupled={decoupled}]"
    return OpCase(("adam_step",), fn, ref, make=_make(3, 2), differentiable=False, name=name)


# ---- Adagrad -------------------------------------------------------------------------------
def _adagrad_case(step=4, lr_decay=0.0, wd=0.0, maximize=False):
    kw = dict(step=step, lr=0.1, lr_decay=lr_decay, weight_decay=wd, eps=1e-6,
              maximize=maximize)

    def fn(p, g, s):
        return _flat(adagrad_step_(p, g, s, **kw), s)

    def ref(p, g, s):
        d = _direction(p, g, wd, maximize)
        clr = 0.1 / (1 + (step - 1) * lr_decay)
        s = s + d * d
        return _nflat(p - clr * d / (np.sqrt(s) + 1e-6), s)

    name = f"adagrad_step[t={step},decay={lr_decay},wd={wd},max={maximize}]"
    return OpCase(("adagrad_step",), fn, ref, make=_make(2, 1), differentiable=False,
                  name=name)


# ---- RMSprop -------------------------------------------------------------------------------
def _rmsprop_case(momentum=0.0, centered=False, wd=0.0, maximize=False):
    kw = dict(lr=0.01, alpha=0.9, eps=1e-4, weight_decay=wd, momentum=momentum,
              centered=centered, maximize=maximize)

    def fn(p, g, buf, gavg, sq):
        out = rmsprop_step_(p, g, sq, gavg if centered else None,
                            buf if momentum > 0 else None, **kw)
        return _flat(out, sq, *((gavg,) if centered else ()),
                     *((buf,) if momentum > 0 else ()))

    def ref(p, g, buf, gavg, sq):
        d = _direction(p, g, wd, maximize)
        sq = 0.9 * sq + 0.1 * d * d
        v = sq
        if centered:
            gavg = gavg + (1 - 0.9) * (d - gavg)          # lerp
            v = sq - gavg * gavg
        avg = np.sqrt(v) + 1e-4
        if momentum > 0:
            buf = momentum * buf + d / avg
            p = p - 0.01 * buf
        else:
            p = p - 0.01 * d / avg
        return _nflat(p, sq, *((gavg,) if centered else ()), *((buf,) if momentum > 0 else ()))

    def make(rng):
        p, g, buf, gavg = (rng.uniform(-2, 2, SHAPE) for _ in range(4))
        return [p, g, buf, gavg * 0.1, rng.uniform(0.5, 2, SHAPE)]  # square_avg > grad_avg**2

    name = f"rmsprop_step[m={momentum},centered={centered},wd={wd},max={maximize}]"
    return OpCase(("rmsprop_step",), fn, ref, make=make, differentiable=False, name=name)


CASES = [
    _sgd_case(),
    _sgd_case(wd=0.1, maximize=True),
    _sgd_case(momentum=0.9, init=True, wd=0.1),
    _sgd_case(momentum=0.9),
    _sgd_case(momentum=0.9, dampening=0.3, wd=0.05, maximize=True),
    _sgd_case(momentum=0.9, nesterov=True),
    _sgd_case(momentum=0.9, nesterov=True, wd=0.1, maximize=True),
    _adam_case(step=1),
    _adam_case(step=5, wd=0.1),
    _adam_case(amsgrad=True, maximize=True),
    _adam_case(wd=0.1, decoupled=True),
    _adam_case(wd=0.1, amsgrad=True, decoupled=True, maximize=True),
    _adagrad_case(step=1),
    _adagrad_case(lr_decay=0.1, wd=0.1, maximize=True),
    _rmsprop_case(),
    _rmsprop_case(momentum=0.9, wd=0.1),
    _rmsprop_case(centered=True, maximize=True),
    _rmsprop_case(momentum=0.5, centered=True, wd=0.05),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_optim_op(case, device):
    check_op(case, device)


# ---- in-place semantics --------------------------------------------------------------------
def _calls(device):
    """(name, fn(param, grad) -> the state tensors written), one per op."""
    def z(p):
        return tg.zeros(p.shape, dtype=p.dtype, device=device)

    def sgd(p, g):
        buf = z(p)
        sgd_step_(p, g, buf, lr=0.1, momentum=0.9)
        return [buf]

    def adam(p, g):
        m, v, vmax = z(p), z(p), z(p)
        adam_step_(p, g, m, v, vmax, step=1, lr=0.1, amsgrad=True)
        return [m, v, vmax]

    def adagrad(p, g):
        s = z(p)
        adagrad_step_(p, g, s, step=1, lr=0.1)
        return [s]

    def rmsprop(p, g):
        sq, gavg, buf = z(p), z(p), z(p)
        rmsprop_step_(p, g, sq, gavg, buf, lr=0.1, momentum=0.9, centered=True)
        return [sq, gavg, buf]

    return [("sgd", sgd), ("adam", adam), ("adagrad", adagrad), ("rmsprop", rmsprop)]


@pytest.mark.parametrize("which", ["sgd", "adam", "adagrad", "rmsprop"])
def test_update_is_in_place_and_bumps_versions(which, device):
    fn = dict(_calls(device))[which]
    p = tg.tensor([[1.0, -2.0], [0.5, 3.0]], device=device, requires_grad=True)
    g = tg.tensor([[0.3, -0.1], [2.0, 1.0]], device=device)
    view = p.detach()  # shares p's storage and version counter (.data has its own)
    before, g_before, storage = p.tolist(), g.tolist(), p.array
    v_p, v_g = p._version, g._version
    with tg.no_grad():
        states = fn(p, g)
    assert p.array is storage and p.is_leaf and p.requires_grad and p.grad_fn is None
    assert p.tolist() != before and view.tolist() == p.tolist()
    assert p._version == v_p + 1 and view._version == p._version
    assert g._version == v_g and g.tolist() == g_before  # the gradient is only read
    for s in states:
        assert s._version == 1, f"{which}: a state tensor's version was not bumped"
        assert any(v != 0 for v in s.reshape(-1).tolist())


def test_a_node_that_saved_the_parameter_refuses_after_the_update(device):
    w = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = (w * w).sum()  # mul saves w
    with tg.no_grad():
        sgd_step_(w, tg.ones(2, device=device), lr=0.1)
    with pytest.raises(GraphError):
        y.backward()


def test_refuses_to_write_a_tensor_that_requires_grad_in_grad_mode():
    w = tg.ones(3, requires_grad=True)
    with pytest.raises(GraphError, match="no_grad"):
        sgd_step_(w, tg.ones(3), lr=0.1)
    assert w.tolist() == [1.0, 1.0, 1.0]


def test_mismatched_state_is_refused_with_the_shapes():
    p, g = tg.zeros(3), tg.ones(3)
    with pytest.raises(ShapeError, match=r"exp_avg has shape \(4,\), the parameter \(3,\)"):
        adam_step_(p, g, tg.zeros(4), tg.zeros(3), step=1, lr=0.1)
    with pytest.raises(ShapeError, match="grad has shape"):
        sgd_step_(p, tg.ones(2), lr=0.1)
    with pytest.raises(DTypeError, match="float64"):
        adagrad_step_(p, g, tg.zeros(3, dtype=tg.float64), step=1, lr=0.1)
    with pytest.raises(TypeError, match="grad must be a Tensor"):
        sgd_step_(p, None, lr=0.1)
    assert p.tolist() == [0.0, 0.0, 0.0]


def test_state_on_another_device_is_refused():
    p = tg.zeros(2)
    with pytest.raises(DeviceError, match="alt"):
        adagrad_step_(p, tg.ones(2), tg.zeros(2, device="alt"), step=1, lr=0.1)


def test_optional_state_must_match_the_flags():
    p, g = tg.zeros(2), tg.ones(2)
    with pytest.raises(ValueError, match="momentum_buffer"):
        sgd_step_(p, g, None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="max_exp_avg_sq"):
        adam_step_(p, g, tg.zeros(2), tg.zeros(2), step=1, lr=0.1, amsgrad=True)
    with pytest.raises(ValueError, match="grad_avg"):
        rmsprop_step_(p, g, tg.zeros(2), lr=0.1, centered=True)


def test_float32_update_stays_float32():
    p, g, m, v = tg.ones(4), tg.ones(4), tg.zeros(4), tg.zeros(4)
    with tg.no_grad():
        adam_step_(p, g, m, v, step=1, lr=0.1)
    assert p.dtype == m.dtype == v.dtype == tg.float32
    assert p.array.dtype == np.float32 and m.array.dtype == np.float32
