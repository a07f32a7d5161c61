"""Shared fixtures: the devices every op test runs on, seeds, and the hypothesis CI profile.

`device` is parametrized over "cpu", "alt" (tests/alt_backend.py, a second CPU-resident
backend registered through the public API) and "cuda" (skipped, with the reason, where no
GPU is usable). TF32 is off so GPU matmuls are comparable with the generic ops.
"""

import os

os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

import pytest  # noqa: E402
from alt_backend import AltBackend  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import tensorgrad as tg  # noqa: E402
from tensorgrad import backend_api  # noqa: E402

settings.register_profile("ci", max_examples=50, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if "alt" not in backend_api.registered_backends():
    backend_api.register_backend(AltBackend())

DEVICES = ["cpu", "alt", "cuda"]


def device_params(devices=DEVICES):
    """pytest params for `devices`, each unusable one marked skip with its reason."""
    params = []
    for d in devices:
        ok, reason = backend_api.availability(d)
        marks = () if ok else (pytest.mark.skip(reason=f"{d} not usable: {reason}"),)
        params.append(pytest.param(d, marks=marks, id=d))
    return params


@pytest.fixture(params=device_params())
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed_and_defaults():
    tg.manual_seed(0)
    yield
    tg.set_default_dtype(tg.float32)
    tg.set_default_device(None)
