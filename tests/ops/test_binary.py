"""Binary ops through the op harness: arithmetic, pow, maximum/minimum, where, comparisons,
logical and bitwise ops, each over broadcasting shape pairs; plus PyTorch's gradients at ties
and at the kinks of pow."""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg

# Shape pairs that broadcast: equal, trailing vector, size-1 on both sides, 0-d, added leads.
PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((4, 1), ())]


def _pair_cases(op, fn, ref, pairs=PAIRS, **kw):
    return [OpCase((op,), fn, ref, pair, name=f"{op}{list(pair)}", **kw) for pair in pairs]


def _apart(shape_a, shape_b, gap=0.2):
    # maximum/minimum are kinked where a == b: keep the operands at least `gap` apart.
    def make(rng):
        a = rng.uniform(-2, 2, size=shape_a)
        b = rng.uniform(-2, 2, size=shape_b)
        close = np.abs(a - b) < gap
        b = np.where(close, b + 2 * gap * np.where(b < a, -1, 1), b)
        assert np.all(np.abs(np.broadcast_to(a, close.shape) - b) >= gap)
        return [a, b]
    return make


def _where_inputs(shape_c, shape_a, shape_b):
    def make(rng):
        return [rng.uniform(size=shape_c) < 0.5, rng.uniform(-2, 2, size=shape_a),
                rng.uniform(-2, 2, size=shape_b)]
    return make


def _ints(shape_a, shape_b, low=-6, high=7, nonzero_b=False):
    def make(rng):
        a = rng.integers(low, high, size=shape_a)
        b = rng.integers(low, high, size=shape_b)
        if nonzero_b:
            b = np.where(b == 0, 3, b)
        return [a, b]
    return make


def _away_from_jumps(shape_a, shape_b, gap=0.05):
    # a % b jumps where a / b is an integer: keep a / b at least `gap` from one, with
    # divisors of both signs.
    def make(rng):
        while True:
            a = rng.uniform(-4, 4, size=shape_a)
            b = rng.uniform(0.5, 2.0, size=shape_b) * rng.choice([-1, 1], size=shape_b)
            if np.min(np.abs((a / b + 0.5) % 1 - 0.5)) >= gap:
                return [a, b]
    return make


def _bools(shape_a, shape_b):
    def make(rng):
        return [rng.uniform(size=shape_a) < 0.5, rng.uniform(size=shape_b) < 0.5]
    return make


def _float_ties(shape_a, shape_b):
    # Comparison inputs with many exact ties, so eq/le/ge are not trivially all False.
    def make(rng):
        return [rng.integers(-2, 3, size=shape_a).astype(np.float64),
                rng.integers(-2, 3, size=shape_b).astype(np.float64)]
    return make


SMOOTH = (
    _pair_cases("add", tg.add, np.add)
    + _pair_cases("sub", tg.sub, np.subtract)
    + _pair_cases("mul", tg.mul, np.multiply)
    + _pair_cases("div", tg.div, np.divide, low=0.5, high=2.0)
    + _pair_cases("pow", tg.pow, np.power, low=0.5, high=2.0)
)

# remainder is piecewise linear (d/da = 1, d/db = -floor(a / b)): checked away from its jumps,
# to second order (0 there).
REMAINDER = [
    OpCase(("remainder",), tg.remainder, np.remainder, make=_away_from_jumps(*pair),
           name=f"remainder{list(pair)}") for pair in PAIRS
] + [
    OpCase(("remainder",), lambda a, b: a % b, np.remainder, make=_away_from_jumps((3, 4), (4,)),
           name="remainder-operator"),
    OpCase(("remainder",), lambda a: a % 1.5, lambda a: np.remainder(a, 1.5),
           make=lambda rng: _away_from_jumps((3, 4), ())(rng)[:1], name="remainder-scalar"),
    OpCase(("remainder",), lambda b: 2.5 % b, lambda b: np.remainder(2.5, b),
           make=lambda rng: _away_from_jumps((), (3, 4))(rng)[1:], name="rmod-scalar"),
]

