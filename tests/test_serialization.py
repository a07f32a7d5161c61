"""tg.save / tg.load: round trips of every supported type, model and optimizer state dicts,
map_location across devices, atomic writes, and refusal of truncated or tampered files."""

import ast
import io
import json
import math
import os
import pickle
import tracemalloc
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import tensorgrad as tg
from tensorgrad import serialization


@pytest.fixture
def ckpt(tmp_path):
    return tmp_path / "model.safetensors"


def _same_tensor(a, b):
    assert type(b) is tg.Tensor
    assert (a.dtype, a.shape, a.requires_grad) == (b.dtype, b.shape, b.requires_grad)
    np.testing.assert_array_equal(a.detach().numpy(force=True), b.detach().numpy(force=True))


def _assert_same(a, b):
    """Equal values with the same types, recursively (NaN equals NaN, -0.0 is not 0.0)."""
    assert type(a) is type(b) or (isinstance(a, tg.Tensor) and type(b) is tg.Tensor)
    if isinstance(a, tg.Tensor):
        _same_tensor(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b]
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                     math.copysign(1, b))
    else:
        assert a == b


def _every_type(device):
    return {
        "ints": {0: 1, -3: 2**70, 7: -5},
        "floats": [0.1, -0.0, math.inf, -math.inf, math.nan, 1e-308, 3.0],
        "flags": (True, False),
        "none": None,
        "text": "héllo \"quoted\" \n ✓",
        "empty": ({}, [], (), "", OrderedDict()),
        1.5: "float key", True: "bool key", None: "None key",
        "nested": {"a": [1, (2, [3, {"b": None}])]},
        "odict": OrderedDict([("z", 1), ("a", 2)]),
        "tensors": {
            "f32": tg.randn(3, 4, device=device),
            "f64": tg.randn(2, dtype=tg.float64, device=device),
            "f16": tg.tensor([1.5, -2.25, 65504.0], dtype=tg.float16, device=device),
            "bool": tg.tensor([True, False, True], device=device),
            "i64": tg.tensor([-2**62, 0, 5], dtype=tg.int64, device=device),
            "i32": tg.tensor([[1, -2]], dtype=tg.int32, device=device),
            "i8u8": (tg.tensor([-128, 127], dtype=tg.int8, device=device),
                     tg.tensor([0, 255], dtype=tg.uint8, device=device)),
            "scalar": tg.tensor(3.25, device=device),
            "reduced": tg.arange(4.0, device=device).sum(),  # may hold a NumPy scalar
            "empty": tg.zeros(0, 3, device=device),
            "grad": tg.randn(2, 2, device=device, requires_grad=True),
            "view": tg.arange(12.0, device=device).reshape(3, 4).T,
        },
    }


def test_round_trip_keeps_every_type(device, ckpt):
    obj = _every_type(device)
    tg.save(obj, ckpt)
    back = tg.load(ckpt)
    _assert_same(obj, back)
    assert type(back["odict"]) is OrderedDict and type(back["empty"][4]) is OrderedDict
    assert back["tensors"]["f32"].device == tg.device(device)
    assert back["tensors"]["grad"].is_leaf and back["tensors"]["grad"].requires_grad
    assert back["tensors"]["scalar"].ndim == 0


@pytest.mark.parametrize("obj", [tg.ones(2, 2), [], 0, None, "x", (tg.zeros(1),), 2.5])
def test_round_trip_of_top_level_values(obj, ckpt):
    tg.save(obj, ckpt)
    _assert_same(obj, tg.load(ckpt))


def test_file_objects_and_path_strings(ckpt):
    buf = io.BytesIO()
    tg.save({"w": tg.ones(3)}, buf)
    buf.seek(0)
    _assert_same({"w": tg.ones(3)}, tg.load(buf, weights_only=True))
    tg.save({"k": [1]}, str(ckpt))
    assert tg.load(str(ckpt)) == {"k": [1]}


