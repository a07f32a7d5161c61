"""SGD, Adagrad, RMSprop, Adam and AdamW against NumPy implementations of PyTorch's algorithms.

The references below are written from the algorithm boxes of PyTorch's optimizer docs (with
`maximize` negating the gradient first, as PyTorch's code does), one small class each, over
lists of float64 arrays. Each test runs tensorgrad's optimizer and the reference in lockstep
for 20 steps, feeding the reference the gradients tensorgrad computed at the same point, and
compares parameters and state after every step to 1e-10 relative. Then: a state_dict round
trip mid-run, parameter groups with their own learning rates, and (when PyTorch is
installed) the same trajectories from torch.optim.
"""

import copy

import numpy as np
import pytest

import tensorgrad as tg

STEPS = 20
RTOL = 1e-10


# ---- NumPy references ----------------------------------------------------------------------
class RefSGD:
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, maximize=False):
        self.params, self.lr, self.mu, self.tau = params, lr, momentum, dampening
        self.wd, self.nesterov, self.maximize = weight_decay, nesterov, maximize
        self.state = [{} for _ in params]

    def step(self, grads):
        for p, g, s in zip(self.params, grads, self.state):
            g = (-g if self.maximize else g) + self.wd * p
            if self.mu != 0:
                s["momentum_buffer"] = (g.copy() if "momentum_buffer" not in s else
                                        self.mu * s["momentum_buffer"] + (1 - self.tau) * g)
                g = g + self.mu * s["momentum_buffer"] if self.nesterov else s["momentum_buffer"]
            p -= self.lr * g


class RefAdam:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, maximize=False, decoupled=False):
        self.params, self.lr, (self.b1, self.b2), self.eps = params, lr, betas, eps
        self.wd, self.amsgrad, self.maximize, self.decoupled = (weight_decay, amsgrad,
                                                                maximize, decoupled)
        self.state = [{"step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p),
                       **({"max_exp_avg_sq": np.zeros_like(p)} if amsgrad else {})}
                      for p in params]

    def step(self, grads):
        for p, g, s in zip(self.params, grads, self.state):
            s["step"] += 1
            t = s["step"]
            g = -g if self.maximize else g
            if self.decoupled:
                p *= 1 - self.lr * self.wd
            else:
                g = g + self.wd * p
            s["exp_avg"] = self.b1 * s["exp_avg"] + (1 - self.b1) * g
            s["exp_avg_sq"] = self.b2 * s["exp_avg_sq"] + (1 - self.b2) * g * g
            m_hat = s["exp_avg"] / (1 - self.b1 ** t)
            v = s["exp_avg_sq"]
            if self.amsgrad:
                v = s["max_exp_avg_sq"] = np.maximum(s["max_exp_avg_sq"], v)
            v_hat = v / (1 - self.b2 ** t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class RefAdamW(RefAdam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize, True)


class RefAdagrad:
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, maximize=False):
        self.params, self.lr, self.decay, self.wd = params, lr, lr_decay, weight_decay
        self.eps, self.maximize = eps, maximize
        self.state = [{"step": 0, "sum": np.full_like(p, initial_accumulator_value)}
                      for p in params]

    def step(self, grads):
        for p, g, s in zip(self.params, grads, self.state):
            s["step"] += 1
            g = (-g if self.maximize else g) + self.wd * p
            clr = self.lr / (1 + (s["step"] - 1) * self.decay)
            s["sum"] = s["sum"] + g * g
            p -= clr * g / (np.sqrt(s["sum"]) + self.eps)


