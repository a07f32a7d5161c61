"""Type promotion follows `torch.result_type` (DESIGN section 4), not NumPy.

The table was written from PyTorch's documented rules and checked once against PyTorch 2.x:
- dimensioned tensors, then 0-d tensors, then Python scalars, in falling priority; a lower
  tier takes part only when it is of a higher category (bool < integer < floating);
- a Python float takes the default dtype, a Python int int64, a Python bool bool;
- within a tier, NumPy's pairwise rule (uint8 + int8 -> int16), except a float beats any int;
- true division `/` of integers gives the default float dtype.
"""

import pytest

import tensorgrad as tg
from tensorgrad.errors import DTypeError

DIM, ZERO = "dim", "0-d"


def _make(spec, device="cpu"):
    """A (kind, dtype) pair as a tensor; anything else is a Python scalar, used as is."""
    if isinstance(spec, tuple):
        kind, dt = spec
        shape = (2,) if kind == DIM else ()
        return tg.ones(*shape, dtype=getattr(tg, dt), device=device)
    return spec


def _id(row):
    a, b, want = row
    show = [f"{s[1]}[{s[0]}]" if isinstance(s, tuple) else repr(s) for s in (a, b)]
    return f"{show[0]}+{show[1]}->{want}"


def t(dt):
    return (DIM, dt)


def z(dt):
    return (ZERO, dt)


# (operand, operand, result dtype)
TABLE = [
    # Python scalars never widen a tensor of their category or higher
    (t("float32"), 2.5, "float32"),
    (t("float16"), 1e4, "float16"),
    (t("float64"), 2, "float64"),
    (t("int32"), 1, "int32"),
    (1, t("int32"), "int32"),
    (t("uint8"), -1, "uint8"),
    (t("int8"), 2 ** 40, "int8"),
    (t("int64"), True, "int64"),
    (t("bool"), True, "bool"),
    # ... but a scalar of a higher category promotes, to the default dtype for floats
    (t("int32"), 2.5, "float32"),
    (t("bool"), 1, "int64"),
    (t("bool"), 2.5, "float32"),
    (z("int32"), 2.5, "float32"),
    (z("bool"), 2.5, "float32"),
    (2.5, z("int32"), "float32"),
    (z("float64"), 1, "float64"),
    # two dimensioned tensors: the pairwise rule
    (t("uint8"), t("int8"), "int16"),
    (t("int16"), t("uint8"), "int16"),
    (t("int32"), t("int64"), "int64"),
    (t("uint8"), t("bool"), "uint8"),
    (t("bool"), t("bool"), "bool"),
    (t("float16"), t("float32"), "float32"),
    (t("int64"), t("float16"), "float16"),
    # a 0-d tensor promotes a dimensioned one only across categories, and then with its
    # own dtype (not the default)
    (t("float32"), z("float64"), "float32"),
    (t("float16"), z("float64"), "float16"),
    (t("int8"), z("int64"), "int8"),
    (z("int64"), t("int8"), "int8"),
    (t("uint8"), z("int64"), "uint8"),
    (t("uint8"), z("int8"), "uint8"),
    (t("bool"), z("int32"), "int32"),
    (t("int32"), z("float64"), "float64"),
    (t("float32"), z("int64"), "float32"),
    (z("float32"), t("int64"), "float32"),
    (z("float64"), t("int64"), "float64"),
    (z("float16"), t("int32"), "float16"),
    # two 0-d tensors: the pairwise rule
    (z("int32"), z("float64"), "float64"),
    (z("int8"), z("uint8"), "int16"),
    (z("bool"), z("bool"), "bool"),
]


def _is_bool(spec):
    return isinstance(spec, bool) or isinstance(spec, tuple) and spec[1] == "bool"


def _div_dtype(want):
    return want if want.startswith("float") else tg.get_default_dtype().name


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_result_type(row):
    a, b, want = row
    assert tg.result_type(_make(a), _make(b)) == getattr(tg, want)


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_arithmetic_results_have_the_promoted_dtype(row, device):
    a, b, want = row
    x, y = _make(a, device), _make(b, device)
    assert tg.add(x, y).dtype.name == want
    assert (x * y).dtype.name == want
    assert (x / y).dtype.name == _div_dtype(want)
    if not (_is_bool(a) or _is_bool(b)):  # PyTorch refuses bool subtraction, tested below
        assert (x - y).dtype.name == want


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_where_maximum_minimum_promote_the_same_way(row, device):
    a, b, want = row
    x, y = _make(a, device), _make(b, device)
    cond = tg.tensor([True, False], device=device)
    assert tg.where(cond, x, y).dtype.name == want
    if isinstance(x, tg.Tensor) and isinstance(y, tg.Tensor):  # torch.maximum takes tensors
        assert tg.maximum(x, y).dtype.name == want
        assert tg.minimum(x, y).dtype.name == want


def test_where_of_two_python_scalars():
    cond = tg.tensor([True, False])
    assert tg.where(cond, 1, 2).dtype == tg.int64
    assert tg.where(cond, 1, 2.5).dtype == tg.float32
    assert tg.where(cond, 1, 2.5).tolist() == [1.0, 2.5]


def test_integer_true_division_gives_the_default_float():
    a = tg.tensor([1, 2, 3], dtype=tg.int32)
    assert (a / a).dtype == tg.float32
    assert (a / 2).dtype == tg.float32
    assert (a / 2).tolist() == [0.5, 1.0, 1.5]
    assert (a // 2).dtype == tg.int32


def test_default_dtype_changes_python_floats_and_integer_division():
    i32 = tg.tensor([1, 2], dtype=tg.int32)
    f32 = tg.tensor([1.0, 2.0], dtype=tg.float32)
    tg.set_default_dtype(tg.float64)
    try:
        assert tg.result_type(i32, 2.5) == tg.float64
        assert (i32 + 2.5).dtype == tg.float64
        assert (i32 / i32).dtype == tg.float64
        assert tg.tensor(2.5).dtype == tg.float64
        assert tg.where(tg.tensor([True, False]), 1, 2.5).dtype == tg.float64
        assert (f32 * 2.5).dtype == tg.float32  # a Python float still never widens a tensor
    finally:
        tg.set_default_dtype(tg.float32)
    assert (i32 / i32).dtype == tg.float32


def test_out_of_range_python_ints_wrap_like_pytorch():
    # PyTorch casts the scalar to the tensor's dtype, wrapping around; NumPy 2 would raise.
    assert (tg.tensor([1], dtype=tg.uint8) + -1).tolist() == [0]
    assert (tg.tensor([1], dtype=tg.uint8) - 2).tolist() == [255]
    assert (tg.tensor([1], dtype=tg.int8) + 200).tolist() == [-55]
    assert (tg.tensor([200], dtype=tg.uint8) + 100).tolist() == [44]


def test_bool_subtraction_is_refused():
    m = tg.tensor([True, False])
    for a, b in ((m, m), (m, 1), (1, m), (tg.tensor([1]), True), (tg.tensor([1.0]), m)):
        with pytest.raises(DTypeError, match="bool"):
            a - b


def test_the_values_survive_promotion():
    assert (tg.tensor([1, 2], dtype=tg.int32) + 2.5).tolist() == [3.5, 4.5]
    assert (tg.tensor([True, False]) + 1).tolist() == [2, 1]
    assert (tg.tensor([1, 2], dtype=tg.uint8) * tg.tensor([-1, 3], dtype=tg.int8)).tolist() \
        == [-1, 6]
