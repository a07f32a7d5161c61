"""tg.optim.lr_scheduler: lr sequences against the closed forms in PyTorch's docs.

Each scheduler runs ~30 steps over three param groups with different base lrs; the expected
sequences are written here from the documented formulas (exact where PyTorch's recursion is
exact, 1e-12 relative otherwise). Chaining, SequentialLR, state_dict round trips mid-schedule,
ReduceLROnPlateau's patience / cooldown / threshold modes / min_lr, OneCycleLR's momentum cycle
and PyTorch's error messages are checked too. When torch is installed, every case is also run
through torch.optim.lr_scheduler and must give the very same floats.
"""

import copy
import math
import warnings
from bisect import bisect_right

import pytest

import tensorgrad as tg
from tensorgrad.optim import lr_scheduler as S

BASES = (0.1, 0.05, 1.0)
STEPS = 30
REL = 1e-12


# ---- a do-nothing optimizer (the schedulers only touch param_groups) -------------------------
class MomentumOpt(tg.optim.Optimizer):
    """SGD's hyper-parameter names, no update (so these tests do not depend on tg.optim.SGD)."""

    def __init__(self, params, lr=0.1, momentum=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    def step(self, closure=None):
        return None


class BetasOpt(tg.optim.Optimizer):
    """Adam's hyper-parameter names, no update."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999)):
        super().__init__(params, {"lr": lr, "betas": betas})

    def step(self, closure=None):
        return None


class NoMomentumOpt(tg.optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        return None


def make_opt(cls=MomentumOpt, bases=BASES):
    return cls([{"params": [tg.zeros(2, requires_grad=True)], "lr": b} for b in bases])


def lrs_of(opt):
    return [g["lr"] for g in opt.param_groups]


def run(opt, sched, n=STEPS):
    """lrs at epoch 0 (after the constructor) and after each of n steps."""
    out = [lrs_of(opt)]
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
        assert out[-1] == lrs_of(opt)
    return out


def assert_seq(actual, closed, bases=BASES, exact=False):
    """actual[t][i] == closed(t, bases[i]) for every epoch t and group i."""
    for t, row in enumerate(actual):
        want = [closed(t, b) for b in bases]
        if exact:
            assert row == want, f"epoch {t}: {row} != {want}"
        else:
            for got, w in zip(row, want, strict=True):
                assert math.isclose(got, w, rel_tol=REL, abs_tol=0.0), f"epoch {t}: {got} != {w}"


# ---- closed forms, per PyTorch's docs -----------------------------------------------------------
def cosine(t, b, t_max=10, lo=0.001):
    return lo + (b - lo) * (1 + math.cos(math.pi * t / t_max)) / 2


def linear(t, b, sf=0.25, ef=1.0, n=8):
    return b * (sf + (ef - sf) * min(t, n) / n)


def lam_a(t):
    return 0.95 ** t


def lam_b(t):
    return t // 4 + 1


def lam_c(t):
    return 1.0 / (t + 1)


# name -> (factory(module, opt), closed(t, base), exact)
CASES = {
    "step": (lambda M, o: M.StepLR(o, step_size=4, gamma=0.3),
             lambda t, b: b * 0.3 ** (t // 4), False),
    "step_pow2": (lambda M, o: M.StepLR(o, step_size=3, gamma=0.5),
                  lambda t, b: b * 0.5 ** (t // 3), True),
    "multistep": (lambda M, o: M.MultiStepLR(o, milestones=[3, 9, 9, 20], gamma=0.2),
                  lambda t, b: b * 0.2 ** bisect_right([3, 9, 9, 20], t), False),
    "multistep_default_gamma": (lambda M, o: M.MultiStepLR(o, milestones=[5, 15]),
                                lambda t, b: b * 0.1 ** bisect_right([5, 15], t), False),
    "exponential": (lambda M, o: M.ExponentialLR(o, gamma=0.9),
                    lambda t, b: b * 0.9 ** t, False),
    "exponential_pow2": (lambda M, o: M.ExponentialLR(o, gamma=0.5),
                         lambda t, b: b * 0.5 ** t, True),
    "cosine_past_tmax": (lambda M, o: M.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
                         cosine, False),
    "cosine_eta0": (lambda M, o: M.CosineAnnealingLR(o, T_max=7),
                    lambda t, b: cosine(t, b, 7, 0.0), False),
    "lambda_one": (lambda M, o: M.LambdaLR(o, lr_lambda=lam_a),
                   lambda t, b: b * lam_a(t), True),
    "linear": (lambda M, o: M.LinearLR(o, start_factor=0.25, total_iters=8), linear, False),
    "linear_default": (lambda M, o: M.LinearLR(o),
                       lambda t, b: linear(t, b, 1.0 / 3, 1.0, 5), False),
    "linear_decay": (lambda M, o: M.LinearLR(o, start_factor=1.0, end_factor=0.1,
                                             total_iters=12),
                     lambda t, b: linear(t, b, 1.0, 0.1, 12), False),
    "constant": (lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=4),
                 lambda t, b: b * (0.5 if t < 4 else 1.0), True),
    "constant_default": (lambda M, o: M.ConstantLR(o),
                         lambda t, b: b * (1.0 / 3 if t < 5 else 1.0), False),
    "multiplicative": (lambda M, o: M.MultiplicativeLR(o, lr_lambda=lambda t: 0.5),
                       lambda t, b: b * 0.5 ** t, True),
    "polynomial": (lambda M, o: M.PolynomialLR(o, total_iters=12, power=2.0),
                   lambda t, b: b * (1 - min(t, 12) / 12) ** 2, False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sequence_matches_closed_form(name):
    factory, closed, exact = CASES[name]
    opt = make_opt()
    lrs = run(opt, factory(S, opt))
    assert_seq(lrs, closed, exact=exact)
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASES)


def test_lambda_lr_one_function_per_group():
    opt = make_opt()
    sched = S.LambdaLR(opt, lr_lambda=[lam_a, lam_b, lam_c])
    lrs = run(opt, sched)
    for t, row in enumerate(lrs):
        assert row == [BASES[0] * lam_a(t), BASES[1] * lam_b(t), BASES[2] * lam_c(t)]
    assert sched.base_lrs == list(BASES) and sched.last_epoch == STEPS


def test_step_with_epoch_uses_closed_form_and_warns():
    opt = make_opt()
    sched = S.StepLR(opt, step_size=3, gamma=0.1)
    opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(7)
    assert sched.last_epoch == 7
    assert sched.get_last_lr() == [b * 0.1 ** 2 for b in BASES]


# ---- composition --------------------------------------------------------------------------------
def test_chaining_exponential_and_step_on_one_optimizer():
    # PyTorch's documented result: each recursive form scales the current lr, so they multiply.
    opt = make_opt()
    exp, step = S.ExponentialLR(opt, gamma=0.9), S.StepLR(opt, step_size=3, gamma=0.1)
    lrs = [lrs_of(opt)]
    for _ in range(STEPS):
        opt.step()
        exp.step()
        step.step()
        lrs.append(lrs_of(opt))
    assert_seq(lrs, lambda t, b: b * 0.9 ** t * 0.1 ** (t // 3))
    assert step.get_last_lr() == lrs[-1]


def test_chained_scheduler_equals_stepping_both():
    opt = make_opt()
    chained = S.ChainedScheduler([S.ExponentialLR(opt, gamma=0.9),
                                  S.StepLR(opt, step_size=3, gamma=0.1)])
    assert chained.optimizer is opt
    assert_seq(run(opt, chained), lambda t, b: b * 0.9 ** t * 0.1 ** (t // 3))


def test_chaining_linear_warmup_with_cosine():
    opt = make_opt()
    warm = S.LinearLR(opt, start_factor=0.25, total_iters=8)
    cos = S.CosineAnnealingLR(opt, T_max=40)
    lrs = [lrs_of(opt)]
    for _ in range(STEPS):
        opt.step()
        warm.step()
        cos.step()
        lrs.append(lrs_of(opt))
    assert_seq(lrs, lambda t, b: linear(t, 1.0) * cosine(t, b, 40, 0.0))


def test_sequential_lr_warmup_then_exponential():
    opt = make_opt()
    sched = S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.25, total_iters=5),
                                 S.ExponentialLR(opt, gamma=0.9)], milestones=[5])
    lrs = run(opt, sched)
    assert_seq(lrs, lambda t, b: linear(t, b, 0.25, 1.0, 5) if t < 5 else b * 0.9 ** (t - 5))


def test_composite_argument_errors():
    opt, other = make_opt(), make_opt()
    a, b = S.StepLR(opt, 2), S.StepLR(other, 2)
    with pytest.raises(ValueError, match="at least one scheduler"):
        S.ChainedScheduler([])
    with pytest.raises(ValueError, match="same optimizer"):
        S.ChainedScheduler([a, b])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        S.SequentialLR(opt, [a, S.ReduceLROnPlateau(opt)], milestones=[3])
    with pytest.raises(ValueError, match="one more than the number of milestone points"):
        S.SequentialLR(opt, [a, S.StepLR(opt, 3)], milestones=[3, 6])


# ---- state_dict round trips -------------------------------------------------------------------
def _make_chained(M, o):
    return M.ChainedScheduler([M.ExponentialLR(o, gamma=0.9), M.StepLR(o, 3, gamma=0.1)])


def _make_sequential(M, o):
    return M.SequentialLR(o, [M.LinearLR(o, start_factor=0.25, total_iters=5),
                              M.CosineAnnealingLR(o, T_max=10)], milestones=[5])


ROUND_TRIP = {name: CASES[name][0] for name in
              ("step", "multistep", "exponential", "cosine_past_tmax", "linear", "constant",
               "polynomial")}
ROUND_TRIP["onecycle"] = lambda M, o: M.OneCycleLR(o, max_lr=[0.5, 0.2, 1.0], total_steps=30)
ROUND_TRIP["lambda"] = lambda M, o: M.LambdaLR(o, [lam_a, lam_b, lam_c])
ROUND_TRIP["chained"] = _make_chained
ROUND_TRIP["sequential"] = _make_sequential


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_state_dict_round_trip_mid_schedule(name):
    factory = ROUND_TRIP[name]
    opt = make_opt()
    reference = run(opt, factory(S, opt))
    opt = make_opt()
    sched = factory(S, opt)
    head = run(opt, sched, 12)
    saved, saved_opt = copy.deepcopy(sched.state_dict()), copy.deepcopy(opt.state_dict())
    assert "optimizer" not in saved
    # PyTorch's order: build the scheduler, then load the optimizer, then the scheduler.
    opt2 = make_opt()
    sched2 = factory(S, opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    assert sched2.get_last_lr() == head[-1] and lrs_of(opt2) == head[-1]
    tail = run(opt2, sched2, STEPS - 12)
    assert head + tail[1:] == reference
    full = make_opt()
    run(full, factory(S, full))
    assert opt2.param_groups[0].keys() == full.param_groups[0].keys()
    assert [g.get("momentum") for g in opt2.param_groups] == \
        [g.get("momentum") for g in full.param_groups]  # OneCycleLR's momentum cycle resumes too


def test_resume_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_opt(), step_size=2, last_epoch=4)


class Halving:
    """A callable object: LambdaLR saves its __dict__ (plain functions are not saved)."""

    def __init__(self):
        self.rate = 0.5

    def __call__(self, epoch):
        return self.rate ** epoch


def test_lambda_lr_state_dict_saves_callable_objects_only():
    opt = make_opt()
    obj = Halving()
    sched = S.LambdaLR(opt, [lam_a, obj, lambda t: 1.0])
    run(opt, sched, 3)
    obj.rate = 0.25
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [None, {"rate": 0.25}, None]
    opt2 = make_opt()
    obj2 = Halving()
    sched2 = S.LambdaLR(opt2, [lam_a, obj2, lambda t: 1.0])
    sched2.load_state_dict(sd)
    assert obj2.rate == 0.25 and sched2.last_epoch == 3
    assert sched2.lr_lambdas[0] is lam_a and "lr_lambdas" in sd


def test_state_dict_survives_tg_save(tmp_path):
    if not hasattr(tg, "save"):
        pytest.skip("tg.save is not written yet")
    opt = make_opt()
    sched = S.MultiStepLR(opt, milestones=[3, 9, 9], gamma=0.2)
    run(opt, sched, 5)
    tg.save(sched.state_dict(), tmp_path / "sched.safetensors")
    opt2 = make_opt()
    sched2 = S.MultiStepLR(opt2, milestones=[1], gamma=0.2)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(tg.load(tmp_path / "sched.safetensors"))
    assert run(opt2, sched2, 10) == run(opt, sched, 10)
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched2.step(9)  # the closed form needs the milestones' counts back (9 is listed twice)
    assert sched2.get_last_lr() == [b * 0.2 ** 3 for b in BASES]


# ---- ReduceLROnPlateau ----------------------------------------------------------------------
def plateau_run(metrics, bases=(1.0,), **kwargs):
    opt = make_opt(bases=bases)
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for m in metrics:
        opt.step()
        sched.step(m)
        out.append(list(sched.get_last_lr()))
        assert out[-1] == lrs_of(opt)
    return out


def test_plateau_patience_and_per_group_min_lr():
    # patience=2: the third epoch without improvement (rel. threshold 1e-4) reduces the lr
    metrics = [10, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    got = plateau_run(metrics, bases=(1.0, 0.1), patience=2, factor=0.5, min_lr=[0.2, 0.0])
    a, b = [1.0] * 4 + [0.5] * 4 + [0.25] * 3 + [0.2] * 4, \
        [0.1] * 4 + [0.05] * 4 + [0.025] * 3 + [0.0125] * 3 + [0.00625]
    assert got == [list(p) for p in zip(a, b)]


@pytest.mark.parametrize("cooldown, expected", [
    (0, [1, 1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4, 1e-5, 1e-5]),
    (2, [1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001]),
])
def test_plateau_cooldown(cooldown, expected):
    got = plateau_run([5.0] * 12, patience=1, cooldown=cooldown, eps=0.0)
    assert [r[0] for r in got] == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("mode, threshold_mode, metrics, expected", [
    ("min", "rel", [10, 9.5, 9.45], [1, 0.5, 0.25]),    # needs < 10 * 0.9
    ("min", "abs", [10, 9.5, 9.45], [1, 1, 0.5]),       # needs < best - 0.1
    ("max", "rel", [10, 10.5, 10.5], [1, 0.5, 0.25]),   # needs > 10 * 1.1
    ("max", "abs", [10, 10.5, 10.5], [1, 1, 0.5]),      # needs > best + 0.1
])
def test_plateau_threshold_modes(mode, threshold_mode, metrics, expected):
    got = plateau_run(metrics, mode=mode, threshold=0.1, threshold_mode=threshold_mode,
                      patience=0, factor=0.5)
    assert [r[0] for r in got] == expected


def test_plateau_ignores_changes_below_eps():
    got = plateau_run([1, 2, 3], bases=(1.5e-8, 1.0), patience=0, factor=0.5)
    assert got[-1] == [1.5e-8, 0.25]


def test_plateau_reads_a_tensor_metric_once_per_step(monkeypatch):
    calls = []
    item = tg.Tensor.item

    def counting_item(self):
        calls.append(1)
        return item(self)

    monkeypatch.setattr(tg.Tensor, "item", counting_item)
    metrics = [10, 9, 9, 9, 9, 8, 8]
    as_tensors = plateau_run([tg.tensor(float(m)) for m in metrics], patience=2, factor=0.5)
    assert len(calls) == len(metrics)
    assert as_tensors == plateau_run(metrics, patience=2, factor=0.5)


def test_plateau_state_dict_round_trip():
    metrics = [10, 9, 9, 9, 9, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7, 7]
    reference = plateau_run(metrics, patience=2, cooldown=1, factor=0.5)
    opt = make_opt(bases=(1.0,))
    sched = S.ReduceLROnPlateau(opt, patience=2, cooldown=1, factor=0.5)
    for m in metrics[:6]:
        sched.step(m)
    saved = copy.deepcopy(sched.state_dict())
    opt2 = make_opt(bases=(1.0,))
    sched2 = S.ReduceLROnPlateau(opt2, patience=5, factor=0.5)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(saved)
    assert sched2.patience == 2 and sched2.best == 8
    tail = []
    for m in metrics[6:]:
        sched2.step(m)
        tail.append(sched2.get_last_lr())
    assert tail == reference[6:]


def test_plateau_argument_errors():
    opt = make_opt()
    with pytest.raises(ValueError, match=r"Factor should be < 1\.0\."):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown!"):
        S.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="threshold mode pct is unknown!"):
        S.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match="expected 3 min_lrs, got 2"):
        S.ReduceLROnPlateau(opt, min_lr=[0.0, 0.1])
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        S.ReduceLROnPlateau([1.0])


# ---- OneCycleLR --------------------------------------------------------------------------------
def cos_anneal(start, end, pct):
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def lin_anneal(start, end, pct):
    return start + (end - start) * pct


def one_cycle(t, top, total=20, pct_start=0.3, anneal=cos_anneal, three_phase=False,
              moms=(0.85, 0.95)):
    """(lr, momentum) at step t, from the 1cycle description in PyTorch's docs."""
    low, high = moms
    init = top / 25.0
    final = init / 1e4
    up = pct_start * total - 1
    if t <= up:
        return anneal(init, top, t / up), anneal(high, low, t / up)
    if not three_phase:
        pct = (t - up) / (total - 1 - up)
        return anneal(top, final, pct), anneal(low, high, pct)
    down = 2 * pct_start * total - 2
    if t <= down:
        pct = (t - up) / (down - up)
        return anneal(top, init, pct), anneal(low, high, pct)
    return anneal(init, final, (t - down) / (total - 1 - down)), high


TOPS = (1.0, 0.1, 0.4)


@pytest.mark.parametrize("kwargs, expect_kwargs", [
    ({}, {}),
    ({"anneal_strategy": "linear"}, {"anneal": lin_anneal}),
    ({"three_phase": True}, {"three_phase": True}),
    ({"pct_start": 0.5, "base_momentum": 0.8, "max_momentum": 0.9},
     {"pct_start": 0.5, "moms": (0.8, 0.9)}),
])
@pytest.mark.parametrize("opt_cls", [MomentumOpt, BetasOpt])
def test_one_cycle_lr_and_momentum(kwargs, expect_kwargs, opt_cls):
    opt = make_opt(opt_cls)
    sched = S.OneCycleLR(opt, max_lr=list(TOPS), total_steps=20, **kwargs)
    key = "betas" if opt_cls is BetasOpt else "momentum"

    def momenta():
        return [g["betas"][0] if key == "betas" else g["momentum"] for g in opt.param_groups]

    rows = [(lrs_of(opt), momenta())]
    for _ in range(20):
        opt.step()
        sched.step()
        rows.append((lrs_of(opt), momenta()))
    for t, (lrs, moms) in enumerate(rows):
        for lr, mom, top in zip(lrs, moms, TOPS, strict=True):
            want_lr, want_mom = one_cycle(t, top, **expect_kwargs)
            assert math.isclose(lr, want_lr, rel_tol=REL), (t, lr, want_lr)
            assert math.isclose(mom, want_mom, rel_tol=REL), (t, mom, want_mom)
    if key == "betas":
        assert all(g["betas"][1] == 0.999 for g in opt.param_groups)
    with pytest.raises(ValueError, match="Tried to step 21 times. The specified number of "
                                         "total steps is 20"):
        sched.step()


def test_one_cycle_epochs_times_steps_and_no_momentum_cycle():
    opt = make_opt(NoMomentumOpt)
    sched = S.OneCycleLR(opt, max_lr=0.5, epochs=4, steps_per_epoch=5, cycle_momentum=False)
    assert sched.total_steps == 20
    for t, row in enumerate(run(opt, sched, 20)):
        assert row == pytest.approx([one_cycle(t, 0.5)[0]] * 3, rel=REL)
    assert "momentum" not in opt.param_groups[0]


@pytest.mark.parametrize("kwargs, match", [
    ({}, r"You must define either total_steps OR \(epochs AND steps_per_epoch\)"),
    ({"epochs": 3}, r"You must define either total_steps OR"),
    ({"total_steps": 0}, "Expected positive integer total_steps, but got 0"),
    ({"epochs": 0, "steps_per_epoch": 4}, "Expected positive integer epochs, but got 0"),
    ({"epochs": 2, "steps_per_epoch": 2.5}, "Expected positive integer steps_per_epoch"),
    ({"total_steps": 10, "pct_start": 1.5}, "Expected float between 0 and 1 pct_start"),
    ({"total_steps": 10, "anneal_strategy": "exp"}, "anneal_strategy must be one of 'cos' or"),
    ({"total_steps": 10, "max_lr": [1.0, 2.0]}, "max_lr must have the same length as "
                                                "optimizer.param_groups"),
])
def test_one_cycle_argument_errors(kwargs, match):
    kwargs.setdefault("max_lr", 1.0)
    with pytest.raises(ValueError, match=match):
        S.OneCycleLR(make_opt(), **kwargs)


def test_one_cycle_needs_momentum_to_cycle_it():
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.OneCycleLR(make_opt(NoMomentumOpt), max_lr=1.0, total_steps=10)


# ---- base-class behaviour -------------------------------------------------------------------
def test_argument_errors_with_pytorch_messages():
    opt = make_opt()
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        S.StepLR([], step_size=2)
    with pytest.raises(ValueError, match="Starting multiplicative factor expected to be greater"):
        S.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="Ending multiplicative factor expected to be between"):
        S.LinearLR(opt, end_factor=1.5)
    with pytest.raises(ValueError, match="Constant multiplicative factor expected to be between"):
        S.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="Expected 3 lr_lambdas, but got 2"):
        S.LambdaLR(opt, [lam_a, lam_b])


