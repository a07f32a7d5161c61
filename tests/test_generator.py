"""tg.Generator: seeded streams of its own, independent of tg.manual_seed, as torch.Generator."""

import pytest

import tensorgrad as tg

DRAWS = {
    "rand": lambda g: tg.rand(4, 3, generator=g),
    "randn": lambda g: tg.randn(5, generator=g, dtype=tg.float64),
    "randint": lambda g: tg.randint(0, 100, (6,), generator=g),
    "randperm": lambda g: tg.randperm(20, generator=g),
}


@pytest.mark.parametrize("draw", DRAWS.values(), ids=DRAWS.keys())
def test_same_seed_same_draws_other_seed_other_draws(draw):
    a = draw(tg.Generator().manual_seed(123))
    b = draw(tg.Generator().manual_seed(123))
    c = draw(tg.Generator().manual_seed(124))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_manual_seed_returns_the_generator_and_sets_initial_seed():
    g = tg.Generator()
    assert g.manual_seed(7) is g
    assert g.initial_seed() == 7
    assert g.device == tg.device("cpu")


def test_default_seed_is_pytorchs_and_fixed():
    assert tg.Generator().initial_seed() == 67280421310721
    assert tg.rand(3, generator=tg.Generator()).tolist() == \
        tg.rand(3, generator=tg.Generator()).tolist()


def test_negative_seed_wraps_modulo_2_64():
    assert tg.Generator().manual_seed(-1).initial_seed() == 2**64 - 1


def test_a_generator_stream_is_independent_of_the_global_seed():
    g = tg.Generator().manual_seed(5)
    first = tg.rand(3, generator=g)
    tg.manual_seed(999)  # reseeding the global generator does not touch g ...
    second = tg.rand(3, generator=g)
    ref = tg.Generator().manual_seed(5)
    assert first.tolist() == tg.rand(3, generator=ref).tolist()
    assert second.tolist() == tg.rand(3, generator=ref).tolist()


def test_drawing_from_a_generator_leaves_the_global_stream_alone():
    tg.manual_seed(0)
    expected = tg.rand(4).tolist()
    tg.manual_seed(0)
    tg.randn(100, generator=tg.Generator().manual_seed(1))
    tg.randperm(10, generator=tg.Generator().manual_seed(2))
    assert tg.rand(4).tolist() == expected


def test_get_state_set_state_replays_the_stream():
    g = tg.Generator().manual_seed(11)
    tg.rand(10, generator=g)
    state = g.get_state()
    assert state.dtype == tg.uint8 and state.device == tg.device("cpu") and state.ndim == 1
    ahead = tg.randn(5, generator=g).tolist()
    other = tg.Generator().set_state(state)  # a fresh generator picks the stream up too
    assert tg.randn(5, generator=other).tolist() == ahead
    assert other.initial_seed() == 11
    g.set_state(state)
    assert tg.randn(5, generator=g).tolist() == ahead


def test_set_state_refuses_what_get_state_did_not_make():
    with pytest.raises(ValueError, match="get_state"):
        tg.Generator().set_state(tg.zeros(10, dtype=tg.uint8))
    with pytest.raises(ValueError, match="get_state"):
        tg.Generator().set_state("not a tensor")


def test_seed_picks_a_fresh_seed_and_reports_it():
    g = tg.Generator()
    s1, s2 = g.seed(), g.seed()
    assert isinstance(s1, int) and s1 != s2 and g.initial_seed() == s2
    assert tg.rand(3, generator=g).tolist() == \
        tg.rand(3, generator=tg.Generator().manual_seed(s2)).tolist()


def test_generator_on_another_device_draws_there():
    g = tg.Generator(device="alt").manual_seed(3)
    a = tg.rand(4, generator=g, device="alt")
    assert a.device == tg.device("alt")
    assert a.tolist() == tg.rand(4, generator=tg.Generator("alt").manual_seed(3),
                                 device="alt").tolist()


def test_generator_and_tensor_on_different_devices_raise():
    with pytest.raises(tg.DeviceError, match="randn: the generator is on cpu"):
        tg.randn(3, generator=tg.Generator(), device="alt")
    with tg.device("alt"):  # the default device counts, as in PyTorch
        with pytest.raises(tg.DeviceError):
            tg.rand(3, generator=tg.Generator())


def test_unknown_device_raises():
    with pytest.raises(tg.DeviceError):
        tg.Generator(device="nosuchdevice")


class _CountingBackend:
    """A CPU-resident backend whose generators come from its own `make_generator` hook."""

    name = "genhook"
    device_types = ("genhook",)
    capabilities = frozenset()
    overrides = {}

    def __init__(self):
        import numpy as np
        self.xp, self.made = np, []

    def availability(self):
        return True, "always"

    def device_context(self, index):
        import contextlib
        return contextlib.nullcontext()

    def synchronize(self, index=None):
        pass

    def asarray(self, data, dtype, index):
        return self.xp.array(data, dtype=dtype)

    def to_numpy(self, array):
        return array

    def from_dlpack(self, obj, index):
        return self.xp.from_dlpack(obj)

    def generator(self, index):
        return self.xp.random.default_rng(0)

    def manual_seed(self, seed):
        pass

    def make_generator(self, seed, index):
        self.made.append((seed, index))
        return self.xp.random.default_rng(seed + 1)


def test_a_backend_may_make_its_own_generators():
    backend = _CountingBackend()
    tg.backend_api.register_backend(backend)
    try:
        g = tg.Generator("genhook").manual_seed(4)
        assert backend.made[-1] == (4, 0)
        drawn = tg.randperm(6, generator=g, device="genhook").tolist()
        assert drawn == tg.randperm(6, generator=tg.Generator().manual_seed(5)).tolist()
    finally:
        tg.backend_api.unregister_backend("genhook")


def test_get_state_on_a_generator_without_a_host_state_says_so(monkeypatch):
    class DeviceBitGenerator:  # shaped like CuPy's cuRAND ones: state() is a device pointer
        def state(self):
            return 0

    g = tg.Generator()
    monkeypatch.setattr(g, "_rng", type("Gen", (), {"bit_generator": DeviceBitGenerator()})())
    with pytest.raises(NotImplementedError, match="does not expose its state"):
        g.get_state()