def test_loaded_tensors_are_plain_and_writable(ckpt):
    lin = tg.nn.Linear(2, 3)
    tg.save({"p": lin.weight, "sd": lin.state_dict()}, ckpt)
    back = tg.load(ckpt)
    assert type(back["p"]) is tg.Tensor and back["p"].requires_grad  # Parameter-ness is lost
    w = back["sd"]["weight"]
    assert type(w) is tg.Tensor and not w.requires_grad
    w.add_(1.0)  # the loaded arrays are not read-only views of the file's bytes
    np.testing.assert_allclose(w.numpy(), lin.weight.detach().numpy() + 1, rtol=1e-6)


def test_shared_storage_is_stored_once_and_shared_again(ckpt):
    w = tg.randn(4, 4)
    tg.save({"enc.weight": w, "dec.weight": w.detach(), "other": w.clone()}, ckpt)
    header = _header(ckpt.read_bytes())
    assert sorted(k for k in header if k != "__metadata__") == ["enc.weight", "other"]
    back = tg.load(ckpt)
    _same_tensor(w, back["dec.weight"])
    back["enc.weight"].mul_(0)
    assert float(back["dec.weight"].abs().sum()) == 0.0
    assert float(back["other"].abs().sum()) > 0.0


def test_tensor_names_follow_their_place_and_safetensors_can_read_them(ckpt):
    tg.save({"state": {0: {"exp_avg": tg.ones(2)}}, "a.b": tg.zeros(1), "a": {"b": tg.ones(1)}},
            ckpt)
    flat = safetensors.numpy.load(ckpt.read_bytes())
    assert set(flat) == {"state.0.exp_avg", "a.b", "a.b#1"}
    back = tg.load(ckpt)
    assert float(back["a.b"].sum()) == 0.0 and float(back["a"]["b"].sum()) == 1.0


def test_a_plain_safetensors_file_loads_as_a_dict_of_tensors(device, ckpt):
    ckpt.write_bytes(safetensors.numpy.save({"x": np.arange(6, dtype=np.int32).reshape(2, 3),
                                             "y": np.ones(2, np.float64)}))
    back = tg.load(ckpt, map_location=device)
    assert set(back) == {"x", "y"} and back["x"].device == tg.device(device)
    assert back["x"].tolist() == [[0, 1, 2], [3, 4, 5]] and back["y"].dtype == tg.float64


@pytest.mark.parametrize("bad, where", [
    ({"s": {1, 2}}, "obj['s']"),
    ({"a": [tg.ones(1), object()]}, "obj['a'][1]"),
    ({(1, 2): 3}, "dict key tuple"),
    ({"x": np.float32(1.0)}, "obj['x']"),
])
def test_unsupported_values_are_refused_with_their_place(bad, where, ckpt):
    with pytest.raises(TypeError, match=r"save: cannot store") as info:
        tg.save(bad, ckpt)
    assert where in str(info.value) and "hint:" in str(info.value)
    assert not ckpt.exists()


# ---- real state dicts ------------------------------------------------------------------------
def _model():
    return tg.nn.Sequential(tg.nn.Linear(4, 8), tg.nn.BatchNorm1d(8), tg.nn.ReLU(),
                            tg.nn.Linear(8, 2))


def _train(model, steps=5):
    x, y = tg.randn(16, 4), tg.randn(16, 2)
    for _ in range(steps):
        model.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        with tg.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
    return x


def test_trained_model_state_dict_round_trip(ckpt):
    model = _model()
    x = _train(model)
    tg.save(model.state_dict(), ckpt)
    fresh = _model()
    sd = tg.load(ckpt)
    assert type(sd) is OrderedDict and list(sd) == list(model.state_dict())
    assert sd["1.num_batches_tracked"].dtype == tg.int64
    fresh.load_state_dict(sd)
    model.eval(), fresh.eval()
    np.testing.assert_array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())


