"""Anomaly mode (DESIGN section 4): the first forward op or VJP that makes a NaN, or an Inf from
finite inputs, raises AnomalyError naming the op, the operands' statistics and the user's line
that created the node; `-inf` masks pass; off by default."""

import doctest
import sys
import warnings

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad.autograd import anomaly as anomaly_module


@pytest.fixture(autouse=True)
def _quiet_numpy():
    # NumPy warns on log(0) and 0/0; the tests look at tensorgrad's error, not NumPy's warning.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
    assert not tg.autograd.is_anomaly_enabled()  # every test leaves the switch off


def _here():
    """`file:line` of the caller's next line: where the op under test is written."""
    return f"{__file__}:{sys._getframe(1).f_lineno + 1}"


# ---- the switches ------------------------------------------------------------------------------
def test_off_by_default_and_nothing_checked():
    assert not tg.autograd.is_anomaly_enabled()
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    y = x.log()  # -inf, silently, as in PyTorch without anomaly mode
    assert y.grad_fn.trace is None
    y.sum().backward()
    assert np.isinf(x.grad.numpy()[0])


def test_context_manager_restores_and_nests():
    with tg.autograd.detect_anomaly():
        assert tg.autograd.is_anomaly_enabled() and tg.autograd.is_anomaly_check_nan_enabled()
        with tg.autograd.detect_anomaly(check_nan=False):
            assert not tg.autograd.is_anomaly_check_nan_enabled()
        assert tg.autograd.is_anomaly_check_nan_enabled()
    assert not tg.autograd.is_anomaly_enabled()


def test_set_detect_anomaly_is_a_switch_and_a_context_manager():
    tg.autograd.set_detect_anomaly(True)
    try:
        assert tg.autograd.is_anomaly_enabled()
        with pytest.raises(tg.AnomalyError):
            tg.tensor([0.0], requires_grad=True).log()
    finally:
        tg.autograd.set_detect_anomaly(False)
    assert not tg.autograd.is_anomaly_enabled()
    with tg.autograd.set_detect_anomaly(True):
        assert tg.autograd.is_anomaly_enabled()
    assert not tg.autograd.is_anomaly_enabled()


def test_decorator_and_exception_restore_the_switch():
    @tg.autograd.detect_anomaly()
    def step(x):
        assert tg.autograd.is_anomaly_enabled()
        return (x / x).sum()

    with pytest.raises(tg.AnomalyError):
        step(tg.zeros(3, requires_grad=True))
    assert not tg.autograd.is_anomaly_enabled()


def test_check_nan_false_records_lines_but_raises_nothing():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    with tg.autograd.detect_anomaly(check_nan=False):
        where = _here()
        y = x.log()
    assert not np.isfinite(y.detach().numpy()).all()
    file, line, func = y.grad_fn.trace
    assert f"{file}:{line}" == where
    assert func == "test_check_nan_false_records_lines_but_raises_nothing"


# ---- forward -----------------------------------------------------------------------------------
def test_log_of_zero_names_op_statistics_and_line():
    x = tg.tensor([[0.0, 1.0, 2.0]], requires_grad=True)
    with tg.autograd.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        where = _here()
        x.log()
    msg = str(info.value)
    assert msg.startswith("log: the forward output has 1 Inf from finite inputs")
    assert "input: (1, 3) float32: min 0, max 2, 0 NaN, 0 Inf" in msg
    assert "output: (1, 3) float32:" in msg and "1 Inf" in msg.splitlines()[3]
    assert f"created at {where} in test_log_of_zero_names_op_statistics_and_line: x.log()" in msg
    assert "hint:" in msg
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("make, op", [
    (lambda x: x / x, "div"),                 # 0 / 0
    (lambda x: (x - 1).sqrt(), "sqrt"),      # sqrt of a negative
    (lambda x: x * float("inf"), "mul"),     # 0 * inf: an Inf input, but a NaN output
], ids=["div", "sqrt", "mul_inf"])
def test_nan_output_raises_even_from_non_finite_inputs(make, op):
    x = tg.zeros(2, 3, requires_grad=True)
    with tg.autograd.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        make(x)
    msg = str(info.value)
    assert msg.startswith(f"{op}: the forward output has 6 NaN") and "(2, 3)" in msg


def test_overflow_is_an_inf_from_finite_inputs():
    x = tg.tensor([1.0, 100.0], requires_grad=True)
    with tg.autograd.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        x.exp()
    msg = str(info.value)
    assert msg.startswith("exp: the forward output has 1 Inf from finite inputs")
    assert "max 100" in msg


def test_minus_inf_masks_and_softmax_over_them_pass():
    scores = tg.randn(2, 4, 4, requires_grad=True)
    mask = tg.triu(tg.ones(4, 4, dtype=tg.bool), diagonal=1)
    with tg.autograd.detect_anomaly():
        masked = scores.masked_fill(mask, float("-inf"))
        attn = F.softmax(masked, dim=-1)
        logp = F.log_softmax(masked, dim=-1)
        (attn.sum() + logp.masked_fill(mask, 0.0).sum()).backward()
    assert np.isfinite(scores.grad.numpy()).all()


def test_an_inf_input_may_make_an_inf_output():
    x = tg.tensor([float("inf"), 1.0], requires_grad=True)
    with tg.autograd.detect_anomaly():
        y = (x * 2).exp()  # inf in, inf out: not this op's doing
        y.backward(tg.ones(2))


