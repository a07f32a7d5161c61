"""Devices (DESIGN section 3): the `tg.device` value, the default-device rule, "auto", the
errors for unusable or mixed devices, and differentiable transfers between "cpu" and "alt".

"alt" is the second CPU-resident backend of tests/alt_backend.py, registered in conftest.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad import backend_api
from tensorgrad.devices import ENV_VAR

CUDA_OK, CUDA_WHY = backend_api.availability("cuda")


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


# ---- the device value ---------------------------------------------------------------------------
def test_device_is_a_value():
    d = tg.device("cuda:1")  # builds without a GPU: only allocating on it would fail
    assert d.type == "cuda" and d.index == 1
    assert str(d) == "cuda:1" and repr(d) == "device(type='cuda', index=1)"
    assert repr(tg.device("cpu")) == "device(type='cpu')" and str(tg.device("cpu")) == "cpu"
    assert tg.device("cpu").index is None
    assert tg.device("cuda", 1) == d and tg.device(d) == d
    assert d == "cuda:1" and d != "cuda:2" and d != "cpu"
    assert tg.device("CPU ") == "cpu"
    assert tg.device("cpu") != 3 and tg.device("cpu") != "not a device!"


def test_device_hashing_agrees_with_equality():
    assert hash(tg.device("cuda:1")) == hash(tg.device("cuda", 1))
    assert tg.device("cuda") == tg.device("cuda:0")  # the default index is 0
    assert hash(tg.device("cuda")) == hash(tg.device("cuda:0"))
    table = {tg.device("cpu"): "host", tg.device("cuda:1"): "gpu1"}
    assert table[tg.device("cpu")] == "host" and table[tg.device("cuda", 1)] == "gpu1"
    assert len({tg.device("alt"), tg.device("alt:0"), tg.device("cpu")}) == 2


@pytest.mark.parametrize("spec", ["bogus", "cuda:x", "cuda:1:2", "", "cpu:0:1"])
def test_bad_device_strings_raise_device_error(spec):
    with pytest.raises(tg.DeviceError, match="hint"):
        tg.device(spec)


def test_device_refuses_non_strings():
    with pytest.raises(tg.DeviceError):
        tg.device(3.5)


def test_tensor_devices_carry_an_index_off_the_cpu():
    x = tg.zeros(2, device="alt")
    assert x.device == tg.device("alt:0") and x.device.index == 0
    assert tg.zeros(2).device == tg.device("cpu") and tg.zeros(2).device == "cpu"


# ---- default device precedence ------------------------------------------------------------------
def test_default_device_is_cpu(no_env):
    assert tg.get_default_device() == "cpu"
    assert tg.zeros(2).device == "cpu"


def test_default_device_precedence(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cuda:1")  # a value is enough: get_default_device allocates nothing
    assert tg.get_default_device() == "cuda:1"
    tg.set_default_device("cuda:2")
    assert tg.get_default_device() == "cuda:2"  # the setter beats the environment
    with tg.device("cuda:3"):
        assert tg.get_default_device() == "cuda:3"  # the context beats the setter
        with tg.device("cpu"):
            assert tg.get_default_device() == "cpu"  # the innermost context wins
        assert tg.get_default_device() == "cuda:3"
    assert tg.get_default_device() == "cuda:2"
    tg.set_default_device(None)
    assert tg.get_default_device() == "cuda:1"
    monkeypatch.delenv(ENV_VAR)
    assert tg.get_default_device() == "cpu"


def test_factories_follow_the_default_device(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "alt")
    assert tg.zeros(2).device == "alt" and tg.tensor([1.0]).device == "alt"
    tg.set_default_device("cpu")
    assert tg.ones(2).device == "cpu"
    with tg.device("alt"):
        for t in (tg.zeros(2), tg.rand(2), tg.arange(3), tg.tensor([1, 2]), tg.eye(2),
                  tg.full((2,), 1.0), tg.randint(0, 3, (2,)), tg.randperm(3)):
            assert t.device == "alt", t
        assert tg.zeros(2, device="cpu").device == "cpu"  # an explicit device beats them all
    assert tg.zeros(2).device == "cpu"


def test_context_exits_on_error(no_env):
    with pytest.raises(KeyError):
        with tg.device("alt"):
            raise KeyError
    assert tg.get_default_device() == "cpu"


def test_invalid_env_var_does_not_break_import(tmp_path):
    env = dict(os.environ, **{ENV_VAR: "bogus"})
    code = ("import tensorgrad as tg\n"
            "try:\n"
            "    tg.zeros(2)\n"
            "except tg.DeviceError as e:\n"
            "    print('DeviceError:', e)\n")
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "DeviceError:" in run.stdout and ENV_VAR in run.stdout


def test_invalid_env_var_raises_on_first_factory_call(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "bogus")
    with pytest.raises(tg.DeviceError) as info:
        tg.zeros(2)
    msg = str(info.value)
    assert ENV_VAR in msg and "'bogus'" in msg
    for choice in ("cpu", "cuda", "auto"):
        assert choice in msg
    assert tg.zeros(2, device="cpu").device == "cpu"  # an explicit device still works


def test_auto_resolves_where_the_device_is_built(monkeypatch):
    expected = "cuda" if CUDA_OK else "cpu"
    assert tg.device("auto").type == expected
    monkeypatch.setenv(ENV_VAR, "auto")
    assert tg.get_default_device().type == expected
    assert tg.zeros(1).device.type == expected


# ---- unusable cuda ------------------------------------------------------------------------------
@pytest.mark.skipif(CUDA_OK, reason="a GPU is usable here: nothing to refuse")
def test_cuda_without_a_gpu_says_why():
    assert tg.cuda.is_available() is False
    for make in (lambda: tg.zeros(2, device="cuda"), lambda: tg.ones(2).cuda(),
                 lambda: tg.tensor([1.0]).to("cuda:0"), lambda: tg.randn(2, device="cuda")):
        with pytest.raises(tg.DeviceError) as info:
            make()
        msg = str(info.value).lower()
        assert "cuda" in msg and "not usable" in msg
        assert "cupy" in msg or "cuda12" in msg or "no cuda device" in msg, msg
    with tg.device("cuda"):  # entering the context allocates nothing, so it does not raise
        with pytest.raises(tg.DeviceError):
            tg.zeros(1)


# ---- transfers ----------------------------------------------------------------------------------
def test_to_alt_and_back_keeps_values():
    x = tg.tensor([[1.5, -2.0], [3.0, 4.25]])
    y = x.to("alt")
    assert y.device == "alt" and y.dtype == x.dtype and y.tolist() == x.tolist()
    assert "device='alt:0'" in repr(y)
    z = y.cpu()
    assert z.device == "cpu" and z.tolist() == x.tolist()
    assert x.to("cpu") is x and y.to("alt") is y  # same device: no copy
    assert y.to(tg.device("cpu")).device == "cpu"


def test_to_dtype_and_to_tensor():
    x = tg.tensor([1.7, 2.2])
    y = x.to("alt", tg.float64)
    assert y.device == "alt" and y.dtype == tg.float64
    other = tg.zeros(1, dtype=tg.int32, device="alt")
    z = x.to(other)
    assert z.device == "alt" and z.dtype == tg.int32 and z.tolist() == [1, 2]
    w = z.to(dtype=tg.float64, device="cpu")
    assert w.device == "cpu" and w.dtype == tg.float64


def test_transfers_are_differentiable():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.to("alt")
    assert y.requires_grad and not y.is_leaf
    (y * y).sum().backward()  # backward runs on alt, the gradient lands on x's device
    assert x.grad.device == "cpu" and x.grad.tolist() == [2.0, 4.0, 6.0]


def test_transfer_round_trip_and_dtype_change_are_differentiable():
    x = tg.tensor([1.0, 2.0], requires_grad=True, device="alt")
    out = (x.to(tg.float64).cpu() * tg.tensor([3.0, 4.0], dtype=tg.float64)).sum()
    assert out.device == "cpu"
    out.backward()
    assert x.grad.device == "alt" and x.grad.dtype == tg.float32
    assert x.grad.tolist() == [3.0, 4.0]


def test_transfer_second_order():
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = (x.to("alt") ** 3).sum()
    (g,) = tg.autograd.grad(y, x, create_graph=True)
    assert g.device == "cpu" and g.tolist() == [3.0, 12.0]
    g.sum().backward()
    assert x.grad.tolist() == [6.0, 12.0]


def test_numpy_of_an_alt_tensor_asks_for_cpu():
    y = tg.ones(2, device="alt")
    with pytest.raises(tg.DeviceError, match=r"\.cpu\(\)"):
        y.numpy()
    with pytest.raises(tg.DeviceError):
        np.asarray(y)
    assert y.tolist() == [1.0, 1.0] and y.cpu().numpy().tolist() == [1.0, 1.0]


# ---- mixing devices ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, call", [
    ("add", lambda a, b: a + b), ("mul", lambda a, b: b * a), ("div", tg.div),
    ("maximum", tg.maximum), ("lt", lambda a, b: a < b),
])
def test_mixing_devices_raises_device_error(name, call):
    a = tg.ones(2, device="alt")
    b = tg.ones(2)
    with pytest.raises(tg.DeviceError) as info:
        call(a, b)
    msg = str(info.value)
    assert msg.startswith(name + ":"), msg
    assert "alt:0" in msg and "cpu" in msg and "hint" in msg


def test_python_scalars_and_0d_cpu_tensors_join_alt_tensors():
    a = tg.tensor([1.0, 2.0], device="alt")
    s = tg.tensor(3.0)  # 0-d, on the CPU
    for out in (a + 1, 2 * a, a + s, s * a, a ** s, tg.maximum(a, s), tg.where(a > 1, a, s)):
        assert out.device == "alt", out
    assert (a * s).tolist() == [3.0, 6.0]


def test_0d_cpu_tensor_gets_its_gradient_on_the_cpu():
    a = tg.tensor([1.0, 2.0], device="alt", requires_grad=True)
    s = tg.tensor(3.0, requires_grad=True)
    (a * s).sum().backward()
    assert s.grad.device == "cpu" and s.grad.item() == 3.0
    assert a.grad.device == "alt" and a.grad.tolist() == [3.0, 3.0]


def test_1d_cpu_tensor_does_not_join_alt():
    with pytest.raises(tg.DeviceError):
        tg.tensor([1.0], device="alt") + tg.tensor([3.0])  # one element, but not 0-d


def test_ops_on_alt_enter_its_device_context():
    backend = backend_api.get_backend("alt")
    x = tg.tensor([1.0, -2.0], device="alt", requires_grad=True)
    before = backend.contexts_entered
    y = (x * 2).relu()
    assert backend.contexts_entered >= before + 2
    before = backend.contexts_entered
    y.sum().backward()  # the VJPs run ops on alt too
    assert backend.contexts_entered > before
    before = backend.contexts_entered
    tg.zeros(3, device="alt")
    tg.randn(3, device="alt")
    assert backend.contexts_entered >= before + 2
