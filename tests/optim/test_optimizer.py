"""The Optimizer base behaviour, for every first-order optimizer.

Bad parameters and hyper-parameters fail at construction with errors that say what is wrong;
zero_grad both ways; add_param_group; state keyed by parameter (and by index in
state_dict()); load_state_dict refusing another optimizer's or another layout's state; a
closure whose result is not a loss.
"""

import pytest

import tensorgrad as tg
from tensorgrad.errors import DTypeError, GraphError, ShapeError

ALL = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]


def make(name, params, **kw):
    return getattr(tg.optim, name)(params, **kw)


def _leaf(*shape):
    return tg.randn(*shape, requires_grad=True)


def _quadratic_grads(params):
    for p in params:
        p.grad = None
    sum((p * p).sum() for p in params).backward()


# ---- construction --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_bad_parameters_are_refused(name):
    w = _leaf(3)
    with pytest.raises(GraphError, match="non-leaf"):
        make(name, [w * 2])
    with pytest.raises(GraphError, match="does not require grad"):
        make(name, [tg.zeros(3)])
    with pytest.raises(DTypeError, match="int64"):
        make(name, [tg.zeros(3, dtype=tg.int64)])
    with pytest.raises(TypeError, match="not a Tensor"):
        make(name, [w, [1.0, 2.0]])
    with pytest.raises(TypeError, match="iterable of Tensors"):
        make(name, w)
    with pytest.raises(ValueError, match="empty parameter list"):
        make(name, [])
    with pytest.raises(ValueError, match="empty parameter list"):
        make(name, iter([]))
    with pytest.raises(ValueError, match="more than one parameter group"):
        make(name, [{"params": [w]}, {"params": [_leaf(2), w]}])


@pytest.mark.parametrize("name", ALL)
def test_negative_lr_is_refused(name):
    with pytest.raises(ValueError, match="learning rate: -0.1"):
        make(name, [_leaf(2)], lr=-0.1)


