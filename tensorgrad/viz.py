"""Pictures of the autograd graph: `to_dot` writes Graphviz DOT text, `render` runs `dot`.

>>> import tensorgrad as tg
>>> lin = tg.nn.Linear(3, 2)
>>> loss = lin(tg.ones(4, 3)).sum()
>>> text = tg.viz.to_dot(loss, params=dict(lin.named_parameters()))
>>> text.splitlines()[0], '"weight\\\\n(2, 3) float32"' in text
('digraph tensorgrad {', True)

The graph is walked with an explicit stack (a 100 000-op chain needs no recursion), from the
tensor's `grad_fn` through each node's edges: an op node, a leaf that requires grad, or None (a
constant, not drawn). Nodes are drawn in the order they are first reached and edges point from
an input to the op that consumed it, so the output is at the bottom. Only metadata is read
(shapes, dtypes, devices), never an array. Imports the Tensor and Node classes; `render` needs
the Graphviz `dot` program on PATH, found with `shutil.which`.
"""

import shutil
import subprocess
from pathlib import Path

from .autograd.graph import Node

__all__ = ["render", "to_dot"]

_STYLE = {"output": "darkolivegreen1", "parameter": "lightblue", "leaf": "lightblue",
          "op": "white", "detached": "lightgray"}


def _quote(text):
    """A DOT quoted string: backslashes and quotes escaped, newlines as DOT's centred \\n."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r\n", "\n").replace("\n", "\\n") + '"'


def _meta(shape, dtype, device):
    dtype = getattr(dtype, "name", dtype)  # a tensorgrad dtype or a backend array dtype
    where = "" if str(device) == "cpu" else f" {device}"
    return f"{tuple(shape)} {dtype}{where}"


def _tensor_meta(t):
    return _meta(t.shape, t.dtype, t.device)


def _param_names(params):
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):  # a Module
        params = dict(params.named_parameters())
    return {id(p): name for name, p in dict(params).items()}


def _walk(root):
    """Graph objects reachable from `root` (first-reached order) and (input, consumer) pairs of
    their indices; iterative, each object visited once."""
    order, index, pairs = [root], {id(root): 0}, []
    stack = [root]
    while stack:
        obj = stack.pop()
        if not isinstance(obj, Node):
            continue  # a leaf: nothing above it
        for inp in obj.edges:
            if inp is None:
                continue
            if id(inp) not in index:
                index[id(inp)] = len(order)
                order.append(inp)
                stack.append(inp)
            pairs.append((index[id(inp)], index[id(obj)]))
    return order, pairs


def _node_line(ident, label, kind):
    return f"  {ident} [label={_quote(label)}, fillcolor={_STYLE[kind]}];"


def _describe(obj, names):
    """(label, kind) of a graph object: an op node or a leaf tensor that requires grad."""
    if isinstance(obj, Node):
        return f"{obj.name()}\n{_meta(*obj.out_meta)}", "op"
    name = names.get(id(obj))
    if name is not None:
        return f"{name}\n{_tensor_meta(obj)}", "parameter"
    return f"leaf (requires_grad)\n{_tensor_meta(obj)}", "leaf"


def to_dot(tensor, params=None, name="tensorgrad"):
    """Graphviz DOT text of the graph that produced `tensor`.

    Op nodes show the op (as `grad_fn` names it) and its output's shape and dtype; leaves
    that require grad are highlighted and named by `params` (a dict name -> tensor, such as
    `dict(model.named_parameters())`, or a Module); the output is the green node at the bottom.
    Paste the text into any Graphviz viewer, or use `render` when `dot` is installed.
    """
    names = _param_names(params)
    lines = [f"digraph {_quote(name) if not name.isidentifier() else name} {{",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             _node_line("n0", f"output\n{_tensor_meta(tensor)}", "output")]
    root = tensor.grad_fn if tensor.grad_fn is not None else tensor
    if not tensor.requires_grad:
        lines[-1] = _node_line("n0", f"output (no graph: requires_grad=False)\n"
                               f"{_tensor_meta(tensor)}", "detached")
        return "\n".join(lines + ["}"]) + "\n"
    if root is tensor:  # a leaf that requires grad: it is its own graph
        label, kind = _describe(tensor, names)
        lines[-1] = _node_line("n0", label.replace("\n", " (output)\n", 1), kind)
        return "\n".join(lines + ["}"]) + "\n"
    order, pairs = _walk(root)
    lines += [_node_line(f"n{i + 1}", *_describe(obj, names)) for i, obj in enumerate(order)]
    lines += [f"  n{a + 1} -> n{b + 1};" for a, b in pairs] + ["  n1 -> n0;", "}"]
    return "\n".join(lines) + "\n"


def render(tensor, path, params=None, format=None):
    """Write the graph of `tensor` as an image (the format from `path`'s suffix: svg, png,
    pdf, ...) with the Graphviz `dot` program; returns the path written.

    Raises RuntimeError saying how to install Graphviz when `dot` is not on PATH.
    """
    path = Path(path)
    fmt = format or path.suffix.lstrip(".") or "svg"
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "render: the Graphviz `dot` program was not found on PATH, so the graph cannot be "
            f"drawn as {fmt}\n  hint: install the Graphviz binaries (apt-get install graphviz, "
            "brew install graphviz or conda install graphviz); `pip install graphviz` is not "
            "enough, it installs only a Python wrapper around `dot`. Without it, "
            "tg.viz.to_dot(tensor) still returns the DOT text for any Graphviz viewer")
    text = to_dot(tensor, params)
    done = subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=text.encode(),
                          capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"render: `dot -T{fmt}` failed with exit status "
                           f"{done.returncode}: {done.stderr.decode(errors='replace').strip()}"
                           "\n  hint: check that the format is one dot supports (dot -T?)")
    return path
