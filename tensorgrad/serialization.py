"""`tg.save` / `tg.load`: checkpoints as safetensors files, written atomically, loaded safely.

A checkpoint is one safetensors file. Its tensors are the tensors of the saved object, named by
their place in it ("fc.weight", "state.0.exp_avg"), so any safetensors reader can open it. The
rest of the object (dicts with their key types, lists, tuples, ints, floats, bools, strings,
None, and each tensor's dtype, device and requires_grad) is a JSON tree stored in the header's
`__metadata__` under one key. Loading parses data, never code: there is no pickle here.

Writes are atomic: the bytes go to a temporary file in the target's folder, which is flushed,
fsynced and renamed over the target, so a crash or an exception mid-save leaves the previous
checkpoint as it was, and a failed save removes its temporary file.

Loading checks the whole header before building any array: header length within the file,
JSON, known dtypes, shapes that match their byte ranges, and byte ranges that tile the data
section exactly (no overlap, no gap, no trailing bytes). A bad file raises `CheckpointError`
naming the file and the problem; nothing larger than the file itself is ever allocated.

Imports core modules only (creation, devices, backend_api, errors); NumPy for host buffers.
"""

import json
import math
import os
import secrets
import stat
from collections import OrderedDict

import numpy as np
import safetensors.numpy

from . import backend_api
from .creation import from_numpy
from .dtypes import _BY_NAME
from .errors import CheckpointError, DeviceError
from .tensor import Tensor

STRUCTURE_KEY = "tensorgrad.structure"  # the __metadata__ entry holding the JSON tree
FORMAT_VERSION = 1

# safetensors dtype codes tensorgrad can hold -> little-endian NumPy dtypes (the file's order)
_CODES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "U8": "|u1", "I8": "|i1", "I16": "<i2",
          "I32": "<i4", "I64": "<i8", "BOOL": "|b1"}
_HINT_CORRUPT = ("the file is truncated, was modified, or was not written by tg.save or a "
                 "safetensors writer; restore it from a copy or save it again")


# ==== save ====================================================================================
def save(obj, f):
    """Save `obj` (a state dict, or any nest of dicts, lists, tuples, tensors and scalars).

    `f` is a path (written atomically) or a binary file object (written in place).

    >>> import os, tempfile, tensorgrad as tg
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> tg.save({"w": tg.ones(2), "step": 3, "betas": (0.9, 0.999)}, path)
    >>> tg.load(path)
    {'w': tensor([1., 1.]), 'step': 3, 'betas': (0.9, 0.999)}
    """
    data = _serialize(obj)
    if hasattr(f, "write"):
        f.write(data)
        return
    _atomic_write(os.fspath(f), data)


def _serialize(obj):
    flat = _Flattener()
    root = flat.encode(obj, ())
    tree = json.dumps({"format": FORMAT_VERSION, "root": root}, separators=(",", ":"))
    return safetensors.numpy.save(flat.arrays, metadata={STRUCTURE_KEY: tree})


class _Flattener:
    """Turns an object into a JSON-able tree plus the host arrays of its tensors."""

    def __init__(self):
        self.arrays = {}   # safetensors name -> contiguous host array
        self.names = {}    # id(backend array) -> name, so shared storage is stored once
        self.keep = []     # the tensors named in `names` (their ids must stay unique)

    def encode(self, x, path):
        if isinstance(x, Tensor):
            return self.tensor(x, path)
        if isinstance(x, dict):
            kind = "odict" if isinstance(x, OrderedDict) else "dict"
            return {"t": kind, "items": [[_scalar(k, path, key=True),
                                          self.encode(v, path + (k,))] for k, v in x.items()]}
        if isinstance(x, (list, tuple)):
            kind = "tuple" if isinstance(x, tuple) else "list"
            return {"t": kind, "items": [self.encode(v, path + (i,)) for i, v in enumerate(x)]}
        return _scalar(x, path)

    def tensor(self, t, path):
        name = self.names.get(id(t._array))
        if name is None:
            name = self._fresh_name(path)
            host = np.asarray(t.detach().numpy(force=True))  # a reduction may hold a scalar
            # not np.ascontiguousarray, which makes 0-d arrays 1-d
            self.arrays[name] = host if host.flags.c_contiguous else host.copy(order="C")
            self.names[id(t._array)] = name
            self.keep.append(t)
        return {"t": "tensor", "name": name, "dtype": t.dtype.name, "device": str(t.device),
                "requires_grad": t.requires_grad}

    def _fresh_name(self, path):
        base = ".".join(str(p) for p in path) or "tensor"
        name, n = base, 1
        while name in self.arrays:  # "a.b" the key and a -> b the nest: both stay
            name, n = f"{base}#{n}", n + 1
        return name