def test_hand_made_optimizer_state_dict_round_trip(ckpt):
    w, b = tg.randn(3, 2, requires_grad=True), tg.zeros(2, requires_grad=True)
    opt = tg.optim.Optimizer([w, b], {"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False,
                                      "foreach": None, "maximize": False})
    opt.state[w] = {"step": tg.tensor(7.0), "exp_avg": tg.randn(3, 2), "max": [1.0, 2]}
    sd = opt.state_dict()
    tg.save(sd, ckpt)
    back = tg.load(ckpt)
    _assert_same(sd, back)
    assert list(back["state"]) == [0] and back["param_groups"][0]["params"] == [0, 1]
    fresh = [tg.zeros(3, 2, requires_grad=True), tg.zeros(2, requires_grad=True)]
    other = tg.optim.Optimizer(fresh, {"lr": 0.5})
    other.load_state_dict(back)
    assert other.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("name, kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                          ("Adam", {"lr": 0.01}), ("LBFGS", {"lr": 0.5})])
def test_real_optimizer_state_dict_round_trip(name, kwargs, ckpt):
    cls = getattr(tg.optim, name, None)
    if cls is None:
        pytest.skip(f"tg.optim.{name} does not exist yet")
    model = tg.nn.Linear(3, 1)
    opt = cls(model.parameters(), **kwargs)
    x, y = tg.randn(8, 3), tg.randn(8, 1)

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    sd = opt.state_dict()
    tg.save(sd, ckpt)
    back = tg.load(ckpt)
    _assert_same(sd, back)
    opt.load_state_dict(back)


# ---- map_location ----------------------------------------------------------------------------
def test_map_location_moves_every_tensor(device, ckpt):
    tg.save({"w": tg.arange(4.0), "n": [tg.ones(2, dtype=tg.int64)]}, ckpt)
    on_device = tg.load(ckpt, map_location=device)
    assert on_device["w"].device == tg.device(device)
    assert on_device["n"][0].device == tg.device(device)
    tg.save(on_device, ckpt)
    assert tg.load(ckpt)["w"].device == tg.device(device)  # None: back where it was saved
    back = tg.load(ckpt, map_location=tg.device("cpu"))
    assert back["w"].device == tg.device("cpu") and back["w"].tolist() == [0, 1, 2, 3]


def test_map_location_dict_and_callable(ckpt):
    tg.save({"a": tg.ones(1, device="alt"), "c": tg.ones(1)}, ckpt)
    back = tg.load(ckpt, map_location={"alt": "cpu"})  # "alt" names alt:0, as torch's cuda
    assert back["a"].device == tg.device("cpu") and back["c"].device == tg.device("cpu")
    back = tg.load(ckpt, map_location={"cpu": "alt:0"})
    assert back["a"].device == tg.device("alt") and back["c"].device == tg.device("alt")
    seen = []
    back = tg.load(ckpt, map_location=lambda t, loc: seen.append(loc) or None)
    assert sorted(seen) == ["alt:0", "cpu"] and back["a"].device == tg.device("alt")
    back = tg.load(ckpt, map_location=lambda t, loc: t * 2)
    assert back["a"].tolist() == [2.0] and back["a"].device == tg.device("cpu")


def test_an_unusable_saved_device_needs_a_map_location(ckpt):
    _rewrite(ckpt, {"w": tg.ones(2)}, structure=lambda s: s.replace('"cpu"', '"tpu:1"'))
    with pytest.raises(tg.DeviceError, match=r"tpu:1") as info:
        tg.load(ckpt)
    assert str(ckpt) in str(info.value) and "map_location" in str(info.value)
    assert tg.load(ckpt, map_location="cpu")["w"].tolist() == [1.0, 1.0]
    assert tg.load(ckpt, map_location={"tpu:1": "alt"})["w"].device == tg.device("alt")


# ---- atomic writes ---------------------------------------------------------------------------
def _boom(*args, **kwargs):
    raise OSError("disk on fire")


@pytest.mark.parametrize("patch", ["fsync", "replace", "interrupt"])
def test_a_failed_save_keeps_the_old_checkpoint_and_leaves_no_temp_file(patch, ckpt,
                                                                        monkeypatch):
    tg.save({"w": tg.ones(3)}, ckpt)
    before = ckpt.read_bytes()

    def interrupt(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, {"interrupt": "fsync"}.get(patch, patch),
                        interrupt if patch == "interrupt" else _boom)
    with pytest.raises(KeyboardInterrupt if patch == "interrupt" else OSError):
        tg.save({"w": tg.zeros(1000)}, ckpt)
    monkeypatch.undo()
    assert ckpt.read_bytes() == before
    assert os.listdir(ckpt.parent) == [ckpt.name]


def test_a_failing_write_leaves_no_temp_file(ckpt, monkeypatch):
    tg.save({"w": tg.ones(3)}, ckpt)
    before = ckpt.read_bytes()

    class Failing(io.FileIO):
        def write(self, data):
            super().write(data[: len(data) // 2])  # half the bytes reach the disk
            raise OSError("no space left on device")
    monkeypatch.setattr(serialization, "open", lambda fd, mode: Failing(fd, "wb"),
                        raising=False)
    with pytest.raises(OSError, match="no space"):
        tg.save({"w": tg.zeros(1000)}, ckpt)
    assert ckpt.read_bytes() == before and os.listdir(ckpt.parent) == [ckpt.name]


def test_an_unserialisable_late_value_leaves_the_old_checkpoint(ckpt):
    tg.save({"w": tg.ones(3)}, ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(TypeError, match=r"obj\['z'\]\[2\]"):
        tg.save({"a": tg.zeros(100), "z": [1, 2, lambda: 0]}, ckpt)
    assert ckpt.read_bytes() == before and os.listdir(ckpt.parent) == [ckpt.name]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and symlinks")
def test_overwrite_keeps_permissions_and_writes_through_symlinks(ckpt, tmp_path):
    tg.save({"v": 1}, ckpt)
    os.chmod(ckpt, 0o640)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(ckpt)
    tg.save({"v": 2}, link)
    assert link.is_symlink() and tg.load(ckpt) == {"v": 2}
    assert ckpt.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == sorted([ckpt.name, link.name])


# ---- refusing bad files ----------------------------------------------------------------------
def _header(raw):
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n])


def _rewrite(path, obj, header=None, structure=None, data=None):
    """Save `obj` to `path`, then rebuild the file with its header (and data) edited."""
    tg.save(obj, path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    head, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    if structure is not None:
        meta = head["__metadata__"]
        old = meta[serialization.STRUCTURE_KEY]
        meta[serialization.STRUCTURE_KEY] = structure(old)
        assert meta[serialization.STRUCTURE_KEY] != old, "the edit must hit something"
    if header is not None:
        header(head)
    text = json.dumps(head).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + (body if data is None else data))


def _two(path, **kwargs):
    _rewrite(path, {"a": tg.ones(4), "b": tg.zeros(4)}, **kwargs)  # a: [0, 16), b: [16, 32)


def _set(name, **fields):
    def edit(head):
        head[name].update(fields)
    return edit


def _expect_refusal(path, match):
    with pytest.raises(tg.CheckpointError, match=match) as info:
        tg.load(path)
    msg = str(info.value)
    assert str(path) in msg and "hint:" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, tg.TensorGradError)
    return msg


def test_truncated_files_are_refused(ckpt):
    tg.save({"w": tg.randn(64)}, ckpt)
    raw = ckpt.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    for cut, match in [(len(raw) - 1, "not within"), (8 + n, "not within"),
                       (8 + n // 2, "bad header length"), (5, "fewer than the 8-byte"),
                       (0, "has 0 bytes")]:
        ckpt.write_bytes(raw[:cut])
        _expect_refusal(ckpt, match)


@pytest.mark.parametrize("delta", [1, -1, 1000])
def test_tampered_header_length_is_refused(delta, ckpt):
    tg.save({"w": tg.ones(2)}, ckpt)
    raw = ckpt.read_bytes()
    n = int.from_bytes(raw[:8], "little") + delta
    ckpt.write_bytes(n.to_bytes(8, "little") + raw[8:])
    _expect_refusal(ckpt, "bad header length|not valid JSON|not within|trailing|not JSON")


def test_a_huge_claimed_header_is_refused_before_allocating(ckpt):
    ckpt.write_bytes((10 * 2**30).to_bytes(8, "little") + b"{" + b" " * 7)
    tracemalloc.start()
    try:
        msg = _expect_refusal(ckpt, "bad header length")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "10737418240" in msg and peak < 1_000_000


@pytest.mark.parametrize("head, match", [
    (b"{not json at all}", "not valid JSON"),
    (b"[1, 2]", "not JSON"),
    (b"{\"a\": 1, \"a\": 2}", "duplicate keys"),
    (b"\"{\"", "not JSON"),
    (b"{\"__metadata__\": {\"k\": 1}}", "map of strings"),
    (b"{\xff\xfe}", "not UTF-8"),
])
def test_bad_headers_are_refused(head, match, ckpt):
    ckpt.write_bytes(len(head).to_bytes(8, "little") + head)
    _expect_refusal(ckpt, match)


@pytest.mark.parametrize("edit, match", [
    (_set("b", data_offsets=[8, 24]), "overlapping byte ranges"),
    (_set("b", data_offsets=[0, 16]), "overlapping byte ranges"),
    (_set("b", data_offsets=[20, 32], shape=[3]), r"missing byte range: data bytes \[16, 20\)"),
    (_set("b", data_offsets=[16, 36], shape=[5]), "not within"),
    (_set("b", shape=[5]), "needs 20 bytes"),
    (_set("b", dtype="F64"), "needs 32 bytes"),
    (_set("b", dtype="BF16"), "not one tensorgrad holds"),
    (_set("b", shape=[-4]), "non-negative integers"),
    (_set("b", data_offsets=[16]), "non-negative integers"),
    (_set("b", extra=1), "expected dtype, shape and data_offsets"),
    (lambda h: h.pop("b"), "trailing bytes"),
])
def test_bad_byte_ranges_are_refused(edit, match, ckpt):
    _two(ckpt, header=edit)
    _expect_refusal(ckpt, match)


def test_trailing_bytes_and_bad_bools_are_refused(ckpt):
    tg.save({"w": tg.ones(2)}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes() + b"\0" * 8)
    _expect_refusal(ckpt, "trailing bytes: the tensors cover 8 bytes of the data section, "
                    "which has 16")
    _rewrite(ckpt, {"m": tg.tensor([True, False])}, data=b"\x01\x07")
    _expect_refusal(ckpt, "neither 0 nor 1")


@pytest.mark.parametrize("kind", ["png", "text"])
def test_files_of_other_kinds_are_refused(kind, ckpt):
    data = {"png": b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(40),
            "text": b"hello, this is not a checkpoint\n"}[kind]
    ckpt.write_bytes(data)
    _expect_refusal(ckpt, "bad header length|not JSON|fewer than")


@pytest.mark.parametrize("data, kind", [
    (b"PK\x03\x04" + bytes(60), "a zip archive"),
    (pickle.dumps({"w": [1.0, 2.0]}, protocol=2), "a pickle"),
    (pickle.dumps({"w": [1.0, 2.0]}), "a pickle"),
], ids=["zip", "pickle-2", "pickle-default"])
def test_a_pytorch_checkpoint_is_named_as_such(data, kind, ckpt):
    ckpt.write_bytes(data)
    msg = _expect_refusal(ckpt, f"is a PyTorch checkpoint \\({kind}")
    assert "tg.load reads safetensors files" in msg and "save_file" in msg


def test_a_real_torch_save_file_is_named_as_a_pytorch_checkpoint(ckpt):
    torch = pytest.importorskip("torch")
    for legacy in (False, True):
        torch.save({"w": torch.ones(2)}, ckpt, _use_new_zipfile_serialization=not legacy)
        _expect_refusal(ckpt, "is a PyTorch checkpoint")


def test_a_safetensors_file_starting_like_a_pickle_still_loads(ckpt):
    # A 640-byte header makes the file start with b"\x80\x02", a pickle's first bytes: the
    # PyTorch guess is only made for files that are not valid safetensors.
    text = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    text = text.ljust(640)
    ckpt.write_bytes(len(text).to_bytes(8, "little") + text + bytes(8))
    assert ckpt.read_bytes()[:2] == b"\x80\x02"
    assert tg.load(ckpt)["w"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("structure, match", [
    (lambda s: "{oops", "structure in __metadata__ is not valid JSON"),
    (lambda s: s.replace('"format":1', '"format":99'), "unknown structure format"),
    (lambda s: s.replace('"t":"list"', '"t":"set"'), "unknown node"),
    (lambda s: s.replace('"name":"w"', '"name":"q"'), "'q' is not in the file"),
    (lambda s: s.replace('"dtype":"float32"', '"dtype":"int64"'), "disagrees"),
    (lambda s: s.replace('"v":7', '"v":"7"'), "int node holds '7'"),
    (lambda s: s.replace('"v":"0.5"', '"v":"half"'), "is not a float"),
    (lambda s: s.replace('"device":"cpu"', '"device":"c p u"'), "bad device"),
    (lambda s: s.replace('{"t":"str","v":"b"}', '{"t":"str","v":"a"}'), "duplicate key 'a'"),
    (lambda s: s.replace('{"t":"tensor","name":"w"', '{"t":"none","name":"w"'),
     r"tensors \['w'\] are stored but not part"),
    (lambda s: "[" * 100000 + "]" * 100000, "not valid JSON|nested too deeply"),
])
def test_a_tampered_structure_is_refused(structure, match, ckpt):
    _rewrite(ckpt, {"a": [7, 0.5], "b": tg.ones(1), "w": tg.ones(2)}, structure=structure)
    _expect_refusal(ckpt, match)


def test_missing_files_raise_the_builtin_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        tg.load(tmp_path / "nope.safetensors")


def test_checkpoint_error_is_exported():
    assert tg.CheckpointError is tg.errors.CheckpointError
    assert issubclass(tg.CheckpointError, (tg.TensorGradError, ValueError))


def test_the_module_never_uses_pickle():
    source = Path(serialization.__file__).read_text()
    imported = {a.name.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib"}
    assert "safetensors" in imported and "json" in imported


def test_a_resumed_training_run_continues_exactly_as_an_uninterrupted_one(ckpt):
    # Model and Adam state through one checkpoint file; then 5 more steps either way.
    def build():
        tg.manual_seed(1)
        model = tg.nn.Sequential(tg.nn.Linear(4, 8), tg.nn.ReLU(), tg.nn.Linear(8, 3))
        return model, tg.optim.Adam(model.parameters(), lr=0.05)

    x, y = tg.randn(16, 4), tg.randint(0, 3, (16,))

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            tg.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    model, opt = build()
    train(model, opt, 5)
    tg.save({"model": model.state_dict(), "optim": opt.state_dict()}, ckpt)
    train(model, opt, 5)
    resumed, resumed_opt = build()
    state = tg.load(ckpt)
    resumed.load_state_dict(state["model"])
    resumed_opt.load_state_dict(state["optim"])
    train(resumed, resumed_opt, 5)
    for (name, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items()):
        assert a.tolist() == b.tolist(), name
