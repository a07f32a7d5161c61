"""Shape errors that teach (DESIGN section 4, STYLE habit 13), over randomized mismatches.

Each message names the op or layer, every operand's shape, the sizes that disagree and a
`hint:`, and points at the user's line: this file and the line of the lambda that called
the op (the first frame outside tensorgrad)."""

import ast
import random
import re

import pytest

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad import nn

ROUNDS = 15


def _fail(fn):
    """The ShapeError `fn` (a one-line lambda in this file) raises, checked to point at it."""
    with pytest.raises(tg.ShapeError) as info:
        fn()
    msg = str(info.value)
    lines = msg.splitlines()
    where = f"  at {__file__}:{fn.__code__.co_firstlineno} in "
    assert lines[1].startswith(where), msg  # the user's line comes right after the first
    assert "lambda" in lines[1] and "hint: " in msg, msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    return msg


def _matmul_hint_fits(msg, k):
    """The hint's suggested shapes really multiply (or it asks for k elements)."""
    found = re.search(r"hint: (?:.*e\.g\. )?(\([\d, ]*\)) @ (\([\d, ]*\))", msg)
    if found is None:
        return f"the second operand needs {k} elements" in msg
    sa, sb = (ast.literal_eval(s) for s in found.groups())
    tg.ones(*sa) @ tg.ones(*sb)  # raises if the suggestion does not fit
    return True


def _sizes(rng, n, lo=1, hi=6):
    return tuple(rng.randint(lo, hi) for _ in range(n))


def _other(rng, k, hi=9):
    """A size other than k."""
    return rng.choice([s for s in range(1, hi) if s != k])


# ---- matmul ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_matmul_2d(seed):
    rng = random.Random(seed)
    m, k, n = _sizes(rng, 3)
    k2 = _other(rng, k)
    a, b = tg.ones(m, k), tg.ones(k2, n)
    msg = _fail(lambda: a @ b)
    assert msg.startswith(f"matmul: shapes {(m, k)} and {(k2, n)} cannot be multiplied")
    assert f"inner sizes {k} (last dim of the first operand) and {k2} " in msg
    assert f"operand 0: {(m, k)} tensorgrad.float32 on cpu" in msg
    assert f"operand 1: {(k2, n)} tensorgrad.float32 on cpu" in msg
    assert _matmul_hint_fits(msg, k)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_matmul_batched(seed):
    rng = random.Random(100 + seed)
    batch = _sizes(rng, rng.randint(1, 2))
    m, k, n = _sizes(rng, 3)
    k2 = _other(rng, k)
    a, b = tg.ones(*batch, m, k), tg.ones(*batch, k2, n)
    msg = _fail(lambda: tg.matmul(a, b))
    sa, sb = batch + (m, k), batch + (k2, n)
    assert msg.startswith(f"matmul: shapes {sa} and {sb} cannot be multiplied")
    assert f"inner sizes {k} " in msg and f" and {k2} " in msg
    assert f"operand 0: {sa}" in msg and f"operand 1: {sb}" in msg
    assert _matmul_hint_fits(msg, k)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_matmul_1d(seed):
    rng = random.Random(200 + seed)
    k = rng.randint(1, 8)
    k2 = _other(rng, k)
    n = rng.randint(1, 5)
    shapes = rng.choice([((k,), (k2,)), ((k,), (k2, n)), ((n, k), (k2,))])
    a, b = tg.ones(*shapes[0]), tg.ones(*shapes[1])
    msg = _fail(lambda: a.matmul(b))
    assert msg.startswith(f"matmul: shapes {shapes[0]} and {shapes[1]} cannot be multiplied")
    assert f"inner sizes {k} " in msg and f" and {k2} " in msg
    assert f"operand 0: {shapes[0]}" in msg and f"operand 1: {shapes[1]}" in msg
    assert _matmul_hint_fits(msg, k)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_matmul_broadcast_batch_dims(seed):
    rng = random.Random(300 + seed)
    b1 = rng.randint(2, 6)
    b2 = _other(rng, b1, hi=7) if rng.random() < 0.5 else rng.choice([2, 3]) * b1
    b2 = b2 if b2 != 1 else b1 + 1
    m, k, n = _sizes(rng, 3)
    a, b = tg.ones(b1, m, k), tg.ones(b2, k, n)
    msg = _fail(lambda: a @ b)
    assert msg.startswith(f"matmul: the batch dims {(b1,)} of {(b1, m, k)} and {(b2,)} of "
                          f"{(b2, k, n)} cannot be broadcast together")
    assert f"operand 0: {(b1, m, k)}" in msg and f"operand 1: {(b2, k, n)}" in msg
    assert "must match or one of them be 1" in msg


