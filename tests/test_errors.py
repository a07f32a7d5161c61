"""The error tree (DESIGN section 4) and the messages realistic mistakes produce: each names
the op and the shapes (or dtypes, devices) involved, and ends with a hint."""

import pytest

import tensorgrad as tg
from tensorgrad import errors

BUILTINS = {
    tg.ShapeError: (ValueError, RuntimeError),
    tg.DeviceError: (RuntimeError,),
    tg.DTypeError: (TypeError, RuntimeError),
    tg.GraphError: (RuntimeError,),
    tg.AnomalyError: (RuntimeError,),
}


@pytest.mark.parametrize("cls", list(BUILTINS), ids=lambda c: c.__name__)
def test_error_classes_derive_from_the_builtins(cls):
    assert issubclass(cls, tg.TensorGradError)
    for base in BUILTINS[cls]:
        assert issubclass(cls, base)
    assert getattr(errors, cls.__name__) is cls
    with pytest.raises(BUILTINS[cls][0]):
        raise cls("caught as the built-in a Python user would catch")


def test_error_classes_are_distinct():
    assert tg.TensorGradError is errors.TensorGradError and issubclass(tg.TensorGradError,
                                                                       Exception)
    assert not issubclass(tg.DeviceError, ValueError)
    assert not issubclass(tg.GraphError, (ValueError, TypeError))
    assert not issubclass(tg.ShapeError, TypeError)
    assert len(set(BUILTINS)) == 5


def test_op_error_formats_three_parts():
    e = errors.op_error(tg.ShapeError, "demo", "sizes disagree", (tg.ones(2, 3), 1.5),
                        hint="make them agree")
    msg = str(e)
    assert isinstance(e, tg.ShapeError)
    assert msg.splitlines()[0] == "demo: sizes disagree"
    assert "operand 0: (2, 3) tensorgrad.float32 on cpu" in msg
    assert "operand 1: float 1.5" in msg
    assert msg.splitlines()[-1] == "  hint: make them agree"


# ---- realistic mistakes ------------------------------------------------------------------------
def _message(exc_cls, fn):
    with pytest.raises(exc_cls) as info:
        fn()
    return str(info.value)


def test_broadcast_mismatch_in_add():
    msg = _message(tg.ShapeError, lambda: tg.ones(2, 3) + tg.ones(4))
    assert msg.startswith("add:")
    assert "(2, 3)" in msg and "(4,)" in msg and "dimension -1" in msg and "hint:" in msg
    with pytest.raises(ValueError):  # what a NumPy user would catch
        tg.ones(2, 3) + tg.ones(4)
    with pytest.raises(RuntimeError):  # what a PyTorch user would catch
        tg.ones(2, 3) + tg.ones(4)


def test_reshape_to_an_impossible_shape():
    msg = _message(tg.ShapeError, lambda: tg.ones(2, 3).reshape(4, 2))
    assert msg.startswith("reshape:")
    assert "(2, 3)" in msg and "(4, 2)" in msg and "6" in msg and "hint:" in msg
    msg = _message(tg.ShapeError, lambda: tg.ones(2, 3).view(-1, 4))
    assert "(2, 3)" in msg and "-1, 4" in msg


def test_backward_twice_names_retain_graph():
    x = tg.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    msg = _message(tg.GraphError, y.backward)
    assert "retain_graph" in msg and "mul" in msg
    x.grad = None
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()  # retained: a second backward works and accumulates
    assert x.grad.tolist() == [4.0, 4.0]


def test_cross_device_op():
    msg = _message(tg.DeviceError, lambda: tg.ones(2, device="alt") * tg.ones(2))
    assert msg.startswith("mul:") and "alt:0" in msg and "cpu" in msg and "hint:" in msg
    with pytest.raises(RuntimeError):
        tg.ones(2) - tg.ones(2, device="alt")


def test_requires_grad_on_an_integer_tensor():
    msg = _message(tg.DTypeError, lambda: tg.tensor([1, 2], requires_grad=True))
    assert "requires_grad" in msg and "int64" in msg and "hint:" in msg
    msg = _message(tg.DTypeError, lambda: tg.zeros(2, dtype=tg.int32).requires_grad_())
    assert "int32" in msg
    with pytest.raises(TypeError):
        tg.ones(2, dtype=tg.bool).requires_grad_()


def test_mean_of_an_integer_tensor():
    msg = _message(tg.DTypeError, lambda: tg.tensor([1, 2, 3]).mean())
    assert msg.startswith("mean:") and "int64" in msg and "hint:" in msg
    assert tg.tensor([1, 2, 3]).float().mean().item() == 2.0  # the hint's fix works


def test_item_of_many_elements():
    msg = _message(tg.ShapeError, lambda: tg.ones(2, 2).item())
    assert msg.startswith("item:") and "(2, 2)" in msg and "hint:" in msg


def test_numpy_of_a_tensor_that_requires_grad():
    msg = _message(tg.GraphError, lambda: tg.ones(2, requires_grad=True).numpy())
    assert msg.startswith("numpy:") and "detach()" in msg


def test_backward_of_a_tensor_without_grad():
    msg = _message(tg.GraphError, lambda: tg.ones(2).sum().backward())
    assert "grad" in msg and "hint:" in msg


def test_reduction_over_a_bad_dimension():
    msg = _message(tg.ShapeError, lambda: tg.ones(2, 3).sum(dim=2))
    assert msg.startswith("sum:") and "2" in msg and "(2, 3)" in msg


def test_unsupported_dtype():
    msg = _message(tg.DTypeError, lambda: tg.ones(2, dtype="complex64"))
    assert "complex64" in msg and "float32" in msg


def test_errors_survive_pickling():
    import pickle
    e = pickle.loads(pickle.dumps(tg.ShapeError("add: shapes differ")))
    assert isinstance(e, tg.ShapeError) and str(e) == "add: shapes differ"
