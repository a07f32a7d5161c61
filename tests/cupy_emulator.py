"""The CUDA C of the fused CuPy kernels, run on the CPU: a stand-in for the CuPy name the
kernel modules build kernels with, `ElementwiseKernel`.

Where no GPU is present this is how the kernels' arithmetic gets checked: each kernel's source
(preamble, typed parameters, loop body) is compiled by the host C++ compiler and run over
NumPy arrays, the way CuPy would run it over CuPy arrays: non-raw arguments broadcast
together, `i` the element's index in C order, `raw` arguments indexed linearly, scalars cast
to their parameter's type, outputs allocated or written in place. Every other attribute is
NumPy's, so the overrides' own glue (reshape, ascontiguousarray, the generic helpers they
call) runs too. Built with -ffp-contract=off, as the kernels are built with --fmad=false.

What this cannot check: that NVRTC accepts the source (CUDA-only spellings), and CuPy's own
argument handling; the GPU parity tests in test_cupy_kernels.py do that.
"""

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
_CTYPES = {"float32": ("float", ctypes.c_float), "float64": ("double", ctypes.c_double),
           "int64": ("long long", ctypes.c_longlong), "int32": ("int", ctypes.c_int),
           "bool": ("bool", ctypes.c_bool)}
_HEADER = """
#include <cmath>
#include <cstddef>
using namespace std;
#define __device__
"""


def _c(t):
    """The C spelling of a parameter type: a placeholder (typedef'd) or a concrete dtype."""
    return _CTYPES[t][0] if t in _CTYPES else t


def _params(spec):
    """'T x, raw T y, int64 n' -> [(type, name, raw)]."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        words = part.split()
        raw = words[0] == "raw"
        out.append((words[-2], words[-1], raw))
    return out


class _Compiled:
    """One kernel source compiled for one assignment of dtypes to its type placeholders."""

    _libs = {}

    def __init__(self, workdir, source):
        key = hashlib.sha1(source.encode()).hexdigest()[:16]
        lib = self._libs.get(key)
        if lib is None:
            src, so = workdir / f"k{key}.cpp", workdir / f"k{key}.so"
            src.write_text(source)
            done = subprocess.run([CXX, "-O1", "-ffp-contract=off", "-std=c++14", "-shared",
                                   "-fPIC", "-w", "-o", str(so), str(src)],
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the kernel source {src} does not compile:\n{done.stderr}")
            lib = self._libs[key] = ctypes.CDLL(str(so))
        self.run = lib.run


class _Kernel:
    def __init__(self, emu, in_params, out_params, preamble):
        self.emu = emu
        self.ins, self.outs = _params(in_params), _params(out_params)
        self.preamble = preamble

    def _types(self, args):
        """Placeholder -> NumPy dtype, read off the array arguments (as CuPy does)."""
        types = {}
        for (t, _, _), a in zip(self.ins + self.outs, args):
            if t not in _CTYPES and isinstance(a, np.ndarray):
                types.setdefault(t, a.dtype)
        return types

    def _dtype(self, t, types):
        return np.dtype(t) if t in _CTYPES else types[t]

    def _typedefs(self, types):
        return "".join(f"typedef {_CTYPES[np.dtype(d).name][0]} {t};\n" for t, d in types.items())

    def _arg(self, t, a, types, shape=None):
        """A ctypes argument: a scalar of the parameter's type, or a contiguous buffer."""
        dtype = self._dtype(t, types)
        if not isinstance(a, np.ndarray):
            return _CTYPES[dtype.name][1](np.asarray(a).astype(dtype).item()), None
        buf = a.astype(dtype, copy=False)
        if shape is not None:
            buf = np.broadcast_to(buf, shape)
        buf = np.ascontiguousarray(buf)
        return buf.ctypes.data_as(ctypes.c_void_p), buf

    def _decl(self, t, name, raw, is_array, index, output=False):
        t = _c(t)
        if raw:
            return f"{t}* {name} = ({t}*)p_{name};"
        if not is_array:
            return f"const {t} {name} = p_{name};"
        if output:
            return f"{t}& {name} = (({t}*)p_{name})[{index}];"
        return f"const {t} {name} = ((const {t}*)p_{name})[{index}];"

    def _signature(self, params, arrays):
        sig = []
        for (t, name, raw), is_array in zip(params, arrays):
            sig.append(f"void* p_{name}" if is_array or raw else f"{_c(t)} p_{name}")
        return ", ".join(sig)


class ElementwiseKernel(_Kernel):
    def __init__(self, emu, in_params, out_params, operation, name="kernel", preamble="",
                 **_):
        super().__init__(emu, in_params, out_params, preamble)
        self.operation = operation

    def __call__(self, *args):
        n_in = len(self.ins)
        ins, outs = list(args[:n_in]), list(args[n_in:])
        types = self._types(ins + outs)
        shape = np.broadcast_shapes(*(a.shape for (_, _, raw), a in zip(self.ins + self.outs,
                                                                       ins + outs)
                                      if isinstance(a, np.ndarray) and not raw))
        if not outs:
            outs = [np.empty(shape, self._dtype(t, types)) for t, _, _ in self.outs]
        c_args, bufs = [ctypes.c_longlong(int(np.prod(shape)))], []
        for (t, _, raw), a in zip(self.ins + self.outs, ins + outs):
            c, buf = self._arg(t, a, types, None if raw else shape)
            c_args.append(c)
            bufs.append(buf)
        self._compiled(ins, types).run(*c_args)
        for out, buf in zip(outs, bufs[n_in:]):
            out[...] = buf  # written into the caller's array: in-place outputs stay in place
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _compiled(self, ins, types):
        params = self.ins + self.outs
        arrays = [isinstance(a, np.ndarray) for a in ins] + [True] * len(self.outs)
        decls = [self._decl(t, n, raw, is_a, "i", output=k >= len(self.ins))
                 for k, ((t, n, raw), is_a) in enumerate(zip(params, arrays))]
        source = (_HEADER + self._typedefs(types) + self.preamble
                  + f'\nextern "C" void run(long long _n, {self._signature(params, arrays)}) {{\n'
                  + "  for (ptrdiff_t i = 0; i < _n; ++i) {\n    "
                  + "\n    ".join(decls) + "\n    {\n" + self.operation + "\n    }\n  }\n}\n")
        return _Compiled(self.emu.workdir, source)


class EmulatedCuPy:
    """`xp` for the overrides: NumPy, plus ElementwiseKernel run on the CPU."""

    def __init__(self, workdir=None):
        if CXX is None:
            raise RuntimeError("no C++ compiler (g++, c++ or clang++) on PATH")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tg_cupy_emulator_"))

    def ElementwiseKernel(self, *args, **kwargs):  # noqa: N802 - CuPy's name
        return ElementwiseKernel(self, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(np, name)

    def __repr__(self):
        return "EmulatedCuPy()"

