"""The layering rules of DESIGN.md section 1, checked on the AST of every source file.

- Nothing under tensorgrad/nn, optim, data, func imports numpy or cupy.
- Nothing under tensorgrad/nn, optim, data, func touches `.array`, `xp` or `.numpy()`: they speak
  only Tensor and the public ops (STYLE.md section 1, rule 10).
- Core (everything under tensorgrad/; the backends live in backends/) never imports a backend
  module (`tensorgrad.backends...`) nor cupy; it finds backends through the registry.
- Core imports numpy only in the modules listed in NUMPY_ALLOWED, so that a new one is a
  deliberate change to this list, not an accident.

Folders that do not exist yet are simply not walked; the self-tests at the bottom make sure
the checker does flag offending code, so these tests can fail.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "tensorgrad"

TENSOR_ONLY = ("nn", "optim", "data", "func")     # no numpy/cupy imports
NO_ARRAY_ACCESS = ("nn", "optim", "data", "func")  # and no .array / xp / .numpy()
BACKEND_MODULES = ("numpy", "cupy", "cupyx")      # array libraries (top-level module names)
FORBIDDEN_IN_CORE = ("cupy", "cupyx", "tensorgrad.backends")

# Core modules that may import numpy (paths relative to tensorgrad/). Keep it short: every
# other core module reaches arrays through the backend's `xp`.
NUMPY_ALLOWED = {
    "dtypes.py",               # dtype objects wrap NumPy dtypes
    "creation.py",             # host data -> arrays, from_numpy
    "display.py",              # repr formatting on the host
    "autograd/gradcheck.py",   # finite differences in float64 on the host
    "serialization.py",        # checkpoint bytes <-> host arrays (safetensors is NumPy-based)
}

# Core modules that may import CuPy, and only inside a function (so `import tensorgrad` never
# imports it); a module-level import there is still a violation.
LAZY_CUPY_ALLOWED = {
    "distributed/nccl.py",     # NCCL is reached only through cupy.cuda.nccl (DESIGN.md sec. 4)
}


# ---- the checker ---------------------------------------------------------------------------
def _resolve(node, module):
    """Absolute module names an import statement brings in (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")[: len(module.split(".")) - node.level]
        base = ".".join(parts + ([node.module] if node.module else []))
    names = [base] if node.module else []
    return names + [f"{base}.{a.name}" if base else a.name for a in node.names]


def _dynamic_import(node):
    """The module named by `__import__("x")` / `importlib.import_module("x")`, else None."""
    f = node.func
    named = (isinstance(f, ast.Name) and f.id in ("__import__", "import_module")) or (
        isinstance(f, ast.Attribute) and f.attr == "import_module")
    if named and node.args and isinstance(node.args[0], ast.Constant):
        return node.args[0].value if isinstance(node.args[0].value, str) else None
    return None


def imported_modules(source, module="tensorgrad._check"):
    """(line, absolute module name) for every import in `source`, nested ones included.

    `module` is the dotted name of the file (for a package, its `__init__` name), used to
    resolve relative imports.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [(node.lineno, name) for name in _resolve(node, module)]
        elif isinstance(node, ast.Call):
            name = _dynamic_import(node)
            if name:
                found.append((node.lineno, name))
    return found


def function_level_import_lines(source):
    """Lines of the import statements that sit inside a function body (lazy imports)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines |= {n.lineno for n in ast.walk(node)
                      if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def _matches(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def array_accesses(source):
    """(line, what) for every use of `.array`, `._array`, `xp` or `.numpy()` in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("array", "_array", "xp"):
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Name) and node.id == "xp":
            found.append((node.lineno, "xp"))
        elif isinstance(node, ast.arg) and node.arg == "xp":
            found.append((node.lineno, "xp (parameter)"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "numpy"):
            found.append((node.lineno, ".numpy()"))
    return found


# ---- walking the tree ----------------------------------------------------------------------
def _module_name(path):
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.append("__init__")  # so that `from . import x` resolves inside the package
    return ".".join(parts)


def _files(*subdirs):
    """Python files under tensorgrad/<subdir> (a folder or a .py module) for each subdir."""
    out = []
    for sub in subdirs:
        folder, module = CORE / sub, CORE / f"{sub}.py"
        out += sorted(folder.rglob("*.py")) if folder.is_dir() else []
        out += [module] if module.is_file() else []
    return out


def _core_files():
    return sorted(CORE.rglob("*.py"))


def _rel(path):
    return path.relative_to(CORE).as_posix()


def _report(violations):
    return "\n".join(f"  tensorgrad/{f}:{line}: {what}" for f, line, what in violations)


# ---- the rules on the real tree ------------------------------------------------------------
def test_core_tree_is_found():
    files = {_rel(p) for p in _core_files()}
    assert {"__init__.py", "tensor.py", "backend_api.py"} <= files


def test_tensor_only_packages_import_no_array_library():
    bad = [(_rel(p), line, f"imports {name}")
           for p in _files(*TENSOR_ONLY)
           for line, name in imported_modules(p.read_text(), _module_name(p))
           if _matches(name, BACKEND_MODULES) or _matches(name, ("tensorgrad.backends",))]
    assert not bad, "nn/optim/data/func must speak only Tensor:\n" + _report(bad)


def test_tensor_only_packages_touch_no_raw_arrays():
    bad = [(_rel(p), line, f"uses {what}")
           for p in _files(*NO_ARRAY_ACCESS)
           for line, what in array_accesses(p.read_text())]
    assert not bad, ("nn/optim/data/func must not reach raw arrays (.array, xp, .numpy()):\n"
                     + _report(bad))


def _lazy_cupy(path, line, name):
    """A CuPy import inside a function of a module in LAZY_CUPY_ALLOWED."""
    return (_rel(path) in LAZY_CUPY_ALLOWED and _matches(name, ("cupy",))
            and line in function_level_import_lines(path.read_text()))


def test_core_imports_no_backend_module_nor_cupy():
    bad = [(_rel(p), line, f"imports {name}")
           for p in _core_files()
           for line, name in imported_modules(p.read_text(), _module_name(p))
           if _matches(name, FORBIDDEN_IN_CORE) and not _lazy_cupy(p, line, name)]
    assert not bad, ("core finds backends only through tensorgrad.backend_api; a backend-"
                     "specific path belongs in backends/ (an op override):\n" + _report(bad))


def test_numpy_is_imported_only_where_listed():
    users = {_rel(p): line
             for p in _core_files()
             for line, name in imported_modules(p.read_text(), _module_name(p))
             if _matches(name, ("numpy",))}
    new = sorted(set(users) - NUMPY_ALLOWED)
    assert not new, (f"numpy imported by core modules not in NUMPY_ALLOWED: {new}\n  hint: "
                     "use the backend's xp; if the module really needs host NumPy, add it to "
                     "NUMPY_ALLOWED in tests/test_layering.py with the reason")


def test_numpy_allow_list_has_no_stale_entries():
    existing = {_rel(p) for p in _core_files()}
    assert NUMPY_ALLOWED <= existing, f"stale: {sorted(NUMPY_ALLOWED - existing)}"
    assert LAZY_CUPY_ALLOWED <= existing, f"stale: {sorted(LAZY_CUPY_ALLOWED - existing)}"


# ---- the checker flags what it must (so the rules above can fail) --------------------------
@pytest.mark.parametrize("source, expected", [
    ("import numpy as np", "numpy"),
    ("from numpy import zeros", "numpy"),
    ("import numpy.linalg", "numpy.linalg"),
    ("def f():\n    import cupy\n", "cupy"),
    ("import cupyx.scipy", "cupyx.scipy"),
    ("import importlib\nm = importlib.import_module('cupy')", "cupy"),
    ("np = __import__('numpy')", "numpy"),
    ("from tensorgrad.backends import numpy_backend", "tensorgrad.backends.numpy_backend"),
    ("import tensorgrad.backends.cupy_backend", "tensorgrad.backends.cupy_backend"),
])
def test_checker_flags_offending_imports(source, expected):
    names = [name for _, name in imported_modules(source)]
    assert expected in names
    assert any(_matches(n, BACKEND_MODULES + FORBIDDEN_IN_CORE) for n in names)


def test_checker_tells_lazy_imports_from_module_level_ones():
    source = ("import cupy\n"
              "def f():\n"
              "    from cupy.cuda import nccl\n"
              "    return nccl\n")
    assert function_level_import_lines(source) == {3}


def test_checker_resolves_relative_imports():
    # from tensorgrad/ops/linalg.py, `from ..backends import cupy_backend` is a backend import
    names = [n for _, n in imported_modules("from ..backends import cupy_backend",
                                            "tensorgrad.ops.linalg")]
    assert "tensorgrad.backends.cupy_backend" in names
    names = [n for _, n in imported_modules("from . import module", "tensorgrad.nn.__init__")]
    assert names == ["tensorgrad.nn.module"]


def test_checker_passes_clean_imports():
    source = "import math\nfrom ..tensor import Tensor\nfrom .. import ops\nimport numbers\n"
    names = [n for _, n in imported_modules(source, "tensorgrad.nn.layers")]
    assert not any(_matches(n, BACKEND_MODULES + FORBIDDEN_IN_CORE) for n in names)
    assert "tensorgrad.tensor.Tensor" in names and "numbers" in names


def test_checker_flags_raw_array_access():
    source = ("def step(p, lr):\n"
              "    p.array[...] -= lr * p.grad.array\n"
              "    xp = p._backend.xp\n"
              "    return p.grad.numpy(), p._array\n"
              "def kernel(xp, a):\n"
              "    return a\n")
    whats = {w for _, w in array_accesses(source)}
    assert whats == {".array", "._array", ".numpy()", ".xp", "xp", "xp (parameter)"}


def test_checker_passes_tensor_code():
    source = ("import math\n"
              "def step(p, lr):\n"
              "    with tg.no_grad():\n"
              "        p -= lr * p.grad\n"
              "    return math.sqrt(float((p * p).sum()))\n")
    assert array_accesses(source) == []
