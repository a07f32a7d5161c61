"""Backends: protocol conformance of every registered one, the entry points, the run-time
registry (register/replace/unregister, seeding), and the registry's error texts."""

import importlib
import importlib.util
from importlib import metadata

import numpy as np
import pytest
from alt_backend import AltBackend

import tensorgrad as tg
from tensorgrad import backend_api
from tensorgrad.backend_api import Backend

PROTOCOL = sorted(set(Backend.__annotations__)
                  | {k for k in vars(Backend) if not k.startswith("_")})
GENERATOR_METHODS = ("random", "standard_normal", "integers", "permutation")


def _backend_params():
    params = []
    for name, b in sorted(backend_api.registered_backends().items()):
        ok, reason = b.availability()
        marks = () if ok else (pytest.mark.skip(reason=f"backend {name} unusable: {reason}"),)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def _all_backend_names():
    return sorted(backend_api.registered_backends())


class _Renamed(AltBackend):
    """An AltBackend serving its own device type, for registry tests."""

    def __init__(self, name, device_type):
        super().__init__()
        self.name = name
        self.device_types = (device_type,)


@pytest.fixture
def scratch():
    """Register backends for a test and unregister them afterwards."""
    names = []

    def register(backend, **kw):
        backend_api.register_backend(backend, **kw)
        names.append(backend.name)
        return backend
    yield register
    for name in names:
        backend_api.unregister_backend(name)


# ---- conformance -------------------------------------------------------------------------------
def test_protocol_lists_the_members_of_design():
    for member in ("name", "device_types", "capabilities", "overrides", "xp", "availability",
                   "device_context", "synchronize", "asarray", "to_numpy", "from_dlpack",
                   "generator", "manual_seed"):
        assert member in PROTOCOL


@pytest.mark.parametrize("name", _all_backend_names())
def test_every_backend_declares_the_protocol_and_reports_availability(name):
    # Checked on the class, so even an unusable backend (CuPy missing) is checked here.
    b = backend_api.registered_backends()[name]
    missing = [m for m in PROTOCOL if not hasattr(type(b), m) and m not in vars(b)]
    assert not missing, f"{name} lacks {missing}"
    ok, reason = b.availability()
    assert isinstance(ok, bool) and isinstance(reason, str) and reason
    assert isinstance(b.device_types, tuple) and b.device_types
    assert isinstance(b.capabilities, frozenset)
    for dt in b.device_types:
        assert backend_api.get_backend(dt) is b


@pytest.mark.parametrize("name", _backend_params())
def test_usable_backend_conforms(name):
    b = backend_api.registered_backends()[name]
    assert isinstance(b, Backend)
    xp = b.xp
    assert hasattr(xp, "asarray") and hasattr(xp, "add")
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    arr = b.asarray(host, None, 0)
    back = b.to_numpy(arr)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host)
    assert b.to_numpy(b.asarray(host, np.float64, 0)).dtype == np.float64
    with b.device_context(0):
        assert b.to_numpy(xp.add(arr, arr)).tolist() == (2 * host).tolist()
    b.synchronize(0)
    assert all(k in tg.ops.OPS for k in b.overrides), "an override names no registered op"


@pytest.mark.parametrize("name", _backend_params())
def test_usable_backend_generator_is_seeded(name):
    b = backend_api.registered_backends()[name]
    gen = b.generator(0)
    for m in GENERATOR_METHODS:
        assert callable(getattr(gen, m, None)), f"{name}'s generator lacks {m}"

    def draws():
        g = b.generator(0)
        return [b.to_numpy(g.random((3,), dtype=np.float64)).tolist(),
                b.to_numpy(g.standard_normal((2,), dtype=np.float32)).tolist(),
                b.to_numpy(g.integers(0, 100, (4,))).tolist(),
                b.to_numpy(g.permutation(5)).tolist()]
    b.manual_seed(11)
    first = draws()
    b.manual_seed(11)
    assert draws() == first
    b.manual_seed(12)
    assert draws() != first


# ---- entry points ------------------------------------------------------------------------------
def test_entry_points_list_the_builtin_backends():
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="tensorgrad.backends")}
    assert eps["numpy"] == "tensorgrad.backends.numpy_backend:NumpyBackend"
    assert eps["cupy"] == "tensorgrad.backends.cupy_backend:CupyBackend"
    assert {"numpy", "cupy"} <= set(backend_api.registered_backends())


def test_backends_package_is_importable():
    pkg = importlib.import_module("tensorgrad.backends")
    assert "register" in pkg.__doc__
    for mod in ("numpy_backend", "cupy_backend"):
        importlib.import_module(f"tensorgrad.backends.{mod}")


def test_numpy_backend_serves_cpu():
    b = backend_api.get_backend("cpu")
    assert b.name == "numpy" and b.xp is np and "cpu" in b.device_types
    assert type(b).__module__ == "tensorgrad.backends.numpy_backend"
    assert tg.zeros(2).array.__class__ is np.ndarray


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_cupy_backend_without_cupy_reports_why():
    from tensorgrad.backends.cupy_backend import CupyBackend
    b = CupyBackend()  # constructing it imports nothing
    ok, reason = b.availability()
    assert ok is False and "CuPy is not installed" in reason and "cuda12" in reason
    assert b.availability() == (False, reason)  # stable, and still no exception
    with pytest.raises(tg.DeviceError, match="not usable"):
        getattr(b, "xp")  # noqa: B009 - the property raises
    ok, reason = backend_api.availability("cuda")
    assert ok is False and "cupy" in reason.lower()


