"""`tg.Generator`: a random-number generator object of its own, as `torch.Generator`.

Factories (`rand`, `randn`, `randint`, `randperm`), samplers and `random_split` take one as
`generator=`; without one they draw from the device backend's global generator, which
`tg.manual_seed` seeds. A Generator wraps a generator of the backend's own type, made by the
backend's `make_generator(seed, index)` where it has one, else by `xp.random.default_rng(seed)`
(NumPy and CuPy both have it), inside the backend's device context.

Knows the backend registry (backend_api) and devices; never imports a backend module.
"""

import json
import operator
import secrets

from . import backend_api
from .devices import as_device
from .errors import DeviceError

# torch.Generator's seed when none is given, so `Generator()` draws what PyTorch's would not,
# but does so the same way every run, as PyTorch's does.
DEFAULT_SEED = 67280421310721
_STATE_FORMAT = "tensorgrad.Generator/1"


class Generator:
    """A seeded generator for one device; draws with it leave the global generators alone.

    >>> import tensorgrad as tg
    >>> g = tg.Generator().manual_seed(42)
    >>> a = tg.rand(3, generator=g)
    >>> b = tg.rand(3, generator=tg.Generator().manual_seed(42))
    >>> bool((a == b).all()), g.initial_seed()
    (True, 42)
    """

    def __init__(self, device="cpu"):
        self._device = as_device(device)
        self._backend = backend_api.usable_backend(self._device.type)
        self.manual_seed(DEFAULT_SEED)

    @property
    def device(self):
        return self._device

    def manual_seed(self, seed):
        """Reseed (any int; negatives wrap modulo 2**64, as PyTorch's) and return self."""
        seed = operator.index(seed) % 2**64
        index = self._device.index
        with backend_api.device_context(self._backend, index):
            make = getattr(self._backend, "make_generator", None)
            self._rng = (make(seed, index) if make is not None
                         else self._backend.xp.random.default_rng(seed))
        self._initial_seed = seed
        return self

    def seed(self):
        """Reseed from the operating system's entropy and return the new seed."""
        seed = secrets.randbits(63)
        self.manual_seed(seed)
        return seed

    def initial_seed(self):
        """The seed last given (DEFAULT_SEED until manual_seed or seed is called)."""
        return self._initial_seed

    def get_state(self):
        """The generator's state as a uint8 CPU tensor, for `set_state` (and `tg.save`)."""
        from .creation import frombuffer
        state = {"format": _STATE_FORMAT, "device": self._device.type,
                 "initial_seed": self._initial_seed,
                 "bit_generator": self._bit_generator().state}
        return frombuffer(bytearray(json.dumps(state).encode()), dtype="uint8")

    def set_state(self, new_state):
        """Restore a state from `get_state`; returns self."""
        try:
            state = json.loads(bytes(new_state.tolist()).decode())
            ok = isinstance(state, dict) and state.get("format") == _STATE_FORMAT
        except (ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise ValueError("Generator.set_state: not a state from Generator.get_state()\n"
                             "  hint: pass the uint8 tensor get_state() returned")
        if state["device"] != self._device.type:
            raise DeviceError(f"Generator.set_state: the state is from a {state['device']} "
                              f"generator, this one is on {self._device}")
        self._bit_generator().state = state["bit_generator"]
        self._initial_seed = state["initial_seed"]
        return self

    def _bit_generator(self):
        bit = getattr(self._rng, "bit_generator", None)
        # NumPy's state is a dict property; CuPy's cuRAND generators keep theirs on the GPU
        # (there `state` is a method returning a device pointer), which cannot be saved.
        if not isinstance(getattr(bit, "state", None), dict):
            raise NotImplementedError(
                f"Generator: the {self._backend.name} backend's generator "
                f"({type(self._rng).__name__}) does not expose its state\n"
                "  hint: re-seed with manual_seed(n) to reproduce a stream instead")
        return bit

    def _native_for(self, device, op):
        """The backend generator, for a draw of `op` on `device` (which must be ours)."""
        if device != self._device:
            raise DeviceError(f"{op}: the generator is on {self._device} but the tensor is "
                              f"created on {device}\n  hint: pass device='{self._device}', "
                              f"or use tg.Generator(device='{device}')")
        return self._rng

    def __repr__(self):
        return f"<tensorgrad.Generator on {self._device}, initial_seed={self._initial_seed}>"