class RefRMSprop:
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, maximize=False):
        self.params, self.lr, self.alpha, self.eps = params, lr, alpha, eps
        self.wd, self.mu, self.centered, self.maximize = (weight_decay, momentum, centered,
                                                          maximize)
        self.state = [{"step": 0, "square_avg": np.zeros_like(p),
                       **({"momentum_buffer": np.zeros_like(p)} if momentum > 0 else {}),
                       **({"grad_avg": np.zeros_like(p)} if centered else {})}
                      for p in params]

    def step(self, grads):
        a = self.alpha
        for p, g, s in zip(self.params, grads, self.state):
            s["step"] += 1
            g = (-g if self.maximize else g) + self.wd * p
            s["square_avg"] = a * s["square_avg"] + (1 - a) * g * g
            v = s["square_avg"]
            if self.centered:
                s["grad_avg"] = a * s["grad_avg"] + (1 - a) * g
                v = v - s["grad_avg"] ** 2
            if self.mu > 0:
                s["momentum_buffer"] = self.mu * s["momentum_buffer"] + g / (np.sqrt(v) + self.eps)
                p -= self.lr * s["momentum_buffer"]
            else:
                p -= self.lr * g / (np.sqrt(v) + self.eps)


REFS = {"SGD": RefSGD, "Adam": RefAdam, "AdamW": RefAdamW, "Adagrad": RefAdagrad,
        "RMSprop": RefRMSprop}

CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("SGD", dict(lr=0.02, momentum=0.5, dampening=0.1, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3,
                     eps=1e-6)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.9)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.05,
                     maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, maximize=True)),
]


def _id(config):
    name, kw = config
    return name + "[" + ",".join(f"{k}={v}" for k, v in kw.items()) + "]"