def _scalar(x, path, key=False):
    if x is None:
        return {"t": "none"}
    if isinstance(x, bool):
        return {"t": "bool", "v": x}
    if isinstance(x, int):
        return {"t": "int", "v": int(x)}
    if isinstance(x, float):
        return {"t": "float", "v": repr(float(x))}  # repr round-trips, inf and nan included
    if isinstance(x, str):
        return {"t": "str", "v": str(x)}
    what = "dict key" if key else "value"
    raise TypeError(f"save: cannot store the {what} {type(x).__name__} at {_where(path)}\n"
                    "  hint: checkpoints hold dicts (str/int/float/bool/None keys), lists, "
                    "tuples, tensors, ints, floats, bools, strings and None")


def _where(path):
    return "obj" + "".join(f"[{p!r}]" for p in path)


# ---- atomic write ----------------------------------------------------------------------------
def _atomic_write(path, data):
    target = os.path.realpath(path)  # through a symlink, replace the file it points to
    tmp, fd = _create_temp(target)
    try:
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        _copy_mode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(os.path.dirname(target))


def _create_temp(target):
    # os.open with mode 0o666 lets the umask decide the permissions, as a plain open() would.
    folder, base = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def _copy_mode(target, tmp):
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)  # overwriting keeps the checkpoint's permissions


def _remove(tmp):
    try:
        os.remove(tmp)
    except FileNotFoundError:
        pass


def _fsync_dir(folder):
    # Makes the rename itself durable. Not possible on Windows, refused by some filesystems:
    # the file is complete either way, so those cases are skipped.
    if os.name != "posix":
        return
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ==== load ====================================================================================
def load(f, map_location=None, *, weights_only=None):
    """Load what `save` wrote; tensors go where `map_location` says.

    `map_location`: None (each tensor back to the device it was saved from), a device or
    string (all tensors there), a dict such as `{"cuda:0": "cpu"}` (saved device -> target;
    others stay), or a callable `fn(cpu_tensor, saved_device_str)` returning a tensor or None
    (None: the saved device). Loaded tensors are plain tensors (not Parameters), as with
    torch.load. A safetensors file from another writer loads as a dict of its tensors.
    `weights_only` is accepted for torch.load compatibility: loading never runs code.

    >>> import io, tensorgrad as tg
    >>> buf = io.BytesIO(); tg.save({1: [True, None]}, buf); _ = buf.seek(0)
    >>> tg.load(buf, map_location="cpu")
    {1: [True, None]}
    """
    where, buf = _read(f)
    try:
        header, start = _parse_header(buf, where)
    except CheckpointError:
        kind = _pytorch_format(buf)
        if kind is None:
            raise
        raise _pytorch_checkpoint(where, kind) from None
    arrays = _arrays(buf, start, _check_entries(header, len(buf) - start, where), where)
    meta = header.get("__metadata__") or {}
    placer = _Placer(arrays, map_location, where)
    if STRUCTURE_KEY not in meta:
        return {name: placer.tensor(name) for name in arrays}
    tree = _json(meta[STRUCTURE_KEY], where, "the structure in __metadata__")
    if not isinstance(tree, dict) or tree.get("format") != FORMAT_VERSION or "root" not in tree:
        raise _corrupt(where, f"unknown structure format in __metadata__[{STRUCTURE_KEY!r}]")
    try:
        obj = _Rebuilder(placer, where).decode(tree["root"], "obj")
    except RecursionError:
        raise _corrupt(where, "the structure is nested too deeply") from None
    unused = sorted(set(arrays) - placer.used)
    if unused:
        raise _corrupt(where, f"tensors {unused} are stored but not part of the structure")
    return obj


