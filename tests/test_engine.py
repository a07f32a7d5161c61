"""The backward engine: accumulation, retain_graph, hooks, grad mode, versions, freeing, checks."""

import gc
import time
import tracemalloc
import weakref

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.autograd.graph import Node
from tensorgrad.errors import DTypeError, GraphError, ShapeError
from tensorgrad.ops import registry


def _np(t):
    return t.detach().numpy(force=True)


def _leaf(device, values=(1.0, 2.0, 3.0), dtype=tg.float64):
    return tg.tensor(list(values), dtype=dtype, device=device, requires_grad=True)


def _nodes(root):
    """Every node reachable from `root` (iteratively)."""
    seen, stack = [], [root]
    while stack:
        n = stack.pop()
        if type(n) is Node and all(n is not s for s in seen):
            seen.append(n)
            stack.extend(n.edges)
    return seen


# ---- scheduling ------------------------------------------------------------------------------
@pytest.mark.parametrize("walk_ahead", [False, True])
def test_each_node_runs_once_after_all_its_consumers(device, walk_ahead, monkeypatch):
    # Branches made in an interleaved order, joined twice: the engine takes nodes by sequence
    # number, and every node must see its whole gradient before it runs; with a hooked leaf
    # alive somewhere, the graph is also walked ahead (to count the leaf's edges).
    from tensorgrad.autograd import graph
    monkeypatch.setattr(graph, "_hooked_leaves", {})
    if walk_ahead:
        other = _leaf(device)
        other.register_hook(lambda g: None)
        assert graph._hooked_leaves
    x = _leaf(device)
    a = x * 2.0
    b = x * 3.0
    c = a * b          # uses a and b
    d = c + a          # uses a again, after c
    e = (d * b).sum()  # and b again
    log = []
    for name, t in (("a", a), ("b", b), ("c", c), ("d", d)):
        t.register_hook(lambda g, name=name: log.append(name))
    e.backward()
    assert sorted(log) == ["a", "b", "c", "d"]
    assert log.index("d") < log.index("c") < log.index("a")
    assert log.index("d") < log.index("b") and log.index("c") < log.index("b")
    xv = np.array([1.0, 2.0, 3.0])
    # e = (6x^2 + 2x) * 3x = 18x^3 + 6x^2
    np.testing.assert_allclose(_np(x.grad), 54 * xv ** 2 + 12 * xv)


def test_nodes_are_numbered_after_their_inputs(device):
    x = _leaf(device)
    y = (x * 2.0).exp()
    z = y + x
    assert z.grad_fn.seq > y.grad_fn.seq > y.grad_fn.edges[0].seq


def test_a_leaf_with_hooks_is_forgotten_when_it_dies(device):
    from tensorgrad.autograd import graph
    x = _leaf(device)
    x.register_hook(lambda g: None)
    key = id(x)
    assert key in graph._hooked_leaves
    del x
    gc.collect()
    assert key not in graph._hooked_leaves


# ---- accumulation and retain_graph ------------------------------------------------------------
def test_gradients_accumulate_across_backward_calls(device):
    x = _leaf(device)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(_np(x.grad), [5.0, 7.0, 9.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(_np(x.grad), [3.0, 3.0, 3.0])


def test_retain_graph_allows_a_second_backward(device):
    x = _leaf(device)
    y = (x.sin() * x).sum()
    y.backward(retain_graph=True)
    first = _np(x.grad).copy()
    y.backward()
    np.testing.assert_allclose(_np(x.grad), 2 * first)


def test_second_backward_without_retain_graph_raises(device):
    x = _leaf(device)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="retain_graph"):
        y.backward()
    with pytest.raises(GraphError, match="retain_graph"):
        tg.autograd.grad(y, x)


# ---- hooks ------------------------------------------------------------------------------------
def test_hook_on_leaf_used_twice_fires_once_with_the_sum(device):
    x = _leaf(device)
    calls = []
    x.register_hook(lambda g: calls.append(_np(g).copy()))
    (x * x + x * 2.0).sum().backward()  # x feeds three uses
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 2 * np.array([1.0, 2.0, 3.0]) + 2)
    np.testing.assert_allclose(_np(x.grad), calls[0])


def test_hook_returning_a_gradient_replaces_it(device):
    x = _leaf(device)
    x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    np.testing.assert_allclose(_np(x.grad), [20.0, 40.0, 60.0])


