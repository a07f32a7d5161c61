"""tg.viz: DOT text of the autograd graph, checked by a small DOT parser (no Graphviz needed),
and `render`'s two paths: no `dot` on PATH (a clear error) and a stand-in `dot` program."""

import os
import re
import sys

import pytest

import tensorgrad as tg

# ---- a tiny DOT checker ------------------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:("(?:\\.|[^"\\])*")|(->)|([A-Za-z_][A-Za-z0-9_.]*|-?\d+(?:\.\d+)?)'
                    r'|([{}\[\];,=]))')


def _tokens(text):
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"DOT: cannot tokenise at {text[pos:pos + 30]!r}"
        quoted, arrow, word, punct = m.groups()
        out.append(("str", quoted) if quoted else ("id", arrow or word or punct))
        pos = m.end()
    return out


def _unquote(tok):
    kind, value = tok
    if kind != "str":
        return value
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), value[1:-1])


def _attrs(toks, i):
    """Parse `[k=v, ...]` at toks[i]; returns (dict, next index)."""
    attrs = {}
    if toks[i] != ("id", "["):
        return attrs, i
    i += 1
    while toks[i] != ("id", "]"):
        key, eq, val = toks[i], toks[i + 1], toks[i + 2]
        assert eq == ("id", "="), f"DOT: expected '=' after {key}"
        attrs[_unquote(key)] = _unquote(val)
        i += 3
        if toks[i] == ("id", ","):
            i += 1
    return attrs, i + 1


def check_dot(text):
    """Parse a digraph; returns ({node id: attrs}, [(src, dst)]). Fails (AssertionError) on
    unbalanced braces, an edge to an undeclared node, or anything it cannot parse."""
    toks = _tokens(text)
    depth = 0
    for t in toks:
        depth += {("id", "{"): 1, ("id", "}"): -1}.get(t, 0)
        assert depth >= 0, "DOT: '}' without '{'"
    assert depth == 0, "DOT: unbalanced braces"
    assert toks[0] == ("id", "digraph") and toks[2] == ("id", "{") and toks[-1] == ("id", "}")
    nodes, edges, i = {}, [], 3
    while i < len(toks) - 1:
        head = _unquote(toks[i])
        if toks[i + 1] == ("id", "->"):
            dst = _unquote(toks[i + 2])
            assert head in nodes and dst in nodes, f"DOT: edge {head}->{dst} uses an " \
                "undeclared node"
            edges.append((head, dst))
            _, i = _attrs(toks, i + 3)
        else:
            attrs, i = _attrs(toks, i + 1)
            if head not in ("node", "edge", "graph"):
                nodes[head] = attrs
        assert toks[i] == ("id", ";"), f"DOT: expected ';' at token {i}: {toks[i]}"
        i += 1
    return nodes, edges


def test_checker_rejects_broken_dot():
    good = 'digraph g {\n  a [label="x"];\n  b [label="y"];\n  a -> b;\n}\n'
    assert check_dot(good) == ({"a": {"label": "x"}, "b": {"label": "y"}}, [("a", "b")])
    for bad in (good.replace("}", ""), good.replace("a -> b", "a -> c"),
                good.replace('  b [label="y"];\n', ""), good.replace(";\n  a ->", "\n  a ->")):
        with pytest.raises(AssertionError):
            check_dot(bad)


# ---- to_dot ----------------------------------------------------------------------------------
def _mlp():
    tg.manual_seed(0)
    return tg.nn.Sequential(tg.nn.Linear(3, 5), tg.nn.ReLU(), tg.nn.Linear(5, 2))


def test_dot_names_every_parameter_and_parses():
    model = _mlp()
    loss = model(tg.randn(4, 3)).pow(2).mean()
    nodes, edges = check_dot(tg.viz.to_dot(loss, params=dict(model.named_parameters())))
    labels = [a["label"] for a in nodes.values()]
    for name, p in model.named_parameters():
        hits = [a for a in nodes.values() if a["label"].split("\n")[0] == name]
        assert len(hits) == 1, name
        assert hits[0]["label"] == f"{name}\n{tuple(p.shape)} float32"
        assert hits[0]["fillcolor"] == "lightblue"
    assert labels[0] == "output\n() float32"
    assert "MeanBackward0\n() float32" in labels and "LinearBackward0\n(4, 2) float32" in labels
    # every node but the output feeds something; the output is fed by the loss's grad_fn
    assert {s for s, _ in edges} == set(nodes) - {"n0"}
    assert [s for s, d in edges if d == "n0"] == ["n1"]


