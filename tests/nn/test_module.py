"""tensorgrad.nn.Module and the containers: registration, traversal, modes, devices and
dtypes, state dicts, hooks, repr, deepcopy and a small training loop.

The layers here are written with Parameters only, so the tests depend on nothing but
module.py and parameter.py.
"""

import copy
from collections import OrderedDict

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad import nn


class Lin(nn.Module):
    def __init__(self, n_in, n_out, bias=True):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(tg.randn(n_out, n_in) * 0.5)
        self.bias = nn.Parameter(tg.zeros(n_out)) if bias else None

    def forward(self, x):
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias

    def extra_repr(self):
        return f"in={self.n_in}, out={self.n_out}"


class Act(nn.Module):
    def forward(self, x):
        return x.tanh()


class Counter(nn.Module):
    """A float parameter, an int buffer, a float buffer and a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(tg.ones(2))
        self.register_buffer("steps", tg.zeros(1, dtype=tg.int64))
        self.register_buffer("running", tg.zeros(2))
        self.register_buffer("cache", tg.ones(3), persistent=False)

    def forward(self, x):
        return x * self.w


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = Lin(2, 3)
        self.sub = Counter()
        self.seq = nn.Sequential(Lin(3, 3), Act())


def _names(pairs):
    return [name for name, _ in pairs]


# ---- registration ---------------------------------------------------------------------------
def test_assignment_registers_parameters_buffers_and_submodules():
    m = Counter()
    assert _names(m.named_parameters()) == ["w"]
    assert _names(m.named_buffers()) == ["steps", "running", "cache"]
    assert m.w is m._parameters["w"] and m.steps is m._buffers["steps"]
    m.plain = tg.zeros(2)  # a plain Tensor is just an attribute
    m.child = Act()
    assert _names(m.named_parameters()) == ["w"] and "plain" not in m._buffers
    assert list(m.named_children()) == [("child", m.child)]
    assert "w" in dir(m) and "child" in dir(m)


def test_reassign_and_delete():
    m = Counter()
    new_w = nn.Parameter(tg.zeros(2))
    m.w = new_w
    assert m.w is new_w and list(m.parameters()) == [new_w]
    with pytest.raises(TypeError, match="Parameter or None"):
        m.w = tg.zeros(2)
    m.w = None
    assert list(m.parameters()) == [] and m.w is None
    m.running = tg.full((2,), 5.0)  # reassigning a buffer keeps it a buffer
    assert m.state_dict()["running"].tolist() == [5.0, 5.0]
    with pytest.raises(TypeError, match="buffer"):
        m.running = [1.0, 2.0]
    m.running = Act()  # a Module replaces the buffer under the same name
    assert "running" not in m._buffers and m._modules["running"] is m.running
    del m.running
    del m.steps
    assert "running" not in m._modules and _names(m.named_buffers()) == ["cache"]
    with pytest.raises(AttributeError, match="steps"):
        _ = m.steps


def test_assign_before_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tg.zeros(1))
            super().__init__()

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\)"):
        Bad()


def test_register_methods_validate():
    m = nn.Module()
    with pytest.raises(TypeError, match="Parameter"):
        m.register_parameter("p", tg.zeros(1))
    with pytest.raises(TypeError, match="Tensor"):
        m.register_buffer("b", [1.0])
    with pytest.raises(TypeError, match="not a Module"):
        m.add_module("c", 3)
    with pytest.raises(NotImplementedError, match="forward"):
        m(tg.zeros(1))


def test_named_parameters_order_and_dotted_names():
    net = Net()
    assert _names(net.named_parameters()) == [
        "fc.weight", "fc.bias", "sub.w", "seq.0.weight", "seq.0.bias"]
    assert _names(net.named_buffers()) == ["sub.steps", "sub.running", "sub.cache"]
    assert _names(net.named_parameters(prefix="model")) == [
        "model.fc.weight", "model.fc.bias", "model.sub.w", "model.seq.0.weight",
        "model.seq.0.bias"]
    assert _names(net.fc.named_parameters()) == ["weight", "bias"]
    assert list(net.named_parameters(recurse=False)) == []
    assert len(list(net.parameters())) == 5


def test_parameter_set_to_none_is_skipped():
    m = Lin(2, 3, bias=False)
    assert _names(m.named_parameters()) == ["weight"]
    assert list(m.state_dict()) == ["weight"]


def test_shared_parameters_and_modules_counted_once():
    shared = Lin(3, 3)
    model = nn.Sequential(shared, Act(), shared)
    assert len(list(model.parameters())) == 2
    assert _names(model.named_parameters()) == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # model, shared, Act
    tied = nn.Module()
    tied.a, tied.b = Lin(2, 2), Lin(2, 2)
    tied.b.weight = tied.a.weight
    assert _names(tied.named_parameters()) == ["a.weight", "a.bias", "b.bias"]
    assert len(list(tied.named_parameters(remove_duplicate=False))) == 4


def test_children_modules_named_modules():
    net = Net()
    assert list(net.children()) == [net.fc, net.sub, net.seq]
    assert _names(net.named_children()) == ["fc", "sub", "seq"]
    assert _names(net.named_modules()) == ["", "fc", "sub", "seq", "seq.0", "seq.1"]
    assert list(net.modules())[0] is net and list(net.modules())[-1] is net.seq[1]
    assert net.get_submodule("seq.0") is net.seq[0] and net.get_submodule("") is net


def test_train_eval_recursive():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.seq.train()
    assert net.seq[1].training and not net.training and not net.fc.training
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="bool"):
        net.train("no")


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    net = Net()
    x = tg.randn(4, 2)
    (net.seq(net.fc(x)).sum() + net.sub(tg.ones(2)).sum()).backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert all(g is not None for g in grads.values())
    net.zero_grad(set_to_none=set_to_none)
    for p in net.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            assert p.grad.shape == p.shape and not np.any(p.grad.tolist())
            assert not p.grad.requires_grad
    assert net.zero_grad() is None  # default set_to_none=True, as PyTorch 2
    assert all(p.grad is None for p in net.parameters())


def test_apply_visits_children_first():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Lin", "Counter", "Lin", "Act", "Sequential", "Net"]

    def zero_bias(m):
        if isinstance(m, Lin):
            with tg.no_grad():
                m.bias.fill_(3.0)
    net.apply(zero_bias)
    assert net.seq[0].bias.tolist() == [3.0] * 3 and net.fc.bias.is_leaf


def test_requires_grad_():
    net = Net()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.fc.requires_grad_()
    assert [p.requires_grad for p in net.parameters()] == [True, True, False, False, False]


# ---- dtype and device -----------------------------------------------------------------------
def test_to_dtype_keeps_identity_and_casts_floats_only():
    net = Net()
    params = list(net.parameters())
    net.fc(tg.randn(1, 2)).sum().backward()
    assert net.to(tg.float64) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(isinstance(p, nn.Parameter) and p.dtype == tg.float64 for p in params)
    assert all(p.is_leaf and p.requires_grad for p in params)
    assert net.fc.weight.grad.dtype == tg.float64
    assert net.sub.steps.dtype == tg.int64 and net.sub.running.dtype == tg.float64
    assert net.sub.cache.dtype == tg.float64
    out = net.seq(net.fc(tg.randn(2, 2, dtype=tg.float64)))
    assert out.dtype == tg.float64
    net.float()
    assert net.fc.weight.dtype == tg.float32 and net.sub.steps.dtype == tg.int64
    net.half()
    assert net.fc.bias.dtype == tg.float16
    net.double()
    assert net.fc.bias.dtype == tg.float64


def test_to_device_and_back_keeps_identity_and_moves_grads():
    net = Net()
    params = list(net.parameters())
    values = [p.tolist() for p in params]
    net.fc(tg.randn(3, 2)).sum().backward()
    grad = net.fc.weight.grad.tolist()
    net.to("alt")
    alt = tg.device("alt")
    assert list(net.parameters()) == params and all(p is q for p, q in zip(net.parameters(),
                                                                             params))
    assert all(p.device == alt for p in net.parameters())
    assert all(b.device == alt for b in net.buffers())
    assert net.fc.weight.grad.device == alt and net.fc.weight.grad.tolist() == grad
    assert net.sub.steps.dtype == tg.int64
    out = net.seq(net.fc(tg.randn(3, 2, device="alt")))
    assert out.device == alt
    out.sum().backward()
    assert net.seq[0].weight.grad.device == alt
    net.to(device="cpu", dtype=tg.float64)
    assert all(p.device == tg.device("cpu") for p in net.parameters())
    assert net.fc.weight.dtype == tg.float64 and net.sub.steps.dtype == tg.int64
    np.testing.assert_allclose(net.fc.weight.tolist(), values[0])
    net.cpu()
    assert net.sub.cache.device == tg.device("cpu")


# ---- state dict -----------------------------------------------------------------------------
def test_state_dict_keys_and_values():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["fc.weight", "fc.bias", "sub.w", "sub.steps", "sub.running",
                        "seq.0.weight", "seq.0.bias"]
    assert isinstance(sd, OrderedDict)
    assert not sd["fc.weight"].requires_grad and not isinstance(sd["fc.weight"], nn.Parameter)
    assert sd["fc.weight"].tolist() == net.fc.weight.tolist()
    assert net.state_dict(keep_vars=True)["fc.weight"] is net.fc.weight
    seq = nn.Sequential(Lin(2, 2), Act(), Lin(2, 1))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_load_state_dict_round_trip_copies_values():
    src, dst = Net(), Net()
    with tg.no_grad():
        src.sub.steps.fill_(7)
    sd = src.state_dict()
    sd_copy = sd["fc.weight"].tolist()
    params = list(dst.parameters())
    result = dst.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(p is q for p, q in zip(dst.parameters(), params))
    for key, value in dst.state_dict().items():
        assert value.tolist() == sd[key].tolist(), key
    assert dst.sub.steps.tolist() == [7]
    with tg.no_grad():
        src.fc.weight.mul_(0)  # sd shares storage with src; dst must hold its own copy
        sd["seq.0.bias"].fill_(9.0)
    assert dst.fc.weight.tolist() == sd_copy and dst.seq[0].bias.tolist() != [9.0] * 3
    assert all(p.is_leaf and p.requires_grad for p in dst.parameters())


def test_load_state_dict_strict_lists_missing_and_unexpected_keys():
    net = Net()
    sd = net.state_dict()
    del sd["fc.bias"]
    sd["extra.weight"] = tg.zeros(1)
    with pytest.raises(RuntimeError) as info:  # PyTorch's type; a KeyError too
        net.load_state_dict(sd)
    assert isinstance(info.value, KeyError)
    msg = str(info.value)
    assert "fc.bias" in msg and "extra.weight" in msg and "\n  hint: pass strict=False" in msg


def test_load_state_dict_non_strict():
    src, dst = Net(), Net()
    sd = src.state_dict()
    del sd["fc.bias"]
    sd["extra"] = tg.zeros(1)
    missing, unexpected = dst.load_state_dict(sd, strict=False)
    assert missing == ["fc.bias"] and unexpected == ["extra"]
    assert dst.fc.weight.tolist() == src.fc.weight.tolist()
    assert dst.fc.bias.tolist() == [0.0, 0.0, 0.0]


def test_load_state_dict_shape_mismatch():
    net = Net()
    sd = net.state_dict()
    sd["seq.0.weight"] = tg.zeros(4, 3)
    with pytest.raises(tg.ShapeError, match=r"seq\.0\.weight.*\(4, 3\).*\(3, 3\)"):
        net.load_state_dict(sd)
    with pytest.raises(RuntimeError):  # PyTorch users catch RuntimeError
        net.load_state_dict(sd)


def test_load_state_dict_across_devices_and_dtypes():
    src = Net().to(tg.float64)
    dst = Net().to("alt")
    dst.load_state_dict(src.state_dict())
    assert dst.fc.weight.device == tg.device("alt") and dst.fc.weight.dtype == tg.float32
    np.testing.assert_allclose(dst.fc.weight.tolist(), src.fc.weight.tolist(), rtol=1e-6)


# ---- hooks ------------------------------------------------------------------------------------
def test_forward_pre_hook_modifies_args_and_removes():
    m = Counter()
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append(mod) or (args[0] * 10,))
    h2 = m.register_forward_pre_hook(lambda mod, args: args[0] + 1)  # non-tuple is wrapped
    assert m(tg.ones(2)).tolist() == [11.0, 11.0] and calls == [m]
    h1.remove()
    assert m(tg.ones(2)).tolist() == [2.0, 2.0]
    h2.remove()
    h2.remove()  # removing twice is harmless
    assert m(tg.ones(2)).tolist() == [1.0, 1.0]


def test_forward_hook_sees_args_and_may_replace_output():
    m = Counter()
    seen = []
    h = m.register_forward_hook(lambda mod, args, out: seen.append((args[0].tolist(),
                                                                    out.tolist())))
    m(tg.full((2,), 3.0))
    assert seen == [([3.0, 3.0], [3.0, 3.0])]
    h2 = m.register_forward_hook(lambda mod, args, out: out * -1)
    assert m(tg.ones(2)).tolist() == [-1.0, -1.0]
    h.remove()
    h2.remove()
    assert m(tg.ones(2)).tolist() == [1.0, 1.0] and len(seen) == 2


def test_hook_output_stays_differentiable():
    m = Counter()
    m.register_forward_hook(lambda mod, args, out: out * 2)
    m(tg.ones(2)).sum().backward()
    assert m.w.grad.tolist() == [2.0, 2.0]


# ---- repr -----------------------------------------------------------------------------------
def test_nested_repr_like_pytorch():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (fc): Lin(in=2, out=3)\n"
        "  (sub): Counter()\n"
        "  (seq): Sequential(\n"
        "    (0): Lin(in=3, out=3)\n"
        "    (1): Act()\n"
        "  )\n"
        ")")
    assert repr(Act()) == "Act()"


def test_repr_matches_torch_layout():
    torch = pytest.importorskip("torch")
    ref = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Identity()), torch.nn.Identity())

    class Identity(nn.Module):
        def forward(self, x):
            return x
    ours = nn.Sequential(nn.Sequential(Identity()), Identity())
    assert repr(ours) == repr(ref)

    def two_lines(self):
        return "a=1,\nb=2"
    ref_multi = type("Multi", (torch.nn.Module,), {"extra_repr": two_lines})
    ours_multi = type("Multi", (nn.Module,), {"extra_repr": two_lines})
    assert repr(ours_multi()) == repr(ref_multi())
    ref_parent, ours_parent = ref_multi(), ours_multi()
    ref_parent.child, ours_parent.child = ref_multi(), ours_multi()
    assert repr(nn.Sequential(ours_parent)) == repr(torch.nn.Sequential(ref_parent))


# ---- containers -----------------------------------------------------------------------------
def test_sequential_indexing_slicing_and_iteration():
    a, b, c = Lin(2, 3), Act(), Lin(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c and seq[-3] is a
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(IndexError):
        seq[-4]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [b, c]
    assert list(tail._modules) == ["1", "2"]  # PyTorch keeps the names in a slice
    x = tg.randn(4, 2)
    assert seq(x).tolist() == c(b(a(x))).tolist()
    assert tail(a(x)).tolist() == seq(x).tolist()


def test_sequential_append_setitem_delitem():
    a, b, c = Lin(2, 2), Act(), Lin(2, 2)
    seq = nn.Sequential(a)
    assert seq.append(b) is seq and list(seq) == [a, b]
    seq[1] = c
    assert list(seq) == [a, c]
    seq[0] = b  # replacing keeps the position (and so the forward order)
    assert list(seq) == [b, c] and list(seq._modules) == ["0", "1"]
    seq[0] = a
    seq.append(b)
    del seq[0]
    assert list(seq) == [c, b] and list(seq._modules) == ["0", "1"]
    seq.append(a)  # must not overwrite b after the renumbering
    assert list(seq) == [c, b, a]
    del seq[:2]
    assert list(seq) == [a]


def test_sequential_from_ordered_dict():
    seq = nn.Sequential(OrderedDict([("first", Lin(2, 3)), ("act", Act())]))
    assert _names(seq.named_children()) == ["first", "act"]
    assert seq.first is seq[0]
    assert _names(seq.named_parameters()) == ["first.weight", "first.bias"]
    assert seq(tg.zeros(1, 2)).shape == (1, 3)


def test_module_list():
    mods = [Lin(2, 2) for _ in range(3)]
    ml = nn.ModuleList(mods[:2])
    assert len(ml) == 2 and ml[0] is mods[0] and ml[-1] is mods[1]
    ml.append(mods[2])
    assert list(ml) == mods
    ml.extend([Act()])
    assert len(ml) == 4 and isinstance(ml[3], Act)
    extra = Lin(2, 2)
    ml.insert(1, extra)
    assert list(ml)[:3] == [mods[0], extra, mods[1]] and list(ml._modules)[-1] == "4"
    del ml[1]
    assert list(ml)[:3] == mods and list(ml._modules) == ["0", "1", "2", "3"]
    del ml[-1]
    sliced = ml[1:]
    assert isinstance(sliced, nn.ModuleList) and list(sliced) == mods[1:]
    assert list(sliced._modules) == ["0", "1"]
    ml[0] = extra
    assert ml[0] is extra
    with pytest.raises(IndexError):
        ml[5]
    holder = nn.Module()
    holder.layers = ml
    assert _names(holder.named_parameters())[:2] == ["layers.0.weight", "layers.0.bias"]
    assert len(list(holder.parameters())) == 6


def test_module_dict():
    a, b = Lin(2, 2), Act()
    md = nn.ModuleDict({"a": a, "b": b})
    assert len(md) == 2 and md["a"] is a and "b" in md and "c" not in md
    assert list(md) == ["a", "b"] and list(md.keys()) == ["a", "b"]
    assert list(md.values()) == [a, b] and list(md.items()) == [("a", a), ("b", b)]
    md["c"] = Lin(2, 1)
    md.update([("d", Act())])
    assert list(md) == ["a", "b", "c", "d"]
    assert _names(md.named_parameters()) == ["a.weight", "a.bias", "c.weight", "c.bias"]
    del md["b"]
    assert md.pop("d") is not None and list(md) == ["a", "c"]
    md.clear()
    assert len(md) == 0 and list(md.parameters()) == []


# ---- copying ----------------------------------------------------------------------------------
def test_deepcopy_gives_independent_parameters():
    net = Net()
    net.fc(tg.randn(2, 2)).sum().backward()
    clone = copy.deepcopy(net)
    pairs = list(zip(net.parameters(), clone.parameters()))
    assert all(p is not q and isinstance(q, nn.Parameter) and q.requires_grad for p, q in pairs)
    assert all(p.tolist() == q.tolist() for p, q in pairs)
    assert clone.sub.steps is not net.sub.steps and clone.sub.steps.dtype == tg.int64
    weight, grad = net.fc.weight.tolist(), net.fc.weight.grad.tolist()
    assert clone.fc.weight.grad.tolist() == grad
    with tg.no_grad():
        clone.fc.weight.fill_(0.0)
        clone.fc.weight.grad.fill_(5.0)
        clone.sub.steps.fill_(3)
    assert net.fc.weight.tolist() == weight and net.fc.weight.grad.tolist() == grad
    assert net.sub.steps.tolist() == [0]
    clone.seq[0].bias.sum().backward()
    assert net.seq[0].bias.grad is None
    assert clone.seq[0] is not net.seq[0] and repr(clone) == repr(net)


# ---- end to end -------------------------------------------------------------------------------
def test_two_layer_model_trains_with_hand_written_sgd():
    tg.manual_seed(0)
    x = tg.randn(64, 2)
    y = (x[:, :1] * 1.5 - x[:, 1:] * 0.5).tanh()
    model = nn.Sequential(Lin(2, 16), Act(), Lin(16, 1))
    params = list(model.parameters())
    losses = []
    for _ in range(30):
        loss = ((model(x) - y) ** 2).mean()
        model.zero_grad()
        loss.backward()
        with tg.no_grad():
            for p in model.parameters():
                p -= 0.2 * p.grad
        losses.append(loss.item())
    assert all(p is q and p.is_leaf for p, q in zip(model.parameters(), params))
    assert losses[-1] < 0.5 * losses[0]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))