def _read(f):
    if hasattr(f, "read"):
        return getattr(f, "name", repr(f)), bytearray(f.read())
    path = os.fspath(f)
    with open(path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        buf = bytearray(size)  # exactly the file's size; arrays below are views into it
        got = src.readinto(buf)
    return path, buf[:got] if got < size else buf


def _pytorch_format(buf):
    """What torch.save writes, by its first bytes: a zip archive (PyTorch >= 1.6) or a pickle
    (older, or _use_new_zipfile_serialization=False); None for anything else. Asked only of
    files that are not safetensors, since a safetensors header length can begin the same."""
    head = bytes(buf[:4])
    if head == b"PK\x03\x04":
        return "a zip archive, as torch.save writes"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a pickle, as torch.save wrote before PyTorch 1.6"
    return None


def _pytorch_checkpoint(where, kind):
    return CheckpointError(
        f"load: {where} is a PyTorch checkpoint ({kind}), not a safetensors file\n"
        "  hint: tg.load reads safetensors files (what tg.save writes); convert it once in "
        "PyTorch: safetensors.torch.save_file(torch.load(path), 'model.safetensors') for a "
        "state dict of tensors, then tg.load('model.safetensors')")


def _corrupt(where, problem):
    return CheckpointError(f"load: {where}: {problem}\n  hint: {_HINT_CORRUPT}")


def _json(text, where, what):
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
        return dict(pairs)
    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as e:
        raise _corrupt(where, f"{what} is not valid JSON ({e})") from None


# ---- header validation ------------------------------------------------------------------------
def _parse_header(buf, where):
    """The header dict and where the data section starts, checked as far as JSON goes."""
    if len(buf) < 8:
        raise _corrupt(where, f"the file has {len(buf)} bytes, fewer than the 8-byte header "
                       "length a safetensors file starts with")
    n = int.from_bytes(buf[:8], "little")
    if n > len(buf) - 8:
        raise _corrupt(where, f"bad header length: the first 8 bytes claim a {n}-byte header, "
                       f"but only {len(buf) - 8} bytes follow them")
    raw = bytes(buf[8:8 + n])
    if not raw.startswith(b"{"):
        raise _corrupt(where, "the header is not JSON (it does not start with '{'): not a "
                       "safetensors file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _corrupt(where, f"the header is not UTF-8 JSON ({e})") from None
    header = _json(text, where, "the header")
    if not isinstance(header, dict):
        raise _corrupt(where, "the header is JSON but not an object")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(
            isinstance(v, str) for v in meta.values())):
        raise _corrupt(where, "__metadata__ is not a map of strings to strings")
    return header, 8 + n


def _check_entries(header, data_len, where):
    """(name, dtype code, shape, begin, end) per tensor, once the ranges tile the data."""
    entries = [_entry(name, info, data_len, where)
               for name, info in header.items() if name != "__metadata__"]
    pos, prev = 0, None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < pos:
            raise _corrupt(where, f"overlapping byte ranges: tensor {name!r} starts at data "
                           f"byte {begin}, inside tensor {prev!r} (which ends at {pos})")
        if begin > pos:
            raise _corrupt(where, f"missing byte range: data bytes [{pos}, {begin}) belong to "
                           "no tensor")
        pos, prev = end, name
    if pos != data_len:
        raise _corrupt(where, f"trailing bytes: the tensors cover {pos} bytes of the data "
                       f"section, which has {data_len}")
    return entries


def _entry(name, info, data_len, where):
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise _corrupt(where, f"tensor {name!r}: expected dtype, shape and data_offsets, got "
                       f"{info!r}"[:300])
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if code not in _CODES:
        raise _corrupt(where, f"tensor {name!r}: dtype {code!r} is not one tensorgrad holds "
                       f"({', '.join(_CODES)})")
    if not _ints(shape) or not _ints(offsets) or len(offsets) != 2:
        raise _corrupt(where, f"tensor {name!r}: shape {shape!r} and data_offsets "
                       f"{offsets!r} must be lists of non-negative integers (offsets: two)")
    begin, end = offsets
    if begin > end or end > data_len:
        raise _corrupt(where, f"tensor {name!r}: byte range [{begin}, {end}) is not within "
                       f"the {data_len}-byte data section")
    nbytes = math.prod(shape) * np.dtype(_CODES[code]).itemsize
    if nbytes != end - begin:
        raise _corrupt(where, f"tensor {name!r}: {code} of shape {shape} needs {nbytes} "
                       f"bytes, its byte range [{begin}, {end}) has {end - begin}")
    return name, code, tuple(shape), begin, end


def _ints(xs):
    return isinstance(xs, list) and all(type(x) is int and x >= 0 for x in xs)


def _arrays(buf, start, entries, where):
    """Host arrays viewing `buf` (writable, no copy), in the header's order."""
    arrays = {}
    for name, code, shape, begin, _ in entries:
        dt = np.dtype(_CODES[code])
        arr = np.frombuffer(buf, dt, count=math.prod(shape), offset=start + begin)
        if code == "BOOL" and arr.size and arr.view(np.uint8).max() > 1:
            raise _corrupt(where, f"tensor {name!r}: a BOOL byte is neither 0 nor 1")
        if not dt.isnative:
            arr = arr.astype(dt.newbyteorder("="))
        elif not arr.flags.aligned:
            arr = arr.copy()  # another writer's unaligned offset
        arrays[name] = arr.reshape(shape)
    return arrays


# ---- rebuilding ------------------------------------------------------------------------------
class _Placer:
    """Makes each stored array a tensor on its target device (shared names share storage)."""

    def __init__(self, arrays, map_location, where):
        self.arrays, self.map_location, self.where = arrays, map_location, where
        self.made = {}
        self.used = set()

    def tensor(self, name, saved="cpu", requires_grad=False):
        first = self.made.get(name)
        if first is None:
            first = self.made[name] = self._place(name, saved)
        t = first if name not in self.used else first.detach()
        self.used.add(name)
        return t.requires_grad_(True) if requires_grad else t

    def _place(self, name, saved):
        host = from_numpy(self.arrays[name])
        target, ml = saved, self.map_location
        if callable(ml) and not isinstance(ml, dict):
            out = ml(host, saved)
            if out is not None and not isinstance(out, Tensor):
                raise TypeError(f"load: map_location returned {type(out).__name__} for "
                                f"tensor {name!r}; it must return a Tensor or None")
            if out is not None:
                return out
        elif isinstance(ml, dict):
            mapping = {_canon(k): v for k, v in ml.items()}
            target = mapping.get(_canon(saved), saved)
        elif ml is not None:
            target = ml
        self._check_usable(name, saved, _canon(target))
        return host.to(target)

    def _check_usable(self, name, saved, target):
        ok, reason = backend_api.availability(target.partition(":")[0])
        if not ok:
            raise DeviceError(f"load: {self.where}: tensor {name!r} (saved on {saved}) cannot "
                              f"go to {target}: {reason}\n  hint: pass map_location='cpu' "
                              "(or a usable device) to tg.load")


def _canon(spec):
    """'cuda' -> 'cuda:0', 'cpu:0' -> 'cpu': saved devices compare as strings (a device type
    need not be registered to be named)."""
    kind, _, index = str(spec).strip().lower().partition(":")
    return "cpu" if kind == "cpu" else f"{kind}:{index or 0}"


class _Rebuilder:
    """Checks each node of the JSON tree and turns it back into Python objects and tensors."""

    SCALARS = {"none": type(None), "bool": bool, "int": int, "float": str, "str": str}

    def __init__(self, placer, where):
        self.placer, self.where = placer, where

    def bad(self, path, problem):
        return _corrupt(self.where, f"corrupt structure at {path}: {problem}")

    def decode(self, node, path):
        kind = node.get("t") if isinstance(node, dict) else None
        if kind in self.SCALARS:
            return self.scalar(node, kind, path)
        if kind in ("dict", "odict"):
            return self.mapping(node, kind, path)
        if kind in ("list", "tuple"):
            items = [self.decode(v, f"{path}[{i}]") for i, v in enumerate(self.items(node, path))]
            return tuple(items) if kind == "tuple" else items
        if kind == "tensor":
            return self.tensor(node, path)
        raise self.bad(path, f"unknown node {node!r}"[:200])

    def items(self, node, path):
        items = node.get("items")
        if not isinstance(items, list):
            raise self.bad(path, "a container without a list of items")
        return items

    def scalar(self, node, kind, path):
        v = node.get("v")
        if kind == "none":
            return None
        if type(v) is not self.SCALARS[kind]:
            raise self.bad(path, f"{kind} node holds {v!r}"[:200])
        if kind == "float":
            try:
                return float(v)
            except ValueError:
                raise self.bad(path, f"{v!r} is not a float"[:200]) from None
        return v

    def mapping(self, node, kind, path):
        out = OrderedDict() if kind == "odict" else {}
        for pair in self.items(node, path):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], dict)
                    and pair[0].get("t") in self.SCALARS):
                raise self.bad(path, f"dict item {pair!r} is not a [scalar key, value] pair"
                               [:200])
            key = self.scalar(pair[0], pair[0]["t"], path)
            if key in out:
                raise self.bad(path, f"duplicate key {key!r}")
            out[key] = self.decode(pair[1], f"{path}[{key!r}]")
        return out

    def tensor(self, node, path):
        name, saved, rg = node.get("name"), node.get("device"), node.get("requires_grad")
        if name not in self.placer.arrays:
            raise self.bad(path, f"tensor {name!r} is not in the file")
        dt = _BY_NAME.get(node.get("dtype"))
        if dt is None or dt.np != self.placer.arrays[name].dtype:
            raise self.bad(path, f"dtype {node.get('dtype')!r} disagrees with the stored "
                           f"{self.placer.arrays[name].dtype}")
        if not (isinstance(saved, str) and _valid_device(saved)) or type(rg) is not bool:
            raise self.bad(path, f"bad device {saved!r} or requires_grad {rg!r}")
        if rg and not dt.is_floating_point:
            raise self.bad(path, f"a {dt.name} tensor cannot require grad")
        return self.placer.tensor(name, saved, rg)


def _valid_device(s):
    kind, sep, index = s.partition(":")
    return kind.isidentifier() and (not sep or index.isdigit())