# ---- layers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_linear_input_features(seed):
    rng = random.Random(400 + seed)
    fin, fout = _sizes(rng, 2, 1, 9)
    got = _other(rng, fin)
    lead = _sizes(rng, rng.randint(0, 2))
    layer = nn.Linear(fin, fout)
    x = tg.ones(*lead, got)
    msg = _fail(lambda: layer(x))
    assert msg.startswith(f"Linear(in_features={fin}, out_features={fout}, bias=True) expects "
                          f"input (..., {fin}); got {lead + (got,)}")
    assert f"the input has {got} features" in msg and f"Linear({got}, {fout})" in msg
    assert f"produce {fin} features" in msg


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_conv2d_channels(seed):
    rng = random.Random(500 + seed)
    cin, cout = _sizes(rng, 2, 1, 8)
    got = _other(rng, cin)
    batch = rng.choice([(), (rng.randint(1, 3),)])
    conv = nn.Conv2d(cin, cout, 3)
    x = tg.ones(*batch, got, 6, 6)
    msg = _fail(lambda: conv(x))
    assert msg.startswith(f"Conv2d({cin}, {cout}, kernel_size=(3, 3)")
    assert f"expects input (N, {cin}, H, W) or ({cin}, H, W); got {batch + (got, 6, 6)}" in msg
    if cin == 1 and not batch:  # (N, H, W) read as (C, H, W): the hint says so
        assert "x.unsqueeze(1)" in msg
    else:
        assert f"the input has {got} channels" in msg and f"Conv2d({got}, {cout}, ...)" in msg


@pytest.mark.parametrize("seed", range(5))
def test_conv2d_functional_weight_channels(seed):
    rng = random.Random(550 + seed)
    cin = rng.randint(1, 6)
    got = _other(rng, cin)
    x, w = tg.ones(2, got, 5, 5), tg.ones(4, cin, 3, 3)
    msg = _fail(lambda: F.conv2d(x, w))
    assert msg.startswith("conv2d:") and f"{(2, got, 5, 5)}" in msg and f"{(4, cin, 3, 3)}" in msg
    assert f"{got}" in msg and f"{cin}" in msg


@pytest.mark.parametrize("cls, rank", [(nn.BatchNorm1d, 2), (nn.BatchNorm2d, 4)])
def test_batchnorm_channels(cls, rank):
    layer = cls(3)
    shape = (2, 5) + (4,) * (rank - 2)
    msg = _fail(lambda: layer(tg.ones(*shape)))
    assert msg.startswith(f"{cls.__name__}(3,") and f"got {shape}" in msg
    assert "the input has 5 channels" in msg and f"{cls.__name__}(5)" in msg


# ---- joining, broadcasting, reshaping ----------------------------------------------------------
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_cat(seed):
    rng = random.Random(600 + seed)
    ndim = rng.randint(2, 3)
    dim = rng.randrange(ndim)
    first = _sizes(rng, ndim)
    bad = rng.choice([d for d in range(ndim) if d != dim])
    second = list(first)
    second[dim] = rng.randint(1, 6)
    second[bad] = _other(rng, first[bad])
    second = tuple(second)
    a, b = tg.ones(*first), tg.ones(*second)
    msg = _fail(lambda: tg.cat([a, b], dim=dim))
    assert msg.startswith(f"cat: sizes of tensors must match except in dimension {dim}; at "
                          f"dimension {bad} tensor 0 has size {first[bad]} but tensor 1 has "
                          f"size {second[bad]}")
    assert f"operand 0: {first}" in msg and f"operand 1: {second}" in msg


