"""Containers: Sequential, ModuleList, ModuleDict (torch.nn's), registering what they hold.

Speaks only Tensor, as all of tensorgrad.nn.
"""

from collections import OrderedDict
from itertools import chain

from .module import Module


class Sequential(Module):
    """Modules called in order, each on the previous one's output.

    >>> import tensorgrad as tg
    >>> net = tg.nn.Sequential(tg.nn.Identity(), tg.nn.Identity())
    >>> len(net), net(tg.ones(2)).tolist()
    (2, [1.0, 1.0])
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[_index(idx, len(items), "Sequential")][1]

    def __setitem__(self, idx, module):
        name = list(self._modules)[_index(idx, len(self._modules), "Sequential")]
        self.add_module(name, module)

    def __delitem__(self, idx):
        keys = list(self._modules)
        for k in (keys[idx] if isinstance(idx, slice) else
                  [keys[_index(idx, len(keys), "Sequential")]]):
            del self._modules[k]
        # Renumber as PyTorch does, so a later append() cannot overwrite a module.
        self._renumber(list(self._modules.values()))

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def insert(self, index, module):
        """Put `module` before position `index` (len(self) appends); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.insert: module should be a Module, got "
                            f"{type(module).__name__}")
        n = len(self._modules)
        if not -n <= index <= n:
            raise IndexError(f"Sequential.insert: index {index} is out of range for {n} "
                             f"modules\n  hint: use an index in [{-n}, {n}]")
        mods = list(self._modules.values())
        mods.insert(index, module)  # a negative index counts from the end, as in PyTorch
        self._renumber(mods)
        return self

    def extend(self, sequential):
        """Append every module of `sequential` (any iterable of modules); returns self."""
        for m in sequential:
            self.append(m)
        return self

    def pop(self, key):
        """Remove and return the module at `key` (an int, or a slice: a Sequential)."""
        out = self[key]
        del self[key]
        return out

    def _renumber(self, mods):
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m


def _index(idx, n, who):
    if not -n <= idx < n:
        raise IndexError(f"{who}: index {idx} is out of range for {n} modules")
    return idx % n


class ModuleList(Module):
    """A list of modules, registered so their parameters are found."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx, module):
        self.add_module(str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx):
        mods = list(self._modules.values())
        del mods[idx if isinstance(idx, slice) else _index(idx, len(mods), "ModuleList")]
        self._modules.clear()
        self.extend(mods)

    def __add__(self, other):
        """A new ModuleList of this one's modules, then `other`'s (any iterable of modules)."""
        out = ModuleList()
        for m in chain(self, other):
            out.append(m)
        return out

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        self.extend(mods)

    def pop(self, key):
        """Remove and return the module at `key` (an int, or a slice: a ModuleList)."""
        out = self[key]
        del self[key]
        return out


class ModuleDict(Module):
    """A dict of modules, registered so their parameters are found."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for key, m in items:
            self.add_module(key, m)

    def pop(self, key):
        return self._modules.pop(key)

    def clear(self):
        self._modules.clear()
