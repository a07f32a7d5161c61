"""`Module`, the base of every layer (the containers are in container.py).

A Module registers what is assigned to it: a `Parameter` becomes a parameter, a `Module` a
submodule, and a Tensor assigned to a name registered with `register_buffer` a buffer.
`state_dict` keys and `repr` follow PyTorch's, so checkpoints and printouts read the same.

Speaks only Tensor (no array library), as all of tensorgrad.nn.
"""

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

from .. import dtypes as _dtypes
from ..autograd.graph import no_grad
from ..errors import ShapeError, StateDictError
from ..tensor import Tensor
from .parameter import Parameter
from .utils import _zero_grads

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _Handle:
    """What the register_*_hook methods return: `.remove()` unregisters the hook."""

    _next = 0

    def __init__(self, hooks, fn):
        _Handle._next += 1
        self.id, self._hooks = _Handle._next, hooks
        hooks[self.id] = fn

    def remove(self):
        self._hooks.pop(self.id, None)


class Module:
    """Base class of layers and models: subclass it, assign submodules and Parameters in
    `__init__`, and compute in `forward`.

    >>> import tensorgrad as tg
    >>> class Affine(tg.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = tg.nn.Parameter(tg.ones(2))
    ...     def forward(self, x):
    ...         return x * self.w
    >>> [name for name, _ in Affine().named_parameters()]
    ['w']
    """

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()

    # -- attribute registration -------------------------------------------------------------
    # The checks and messages are PyTorch's (torch/nn/modules/module.py), so code that catches
    # their KeyError/TypeError works unchanged.
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() call\n"
                                 "  hint: call super().__init__() first in your __init__")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name, keep=params)
            self.register_parameter(name, value)
        elif name in params:  # before the Module case: a Module never replaces a parameter
            if value is not None:
                raise _assign_error(value, "parameter", name, "tg.nn.Parameter")
            params[name] = None
        elif isinstance(value, Module):
            self._forget(name, keep=modules)
            modules[name] = value
        elif name in modules:
            if value is not None:
                raise _assign_error(value, "child module", name, "tg.nn.Module")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise _assign_error(value, "buffer", name, "tg.Tensor")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        # `keep` is the registry about to receive `name`: replacing an entry there keeps its
        # position, as in PyTorch (Sequential's order is its _modules order).
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent.discard(name)

    def _check_new_name(self, name, kind, registry):
        """PyTorch's rules for a name given to register_*/add_module: a string without dots,
        not empty, and not already an attribute of another kind (method, parameter, ...)."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f"{kind} name can't contain \".\", got: {name} (dots separate the "
                           "levels of state_dict keys)")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if name not in registry and hasattr(self, name):
            raise KeyError(f"attribute '{name}' already exists ({type(self).__name__}."
                           f"{name} is {self._describe_attr(name)}): pick another name")

    def _describe_attr(self, name):
        for kind, registry in (("a parameter", self._parameters), ("a buffer", self._buffers),
                               ("a submodule", self._modules)):
            if name in registry:
                return kind
        return "a method" if callable(getattr(type(self), name, None)) else "an attribute"

    def __getattr__(self, name):
        # Only reached when normal lookup failed: parameters, buffers and submodules.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Add `param` (a Parameter, or None for an absent one) under `name`."""
        self._check_new_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (tg.nn.Parameter or None required)\n  hint: wrap it "
                            "as nn.Parameter(tensor), or use register_buffer for state that "
                            "is not learned")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not a parameter (BatchNorm's running mean, say)."""
        self._check_new_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer "
                            f"'{name}' (tg.Tensor or None required)\n  hint: wrap it with "
                            "tg.tensor(...)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        """Add `module` (or None) as the child `name`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module subclass")
        self._check_new_name(name, "module", self._modules)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at dotted path `target` ("" is this module), as PyTorch's."""
        module = self
        for part in target.split(".") if target else ():
            if not hasattr(module, part):
                raise AttributeError(f"{type(module).__name__} has no attribute `{part}`\n"
                                     f"  hint: {_listing('submodules', module._modules)}")
            module = getattr(module, part)
            if not isinstance(module, Module):
                raise AttributeError(f"`{part}` is not an nn.Module")
        return module

    def get_parameter(self, target):
        """The parameter at dotted path `target`, e.g. "encoder.0.weight"."""
        module, name = self._get_owner(target)
        value = getattr(module, name)
        if not isinstance(value, Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return value

    def get_buffer(self, target):
        """The buffer at dotted path `target`, e.g. "bn.running_mean"."""
        module, name = self._get_owner(target)
        if name not in module._buffers:
            raise AttributeError(f"`{name}` is not a buffer")
        return module._buffers[name]

    def _get_owner(self, target):
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`\n"
                                 "  hint: " + _listing("parameters and buffers",
                                                       [*module._parameters, *module._buffers]))
        return module, name

    # -- traversal --------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        memo = set() if memo is None else memo
        if remove_duplicate and id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                           remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        # remove_duplicate=False also walks a shared submodule once per path, as PyTorch's.
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse
                else [(prefix, self)])
        for mod_prefix, m in mods:
            for name, t in getattr(m, registry).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- modes and bulk operations -------------------------------------------------------
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("train: mode is expected to be a bool")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        _zero_grads(self.parameters(), set_to_none)

    def apply(self, fn):
        """Call `fn` on every submodule (children first) and then on self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply_to_tensors(self, fn):
        # Parameters keep their identity (optimizers hold them): only their storage moves.
        with no_grad():
            for m in self.modules():
                for p in m._parameters.values():
                    if p is None:
                        continue
                    p.data = fn(p)
                    if p.grad is not None:
                        p.grad = fn(p.grad)
                for name, b in m._buffers.items():
                    if b is not None:
                        m._buffers[name] = fn(b)
        return self

    def to(self, *args, **kwargs):
        """Move and/or cast every parameter and buffer: `.to("cuda")`, `.to(tg.float64)`.

        Only floating-point tensors change dtype, as in PyTorch.
        """
        def convert(t):
            if t.dtype.is_floating_point:
                return t.to(*args, **kwargs)
            dev_args = [a for a in args if not _is_dtype(a)]
            kw = {k: v for k, v in kwargs.items() if k != "dtype"}
            return t.to(*dev_args, **kw) if dev_args or kw else t
        return self._apply_to_tensors(convert)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else
                       (f"cuda:{device}" if isinstance(device, int) else device))

    def float(self):
        return self.to(_dtypes.float32)

    def double(self):
        return self.to(_dtypes.float64)

    def half(self):
        return self.to(_dtypes.float16)

    # -- state dict -------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Parameters and persistent buffers by dotted name, in registration order."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into this module's parameters and buffers (in place, under no_grad).

        Returns (missing_keys, unexpected_keys); with strict=True either raises
        StateDictError (a RuntimeError, as in PyTorch, and a KeyError) listing them. A shape
        mismatch raises ShapeError naming the key and both shapes. Keys of older checkpoints
        are first upgraded by each submodule (BatchNorm fills in a missing
        num_batches_tracked, as PyTorch does); the caller's dict is left as it was.
        """
        if not isinstance(state_dict, Mapping):
            hint = ("pass the module's state_dict(), not the module"
                    if isinstance(state_dict, Module) else
                    "pass a dict of tensors, such as model.state_dict() or tg.load(path)")
            raise TypeError(f"Expected state_dict to be dict-like, got "
                            f"{type(state_dict).__name__}\n  hint: {hint}")
        state_dict = OrderedDict(state_dict)  # a copy: _upgrade_state_dict may add keys
        for prefix, m in self.named_modules(remove_duplicate=False):
            m._upgrade_state_dict(state_dict, prefix + "." if prefix else "")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise StateDictError(f"load_state_dict for {type(self).__name__}: missing keys "
                           f"{missing}, unexpected keys {unexpected}\n  hint: pass "
                           "strict=False to load the keys that match")
        for key, target in own.items():
            if key not in state_dict:
                continue
            _load_one(key, target, state_dict[key])
        return IncompatibleKeys(missing, unexpected)

    def _upgrade_state_dict(self, state_dict, prefix):
        """Called by load_state_dict on every submodule before the keys are matched, with a
        copy of the checkpoint and this module's key prefix ("layer1.0."): a module whose
        state layout changed fills in or renames its own keys of older checkpoints here
        (PyTorch's modules do it in _load_from_state_dict). The base class changes nothing."""

    # -- calling -------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define "
                                  "forward(self, ...) in your Module subclass")

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            new = hook(self, args, out)
            if new is not None:
                out = new
        return out

    def register_forward_pre_hook(self, hook):
        """`hook(module, args)` before forward; may return new args."""
        return _Handle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """`hook(module, args, output)` after forward; may return a new output."""
        return _Handle(self._forward_hooks, hook)

    # -- display ----------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        lines = [f"({name}): " + _indent(repr(m)) for name, m in self._modules.items()]
        if not lines and len(extra_lines) <= 1:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(extra_lines + lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))


def _is_dtype(x):
    return isinstance(x, _dtypes.dtype)


def _assign_error(value, kind, name, expected):
    return TypeError(f"cannot assign '{type(value).__name__}' as {kind} '{name}' "
                     f"({expected} or None expected)")


def _listing(what, names):
    return f"its {what} are {list(names)}" if names else f"it has no {what}"


def _indent(text):
    return text.replace("\n", "\n  ")


def _load_one(key, target, value):
    if not isinstance(value, Tensor):
        raise TypeError(f"load_state_dict: {key!r} holds a {type(value).__name__}, "
                        "expected a Tensor")
    if tuple(value.shape) != tuple(target.shape):
        raise ShapeError(f"load_state_dict: size mismatch for {key!r}: the checkpoint has "
                         f"shape {tuple(value.shape)}, the model has {tuple(target.shape)}\n"
                         "  hint: the checkpoint was saved from a differently sized model")
    with no_grad():
        target.copy_(value)