def test_cat_and_stack_of_different_ranks_or_shapes():
    a, b = tg.ones(2, 3), tg.ones(4)
    msg = _fail(lambda: tg.cat([a, b]))
    assert msg.startswith("cat: tensors must have the same number of dimensions; tensor 0 "
                          "has 2 and tensor 1 has 1") and "(2, 3)" in msg and "(4,)" in msg
    msg = _fail(lambda: tg.stack([tg.ones(2, 3), tg.ones(2, 4)]))
    assert msg.startswith("stack:") and "(2, 3) at entry 0 and (2, 4) at entry 1" in msg


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_broadcasting(seed):
    rng = random.Random(700 + seed)
    a = _sizes(rng, rng.randint(1, 3), 2, 6)
    b = list(a[rng.randrange(len(a)):])
    d = rng.randrange(len(b))
    b[d] = _other(rng, b[d])
    b[d] = b[d] if b[d] != 1 else a[len(a) - len(b) + d] + 1
    b = tuple(b)
    x, y = tg.ones(*a), tg.ones(*b)
    op = rng.choice(["add", "mul", "sub"])
    fn = {"add": lambda: x + y, "mul": lambda: x * y, "sub": lambda: x - y}[op]
    msg = _fail(fn)
    neg = d - len(b)
    assert msg.startswith(f"{op}: shapes {a} and {b} cannot be broadcast together: at "
                          f"dimension {neg} the sizes are {a[neg]}, {b[neg]}")


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_reshape_and_view(seed):
    rng = random.Random(800 + seed)
    shape = _sizes(rng, rng.randint(1, 3), 2, 5)
    numel = 1
    for s in shape:
        numel *= s
    new = (numel + 1,) if rng.random() < 0.5 else (-1, numel + 1)
    x = tg.ones(*shape)
    op = rng.choice(["reshape", "view"])
    msg = _fail(lambda: getattr(x, op)(*new))
    assert msg.startswith(f"{op}: shape {new} is invalid for an input of shape {shape} "
                          f"({numel} elements)")
    assert f"must have {numel} elements" in msg


# ---- loss targets ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_loss_target_shapes(seed):
    rng = random.Random(900 + seed)
    n, c = _sizes(rng, 2, 2, 6)
    c2 = _other(rng, c)
    c2 = c2 if c2 != 1 else c + 1
    x, t = tg.ones(n, c), tg.ones(n, c2)
    name = rng.choice(["mse_loss", "l1_loss", "smooth_l1_loss"])
    msg = _fail(lambda: getattr(F, name)(x, t))
    assert msg.startswith(f"{name}: target shape does not match the input shape: at dimension "
                          f"-1 the sizes are {c} (input) and {c2} (target)")
    assert f"input: {(n, c)}" in msg and f"target: {(n, c2)}" in msg


@pytest.mark.parametrize("seed", range(5))
def test_class_index_target(seed):
    rng = random.Random(950 + seed)
    n, c = _sizes(rng, 2, 2, 6)
    m = _other(rng, n)
    logits, target = tg.ones(n, c), tg.zeros(m, dtype=tg.int64)
    msg = _fail(lambda: F.cross_entropy(logits, target))
    assert msg.startswith(f"cross_entropy: target shape {(m,)} does not fit input shape {(n, c)}")
    assert f"need shape {(n,)}" in msg


# ---- the user's line ---------------------------------------------------------------------------
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(6, 2)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu())


def test_location_is_the_users_line_inside_a_model():
    with pytest.raises(tg.ShapeError) as info:
        _Net()(tg.ones(3, 4))
    line = _Net.forward.__code__.co_firstlineno + 1
    assert f"  at {__file__}:{line} in forward: return self.fc2(self.fc1(x).relu())" in str(
        info.value)


def test_errors_built_by_user_code_have_no_location():
    assert str(tg.ShapeError("mine: shapes differ")) == "mine: shapes differ"
    e = tg.errors.op_error(tg.ShapeError, "demo", "bad", hint="fix it")
    assert str(e) == "demo: bad\n  hint: fix it"  # op_error called from here: no location


def test_message_property_and_wrapped_errors_keep_one_location():
    with pytest.raises(tg.ShapeError) as info:
        tg.ones(2, 3).sum(dim=5)
    msg = str(info.value)
    assert msg.count("  at ") == 1 and info.value.message in msg.replace(
        msg.splitlines()[1] + "\n", "")
