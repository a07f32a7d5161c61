"""Module registration and lookup as PyTorch does them: name checks and collisions,
remove_duplicate=False traversal, get_submodule/get_parameter/get_buffer, load_state_dict's
argument check, and the Sequential/ModuleList editing methods. Messages were checked against
PyTorch 2."""

import re

import pytest

import tensorgrad as tg
from tensorgrad import nn


def _names(pairs):
    return [name for name, _ in pairs]


# ---- remove_duplicate=False -----------------------------------------------------------------
def test_remove_duplicate_false_keeps_every_path_to_a_shared_module():
    lin = nn.Linear(2, 2)
    lin.register_buffer("steps", tg.zeros(1))
    model = nn.Sequential(lin, lin)
    model.register_buffer("own", tg.zeros(1))
    assert _names(model.named_parameters(remove_duplicate=False)) == [
        "0.weight", "0.bias", "1.weight", "1.bias"]
    assert _names(model.named_buffers(remove_duplicate=False)) == ["own", "0.steps", "1.steps"]
    assert _names(model.named_parameters()) == ["0.weight", "0.bias"]
    assert _names(model.named_buffers()) == ["own", "0.steps"]
    assert _names(model.named_parameters(prefix="m", remove_duplicate=False)) == [
        "m.0.weight", "m.0.bias", "m.1.weight", "m.1.bias"]


# ---- name collisions and bad names ----------------------------------------------------------
def test_registering_a_name_that_is_already_an_attribute_raises_keyerror():
    lin = nn.Linear(2, 2)
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        lin.register_buffer("weight", tg.zeros(2, 2))
    assert _names(lin.named_parameters()) == ["weight", "bias"] and not lin._buffers
    lin.register_buffer("steps", tg.zeros(1))
    with pytest.raises(KeyError, match="attribute 'steps' already exists"):
        lin.register_parameter("steps", None)
    with pytest.raises(KeyError, match="attribute 'forward' already exists"):
        lin.add_module("forward", nn.ReLU())
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        lin.add_module("weight", nn.ReLU())
    lin.note = "plain"
    with pytest.raises(KeyError, match="attribute 'note' already exists"):
        lin.register_buffer("note", tg.zeros(1))
    with pytest.raises(KeyError, match="attribute 'training' already exists"):
        lin.register_buffer("training", tg.zeros(1))


@pytest.mark.parametrize("register, kind", [
    (lambda m, n: m.register_buffer(n, tg.zeros(1)), "buffer"),
    (lambda m, n: m.register_parameter(n, nn.Parameter(tg.zeros(1))), "parameter"),
    (lambda m, n: m.add_module(n, nn.ReLU()), "module"),
])
def test_dotted_empty_and_non_string_names_are_refused(register, kind):
    m = nn.Module()
    with pytest.raises(KeyError) as e:  # str() of a KeyError is the repr of its message
        register(m, "a.b")
    assert e.value.args[0].startswith(f"{kind} name can't contain \".\", got: a.b")
    with pytest.raises(KeyError) as e:
        register(m, "")
    assert e.value.args[0] == f"{kind} name can't be empty string \"\""
    with pytest.raises(TypeError, match=f"{kind} name should be a string. Got int"):
        register(m, 1)
    assert not (m._parameters or m._buffers or m._modules)


def test_assigning_a_module_or_tensor_over_a_parameter_raises_typeerror():
    lin = nn.Linear(2, 2)
    bias = lin.bias
    with pytest.raises(TypeError, match=re.escape(
            "cannot assign 'Linear' as parameter 'bias' (tg.nn.Parameter or None expected)")):
        lin.bias = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'bias'"):
        lin.bias = tg.zeros(2)
    assert lin.bias is bias and _names(lin.named_parameters()) == ["weight", "bias"]
    assert not lin._modules


def test_assigning_a_non_module_over_a_submodule_raises_typeerror():
    m = nn.Module()
    m.act = nn.ReLU()
    with pytest.raises(TypeError, match=re.escape(
            "cannot assign 'int' as child module 'act' (tg.nn.Module or None expected)")):
        m.act = 3
    m.act = None
    assert m.act is None and list(m._modules) == ["act"]


def test_reassignments_pytorch_allows_still_work():
    m = nn.Module()
    m.register_buffer("b", tg.zeros(1))
    m.b = nn.Parameter(tg.ones(1))  # a Parameter replaces a buffer
    assert _names(m.named_parameters()) == ["b"] and not m._buffers
    m.c = nn.ReLU()
    m.c = nn.Parameter(tg.ones(1))  # ... and a submodule
    assert _names(m.named_parameters()) == ["b", "c"] and not m._modules
    m.register_buffer("d", tg.zeros(1))
    m.d = nn.Tanh()  # a Module replaces a buffer
    assert list(m._modules) == ["d"] and not m._buffers
    m.e = 3
    m.e = nn.Parameter(tg.ones(1))  # and a plain attribute
    assert "e" in m._parameters and "e" not in m.__dict__
    lin = nn.Linear(2, 2)
    lin.register_parameter("weight", nn.Parameter(tg.zeros(2, 2)))  # same kind: replaced
    lin.register_buffer("extra", tg.zeros(1))
    lin.register_buffer("extra", tg.ones(1), persistent=False)
    lin.add_module("sub", nn.ReLU())
    lin.add_module("sub", nn.Tanh())
    assert list(lin.state_dict()) == ["weight", "bias"] and isinstance(lin.sub, nn.Tanh)
    lin.register_buffer("extra", tg.ones(1))  # persistent again, as in PyTorch
    assert list(lin.state_dict()) == ["weight", "bias", "extra"]