@pytest.mark.parametrize("on", ["leaf", "non-leaf"])
def test_a_tensor_a_hook_returns_is_never_adopted_as_grad(device, on):
    # .grad is written in place by the next backward and by optimizers: it must not be the
    # storage of a tensor the hook's owner holds.
    x = _leaf(device)
    held = tg.ones(3, dtype=x.dtype, device=device)
    h = x if on == "leaf" else x + 0.0
    h.register_hook(lambda g: held)
    for _ in range(2):
        h.sum().backward()
    np.testing.assert_allclose(_np(held), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(_np(x.grad), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("keep", [lambda g: g, lambda g: g[:2]], ids=["tensor", "view"])
def test_a_gradient_a_hook_keeps_is_not_changed_by_the_next_backward(device, keep):
    # A logging hook keeps what it sees; the next backward adds into .grad in place, which
    # must not write into what was kept (PyTorch clones a gradient referenced elsewhere).
    x = _leaf(device)
    kept = []
    x.register_hook(lambda g: kept.append(keep(g)))
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(_np(kept[0]), np.full(_np(kept[0]).shape, 2.0))
    np.testing.assert_allclose(_np(x.grad), [5.0, 5.0, 5.0])


def test_a_hook_that_keeps_nothing_costs_no_copy(device):
    x = _leaf(device)
    seen = []
    x.register_hook(lambda g: seen.append(id(g._array)))  # an id keeps no reference
    (x * 2.0).sum().backward()
    assert id(x.grad._array) == seen[0]


def test_a_hook_returning_another_shape_or_dtype_is_named(device):
    x = _leaf(device)
    x.register_hook(lambda g: g.float())
    with pytest.raises(DTypeError, match="hook.*float64.*float32"):
        (x * x).sum().backward()
    y = _leaf(device)
    y.register_hook(lambda g: g[:2])
    with pytest.raises(ShapeError, match=r"hook.*\(3,\).*\(2,\)"):
        (y * y).sum().backward()


def test_hook_on_non_leaf(device):
    x = _leaf(device)
    h = x * 2.0
    seen = []

    def hook(g):
        seen.append(_np(g).copy())
        return g * 3

    h.register_hook(hook)
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * np.array([2.0, 4.0, 6.0]))
    np.testing.assert_allclose(_np(x.grad), 3 * 2 * seen[0])
    assert h.grad is None  # non-leaves keep no grad unless retain_grad()


def test_leaf_hook_fires_as_soon_as_its_gradient_is_complete(device):
    # a's only use is near the output, b's is deep: a's hook (and a.grad) must not wait for
    # the rest of the graph. DDP's bucketed allreduce relies on this to overlap backward.
    a, b = _leaf(device), _leaf(device)
    log = []
    a.register_hook(lambda g: log.append("a"))
    h = b * 2.0
    h.register_hook(lambda g: log.append(("h", a.grad is not None)))
    (h * 3.0 + a).sum().backward()
    assert log == ["a", ("h", True)]
    np.testing.assert_allclose(_np(a.grad), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(_np(b.grad), [6.0, 6.0, 6.0])


def test_early_grad_never_aliases_a_gradient_still_in_flight(device):
    # add's VJP hands the same gradient to `a` and to b*b's node. `a` (hooked) gets its .grad
    # first; a write into a.grad before b*b's VJP runs must not change what that VJP reads.
    a, b = _leaf(device), _leaf(device)
    a.register_hook(lambda g: None)
    h = b * b
    h.register_hook(lambda g: [a.grad.zero_()] and None)
    w = tg.ones(3, device=device)  # so the gradient reaching add is a fresh, writable array
    ((a + h) * w).sum().backward()
    np.testing.assert_allclose(_np(a.grad), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(_np(b.grad), [2.0, 4.0, 6.0])


def test_hooked_leaf_into_a_multi_output_op(device):
    # chunk is one multi-output node: its incoming gradient is a bundle, not a tensor. A
    # hooked leaf (every DDP parameter) fed straight into it must still get its gradient.
    w = tg.tensor(np.arange(24.0).reshape(6, 4), device=device, requires_grad=True)
    calls = []
    w.register_hook(lambda g: calls.append(1))
    q, k, _ = w.chunk(3)
    (q.sum() + 2 * k.sum()).backward()
    assert calls == [1]
    np.testing.assert_allclose(_np(w.grad)[:, 0], [1, 1, 2, 2, 0, 0])


def test_grad_passed_as_root_gradient_is_still_accumulated_in_place(device):
    # As in PyTorch: without hooks the sum lands in the .grad tensor the caller holds.
    x = _leaf(device)
    x.grad = tg.ones(3, dtype=tg.float64, device=device)
    g0 = x.grad
    (x * 2 + x * 3).backward(x.grad)
    assert x.grad is g0
    np.testing.assert_allclose(_np(g0), [6.0, 6.0, 6.0])


def test_root_gradient_of_another_dtype_is_refused_at_the_root(device):
    x = _leaf(device)
    with pytest.raises(DTypeError, match="backward: the gradient has dtype float32 but the "
                                         "output has dtype float64"):
        (x * 2).backward(tg.ones(3, device=device))


def test_hook_handle_remove(device):
    x = _leaf(device)
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    h = x * 1.0
    h_handle = h.register_hook(lambda g: calls.append(2))
    handle.remove()
    h_handle.remove()
    (h * x).sum().backward()
    assert calls == []


def test_hook_on_tensor_without_grad_raises(device):
    with pytest.raises(GraphError):
        tg.ones(3, device=device).register_hook(lambda g: g)


def test_retain_grad(device):
    x = _leaf(device)
    h = x * 2.0
    h.retain_grad()
    assert h.retains_grad
    (h * h).sum().backward()
    np.testing.assert_allclose(_np(h.grad), [4.0, 8.0, 12.0])
    assert not h.grad.requires_grad
    np.testing.assert_allclose(_np(x.grad), [8.0, 16.0, 24.0])


def test_retained_grad_sums_over_backward_calls_and_owns_its_storage(device):
    # As PyTorch: a retained .grad accumulates like a leaf's, and is a copy of its own (here
    # the root gradient the caller passed in, which must stay untouched).
    x = _leaf(device)
    h = x * 2.0
    h.retain_grad()
    root = tg.ones(3, dtype=x.dtype, device=device)
    h.backward(root, retain_graph=True)
    first = h.grad
    h.backward(root)
    np.testing.assert_allclose(_np(h.grad), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(_np(first), [1.0, 1.0, 1.0])   # summed out of place
    np.testing.assert_allclose(_np(root), [1.0, 1.0, 1.0])
    assert not np.shares_memory(h.grad.numpy(force=True), root.numpy(force=True))


# ---- hooks on the inputs of autograd.grad and backward(inputs=...) -----------------------------
# Each expectation below was checked against PyTorch 2.13.
def _times10(calls):
    def hook(g):
        calls.append(_np(g).copy())
        return g * 10
    return hook


def test_grad_runs_a_leaf_inputs_hooks_once_and_returns_what_they_leave(device):
    x = _leaf(device)
    calls = []
    x.register_hook(_times10(calls))
    gx, gx2 = tg.autograd.grad((x * x + x).sum(), [x, x])  # listed twice: the hook fires once
    np.testing.assert_allclose(_np(gx), [30.0, 50.0, 70.0])
    np.testing.assert_allclose(_np(gx2), [30.0, 50.0, 70.0])
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], [3.0, 5.0, 7.0])
    assert x.grad is None
    (g,) = tg.autograd.grad(x, x, tg.ones(3, dtype=x.dtype, device=device))  # x is the root
    np.testing.assert_allclose(_np(g), [10.0, 10.0, 10.0])


def test_grad_runs_a_non_leaf_inputs_hooks_and_sets_its_retained_grad(device):
    x = _leaf(device)
    h = x * 3.0
    h.retain_grad()
    calls = []
    h.register_hook(_times10(calls))
    (gh,) = tg.autograd.grad((h * h).sum(), h)
    np.testing.assert_allclose(calls[0], [6.0, 12.0, 18.0])
    np.testing.assert_allclose(_np(gh), [60.0, 120.0, 180.0])
    np.testing.assert_allclose(_np(h.grad), [60.0, 120.0, 180.0])  # the hooks' result
    assert x.grad is None


def test_grad_of_a_non_leaf_input_that_leads_to_another_input(device):
    # As PyTorch: h's gradient is taken as it arrives, before h's hook, which still acts on
    # the gradient flowing on to x.
    x = _leaf(device)
    h = x * 3.0
    h.register_hook(lambda g: g * 10)
    gh, gx = tg.autograd.grad((h * h).sum(), [h, x])
    np.testing.assert_allclose(_np(gh), [6.0, 12.0, 18.0])
    np.testing.assert_allclose(_np(gx), [180.0, 360.0, 540.0])


def test_grad_runs_no_hook_of_a_tensor_that_leads_to_no_input(device):
    x, z = _leaf(device), _leaf(device)
    calls = []
    z.register_hook(lambda g: calls.append("z"))
    a = x * 2.0
    a.register_hook(lambda g: calls.append("a"))  # before the input h: never reached
    h = a * z
    (gh,) = tg.autograd.grad((h * h).sum(), h)
    np.testing.assert_allclose(_np(gh), 2 * _np(h))
    assert calls == [] and z.grad is None and x.grad is None


def test_grad_with_create_graph_differentiates_through_a_leaf_inputs_hook(device):
    x = _leaf(device)
    x.register_hook(lambda g: g * 10)
    (g,) = tg.autograd.grad((x * x).sum(), x, create_graph=True)
    np.testing.assert_allclose(_np(g), [20.0, 40.0, 60.0])
    assert g.requires_grad
    (gg,) = tg.autograd.grad(g.sum(), x)  # 20 per element, then x's hook again
    np.testing.assert_allclose(_np(gg), [200.0, 200.0, 200.0])


def test_backward_inputs_runs_a_non_leaf_inputs_hooks_and_retains_its_grad(device):
    y = _leaf(device)
    k = y * 2.0
    k.register_hook(lambda g: g * 10)
    (k * k).sum().backward(inputs=[k], retain_graph=True)
    np.testing.assert_allclose(_np(k.grad), [40.0, 80.0, 120.0])
    assert y.grad is None
    assert k.retains_grad  # as PyTorch: from now on, a plain backward adds to k.grad too
    (k * k).sum().backward()
    np.testing.assert_allclose(_np(k.grad), [80.0, 160.0, 240.0])
    np.testing.assert_allclose(_np(y.grad), [80.0, 160.0, 240.0])


def test_backward_inputs_with_a_hooked_non_leaf_and_its_leaf(device):
    y = _leaf(device)
    k = y * 2.0
    k.register_hook(lambda g: g * 10)
    (k * k).sum().backward(inputs=[k, y])
    np.testing.assert_allclose(_np(k.grad), [40.0, 80.0, 120.0])
    np.testing.assert_allclose(_np(y.grad), [80.0, 160.0, 240.0])


def test_backward_inputs_runs_a_leaf_inputs_hooks_once(device):
    y = _leaf(device)
    calls = []
    y.register_hook(_times10(calls))
    (y * y).sum().backward(inputs=[y, y])  # listed twice: accumulated once
    np.testing.assert_allclose(_np(y.grad), [20.0, 40.0, 60.0])
    assert len(calls) == 1


@pytest.mark.parametrize("sibling", ["leaf", "non-leaf"])
def test_a_non_leaf_hook_editing_in_place_leaves_a_siblings_gradient_alone(device, sibling):
    # add's VJP hands one gradient to both its inputs; h's hook zeroes what it gets in place.
    # PyTorch gives z.grad = c with a leaf sibling (z's AccumulateGrad happens to run first);
    # with a non-leaf sibling its result depends on node order (zeros for this one, made
    # before h): here the hook edits a copy of its own either way.
    x, z = _leaf(device), _leaf(device, (3.0, 4.0, 5.0))
    c = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, device=device)
    w = z if sibling == "leaf" else z * 1.0
    h = x * 1.0
    h.register_hook(lambda g: g.mul_(0))
    ((w + h) * c).sum().backward()
    np.testing.assert_allclose(_np(x.grad), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(_np(z.grad), [1.0, 2.0, 3.0])


def test_a_leaf_hook_editing_in_place_leaves_a_siblings_gradient_alone(device):
    # The same with the hook on a leaf (finished mid-backward, while add's one gradient still
    # flows to the other input): PyTorch gives x.grad = 1 here too.
    x, y = _leaf(device), _leaf(device, (3.0, 4.0, 5.0))
    y.register_hook(lambda g: g.mul_(10))
    ((x + y) * 1.0).backward(tg.ones(3, dtype=tg.float64, device=device))
    np.testing.assert_allclose(_np(x.grad), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(_np(y.grad), [10.0, 10.0, 10.0])


# ---- grad mode ----------------------------------------------------------------------------------
def test_no_grad_and_enable_grad(device):
    x = _leaf(device)
    assert tg.is_grad_enabled()
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            z = x * 2
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_grad_mode_restored_after_an_exception():
    with pytest.raises(KeyError):
        with tg.no_grad():
            raise KeyError("x")
    assert tg.is_grad_enabled()


def test_set_grad_enabled(device):
    x = _leaf(device)
    with tg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert tg.is_grad_enabled()
    tg.set_grad_enabled(False)  # a plain call, as in PyTorch
    try:
        assert not tg.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True)
    assert tg.autograd.is_grad_enabled is tg.is_grad_enabled


def test_grad_mode_decorators(device):
    x = _leaf(device)

    @tg.no_grad()
    def f():
        return x * 2, tg.is_grad_enabled()

    @tg.no_grad
    def f_bare():
        return tg.is_grad_enabled()

    @tg.set_grad_enabled(False)
    def g():
        return tg.is_grad_enabled()

    @tg.enable_grad()
    def h():
        return (x * 2).requires_grad

    y, mode = f()
    assert not y.requires_grad and mode is False
    assert f_bare() is False and g() is False
    assert tg.is_grad_enabled()  # the decorators did not leak their mode
    with tg.no_grad():
        assert h()


# ---- detach and requires_grad -----------------------------------------------------------------
def test_detach_shares_storage_and_cuts_the_graph(device):
    x = _leaf(device)
    h = x * 2.0
    d = h.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    d.add_(1.0)  # no gradient recorded: writes the shared storage
    np.testing.assert_allclose(_np(h), [3.0, 5.0, 7.0])
    (d * x).sum().backward()
    np.testing.assert_allclose(_np(x.grad), [3.0, 5.0, 7.0])  # d is a constant
    assert h._version == d._version  # one version counter for one storage


def test_requires_grad_propagation(device):
    x = _leaf(device)
    c = tg.ones(3, dtype=tg.float64, device=device)
    assert (x + c).requires_grad and not (c + 1).requires_grad
    assert not (x > 1).requires_grad  # comparisons are not differentiable
    assert x.is_leaf and not (x * c).is_leaf and c.is_leaf
    c.requires_grad_()
    assert (c * 2).requires_grad
    with pytest.raises(DTypeError):
        tg.tensor([1, 2], device=device).requires_grad_()
    with pytest.raises(DTypeError):
        tg.tensor([1, 2], device=device, requires_grad=True)
    with pytest.raises(GraphError):
        (x * 2).requires_grad_(False)  # only leaves can change it


# ---- backward's argument checks ------------------------------------------------------------------
def test_backward_on_non_scalar_needs_a_gradient(device):
    x = _leaf(device)
    with pytest.raises(ShapeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(tg.tensor([1.0, 0.0, 2.0], dtype=tg.float64, device=device))
    np.testing.assert_allclose(_np(x.grad), [2.0, 0.0, 4.0])
    with pytest.raises(ShapeError):
        (x * 2).backward(tg.ones(2, dtype=tg.float64, device=device))


def test_backward_on_tensor_without_grad_raises(device):
    with pytest.raises(GraphError, match="does not require grad"):
        tg.ones(3, device=device).sum().backward()
    x = _leaf(device)
    with tg.no_grad():
        y = (x * 2).sum()
    with pytest.raises(GraphError):
        y.backward()


# ---- autograd.grad ------------------------------------------------------------------------------
def test_grad_of_grad(device):
    x = _leaf(device)
    (g,) = tg.autograd.grad((x ** 3).sum(), x, create_graph=True)
    np.testing.assert_allclose(_np(g), 3 * np.array([1.0, 4.0, 9.0]))
    assert g.requires_grad
    (gg,) = tg.autograd.grad(g.sum(), x, create_graph=True)
    np.testing.assert_allclose(_np(gg), [6.0, 12.0, 18.0])
    (ggg,) = tg.autograd.grad(gg.sum(), x)
    np.testing.assert_allclose(_np(ggg), [6.0, 6.0, 6.0])
    assert x.grad is None  # autograd.grad never touches .grad


def test_grad_allow_unused_and_unused_error(device):
    x, y = _leaf(device), _leaf(device)
    with pytest.raises(GraphError, match="input 1.*not used|allow_unused"):
        tg.autograd.grad((x * 2).sum(), (x, y))
    gx, gy = tg.autograd.grad((x * 2).sum(), (x, y), allow_unused=True)
    np.testing.assert_allclose(_np(gx), [2.0, 2.0, 2.0])
    assert gy is None
    _, gz = tg.autograd.grad((x * 2).sum(), (x, y), materialize_grads=True)
    np.testing.assert_array_equal(_np(gz), [0.0, 0.0, 0.0])


def test_grad_with_grad_outputs_and_non_leaf_inputs(device):
    x = _leaf(device)
    h = x * x
    out = h.sin()
    v = tg.tensor([1.0, -1.0, 0.5], dtype=tg.float64, device=device)
    gh, gx = tg.autograd.grad(out, (h, x), grad_outputs=v)
    xv = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(_np(gh), np.cos(xv ** 2) * [1.0, -1.0, 0.5])
    np.testing.assert_allclose(_np(gx), np.cos(xv ** 2) * [1.0, -1.0, 0.5] * 2 * xv)
    assert x.grad is None and h.grad is None


def test_grad_of_several_outputs_sums(device):
    x = _leaf(device)
    (g,) = tg.autograd.grad([(x * 2).sum(), (x * x).sum()], x)
    np.testing.assert_allclose(_np(g), [4.0, 6.0, 8.0])


def test_grad_input_must_require_grad(device):
    x = _leaf(device)
    with pytest.raises(GraphError):
        tg.autograd.grad((x * 2).sum(), tg.ones(3, dtype=tg.float64, device=device))


# ---- version counters ----------------------------------------------------------------------------
def test_saved_tensor_modified_in_place_raises(device):
    x = _leaf(device)
    h = x * 2.0
    y = h.sin()  # saves h
    with tg.no_grad():
        h.mul_(2.0)
    with pytest.raises(GraphError, match=r"sin.*modified by an in-place operation"):
        y.sum().backward()


def test_saved_non_leaf_rebased_in_place_raises(device):
    x = _leaf(device)
    h = x * 2.0
    y = h.log()
    h.add_(1.0)  # recorded out of place: h is rebased, the saved value is stale
    with pytest.raises(GraphError, match="log"):
        y.sum().backward()
    (g,) = tg.autograd.grad(h.sum(), x)  # h's new graph is fine
    np.testing.assert_allclose(_np(g), [2.0, 2.0, 2.0])


def test_in_place_on_leaf_requiring_grad_raises(device):
    x = _leaf(device)
    with pytest.raises(GraphError, match="leaf"):
        x.add_(1.0)
    with tg.no_grad():
        x.add_(1.0)  # a parameter update
    assert x.is_leaf and x.requires_grad
    np.testing.assert_allclose(_np(x), [2.0, 3.0, 4.0])


# ---- a long chain --------------------------------------------------------------------------------
def test_chain_of_100k_ops(device):
    x = tg.tensor(1.0, dtype=tg.float64, device=device, requires_grad=True)
    start = time.perf_counter()
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.backward()
    elapsed = time.perf_counter() - start
    np.testing.assert_allclose(x.grad.item(), 1.0000001 ** 100_000, rtol=1e-9)
    assert elapsed < 60, f"100k-op forward+backward took {elapsed:.1f}s"
    ref = weakref.ref(y.grad_fn)
    del y  # deleting a freed 100k-node graph must not recurse
    assert ref() is None


def test_unfreed_chain_with_saved_tensors_deletes():
    # No backward: the residuals (tensors holding the previous nodes) are still there.
    x = tg.tensor(0.5, dtype=tg.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y.sin()  # each node saves its input tensor, which holds the previous node
    ref = weakref.ref(y.grad_fn)
    del y
    assert ref() is None


# ---- freeing ------------------------------------------------------------------------------------
def _saved_array_graph(device):
    x = _leaf(device)
    h = x * 2.0
    y = h.log()  # log saves its input h: after `del h` only the node holds h's array
    ref = weakref.ref(h._array)
    del h
    assert y.grad_fn.saved_tensors[0]._array is ref()
    return x, y, ref


def test_saved_arrays_are_freed_after_backward(device):
    x, y, ref = _saved_array_graph(device)
    y.sum().backward()
    assert ref() is None
    assert y.grad_fn is not None  # the graph's tensors remain; only the residuals went


def test_saved_arrays_kept_with_retain_graph(device):
    x, y, ref = _saved_array_graph(device)
    y.sum().backward(retain_graph=True)
    assert ref() is not None
    y.sum().backward()
    assert ref() is None
    np.testing.assert_allclose(_np(x.grad), 2 / np.array([1.0, 2.0, 3.0]))


def test_saved_output_array_is_freed(device):
    x = _leaf(device)
    y = (x * 1.0).exp()  # exp saves its output array
    node = y.grad_fn
    assert node.out_array is y._array
    y.sum().backward()
    assert node.out_array is None and node.freed


def test_backward_frees_memory_tracemalloc():
    # numpy reports its allocations to tracemalloc: eight saved 8 MB arrays must go.
    x = tg.randn(1_000_000, dtype=tg.float64, requires_grad=True)
    tracemalloc.start()
    try:
        y = x
        for _ in range(8):
            y = (y * 0.5).sin()
        loss = y.sum()
        before, _ = tracemalloc.get_traced_memory()
        loss.backward()
        del y
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert before - after > 100e6, (before, after)  # 16 arrays of 8 MB were held


def test_training_step_creates_no_reference_cycles(device):
    gc.collect()
    gc.disable()
    try:
        w1 = tg.randn(4, 8, dtype=tg.float64, device=device, requires_grad=True)
        b1 = tg.zeros(8, dtype=tg.float64, device=device, requires_grad=True)
        w2 = tg.randn(8, 1, dtype=tg.float64, device=device, requires_grad=True)
        x = tg.randn(16, 4, dtype=tg.float64, device=device)
        t = tg.randn(16, 1, dtype=tg.float64, device=device)
        h = (x @ w1 + b1).tanh()
        h.retain_grad()
        loss = ((h @ w2 - t) ** 2).mean()
        nodes = [weakref.ref(n) for n in _nodes(loss.grad_fn)]
        assert len(nodes) >= 6
        loss.backward()
        del loss, h
        dead = [r() is None for r in nodes]
        assert all(dead), f"{dead.count(False)} nodes survived without the gc"
        assert w1.grad is not None and w1.grad.shape == w1.shape
    finally:
        gc.enable()


def test_retained_graph_with_create_graph_has_no_cycles(device):
    gc.collect()
    gc.disable()
    try:
        x = _leaf(device)
        y = (x.exp() * x).sum()
        (g,) = tg.autograd.grad(y, x, create_graph=True)
        refs = [weakref.ref(n) for n in _nodes(g.grad_fn)]
        del y, g
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


# ---- the engine's checks of every VJP ------------------------------------------------------------
def _register_buggy(name, vjp):
    def forward(xp, x):
        return x * 2

    return registry.register(name, forward, vjp)


def test_wrong_shaped_gradient_raises_shape_error(device):
    op = _register_buggy("buggy_shape_test_op", lambda ctx, g: (g.sum(),))
    try:
        x = tg.ones(2, 3, dtype=tg.float64, device=device, requires_grad=True)
        y = registry.apply(op, (x,))
        with pytest.raises(ShapeError,
                           match=r"buggy_shape_test_op.*input 0.*\(\).*\(2, 3\)"):
            y.sum().backward()
    finally:
        registry.OPS.pop("buggy_shape_test_op", None)
    assert "buggy_shape_test_op" not in registry.OPS


def test_wrong_dtype_gradient_raises_dtype_error(device):
    op = _register_buggy("buggy_dtype_test_op", lambda ctx, g: (g.to(tg.float32),))
    try:
        x = tg.ones(2, 3, dtype=tg.float64, device=device, requires_grad=True)
        y = registry.apply(op, (x,))
        with pytest.raises(DTypeError, match=r"buggy_dtype_test_op.*input 0.*float32.*float64"):
            y.sum().backward()
    finally:
        registry.OPS.pop("buggy_dtype_test_op", None)


def test_wrong_gradient_count_raises_shape_error(device):
    op = _register_buggy("buggy_count_test_op", lambda ctx, g: (g, g))
    try:
        x = tg.ones(3, dtype=tg.float64, device=device, requires_grad=True)
        with pytest.raises(ShapeError, match=r"buggy_count_test_op.*2 gradient.*1 input"):
            registry.apply(op, (x,)).sum().backward()
    finally:
        registry.OPS.pop("buggy_count_test_op", None)


@pytest.mark.parametrize("sa,sb", [((3, 1), (4,)), ((2, 3, 4), (3, 1)), ((1,), (2, 2)),
                                   ((), (5,))])
def test_broadcasting_gradient_has_the_input_shape(device, sa, sb):
    a = tg.randn(*sa, dtype=tg.float64, device=device, requires_grad=True)
    b = tg.randn(*sb, dtype=tg.float64, device=device, requires_grad=True)
    (a * b + a).sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    an, bn = _np(a), _np(b)
    full = np.broadcast_shapes(an.shape, bn.shape)
    np.testing.assert_allclose(_np(a.grad), _sum_to(np.broadcast_to(bn, full) + 1, an.shape))
    np.testing.assert_allclose(_np(b.grad), _sum_to(np.broadcast_to(an, full), bn.shape))


def _sum_to(arr, shape):
    lead = arr.ndim - len(shape)
    arr = arr.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1)
    return arr.sum(axis=axes, keepdims=True) if axes else arr


# ---- grad mode on generators, inference_mode, set_grad_enabled's argument (PyTorch parity) -----
# Each decorator is made inside the test: set_grad_enabled(False) switches grad mode off as
# soon as it is constructed (until it decorates), as in PyTorch.
_MODE_DECORATORS = {  # name: (the decorator, the mode the body sees, the caller's mode)
    "no_grad()": (lambda: tg.no_grad(), False, True),
    "no_grad": (lambda: tg.no_grad, False, True),
    "enable_grad()": (lambda: tg.enable_grad(), True, False),
    "set_grad_enabled(False)": (lambda: tg.set_grad_enabled(False), False, True),
    "inference_mode()": (lambda: tg.inference_mode(), False, True),
    "inference_mode": (lambda: tg.inference_mode, False, True),
}


@pytest.mark.parametrize("name", list(_MODE_DECORATORS))
def test_grad_mode_decorator_applies_inside_a_generator_body(name):
    # As PyTorch's _wrap_generator: the mode is set while the body runs, at every resume, and
    # between next() calls the caller's own mode applies.
    make, inside, outside = _MODE_DECORATORS[name]

    @make()
    def gen():
        for _ in range(3):
            yield tg.is_grad_enabled()

    with tg.set_grad_enabled(outside):
        seen_between = []
        it = gen()
        for seen in it:
            assert seen is inside
            seen_between.append(tg.is_grad_enabled())
        assert seen_between == [outside] * 3 and tg.is_grad_enabled() is outside
    assert tg.is_grad_enabled()
    assert gen.__name__ == "gen"


def test_a_decorated_generator_follows_the_caller_switching_modes_between_resumes():
    @tg.no_grad()
    def gen():
        while True:
            yield tg.is_grad_enabled()

    it = gen()
    assert next(it) is False and tg.is_grad_enabled()
    with tg.enable_grad():
        assert next(it) is False and tg.is_grad_enabled()
    with tg.no_grad():
        assert next(it) is False and not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_a_decorated_generator_forwards_send_throw_close_and_its_return_value():
    log = []

    @tg.no_grad()
    def gen():
        got = yield "first"
        log.append(("sent", got, tg.is_grad_enabled()))
        try:
            yield "second"
        except ValueError as e:
            log.append(("caught", str(e), tg.is_grad_enabled()))
            yield "after throw"
        finally:
            log.append(("finally", tg.is_grad_enabled()))
        return "done"

    it = gen()
    assert next(it) == "first"
    assert it.send(5) == "second" and tg.is_grad_enabled()
    assert it.throw(ValueError("boom")) == "after throw" and tg.is_grad_enabled()
    it.close()
    assert tg.is_grad_enabled()
    assert log == [("sent", 5, False), ("caught", "boom", False), ("finally", False)]

    def outer():
        result = yield from gen()
        yield result

    assert list(outer())[-1] == "done"  # StopIteration's value is handed on
    with pytest.raises(TypeError, match="non-None"):  # as a plain generator
        gen().send(1)


def test_an_exception_escaping_a_decorated_generator_restores_the_mode(device):
    x = _leaf(device)

    @tg.no_grad()
    def gen():
        yield x * 2.0
        raise KeyError("k")

    it = gen()
    assert not next(it).requires_grad  # no graph recorded inside the body
    with pytest.raises(KeyError):
        next(it)
    assert tg.is_grad_enabled() and (x * 2.0).requires_grad


@pytest.mark.parametrize("bad", ["yes", 1, None, np.bool_(False), "tensor"])
def test_set_grad_enabled_takes_only_a_bool(bad):
    bad = tg.tensor(False) if bad == "tensor" else bad
    try:
        with pytest.raises(TypeError, match="set_grad_enabled: mode must be a bool"):
            tg.set_grad_enabled(bad)
        assert tg.is_grad_enabled()  # unchanged
    finally:
        tg.set_grad_enabled(True)  # had the call gone through, the next tests would not record


def test_inference_mode_switches_recording_off_like_no_grad(device):
    x = _leaf(device)
    assert not tg.is_inference_mode_enabled()
    with tg.inference_mode():
        assert tg.is_inference_mode_enabled() and not tg.is_grad_enabled()
        assert not (x * 2.0).requires_grad
        with tg.enable_grad():  # as PyTorch: grad mode on, still in inference mode
            assert tg.is_inference_mode_enabled() and tg.is_grad_enabled()
        with tg.inference_mode(False):  # as PyTorch: recording back on
            assert not tg.is_inference_mode_enabled() and tg.is_grad_enabled()
        assert tg.is_inference_mode_enabled() and not tg.is_grad_enabled()
    assert not tg.is_inference_mode_enabled() and tg.is_grad_enabled()
    with pytest.raises(KeyError), tg.inference_mode():
        raise KeyError
    assert not tg.is_inference_mode_enabled() and tg.is_grad_enabled()
    tg.inference_mode()  # unlike set_grad_enabled, a plain call changes nothing
    assert not tg.is_inference_mode_enabled()
    assert tg.autograd.inference_mode is tg.inference_mode


def test_inference_mode_decorates_with_or_without_parentheses():
    def state():
        return tg.is_inference_mode_enabled(), tg.is_grad_enabled()

    bare, called, off = tg.inference_mode(state), tg.inference_mode()(state), None
    off = tg.inference_mode(False)(state)
    assert bare() == called() == (True, False) and bare.__name__ == "state"
    with tg.inference_mode():
        assert off() == (False, True)
    assert state() == (False, True)