SCALAR = [
    OpCase(("add",), lambda x: x + 2.5, lambda x: x + 2.5, ((3, 4),), name="add-scalar"),
    OpCase(("add",), lambda x: tg.add(x, x, alpha=3), lambda x: x + 3 * x, ((3,),),
           name="add-alpha"),
    OpCase(("sub",), lambda x: 2 - x, lambda x: 2 - x, ((3, 4),), name="rsub-scalar"),
    OpCase(("mul",), lambda x: 3 * x, lambda x: 3 * x, ((3, 4),), name="rmul-scalar"),
    OpCase(("div",), lambda x: 2 / x, lambda x: 2 / x, ((3, 4),), low=0.5, high=2.0,
           name="rdiv-scalar"),
    OpCase(("div",), lambda x: x / 4, lambda x: x / 4, ((3, 4),), name="div-scalar"),
    OpCase(("pow",), lambda x: x ** 3, lambda x: x ** 3, ((3, 4),), name="pow-int-exponent"),
    OpCase(("pow",), lambda x: x ** 2.5, lambda x: x ** 2.5, ((3, 4),), low=0.5, high=2.0,
           name="pow-float-exponent"),
    OpCase(("pow",), lambda x: x ** -1.5, lambda x: x ** -1.5, ((3, 4),), low=0.5, high=2.0,
           name="pow-negative-exponent"),
    OpCase(("pow",), lambda x: x ** 0, lambda x: x ** 0, ((3, 4),), name="pow-zero-exponent"),
    OpCase(("pow",), lambda x: 2 ** x, lambda x: 2.0 ** x, ((3, 4),), name="pow-scalar-base"),
    OpCase(("pow",), lambda x: tg.pow(x, 0.5), np.sqrt, ((3, 4),), low=0.5, high=2.0,
           name="pow-fn-scalar"),
]

EXTREMA = [
    OpCase((op,), fn, ref, make=_apart(*pair), second_order=False, name=f"{op}{list(pair)}")
    for op, fn, ref in (("maximum", tg.maximum, np.maximum), ("minimum", tg.minimum, np.minimum))
    for pair in PAIRS
] + [
    OpCase(("maximum",), lambda x: tg.maximum(x, 0.5), lambda x: np.maximum(x, 0.5),
           make=lambda rng: [np.array([-1.0, 0.2, 0.9, 1.7])], second_order=False,
           name="maximum-scalar"),
]