@pytest.mark.parametrize("name, kw, message", [
    ("SGD", dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    ("SGD", dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    ("SGD", dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov momentum requires"),
    ("Adam", dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    ("Adam", dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    ("AdamW", dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    ("AdamW", dict(weight_decay=-0.01), "Invalid weight_decay value"),
    ("Adagrad", dict(lr_decay=-1), "Invalid lr_decay value: -1"),
    ("Adagrad", dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value"),
    ("Adagrad", dict(eps=-1), "Invalid epsilon value"),
    ("RMSprop", dict(alpha=-0.5), "Invalid alpha value: -0.5"),
    ("RMSprop", dict(momentum=-1), "Invalid momentum value"),
    ("Adam", dict(differentiable=True), "differentiable=True is not supported"),
    ("RMSprop", dict(capturable=True), "capturable=True"),
])
def test_bad_hyper_parameters_say_which(name, kw, message):
    with pytest.raises(ValueError, match=message):
        make(name, [_leaf(2)], **kw)


def test_tensor_lr_is_refused_clearly():
    with pytest.raises(TypeError, match="lr as a Tensor"):
        tg.optim.Adam([_leaf(2)], lr=tg.tensor(0.1))


def test_foreach_and_fused_are_accepted_and_change_nothing():
    a, b = _leaf(4), None
    b = a.detach().clone().requires_grad_()
    opts = [tg.optim.Adam([a], lr=0.1, foreach=True), tg.optim.Adam([b], lr=0.1, fused=True)]
    for _ in range(3):
        for p, o in zip((a, b), opts):
            _quadratic_grads([p])
            o.step()
    assert a.tolist() == b.tolist()


# ---- zero_grad -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_zero_grad_both_ways(name):
    w = _leaf(3)
    opt = make(name, [w])
    _quadratic_grads([w])
    opt.zero_grad()
    assert w.grad is None
    _quadratic_grads([w])
    old = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and w.grad.tolist() == [0.0, 0.0, 0.0]
    assert old.tolist() == [0.0, 0.0, 0.0]  # zeroed in place, as PyTorch does
    opt.zero_grad()  # and a parameter that never had a grad is fine
    opt.step()  # no gradients: nothing moves
    assert w.grad is None


# ---- groups and state ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_add_param_group(name):
    w, v = _leaf(3), _leaf(2)
    opt = make(name, [w], lr=0.1)
    opt.add_param_group({"params": v, "lr": 0.01})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["params"] == [v]
    assert opt.param_groups[1]["lr"] == 0.01
    assert opt.param_groups[1]["weight_decay"] == opt.defaults["weight_decay"]
    before = v.tolist()
    _quadratic_grads([w, v])
    opt.step()
    assert v.tolist() != before and v in opt.state or name == "SGD"
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [w]})
    with pytest.raises(TypeError, match="must be a dict"):
        opt.add_param_group([w])


@pytest.mark.parametrize("name", ALL)
def test_state_is_keyed_by_parameter_and_by_index_in_state_dict(name):
    w, v = _leaf(3), _leaf(2, 2)
    kw = {"momentum": 0.9} if name == "SGD" else {}
    opt = make(name, [{"params": [w]}, {"params": [v], "lr": 0.5}], **kw)
    _quadratic_grads([w, v])
    opt.step()
    assert set(opt.state) == {w, v}
    assert all(s.shape == p.shape for p in (w, v) for k, s in opt.state[p].items()
               if k != "step")
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sorted(sd["state"]) == [0, 1]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert sd["state"][1].keys() == opt.state[v].keys()


# ---- load_state_dict -----------------------------------------------------------------------
def _stepped(name, params, **kw):
    opt = make(name, params, **kw)
    _quadratic_grads(params)
    opt.step()
    return opt


def test_load_from_a_different_optimizer_says_what_does_not_match():
    sd = _stepped("SGD", [_leaf(3)], momentum=0.9).state_dict()
    with pytest.raises(ValueError, match=r"lacks the hyper-parameter\(s\) \['amsgrad', 'betas'"):
        make("Adam", [_leaf(3)]).load_state_dict(sd)
    sd = _stepped("RMSprop", [_leaf(3)]).state_dict()
    sd["param_groups"][0].update(momentum=0.9, dampening=0, nesterov=False, fused=None)
    with pytest.raises(ValueError, match=r"\['square_avg', 'step'\], which SGD does not keep"):
        make("SGD", [_leaf(3)], momentum=0.9).load_state_dict(sd)


@pytest.mark.parametrize("name", ALL)
def test_load_into_a_different_layout_says_what_does_not_match(name):
    sd = _stepped(name, [_leaf(3), _leaf(2)], **({"momentum": 0.5} if name == "SGD" else {})
                  ).state_dict()
    with pytest.raises(ValueError, match="group 0 has 2 parameter"):
        make(name, [_leaf(3)]).load_state_dict(sd)
    with pytest.raises(ValueError, match="1 parameter group"):
        make(name, [{"params": [_leaf(3)]}, {"params": [_leaf(2)]}]).load_state_dict(sd)
    other = make(name, [_leaf(3), _leaf(4)], **({"momentum": 0.5} if name == "SGD" else {}))
    with pytest.raises(ShapeError, match=r"parameter 1 has shape \(2,\), the parameter here "
                                         r"\(4,\)"):
        other.load_state_dict(sd)
    assert all(len(s) == 0 for s in other.state.values()) or name == "Adagrad"
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        other.load_state_dict({"state": {}})


def test_loaded_hyper_parameters_replace_the_constructor_ones():
    opt = _stepped("Adam", [_leaf(3)], lr=0.5, betas=(0.5, 0.6))
    fresh = make("Adam", [_leaf(3)])
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["lr"] == 0.5 and fresh.param_groups[0]["betas"] == (0.5, 0.6)
    assert next(iter(fresh.state.values()))["step"].item() == 1


# ---- closures ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_closure_must_return_a_loss(name):
    w = _leaf(3)
    opt = make(name, [w])

    def vector():
        opt.zero_grad()
        (w * w).sum().backward()
        return w * w

    with pytest.raises(ShapeError, match=r"closure returned a tensor of shape \(3,\)"):
        opt.step(vector)
    with pytest.raises(TypeError, match="closure returned a tuple"):
        opt.step(lambda: (1.0, 2.0))
    assert opt.step(lambda: 2.5) == 2.5
    assert opt.step(lambda: None) is None
    loss = opt.step(lambda: (w * w).sum())
    assert isinstance(loss, tg.Tensor) and loss.requires_grad  # evaluated with grad enabled


def test_repr_lists_the_groups():
    text = repr(tg.optim.SGD([_leaf(2)], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "momentum: 0.9" in text