def test_dot_structure_of_a_small_graph():
    w = tg.ones(2, 3, requires_grad=True)
    x = tg.ones(2, 3)  # a constant: no node
    loss = (w * x).sum()
    nodes, edges = check_dot(tg.viz.to_dot(loss, params={"w": w}))
    by_label = {a["label"].split("\n")[0]: n for n, a in nodes.items()}
    assert set(by_label) == {"output", "SumBackward0", "MulBackward0", "w"}
    assert sorted(edges) == sorted([(by_label["w"], by_label["MulBackward0"]),
                                    (by_label["MulBackward0"], by_label["SumBackward0"]),
                                    (by_label["SumBackward0"], by_label["output"])])


def test_dot_shared_input_and_unnamed_leaf():
    a = tg.ones(3, requires_grad=True)
    nodes, edges = check_dot(tg.viz.to_dot((a * a).sum()))
    leaf = [n for n, at in nodes.items() if at["label"].startswith("leaf (requires_grad)")]
    assert len(leaf) == 1 and edges.count((leaf[0], "n2")) == 2  # a * a: two uses, one node


def test_dot_escapes_labels():
    name = 'we"ird\\name\nline'
    w = tg.ones(2, requires_grad=True)
    nodes, _ = check_dot(tg.viz.to_dot((w * 2).sum(), params={name: w}))
    assert any(a["label"] == f"{name}\n(2,) float32" for a in nodes.values())
    assert check_dot(tg.viz.to_dot(w.sum(), name="my graph"))[0]


def test_dot_of_leaf_and_of_detached_tensor():
    w = tg.zeros(2, 2, requires_grad=True)
    nodes, edges = check_dot(tg.viz.to_dot(w, params={"w": w}))
    assert edges == [] and nodes["n0"]["label"] == "w (output)\n(2, 2) float32"
    nodes, _ = check_dot(tg.viz.to_dot(tg.ones(3)))
    assert "requires_grad=False" in nodes["n0"]["label"]


def test_dot_long_chain_is_iterative_and_survives_backward():
    x = tg.ones(2, requires_grad=True)
    y = x
    for _ in range(5000):  # far past the recursion limit
        y = y + 1
    loss = y.sum()
    loss.backward()  # frees residuals; the picture needs only metadata
    nodes, edges = check_dot(tg.viz.to_dot(loss, params={"x": x}))
    assert len(nodes) == 5003 and len(edges) == 5002


# ---- render ----------------------------------------------------------------------------------
def test_render_without_dot_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(tg.viz.shutil, "which", lambda name: None)
    w = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError) as info:
        tg.viz.render(w.sum(), tmp_path / "g.svg")
    msg = str(info.value)
    assert "apt-get install graphviz" in msg and "pip install graphviz` is not enough" in msg
    assert not (tmp_path / "g.svg").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in dot is a POSIX shell script")
def test_render_runs_dot_with_the_format_of_the_suffix(monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    # A stand-in for Graphviz: records its arguments and writes its input to the -o file.
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n'
                    'if [ "$1" = "-Tbogus" ]; then echo "bad format" >&2; exit 1; fi\n'
                    'cat > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    model = _mlp()
    loss = model(tg.randn(2, 3)).sum()
    out = tg.viz.render(loss, tmp_path / "graph.png", params=model)
    assert out == tmp_path / "graph.png"
    assert (bin_dir / "args").read_text().split() == ["-Tpng", "-o", str(out)]
    assert out.read_text() == tg.viz.to_dot(loss, params=dict(model.named_parameters()))
    with pytest.raises(RuntimeError, match="bad format"):
        tg.viz.render(loss, tmp_path / "graph.bogus")


def test_module_doctests():
    import doctest

    result = doctest.testmod(tg.viz)
    assert result.attempted >= 4 and result.failed == 0