# ---- problems ------------------------------------------------------------------------------
def quadratic(seed=0):
    """f(x, y) = 0.5 x'Ax - b'x + 0.25 * ||y - c||^4 over two parameters of different shapes."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((5, 5))
    a, b = tg.tensor(q @ q.T + np.eye(5)), tg.tensor(rng.standard_normal(5))
    c = tg.tensor(rng.standard_normal((2, 3)))
    x = tg.tensor(rng.standard_normal(5), requires_grad=True)
    y = tg.tensor(rng.standard_normal((2, 3)), requires_grad=True)

    def loss():
        return 0.5 * (x @ (a @ x)) - (b * x).sum() + 0.25 * ((y - c) ** 2).sum() ** 2
    return [x, y], loss


def mlp(seed=0, init_seed=0):
    tg.manual_seed(init_seed)
    model = tg.nn.Sequential(tg.nn.Linear(4, 8), tg.nn.Tanh(), tg.nn.Linear(8, 3))
    rng = np.random.default_rng(seed)
    xb, yb = tg.tensor(rng.standard_normal((16, 4))), tg.tensor(rng.standard_normal((16, 3)))

    def loss():
        return tg.nn.functional.mse_loss(model(xb), yb)
    return list(model.parameters()), loss


PROBLEMS = {"quadratic": quadratic, "mlp": mlp}


@pytest.fixture(autouse=True)
def _float64():
    tg.set_default_dtype(tg.float64)  # the conftest restores float32


def _np(t):
    return t.detach().numpy()


def _close(got, want, what):
    assert np.isfinite(want).all(), f"{what}: the reference diverged"
    scale = max(float(np.max(np.abs(want))), 1e-300)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def _objective(loss_fn, kw):
    # maximize=True climbs: give it -loss, so every trajectory heads to the same minimum.
    return (lambda: -loss_fn()) if kw.get("maximize") else loss_fn


def _train(opt, params, loss_fn, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    assert all(np.isfinite(_np(p)).all() for p in params)


# ---- against the references ----------------------------------------------------------------
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_matches_reference(config, problem):
    name, kw = config
    params, loss_fn = PROBLEMS[problem]()
    loss_fn = _objective(loss_fn, kw)
    opt = getattr(tg.optim, name)(params, **kw)
    ref = REFS[name]([_np(p).copy() for p in params], **kw)
    for k in range(STEPS):
        opt.zero_grad()
        loss_fn().backward()
        grads = [p.grad.numpy().copy() for p in params]
        returned = opt.step()
        assert returned is None
        ref.step(grads)
        for i, (p, want) in enumerate(zip(params, ref.params)):
            _close(_np(p), want, f"{name} step {k + 1}, parameter {i}")
            np.testing.assert_array_equal(p.grad.numpy(), grads[i])  # grad left alone
            state = opt.state[p]
            assert set(state) == set(ref.state[i]) | ({"step"} if name != "SGD" else set())
            for key, value in ref.state[i].items():
                if key == "step":
                    assert state["step"].item() == value and state["step"].ndim == 0
                else:
                    _close(state[key].numpy(), value, f"{name} state {key!r} of {i}")
    assert all(p.is_leaf and p.requires_grad for p in params)


def test_step_is_a_float_tensor_on_the_cpu_like_pytorch():
    params, loss_fn = quadratic()
    opt = tg.optim.Adam(params)
    _train(opt, params, loss_fn, 3)
    step = opt.state[params[0]]["step"]
    assert step.dtype == tg.float64 and step.device == tg.device("cpu") and step.item() == 3
    tg.set_default_dtype(tg.float32)
    p = tg.zeros(2, dtype=tg.float64, requires_grad=True)
    opt = tg.optim.Adam([p])
    p.grad = tg.ones(2, dtype=tg.float64)
    opt.step()
    assert opt.state[p]["step"].dtype == tg.float32


def test_no_state_for_plain_sgd_nor_for_parameters_without_grad():
    params, loss_fn = quadratic()
    frozen = tg.ones(3, requires_grad=True)
    for cls in (tg.optim.SGD, tg.optim.Adam):
        opt = cls(params + [frozen], lr=0.1)
        _train(opt, params, loss_fn, 2)
        assert frozen not in opt.state and frozen.tolist() == [1.0, 1.0, 1.0]
    assert len(tg.optim.SGD(params, lr=0.1).state) == 0


def test_changing_the_step_tensor_from_outside_is_seen():
    # The host mirror of `step` must notice a write it did not make.
    params, loss_fn = quadratic()
    opt = tg.optim.Adam(params, lr=0.05)
    _train(opt, params, loss_fn, 2)
    ref = RefAdam([_np(p).copy() for p in params], lr=0.05)
    for i, p in enumerate(params):
        opt.state[p]["step"].fill_(10)
        ref.state[i].update(step=10, exp_avg=opt.state[p]["exp_avg"].numpy().copy(),
                            exp_avg_sq=opt.state[p]["exp_avg_sq"].numpy().copy())
    opt.zero_grad()
    loss_fn().backward()
    grads = [p.grad.numpy().copy() for p in params]
    opt.step()
    ref.step(grads)
    for p, want in zip(params, ref.params):
        _close(_np(p), want, "after an outside write to step")
    assert opt.state[params[0]]["step"].item() == 11


# ---- state_dict round trip -----------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_state_dict_round_trip_mid_run(config):
    name, kw = config
    params, loss_fn = mlp()
    loss_fn = _objective(loss_fn, kw)
    opt = getattr(tg.optim, name)(params, **kw)
    _train(opt, params, loss_fn, 10)
    saved_params = [_np(p).copy() for p in params]
    saved_opt = copy.deepcopy(opt.state_dict())
    _train(opt, params, loss_fn, 10)

    fresh, fresh_loss = mlp(init_seed=1)  # another start: all must come from the save
    fresh_loss = _objective(fresh_loss, kw)
    for p, a in zip(fresh, saved_params):
        with tg.no_grad():
            p.copy_(tg.tensor(a))
    fresh_opt = getattr(tg.optim, name)(fresh, **kw)
    fresh_opt.load_state_dict(saved_opt)
    _train(fresh_opt, fresh, fresh_loss, 10)
    for i, (p, q) in enumerate(zip(params, fresh)):
        np.testing.assert_array_equal(_np(q), _np(p), err_msg=f"parameter {i}")
        for key, value in opt.state[p].items():
            np.testing.assert_array_equal(fresh_opt.state[q][key].numpy(), value.numpy())


def test_loaded_state_is_a_copy_keyed_by_the_new_parameters():
    params, loss_fn = quadratic()
    opt = tg.optim.Adam(params, lr=0.05, amsgrad=True)
    _train(opt, params, loss_fn, 3)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1] and sd["param_groups"][0]["params"] == [0, 1]
    other, _ = quadratic()
    opt2 = tg.optim.Adam(other, lr=0.05, amsgrad=True)
    opt2.load_state_dict(sd)
    assert set(opt2.state) == set(other)
    for p, q in zip(params, other):
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert opt2.state[q][key] is not opt.state[p][key]
            np.testing.assert_array_equal(opt2.state[q][key].numpy(), opt.state[p][key].numpy())


# ---- parameter groups ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_param_groups_with_their_own_lr(name):
    (x, y), loss_fn = quadratic()
    opt = getattr(tg.optim, name)([{"params": [x]}, {"params": [y], "lr": 0.003}], lr=0.02,
                                  weight_decay=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.003]
    assert opt.param_groups[1]["weight_decay"] == 0.01  # the defaults fill the rest
    (x2, y2), loss_fn2 = quadratic()
    solo = [getattr(tg.optim, name)([x2], lr=0.02, weight_decay=0.01),
            getattr(tg.optim, name)([y2], lr=0.003, weight_decay=0.01)]
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
        for o in solo:
            o.zero_grad()
        loss_fn2().backward()
        for o in solo:
            o.step()
    np.testing.assert_array_equal(_np(x), _np(x2))
    np.testing.assert_array_equal(_np(y), _np(y2))


def test_changing_lr_in_a_group_takes_effect():
    w = tg.zeros(2, requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.1)
    w.grad = tg.ones(2)
    opt.step()
    opt.param_groups[0]["lr"] = 1.0
    opt.step()
    assert w.tolist() == pytest.approx([-1.1, -1.1], rel=1e-12)


def test_closure_is_evaluated_with_grad_enabled_and_its_loss_returned():
    params, loss_fn = quadratic()
    opt = tg.optim.Adam(params, lr=0.05)

    def closure():
        assert tg.is_grad_enabled()
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    with tg.no_grad():
        loss = opt.step(closure)
    assert isinstance(loss, tg.Tensor) and loss.ndim == 0
    assert opt.state[params[0]]["step"].item() == 1


def test_defaults_are_pytorchs():
    w = [tg.zeros(1, requires_grad=True)]
    d = {name: getattr(tg.optim, name)(w).defaults for name in REFS}
    assert d["SGD"]["lr"] == 1e-3 and d["SGD"]["momentum"] == 0 and not d["SGD"]["nesterov"]
    assert d["Adam"]["betas"] == (0.9, 0.999) and d["Adam"]["eps"] == 1e-8
    assert d["Adam"]["weight_decay"] == 0 and d["AdamW"]["weight_decay"] == 1e-2
    assert d["AdamW"]["decoupled_weight_decay"] and not d["Adam"]["decoupled_weight_decay"]
    assert (d["Adagrad"]["lr"], d["Adagrad"]["eps"]) == (1e-2, 1e-10)
    assert (d["RMSprop"]["lr"], d["RMSprop"]["alpha"], d["RMSprop"]["eps"]) == (1e-2, 0.99, 1e-8)


# ---- optional: the same trajectories from PyTorch -----------------------------------------
@pytest.fixture
def torch64():
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as tensorgrad's here: `step` follows it
    yield torch
    torch.set_default_dtype(old)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_matches_torch(config, problem, torch64):
    torch = torch64
    name, kw = config
    params, loss_fn = PROBLEMS[problem]()
    loss_fn = _objective(loss_fn, kw)
    tparams = [torch.tensor(_np(p).copy(), requires_grad=True) for p in params]
    opt = getattr(tg.optim, name)(params, **kw)
    topt = getattr(torch.optim, name)(tparams, **kw, foreach=False)
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn().backward()
        for tp, p in zip(tparams, params):
            tp.grad = torch.tensor(p.grad.numpy().copy())  # the same gradients, same point
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            _close(_np(p), tp.detach().numpy(), f"{name} vs torch, parameter {i}")
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert ours["param_groups"][0].keys() == theirs["param_groups"][0].keys()
    for idx, s in theirs["state"].items():
        assert set(ours["state"][idx]) == set(s)
        for key, value in s.items():
            assert ours["state"][idx][key].dtype == getattr(tg, str(value.dtype)[6:])
            _close(ours["state"][idx][key].numpy(), value.numpy(), f"state {key!r}")