def test_nan_already_in_the_data_is_named_as_coming_from_outside():
    w = tg.ones(3, requires_grad=True)
    data = tg.tensor([1.0, float("nan"), 2.0])
    with tg.autograd.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        w * data
    msg = str(info.value)
    assert msg.startswith("mul: the forward output has 1 NaN (an input already had NaN")
    assert "input 1: (3,) float32: min 1, max 2, 1 NaN, 0 Inf" in msg


def test_ops_that_record_nothing_are_not_checked():
    # Like PyTorch, anomaly mode watches the graph: ops on tensors that need no gradient and
    # ops under no_grad record no node, so nothing is checked (nor slowed) there.
    with tg.autograd.detect_anomaly():
        assert np.isinf(tg.tensor([0.0]).log().numpy()).all()
        with tg.no_grad():
            tg.tensor([0.0], requires_grad=True).log()


# ---- backward ----------------------------------------------------------------------------------
def test_sqrt_at_zero_names_the_backward_and_the_forward_line():
    x = tg.tensor([0.0, 4.0], requires_grad=True)
    with tg.autograd.detect_anomaly():
        created = _here()
        y = x.sqrt()
        with pytest.raises(tg.AnomalyError) as info:
            called = _here()
            y.sum().backward()
    msg = str(info.value)
    assert msg.startswith("SqrtBackward0: the gradient it returned for input 0 has 1 Inf")
    assert "incoming gradient: (2,) float32: min 1, max 1, 0 NaN, 0 Inf" in msg
    assert "gradient for input 0: (2,) float32: min 0.25, max 0.25, 0 NaN, 1 Inf" in msg
    assert f"the forward sqrt was created at {created} in " in msg and "y = x.sqrt()" in msg
    assert f"at {called} in " in msg  # the generic location: the line that ran backward
    assert x.grad is None  # raised before anything reached the leaves


def test_nan_gradient_from_finite_values():
    x = tg.zeros(3, requires_grad=True)
    with tg.autograd.detect_anomaly():
        created = _here()
        y = x.sqrt() * 0.0  # forward finite; sqrt's VJP then makes 0 * inf = NaN
        with pytest.raises(tg.AnomalyError) as info:
            y.sum().backward()
    msg = str(info.value)
    assert msg.startswith("SqrtBackward0: the gradient it returned for input 0 has 3 NaN")
    assert f"created at {created}" in msg


def test_an_inf_gradient_handed_in_is_passed_on():
    x = tg.ones(2, requires_grad=True)
    with tg.autograd.detect_anomaly():
        (x * 3).backward(tg.tensor([float("inf"), 1.0]))
    assert x.grad.tolist() == [float("inf"), 3.0]


def test_training_step_without_anomaly_runs_unchanged():
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(8, 16), tg.nn.ReLU(), tg.nn.Linear(16, 3))
    x, y = tg.randn(5, 8), tg.tensor([0, 1, 2, 0, 1])
    with tg.autograd.detect_anomaly():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    assert loss.grad_fn.trace[2] == "test_training_step_without_anomaly_runs_unchanged"
    assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters())


# ---- custom Functions --------------------------------------------------------------------------
class _Split(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, ga, gb):
        return ga * 2 + gb * 3


class _BadGrad(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def test_multi_output_function_passes_and_bad_function_gradient_is_named():
    x = tg.ones(3, requires_grad=True)
    with tg.autograd.detect_anomaly():
        a, b = _Split.apply(x)
        (a + b).sum().backward()
        assert x.grad.tolist() == [5.0, 5.0, 5.0]
        created = _here()
        y = _BadGrad.apply(x)
        with pytest.raises(tg.AnomalyError) as info:
            y.sum().backward()
    msg = str(info.value)
    assert msg.startswith("_BadGradBackward: the gradient it returned for input 0 has 3 NaN")
    assert f"created at {created}" in msg


def test_function_forward_making_nan_is_caught():
    class Bad(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * float("nan")

        @staticmethod
        def backward(ctx, g):
            return g

    with tg.autograd.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        Bad.apply(tg.ones(2, requires_grad=True))
    assert str(info.value).startswith("Bad: the forward output has 2 NaN")


def test_module_doctests():
    result = doctest.testmod(anomaly_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 4


def test_checks_run_on_every_device(device):
    x = tg.tensor([0.0, 4.0], device=device, requires_grad=True)
    with tg.autograd.detect_anomaly():
        y = x.sqrt()
        with pytest.raises(tg.AnomalyError, match="SqrtBackward0") as info:
            y.sum().backward()
        with pytest.raises(tg.AnomalyError, match="log: the forward output has 1 Inf"):
            x.log()
    assert "0.25, 0 NaN, 1 Inf" in str(info.value)


def test_log_of_a_negative_number_names_log_and_the_line():
    x = tg.tensor([1.0, 0.5], requires_grad=True)
    with tg.autograd.detect_anomaly(), pytest.raises(tg.AnomalyError) as info:
        (x - 0.75).log()  # log(-0.25) is NaN
    msg = str(info.value)
    assert msg.startswith("log:") and "NaN" in msg
    assert f"{__file__}:" in msg and "(x - 0.75).log()" in msg
