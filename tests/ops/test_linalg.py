"""Linear algebra through the op harness: matmul in all of PyTorch's forms (and mm, bmm, mv,
dot, outer), einsum, tensordot and norm; plus the shape and dtype errors, which must teach,
and norm's gradient at zero."""

import math

import numpy as np
import pytest
from harness import OpCase, check_op
from hypothesis import given
from hypothesis import strategies as st

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad.errors import DTypeError, ShapeError

# matmul shape pairs: 1-D·1-D, 1-D @ 2-D, 2-D @ 1-D, 2-D, batched, 1-D with batches, and
# broadcast batch dims (size-1 dims on either side, added leading dims).
MATMUL_PAIRS = [
    ((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((3, 4), (4, 2)), ((2, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4,)), ((4,), (2, 4, 3)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 2)),
    ((1, 3, 4), (2, 4, 2)), ((2, 1, 2, 3), (1, 2, 3, 2)),
]


def _norm_ref(p, dim=None, keepdim=False):
    def ref(x):
        ax = np.abs(x)
        if p == math.inf:
            return ax.max(axis=dim, keepdims=keepdim)
        if p == -math.inf:
            return ax.min(axis=dim, keepdims=keepdim)
        if p == 0:
            return (x != 0).sum(axis=dim, keepdims=keepdim).astype(x.dtype)
        return (ax ** p).sum(axis=dim, keepdims=keepdim) ** (1 / p)
    return ref


def _away_from_zero(shape, gap=0.2):
    # |x| and the 1-norm are kinked at 0: keep every element at least `gap` from it.
    def make(rng):
        return [rng.uniform(gap, 2.0, size=shape) * rng.choice([-1, 1], size=shape)]
    return make


def _distinct_abs(shape):
    # inf-norms route the gradient to the largest |x|: keep the magnitudes well apart.
    def make(rng):
        n = int(np.prod(shape))
        mags = 0.5 + 0.3 * rng.permutation(n)
        return [(mags * rng.choice([-1, 1], size=n)).reshape(shape)]
    return make


def _linear_ref(x, w, b=None):
    out = x @ w.T
    return out if b is None else out + b


# linear: input (..., in), weight (out, in), optional bias (out,); 1-D, 2-D and 3-D inputs.
LINEAR_SHAPES = [((3, 4), (2, 4), (2,)), ((3, 4), (2, 4)), ((4,), (2, 4), (2,)),
                 ((2, 3, 4), (5, 4), (5,)), ((2, 3, 4), (5, 4))]


CASES = [
    *(OpCase(("matmul",), tg.matmul, np.matmul, pair, name=f"matmul{list(pair)}")
      for pair in MATMUL_PAIRS),
    OpCase(("matmul",), lambda a, b: a @ b, np.matmul, ((2, 3), (3, 2)), name="matmul-@"),
    OpCase(("matmul",), tg.mm, np.matmul, ((3, 4), (4, 2)), name="mm"),
    OpCase(("matmul",), tg.bmm, np.matmul, ((2, 3, 4), (2, 4, 2)), name="bmm"),
    OpCase(("matmul",), tg.mv, np.matmul, ((3, 4), (4,)), name="mv"),
    OpCase(("matmul",), tg.dot, np.dot, ((5,), (5,)), name="dot"),
    OpCase(("matmul", "mul", "reshape"), tg.outer, np.outer, ((3,), (4,)), name="outer"),
    OpCase(("matmul",), tg.matmul, np.matmul,
           make=lambda rng: [rng.integers(-4, 5, size=(2, 3)), rng.integers(-4, 5, size=(3, 2))],
           differentiable=False, name="matmul-int"),
    *(OpCase(("linear",), F.linear, _linear_ref, shapes, name=f"linear{list(shapes)}")
      for shapes in LINEAR_SHAPES),
    OpCase(("einsum",), lambda a, b: tg.einsum("ij,jk->ik", a, b),
           lambda a, b: np.einsum("ij,jk->ik", a, b), ((2, 3), (3, 4)), name="einsum-ij,jk->ik"),
    OpCase(("einsum",), lambda a, b: tg.einsum("bij,bjk->bik", a, b),
           lambda a, b: np.einsum("bij,bjk->bik", a, b), ((2, 2, 3), (2, 3, 2)),
           name="einsum-batched"),
    OpCase(("einsum",), lambda a: tg.einsum("ii->i", a), lambda a: np.einsum("ii->i", a),
           ((3, 3),), name="einsum-diagonal"),
    OpCase(("einsum",), lambda a: tg.einsum("ii", a), np.trace, ((3, 3),), name="einsum-trace"),
    OpCase(("einsum",), lambda a, b: tg.einsum("i,i->", a, b), np.dot, ((4,), (4,)),
           name="einsum-dot"),
    OpCase(("einsum",), lambda a: tg.einsum("ij->ji", a), np.transpose, ((2, 3),),
           name="einsum-transpose"),
    OpCase(("einsum",), lambda a, b: tg.einsum("ij,jk", a, b), np.matmul, ((2, 3), (3, 4)),
           name="einsum-implicit"),
    OpCase(("einsum",), lambda a: tg.einsum("ij->i", a), lambda a: a.sum(1), ((2, 3),),
           name="einsum-sum-one-operand"),
    OpCase(("einsum",), lambda a, b: tg.einsum("ij,k->ik", a, b),
           lambda a, b: np.einsum("ij,k->ik", a, b), ((2, 3), (2,)),
           name="einsum-summed-in-one-operand"),
    OpCase(("einsum",), lambda a, b: tg.einsum("iij,j->ij", a, b),
           lambda a, b: np.einsum("iij,j->ij", a, b), ((3, 3, 2), (2,)),
           name="einsum-diagonal-with-other"),
    OpCase(("einsum",), lambda a, b, c: tg.einsum("ij,jk,kl->il", a, b, c),
           lambda a, b, c: a @ b @ c, ((2, 3), (3, 2), (2, 4)), name="einsum-three"),
    OpCase(("einsum",), lambda a, b: tg.einsum("...ij,...jk->...ik", a, b), np.matmul,
           ((2, 3, 4), (4, 2)), name="einsum-ellipsis"),
    OpCase(("einsum",), lambda a, b: tg.einsum("bi,bi->b", a, b),
           lambda a, b: (a * b).sum(1), ((1, 3), (4, 3)), name="einsum-broadcast"),
    OpCase(("einsum",), lambda a, b: tg.einsum("ij,jk->ik", [a, b]), np.matmul,
           ((2, 3), (3, 2)), name="einsum-list"),
    OpCase(("einsum",), lambda a, b: tg.tensordot(a, b, dims=([1, 0], [0, 1])),
           lambda a, b: np.tensordot(a, b, axes=([1, 0], [0, 1])), ((2, 3, 2), (3, 2, 4)),
           name="tensordot-pairs"),
    OpCase(("einsum",), lambda a, b: tg.tensordot(a, b, dims=1),
           lambda a, b: np.tensordot(a, b, axes=1), ((2, 3), (3, 4)), name="tensordot-int"),
    OpCase(("norm",), tg.norm, _norm_ref(2), ((3, 4),), name="norm-fro"),
    OpCase(("norm",), lambda x: x.norm(2, dim=1), _norm_ref(2, 1), ((3, 4),), name="norm-2-dim"),
    OpCase(("norm",), lambda x: x.norm(dim=(0, 2), keepdim=True),
           _norm_ref(2, (0, 2), True), ((2, 3, 2),), name="norm-2-keepdim"),
    OpCase(("norm",), lambda x: x.norm(p=1, dim=-1), _norm_ref(1, -1),
           make=_away_from_zero((3, 4)), name="norm-1"),
    OpCase(("norm",), lambda x: x.norm(p=math.inf), _norm_ref(math.inf),
           make=_distinct_abs((3, 4)), name="norm-inf"),
    OpCase(("norm",), lambda x: x.norm(p=-math.inf, dim=0), _norm_ref(-math.inf, 0),
           make=_distinct_abs((3, 4)), name="norm-neg-inf"),
    OpCase(("norm",), lambda x: x.norm(p=3, dim=1), _norm_ref(3, 1),
           make=_away_from_zero((3, 4)), name="norm-3"),
    OpCase(("norm",), lambda x: x.norm(p=1.5), _norm_ref(1.5), make=_away_from_zero((3, 4)),
           name="norm-1.5"),
    OpCase(("norm",), lambda x: x.norm(p=0.5, dim=1), _norm_ref(0.5, 1),
           make=_away_from_zero((3, 4)), name="norm-0.5"),
    OpCase(("norm",), lambda x: x.norm(p=-1), _norm_ref(-1), make=_away_from_zero((3, 4)),
           name="norm-neg-1"),
    OpCase(("norm",), lambda x: x.norm(p=0, dim=1), _norm_ref(0, 1),
           make=_away_from_zero((3, 4)), name="norm-0"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- matmul: results against NumPy where the harness does not look ----------------------------
def test_matmul_result_shapes_follow_pytorch(device):
    def shape(a, b):
        return (tg.ones(*a, device=device) @ tg.ones(*b, device=device)).shape
    assert shape((4,), (4,)) == ()
    assert shape((4,), (4, 3)) == (3,)
    assert shape((3, 4), (4,)) == (3,)
    assert shape((2, 1, 3, 4), (5, 4, 2)) == (2, 5, 3, 2)
    assert shape((4,), (2, 4, 3)) == (2, 3)


def test_rmatmul_and_method_forms(device):
    a = tg.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    v = tg.tensor([1.0, -1.0], device=device)
    assert a.matmul(v).tolist() == [-1.0, -1.0]
    assert a.mv(v).tolist() == [-1.0, -1.0]
    assert v.dot(v).item() == 2.0
    assert a.__rmatmul__(a).tolist() == (a @ a).tolist()
    assert v.outer(v).tolist() == [[1.0, -1.0], [-1.0, 1.0]]


def test_integer_matmul_stays_integer(device):
    a = tg.tensor([[1, 2], [3, 4]], dtype=tg.int32, device=device)
    out = a @ a
    assert out.dtype == tg.int32
    assert out.tolist() == [[7, 10], [15, 22]]


def test_matmul_gradients_accumulate_over_broadcast_batch(device):
    # b is shared by every batch element: its gradient is the sum over the batch.
    a = tg.randn(3, 2, 4, dtype=tg.float64, device=device)
    b = tg.randn(4, 5, dtype=tg.float64, device=device, requires_grad=True)
    (a @ b).sum().backward()
    expected = sum(a.cpu().numpy()[i].T @ np.ones((2, 5)) for i in range(3))
    np.testing.assert_allclose(b.grad.cpu().numpy(), expected, rtol=1e-12)


# ---- matmul: errors that teach ------------------------------------------------------------
def test_inner_mismatch_message_suggests_the_transpose():
    with pytest.raises(ShapeError) as e:
        tg.zeros(64, 784) @ tg.zeros(512, 784)
    msg = str(e.value)
    assert msg.startswith("matmul")
    assert "(64, 784)" in msg and "(512, 784)" in msg
    assert "784" in msg.split("\n")[0] and "512" in msg.split("\n")[0]
    hint = msg.split("hint:")[1]
    assert "(64, 784) @ (784, 512)" in hint
    assert "second operand" in hint and "transpose" in hint


def test_inner_mismatch_hint_names_the_first_operand_when_that_fits():
    with pytest.raises(ShapeError, match=r"hint: \(5, 3\) @ \(3, 2\).*first operand"):
        tg.zeros(3, 5) @ tg.zeros(3, 2)


def test_inner_mismatch_without_transpose_says_the_needed_size():
    with pytest.raises(ShapeError) as e:
        tg.zeros(2, 3) @ tg.zeros(4, 5)
    hint = str(e.value).split("hint:")[1]
    assert "3 rows" in hint and "(4, 5)" not in hint and "(3, 5)" in hint


def test_batch_mismatch_names_the_batch_dims():
    with pytest.raises(ShapeError) as e:
        tg.zeros(2, 3, 4) @ tg.zeros(3, 4, 2)
    msg = str(e.value)
    assert "batch dims (2,)" in msg and "(3,)" in msg and "hint:" in msg


@given(st.lists(st.integers(1, 6), min_size=1, max_size=4),
       st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_every_mismatch_names_both_shapes_and_hints(sa, sb):
    sa, sb = tuple(sa), tuple(sb)
    inner_b = sb[0] if len(sb) == 1 else sb[-2]
    try:
        np.matmul(np.zeros(sa), np.zeros(sb))
        fits = True
    except ValueError:
        fits = False
    if fits:
        assert (tg.zeros(*sa) @ tg.zeros(*sb)).shape == np.matmul(np.zeros(sa),
                                                                  np.zeros(sb)).shape
        return
    with pytest.raises(ShapeError) as e:
        tg.zeros(*sa) @ tg.zeros(*sb)
    msg = str(e.value)
    assert msg.startswith("matmul:")
    assert str(sa) in msg and str(sb) in msg and "hint:" in msg
    if sa[-1] != inner_b:
        assert f"{sa[-1]}" in msg.split("\n")[0] and f"{inner_b}" in msg.split("\n")[0]


def test_mixed_dtypes_raise_dtype_error_naming_both():
    with pytest.raises(DTypeError) as e:
        tg.zeros(2, 3, dtype=tg.float32) @ tg.zeros(3, 2, dtype=tg.float64)
    msg = str(e.value)
    assert "float32" in msg and "float64" in msg and "hint:" in msg
    with pytest.raises(DTypeError):
        tg.einsum("ij,jk", tg.zeros(2, 3), tg.zeros(3, 2, dtype=tg.float64))


def test_zero_dim_operands_raise():
    with pytest.raises(ShapeError, match="at least 1D"):
        tg.tensor(2.0) @ tg.zeros(3, 4)
    with pytest.raises(ShapeError, match="at least 1D"):
        tg.matmul(tg.zeros(3), tg.tensor(1.0))


def test_fixed_rank_forms_check_their_ranks():
    with pytest.raises(ShapeError, match="mm: expected 2D and 2D tensors, but got 3D"):
        tg.mm(tg.zeros(2, 3, 4), tg.zeros(4, 2))
    with pytest.raises(ShapeError, match="bmm: batch sizes 2 and 3 differ"):
        tg.bmm(tg.zeros(2, 3, 4), tg.zeros(3, 4, 2))
    with pytest.raises(ShapeError, match="dot: expected 1D and 1D"):
        tg.dot(tg.zeros(2, 2), tg.zeros(2, 2))
    with pytest.raises(ShapeError, match="inner sizes 3 .* 4"):
        tg.dot(tg.zeros(3), tg.zeros(4))
    with pytest.raises(ShapeError, match="outer: expected 1D"):
        tg.outer(tg.zeros(3, 1), tg.zeros(4))


def test_non_tensor_operand_is_a_type_error():
    with pytest.raises(TypeError, match="matmul"):
        tg.zeros(3) @ [1.0, 2.0, 3.0]


# ---- einsum ----------------------------------------------------------------------------------
def test_einsum_implicit_output_is_alphabetical_with_ellipsis_first():
    a = tg.zeros(2, 3, 4)
    assert tg.einsum("ba", tg.zeros(2, 3)).shape == (3, 2)
    assert tg.einsum("...ij->...ji", a).shape == (2, 4, 3)
    assert tg.einsum("i...", a).shape == (3, 4, 2)


def test_einsum_errors_name_the_equation():
    with pytest.raises(ShapeError, match="letter 'j' has sizes 3 and 4"):
        tg.einsum("ij,jk->ik", tg.zeros(2, 3), tg.zeros(4, 2))
    with pytest.raises(ShapeError, match="subscripts 'ijk'"):
        tg.einsum("ijk->i", tg.zeros(2, 3))
    with pytest.raises(ShapeError, match="2 operand subscripts for 1 operands"):
        tg.einsum("ij,jk", tg.zeros(2, 3))
    with pytest.raises(ShapeError, match="output letter 'z'"):
        tg.einsum("ij->z", tg.zeros(2, 3))


# ---- norm --------------------------------------------------------------------------------
def test_norm_gradient_at_zero_is_zero_not_nan(device):
    for p in (2, "fro", 1, 3, 1.5, math.inf, -math.inf, 0.5, 0.3, -1):
        x = tg.zeros(4, dtype=tg.float64, device=device, requires_grad=True)
        x.norm(p=p).backward()
        assert x.grad.tolist() == [0.0] * 4, p
    x = tg.tensor([[0.0, 0.0], [3.0, 4.0]], device=device, requires_grad=True)
    x.norm(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), [[0, 0], [0.6, 0.8]], rtol=1e-6)


def test_norm_below_one_gradient_at_a_zero_element_is_zero(device):
    # |x|**(p-1) is infinite at 0 when p < 1; PyTorch's gradient there is 0 (values: torch 2).
    x = tg.tensor([0.0, 1.0, -2.0], dtype=tg.float64, device=device, requires_grad=True)
    x.norm(p=0.5).backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), [0, 2 ** 0.5 + 1, -(2 ** 0.5 + 1) / 2 ** 0.5],
                               rtol=1e-12)
    x = tg.tensor([[0.0, 0.0], [0.0, 3.0]], dtype=tg.float64, device=device, requires_grad=True)
    x.norm(p=-1, dim=1).sum().backward()  # a zero element makes a negative-p norm 0
    assert x.grad.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_norm_second_order_at_zero_is_finite(device):
    for p in (2, 0.5):
        x = tg.zeros(3, dtype=tg.float64, device=device, requires_grad=True)
        (g,) = tg.autograd.grad(x.norm(p), x, create_graph=True)
        g.sum().backward()
        assert np.all(np.isfinite(x.grad.cpu().numpy())), p


def test_norm_inf_splits_ties_evenly(device):
    x = tg.tensor([2.0, -2.0, 1.0], device=device, requires_grad=True)
    x.norm(p=math.inf).backward()
    assert x.grad.tolist() == [0.5, -0.5, 0.0]


def test_norm_rejects_integers_and_unknown_p():
    with pytest.raises(DTypeError, match="norm"):
        tg.norm(tg.tensor([1, 2]))
    with pytest.raises(ValueError, match="nuc"):
        tg.norm(tg.zeros(2, 2), p="nuc")
    assert tg.norm(tg.tensor([3, 4]), dtype=tg.float64).item() == 5.0


# ---- optional cross-check against PyTorch ------------------------------------------------------
def test_norm_and_einsum_match_torch_if_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    for p in (2, 1, 3, math.inf, -math.inf, 0):
        ours = tg.tensor(x).norm(p=p, dim=1).numpy()
        theirs = torch.norm(torch.tensor(x), p=p, dim=1).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=f"p={p}")
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    for eq, ops in (("...ij,jk", (a, b)), ("bij,jk->bk", (a, b)), ("bij->j", (a,)),
                    ("i...", (a,))):
        ours = tg.einsum(eq, *[tg.tensor(o) for o in ops]).numpy()
        theirs = torch.einsum(eq, *[torch.tensor(o) for o in ops]).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=eq)


def test_linear_on_a_sequence_batch_with_no_input_features(device):
    x = tg.zeros(2, 5, 0, device=device)
    out = tg.nn.functional.linear(x, tg.zeros(4, 0, device=device), tg.ones(4, device=device))
    assert out.shape == (2, 5, 4) and out.cpu().numpy().tolist() == [[[1.0] * 4] * 5] * 2