# ---- the run-time registry ---------------------------------------------------------------------
def test_register_refuses_a_second_backend_for_a_device_type(scratch):
    first = scratch(_Renamed("scratch_a", "scratch"))
    with pytest.raises(tg.DeviceError, match="already served by backend 'scratch_a'") as info:
        backend_api.register_backend(_Renamed("scratch_b", "scratch"))
    assert "replace=True" in str(info.value)
    assert backend_api.get_backend("scratch") is first
    with pytest.raises(tg.DeviceError, match="already served"):
        backend_api.register_backend(_Renamed("numpy2", "cpu"))
    assert backend_api.get_backend("cpu").name == "numpy"


def test_register_with_replace(scratch):
    scratch(_Renamed("scratch_a", "scratch"))
    x = tg.ones(2, device="scratch") * 1  # dispatch has now seen the device
    second = scratch(_Renamed("scratch_b", "scratch"), replace=True)
    assert backend_api.get_backend("scratch") is second
    before = second.contexts_entered
    y = x * 2  # an op on the device now runs on the new backend
    assert second.contexts_entered > before and y.tolist() == [2.0, 2.0]


def test_register_accepts_a_class():
    b = backend_api.register_backend(type("ClassOnly", (_Renamed,), {
        "__init__": lambda self: _Renamed.__init__(self, "class_only", "classonly")}))
    try:
        assert isinstance(b, _Renamed) and backend_api.get_backend("classonly") is b
    finally:
        backend_api.unregister_backend("class_only")


def test_register_refuses_objects_missing_protocol_members():
    class Half:
        name = "half"
        device_types = ("halfdev",)

        def availability(self):
            return True, ""

    with pytest.raises(TypeError) as info:
        backend_api.register_backend(Half())
    msg = str(info.value)
    for member in ("xp", "asarray", "to_numpy"):
        assert member in msg
    assert "Half" in msg and "Backend" in msg
    assert "half" not in backend_api.registered_backends()
    with pytest.raises(tg.DeviceError):
        tg.zeros(1, device="halfdev")


def test_unregister_backend(scratch):
    b = _Renamed("scratch_u", "scratchu")
    backend_api.register_backend(b)
    assert tg.zeros(2, device="scratchu").device == "scratchu"
    backend_api.unregister_backend("scratch_u")
    assert "scratch_u" not in backend_api.registered_backends()
    with pytest.raises(tg.DeviceError, match="scratchu"):
        backend_api.get_backend("scratchu")
    with pytest.raises(tg.DeviceError):
        tg.device("scratchu")  # no longer a known device type
    backend_api.unregister_backend("never_registered")  # a no-op, as cleanup code needs


def test_backend_registered_later_is_seeded_by_manual_seed(scratch):
    tg.manual_seed(7)
    a = scratch(_Renamed("late_a", "latea"))
    b = scratch(_Renamed("late_b", "lateb"))
    ra = tg.rand(5, device="latea").tolist()
    rb = tg.rand(5, device="lateb").tolist()
    assert ra == rb  # both got seed 7 when registered
    assert a.generator(0) is not b.generator(0)
    tg.manual_seed(7)
    assert tg.rand(5, device="latea").tolist() == ra  # and manual_seed reaches them later


def test_manual_seed_seeds_every_backend():
    tg.manual_seed(3)
    cpu, alt = tg.rand(4).tolist(), tg.rand(4, device="alt").tolist()
    tg.rand(4), tg.rand(4, device="alt")
    tg.manual_seed(3)
    assert tg.rand(4).tolist() == cpu and tg.rand(4, device="alt").tolist() == alt


# ---- registry errors ---------------------------------------------------------------------------
def test_unknown_device_type_lists_the_known_ones():
    with pytest.raises(tg.DeviceError) as info:
        backend_api.get_backend("tpu")
    msg = str(info.value)
    assert "'tpu'" in msg and "cpu" in msg and "alt" in msg


def test_availability_never_raises():
    assert backend_api.availability("cpu") == (True, backend_api.get_backend("cpu")
                                               .availability()[1])
    ok, reason = backend_api.availability("tpu")
    assert ok is False and "tpu" in reason


def test_empty_registry_explains_the_shadowing_problem(monkeypatch):
    monkeypatch.setattr(backend_api, "_backends", {})
    monkeypatch.setattr(backend_api, "_by_type", {})
    monkeypatch.setattr(backend_api, "_entry_points_read", True)
    with pytest.raises(tg.DeviceError, match=r"pip install -e \.") as info:
        backend_api.get_backend("cpu")
    assert "tensorgrad.backends" in str(info.value)


def test_a_backend_that_fails_to_load_is_reported(monkeypatch):
    class BrokenEntryPoint:
        name = "broken"

        def load(self):
            raise ImportError("libbroken.so: cannot open shared object file")

    monkeypatch.setattr(backend_api, "_backends", dict(backend_api._backends))
    monkeypatch.setattr(backend_api, "_by_type", dict(backend_api._by_type))
    monkeypatch.setattr(backend_api, "_load_errors", {})
    monkeypatch.setattr(backend_api, "_entry_points_read", False)
    monkeypatch.setattr(backend_api.metadata, "entry_points",
                        lambda group: [BrokenEntryPoint()])
    with pytest.raises(tg.DeviceError) as info:
        backend_api.get_backend("brokendev")
    msg = str(info.value)
    assert "broken: ImportError: libbroken.so" in msg
    assert backend_api.get_backend("cpu").name == "numpy"  # the others keep working
