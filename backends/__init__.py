"""The built-in backends of tensorgrad, installed as the package `tensorgrad.backends`.

How to write a backend
----------------------
A backend is any object that follows `tensorgrad.backend_api.Backend`: a `name`, the
`device_types` it serves, an array namespace `xp` (NumPy-compatible), `availability()`
returning `(ok, reason)`, `asarray(data, dtype, index)` / `to_numpy(array)` transfers,
`device_context(index)`, `synchronize(index)`, `generator(index)` (an object with NumPy's
`Generator` methods `random`, `standard_normal`, `integers`, `permutation`),
`manual_seed(seed)`, `from_dlpack(obj, index)`, a `capabilities` set and an `overrides`
mapping from op name to a faster forward `f(xp, *arrays, **attrs)` that must give the same
numbers as the generic op.

Register it in your package's `pyproject.toml`, exactly as the built-ins are::

    [project.entry-points."tensorgrad.backends"]
    mybackend = "mypackage.backend:MyBackend"

or at run time with `tensorgrad.backend_api.register_backend(MyBackend())`. Backends import
tensorgrad's core; core never imports a backend module by name.
"""