def test_layers_that_register_none_or_reassign_still_build():
    bn = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert list(bn.state_dict()) == []
    assert _names(nn.Linear(2, 2, bias=False).named_parameters()) == ["weight"]
    assert list(nn.CrossEntropyLoss(weight=tg.ones(3)).state_dict()) == ["weight"]
    lstm = nn.LSTM(2, 3, num_layers=2, bias=False)
    assert len(list(lstm.parameters())) == 4
    assert nn.Linear(2, 2).to(tg.float64).weight.dtype == tg.float64


# ---- lookups --------------------------------------------------------------------------------
def _net():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    net[1].note = 3
    return net


def test_get_submodule_parameter_and_buffer():
    net = _net()
    assert net.get_submodule("") is net and net.get_submodule("0") is net[0]
    assert net.get_parameter("0.weight") is net[0].weight
    assert net.get_buffer("1.running_mean") is net[1].running_mean


@pytest.mark.parametrize("call, message", [
    (lambda m: m.get_submodule("2"), "Sequential has no attribute `2`"),
    (lambda m: m.get_submodule("0.x"), "Linear has no attribute `x`"),
    (lambda m: m.get_submodule("0.weight"), "`weight` is not an nn.Module"),
    (lambda m: m.get_parameter("0.w"), "Linear has no attribute `w`"),
    (lambda m: m.get_parameter("2.weight"), "Sequential has no attribute `2`"),
    (lambda m: m.get_parameter("1.running_mean"), "`running_mean` is not an nn.Parameter"),
    (lambda m: m.get_parameter("1.note"), "`note` is not an nn.Parameter"),
    (lambda m: m.get_buffer("1.weight"), "`weight` is not a buffer"),
    (lambda m: m.get_buffer("1.zz"), "BatchNorm1d has no attribute `zz`"),
])
def test_lookup_errors_are_pytorchs(call, message):
    with pytest.raises(AttributeError, match=re.escape(message)):
        call(_net())


def test_missing_submodule_hint_lists_what_is_there():
    with pytest.raises(AttributeError, match=re.escape("its submodules are ['0', '1']")):
        _net().get_submodule("2")


# ---- load_state_dict argument ---------------------------------------------------------------
def test_load_state_dict_of_a_module_or_list_says_dict_like_expected():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like, got Linear") as e:
        lin.load_state_dict(nn.Linear(2, 2))
    assert "state_dict()" in str(e.value)
    with pytest.raises(TypeError, match="dict-like, got list"):
        lin.load_state_dict([lin.weight, lin.bias])


# ---- containers -----------------------------------------------------------------------------
def _kinds(container):
    return [type(m).__name__ for m in container]


def test_sequential_insert_extend_pop():
    seq = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.ELU())
    assert seq.insert(-1, nn.Identity()) is seq
    seq.insert(-4, nn.SiLU()).insert(2, nn.Sigmoid()).insert(len(seq), nn.GELU())
    assert _kinds(seq) == ["SiLU", "ReLU", "Sigmoid", "Tanh", "Identity", "ELU", "GELU"]
    assert list(seq._modules) == [str(i) for i in range(7)]
    with pytest.raises(IndexError, match="index 8 is out of range for 7"):
        seq.insert(8, nn.ReLU())
    with pytest.raises(IndexError, match="out of range"):
        seq.insert(-8, nn.ReLU())
    with pytest.raises(TypeError, match="Module"):
        seq.insert(0, 3)
    assert seq.extend([nn.ReLU()]).extend(nn.Sequential(nn.Tanh())) is seq
    assert _kinds(seq)[-2:] == ["ReLU", "Tanh"]
    assert isinstance(seq.pop(0), nn.SiLU) and isinstance(seq.pop(-1), nn.Tanh)
    head = seq.pop(slice(0, 2))
    assert isinstance(head, nn.Sequential) and _kinds(head) == ["ReLU", "Sigmoid"]
    assert _kinds(seq) == ["Tanh", "Identity", "ELU", "GELU", "ReLU"]
    assert list(seq._modules) == ["0", "1", "2", "3", "4"]
    with pytest.raises(IndexError, match="out of range"):
        seq.pop(5)


def test_module_list_pop_and_add():
    items = nn.ModuleList([nn.ReLU(), nn.Tanh(), nn.ELU()])
    assert isinstance(items.pop(1), nn.Tanh) and list(items._modules) == ["0", "1"]
    assert _kinds(items.pop(slice(0, 1))) == ["ReLU"] and _kinds(items) == ["ELU"]
    assert isinstance(items.pop(-1), nn.ELU) and len(items) == 0
    with pytest.raises(IndexError, match="index 0 is out of range for 0"):
        items.pop(0)
    a = nn.ModuleList([nn.ReLU(), nn.Linear(2, 2)])
    both = a + [nn.ELU()]
    assert isinstance(both, nn.ModuleList) and len(a) == 2 and _kinds(both) == [
        "ReLU", "Linear", "ELU"]
    assert both[1] is a[1] and _names(both.named_parameters()) == ["1.weight", "1.bias"]
    assert _kinds(a + nn.ModuleList([nn.Tanh()])) == ["ReLU", "Linear", "Tanh"]
    with pytest.raises(TypeError, match="not a Module"):
        a + [3]