WHERE = [
    OpCase(("where",), tg.where, np.where, make=_where_inputs(*shapes),
           name=f"where{list(shapes)}")
    for shapes in (((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (4,)), ((), (2, 3), ()),
                   ((2, 3), (3,), (2, 1)))
] + [
    OpCase(("where",), lambda c, x: tg.where(c, x, 0.0), lambda c, x: np.where(c, x, 0.0),
           make=lambda rng: [rng.uniform(size=(3, 4)) < 0.5, rng.uniform(-2, 2, (3, 4))],
           name="where-scalar-other"),
    OpCase(("where",), lambda c, x: x.where(c, -x), lambda c, x: np.where(c, x, -x),
           make=lambda rng: [rng.uniform(size=(4,)) < 0.5, rng.uniform(-2, 2, (2, 4))],
           name="where-method"),
]


def _nograd(op, fn, ref, make, pairs=PAIRS):
    return [OpCase((op,), fn, ref, make=make(*pair), differentiable=False,
                   name=f"{op}{list(pair)}") for pair in pairs]


INT_ARITH = (
    _nograd("floor_divide", tg.floor_divide, np.floor_divide,
            lambda a, b: _ints(a, b, nonzero_b=True))
    + _nograd("remainder", tg.remainder, np.remainder, lambda a, b: _ints(a, b, nonzero_b=True))
    + [OpCase(("floor_divide",), lambda a, b: a // b, np.floor_divide, ((3, 4), (4,)),
              low=0.5, high=3.0, differentiable=False, name="floor_divide-float-operator"),
       OpCase(("floor_divide",), lambda a: 7 // a, lambda a: 7 // a,
              make=lambda rng: [rng.integers(1, 5, size=(5,))], differentiable=False,
              name="rfloordiv-int")]
)

COMPARISONS = [
    case
    for op, fn, ref in (("eq", tg.eq, np.equal), ("ne", tg.ne, np.not_equal),
                        ("lt", tg.lt, np.less), ("le", tg.le, np.less_equal),
                        ("gt", tg.gt, np.greater), ("ge", tg.ge, np.greater_equal))
    for case in _nograd(op, fn, ref, _float_ties)
] + [
    OpCase(("lt",), lambda a, b: a < b, np.less, make=_ints((3, 4), (4,)),
           differentiable=False, name="lt-int-operator"),
    OpCase(("ge",), lambda a: a >= 0.5, lambda a: a >= 0.5, ((3, 4),), differentiable=False,
           name="ge-scalar"),
    OpCase(("eq",), lambda a: a == 1, lambda a: a == 1, make=lambda rng: [
        rng.integers(0, 3, size=(6,))], differentiable=False, name="eq-int-scalar"),
]

LOGIC = (
    _nograd("logical_and", tg.logical_and, np.logical_and, _bools)
    + _nograd("logical_or", tg.logical_or, np.logical_or, _bools)
    + _nograd("logical_xor", tg.logical_xor, np.logical_xor, _bools)
    + _nograd("bitwise_and", tg.bitwise_and, np.bitwise_and, _ints)
    + _nograd("bitwise_or", tg.bitwise_or, np.bitwise_or, _ints)
    + _nograd("bitwise_xor", tg.bitwise_xor, np.bitwise_xor, _ints)
    + [OpCase(("logical_and",), lambda a, b: a & b, np.logical_and, make=_bools((3,), (2, 3)),
              differentiable=False, name="and-bool-operator"),
       OpCase(("bitwise_or",), lambda a, b: a | b, np.bitwise_or, make=_ints((3,), (2, 3)),
              differentiable=False, name="or-int-operator"),
       OpCase(("logical_xor",), lambda a, b: a ^ b, np.logical_xor, make=_bools((2, 3), ()),
              differentiable=False, name="xor-bool-operator"),
       OpCase(("logical_and",), lambda a, b: tg.logical_and(a, b), np.logical_and,
              ((3, 4), (4,)), differentiable=False, name="logical_and-float"),
       OpCase(("logical_not",), tg.logical_not, np.logical_not, make=lambda rng: [
           rng.uniform(size=(3, 4)) < 0.5], differentiable=False),
       OpCase(("logical_not",), lambda a: ~a, np.logical_not, make=lambda rng: [
           rng.uniform(size=(5,)) < 0.5], differentiable=False, name="invert-bool"),
       OpCase(("logical_not",), tg.logical_not, np.logical_not, make=lambda rng: [
           rng.integers(-1, 2, size=(5,))], differentiable=False, name="logical_not-int"),
       OpCase(("bitwise_not",), tg.bitwise_not, np.invert, make=lambda rng: [
           rng.integers(-8, 8, size=(3, 4))], differentiable=False),
       OpCase(("bitwise_not",), lambda a: ~a, np.invert, make=lambda rng: [
           rng.integers(-8, 8, size=(5,))], differentiable=False, name="invert-int")]
)

CASES = SMOOTH + SCALAR + REMAINDER + EXTREMA + WHERE + INT_ARITH + COMPARISONS + LOGIC


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- gradients at ties and kinks follow PyTorch ------------------------------------------------
@pytest.mark.parametrize("op", [tg.maximum, tg.minimum])
def test_extremum_ties_split_the_gradient(op, device):
    a = tg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    b = tg.tensor([1.0, 5.0, 0.0], device=device, requires_grad=True)
    op(a, b).backward(tg.tensor([4.0, 4.0, 4.0], device=device))
    if op is tg.maximum:
        assert a.grad.tolist() == [2.0, 0.0, 4.0]
        assert b.grad.tolist() == [2.0, 4.0, 0.0]
    else:
        assert a.grad.tolist() == [2.0, 4.0, 0.0]
        assert b.grad.tolist() == [2.0, 0.0, 4.0]


def test_extremum_ties_with_broadcasting(device):
    a = tg.tensor([[1.0], [2.0]], device=device, requires_grad=True)  # (2, 1)
    b = tg.tensor([1.0, 2.0, 0.0], device=device, requires_grad=True)  # (3,)
    tg.maximum(a, b).sum().backward()
    # row 0: ties at col 0, loses at col 1, wins at col 2; row 1: wins, ties, wins.
    assert a.grad.tolist() == [[1.5], [2.5]]
    assert b.grad.tolist() == [0.5, 1.5, 0.0]


def test_maximum_of_integers_has_no_gradient_but_works(device):
    a = tg.tensor([1, 5, 3], device=device)
    out = tg.maximum(a, tg.tensor([2, 2, 2], device=device))
    assert out.dtype == tg.int64 and out.tolist() == [2, 5, 3]
    assert not out.requires_grad


def test_pow_exponent_gradient_at_zero_base_is_zero(device):
    a = tg.tensor([0.0, 0.0, 2.0], device=device, requires_grad=True)
    b = tg.tensor([2.0, 0.0, 3.0], device=device, requires_grad=True)
    (a ** b).sum().backward()
    gb = b.grad.tolist()
    assert gb[0] == 0.0 and gb[1] == 0.0  # not nan (0 * log 0)
    assert gb[2] == pytest.approx(8.0 * np.log(2.0))
    # d/da a**b = b a**(b-1): 0 at (0, 2); PyTorch defines it as 0 at (0, 0) too, not nan.
    assert a.grad.tolist()[:2] == [0.0, 0.0]
    assert a.grad.tolist()[2] == pytest.approx(12.0)


def test_pow_exponent_gradient_with_broadcast_zero_exponent(device):
    a = tg.tensor([[0.0], [3.0]], device=device, requires_grad=True)
    b = tg.tensor([0.0, 1.0], device=device, requires_grad=True)
    (a ** b).sum().backward()
    assert a.grad.tolist() == [[1.0], [1.0]]  # (0, 0) and (3, 0) give 0; (0, 1), (3, 1) give 1
    assert b.grad.tolist() == pytest.approx([np.log(3.0), np.log(3.0) * 3.0])


def test_pow_negative_scalar_base_gives_nan_gradient(device):
    x = tg.tensor([2.0], device=device, requires_grad=True)
    ((-2.0) ** x).sum().backward()  # log(-2) is undefined: PyTorch gives nan, not 0
    assert np.isnan(x.grad.tolist()[0])


def test_pow_scalar_base_zero_gradient_is_zero(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    (0.0 ** x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_pow_zero_exponent_gradient_is_zero_at_zero(device):
    x = tg.tensor([0.0, 1.5], device=device, requires_grad=True)
    (x ** 0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


# ---- remainder has PyTorch's gradient; floor division has none ---------------------------------
def test_remainder_gradient_is_not_dropped(device):
    x = tg.tensor([1.5, 3.5], device=device, requires_grad=True)
    ((x % 2) + x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]  # 1 from x % 2, 1 from x


def test_remainder_gradient_matches_pytorch(device):
    # Values from torch 2 (remainder_backward): d/da = 1, d/db = -floor(a / b), -inf at b == 0.
    a = tg.tensor([5.3, -5.3, 7.0, 1.0], dtype=tg.float64, device=device, requires_grad=True)
    b = tg.tensor([2.0, 2.0, -3.0, 0.0], dtype=tg.float64, device=device, requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        (a % b).sum().backward()
    assert a.grad.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert b.grad.tolist() == [-2.0, 3.0, 3.0, -np.inf]


def test_integer_remainder_and_floor_division_carry_no_gradient(device):
    i = tg.tensor([5, -7], device=device)
    assert (i % 3).tolist() == [2, 2] and not (i % 3).requires_grad
    x = tg.tensor([1.5, -2.5], device=device, requires_grad=True)
    assert not (x // 2).requires_grad and not tg.floor_divide(x, x).requires_grad
    (i % x).sum().backward()  # the int operand is cast; the float one gets -floor(i / x)
    assert x.grad.tolist() == [-3.0, -2.0]


# ---- dtypes of results (torch.result_type) -----------------------------------------------------
def test_result_dtypes_follow_pytorch(device):
    f32 = tg.ones(3, device=device)
    i32 = tg.ones(3, dtype=tg.int32, device=device)
    assert (f32 * 2.5).dtype == tg.float32
    assert (i32 + 1).dtype == tg.int32
    assert (i32 / 2).dtype == tg.float32            # true division gives the default float
    assert (i32 // 2).dtype == tg.int32
    assert (i32 * 2.5).dtype == tg.float32           # int tensor, float scalar -> default float
    assert (f32 + tg.ones(3, dtype=tg.float64, device=device)).dtype == tg.float64
    assert (f32 + tg.tensor(1.0, dtype=tg.float64, device=device)).dtype == tg.float32
    assert (i32 + tg.tensor(1.5, device=device)).dtype == tg.float32  # 0-d crosses categories
    assert (f32 < 1).dtype == tg.bool
    assert tg.where(f32 > 0, i32, 0).dtype == tg.int32


def test_where_refuses_a_non_bool_condition(device):
    x = tg.ones(3, device=device)
    with pytest.raises(TypeError, match="condition"):
        tg.where(x, x, x)


def test_binary_op_refuses_unsupported_operands(device):
    x = tg.ones(3, device=device)
    with pytest.raises(TypeError, match="unsupported operand"):
        tg.add(x, "a")
    with pytest.raises(TypeError):
        tg.add(1, 2)