def test_warns_when_scheduler_steps_before_optimizer():
    opt = make_opt()
    sched = S.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match=r"`lr_scheduler.step\(\)` before `optimizer.step\(\)`"):
        sched.step()
    opt = make_opt()
    sched = S.StepLR(opt, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()
        sched.step()


def test_get_lr_outside_step_warns():
    sched = S.ExponentialLR(make_opt(), gamma=0.5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_tensor_lr_is_updated_in_place():
    lr = tg.tensor(0.5, dtype=tg.float64)
    opt = MomentumOpt([{"params": [tg.zeros(2, requires_grad=True)], "lr": lr}])
    sched = S.StepLR(opt, step_size=2, gamma=0.5)
    for t in range(1, 7):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] is lr
        assert lr.item() == 0.5 * 0.5 ** (t // 2)
        last = sched.get_last_lr()[0]
        assert last is not lr and last.item() == lr.item()
    assert opt.param_groups[0]["initial_lr"].item() == 0.5


# ---- cross-check against PyTorch, when it is installed ------------------------------------------
def _torch_opt(torch, cls):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": b} for b in BASES]
    if cls is BetasOpt:
        return torch.optim.Adam(groups)
    if cls is NoMomentumOpt:
        return torch.optim.Adagrad(groups)
    return torch.optim.SGD(groups, lr=0.1, momentum=0.0)


TORCH_CASES = {name: (CASES[name][0], MomentumOpt, STEPS) for name in CASES}
TORCH_CASES.update({
    "lambda_list": (lambda M, o: M.LambdaLR(o, [lam_a, lam_b, lam_c]), MomentumOpt, STEPS),
    "chained": (_make_chained, MomentumOpt, STEPS),
    "sequential": (_make_sequential, MomentumOpt, STEPS),
    "sequential_3": (lambda M, o: M.SequentialLR(
        o, [M.ConstantLR(o, factor=0.5, total_iters=3), M.ExponentialLR(o, gamma=0.8),
            M.StepLR(o, step_size=4)], milestones=[4, 12]), MomentumOpt, STEPS),
    "onecycle_sgd": (lambda M, o: M.OneCycleLR(o, max_lr=list(TOPS), total_steps=STEPS),
                     MomentumOpt, STEPS),
    "onecycle_adam_3phase": (lambda M, o: M.OneCycleLR(
        o, max_lr=0.3, epochs=5, steps_per_epoch=6, three_phase=True,
        anneal_strategy="linear"), BetasOpt, STEPS),
})


def _hyper(opt):
    return [(g["lr"], g.get("momentum"), tuple(g.get("betas", ()))) for g in opt.param_groups]


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_same_floats_as_torch(name):
    torch = pytest.importorskip("torch")
    factory, cls, steps = TORCH_CASES[name]
    opt, topt = make_opt(cls), _torch_opt(torch, cls)
    ours, theirs = factory(S, opt), factory(torch.optim.lr_scheduler, topt)
    assert _hyper(opt) == _hyper(topt)
    for _ in range(steps):
        opt.step()
        topt.step()
        ours.step()
        theirs.step()
        assert _hyper(opt) == _hyper(topt)
        assert ours.get_last_lr() == theirs.get_last_lr()


def test_plateau_same_floats_as_torch():
    torch = pytest.importorskip("torch")
    metrics = [5, 4, 4.1, 4.0, 3.9996, 3.99, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 2.5, 2.5] * 2
    for kwargs in ({"patience": 2, "cooldown": 1, "factor": 0.3, "min_lr": [0.01, 0.0, 0.2]},
                   {"mode": "max", "threshold_mode": "abs", "threshold": 0.5, "patience": 1},
                   {"patience": 0, "eps": 1e-3}):
        opt, topt = make_opt(), _torch_opt(torch, MomentumOpt)
        ours = S.ReduceLROnPlateau(opt, **kwargs)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
        for m in metrics:
            ours.step(m)
            theirs.step(m)
            assert ours.get_last_lr() == theirs.get_last_lr(), kwargs


# ---- with the real optimizers ----------------------------------------------------------------
def test_sgd_steps_with_the_scheduled_lr():
    if not hasattr(tg.optim, "SGD"):
        pytest.skip("tg.optim.SGD is not written yet")
    w = tg.zeros(3, dtype=tg.float64, requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.5)
    sched = S.StepLR(opt, step_size=2, gamma=0.5)
    used = []
    for _ in range(7):
        w.sum().backward()  # gradient 1 everywhere
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        opt.zero_grad()
        sched.step()
    assert used == [0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625]
    assert w.tolist() == pytest.approx([-sum(used)] * 3, rel=REL)


def test_one_cycle_on_real_sgd_and_adam():
    if not hasattr(tg.optim, "Adam"):
        pytest.skip("tg.optim.Adam is not written yet")
    for opt, key in ((tg.optim.SGD([tg.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9),
                      "momentum"),
                     (tg.optim.Adam([tg.zeros(2, requires_grad=True)], betas=(0.9, 0.99)),
                      "betas")):
        sched = S.OneCycleLR(opt, max_lr=0.4, total_steps=10)
        for t in range(1, 11):
            opt.step()
            sched.step()
            group = opt.param_groups[0]
            mom = group["betas"][0] if key == "betas" else group["momentum"]
            want_lr, want_mom = one_cycle(t, 0.4, total=10)
            assert math.isclose(group["lr"], want_lr, rel_tol=REL)
            assert math.isclose(mom, want_mom, rel_tol=REL)
        if key == "betas":
            assert opt.param_groups[0]["betas"][1] == 0.99
