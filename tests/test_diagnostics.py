"""tg.diagnostics on deliberately broken models: a deep sigmoid net (vanishing) next to the
ReLU + He-init version (clean), SGD with lr 1e3 (exploding, then nonfinite), hand-set gradients
for the exact numbers, the text table, GradientMonitor's records and warnings, and the plots."""

import json
import math
import warnings

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.diagnostics import FLAGS, GradientMonitor, GradientWarning, grad_report


def deep_net(depth, activation, he_init, width=16):
    layers = []
    for _ in range(depth):
        lin = tg.nn.Linear(width, width)
        if he_init:
            tg.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            tg.nn.init.zeros_(lin.bias)
        layers += [lin, activation()]
    return tg.nn.Sequential(*layers, tg.nn.Linear(width, 1))


def backward_once(model, width=16, batch=32):
    x, y = tg.randn(batch, width), tg.randn(batch, 1)
    ((model(x) - y) ** 2).mean().backward()


def table_rows(report):
    """Row lines of str(report), by parameter name (the title, rule and summary left out)."""
    lines = str(report).splitlines()
    return {line.split()[0]: line for line in lines[3:-1]}


# ---- vanishing: deep sigmoid vs ReLU + He -----------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("depth", [20, 30])
def test_deep_sigmoid_net_vanishes_and_relu_he_does_not(seed, depth):
    tg.manual_seed(seed)
    sigmoid = deep_net(depth, tg.nn.Sigmoid, he_init=False)
    backward_once(sigmoid)
    report = grad_report(sigmoid)
    vanishing = report.flagged("vanishing")
    assert "0.weight" in vanishing and "0.bias" in vanishing  # the first layer
    assert f"{2 * depth}.weight" not in vanishing  # the output layer holds the largest norm
    rows = table_rows(report)
    assert rows["0.weight"].endswith("vanishing")
    assert report.flagged("exploding") == report.flagged("nonfinite") == []

    tg.manual_seed(seed)
    relu = deep_net(depth, tg.nn.ReLU, he_init=True)
    backward_once(relu)
    clean = grad_report(relu)
    assert clean.flagged() == []
    assert all(line.endswith("  none") for line in table_rows(clean).values())
    assert not any(f in line for line in table_rows(clean).values() for f in FLAGS)


# ---- exact numbers on hand-set gradients ---------------------------------------------------------
def _linear_with_grads(weight_grad, bias_grad=None):
    lin = tg.nn.Linear(2, 2)
    with tg.no_grad():
        lin.weight.copy_(tg.tensor([[1.0, 2.0], [2.0, 4.0]]))  # norm 5
    lin.weight.grad = tg.tensor(weight_grad)
    lin.bias.grad = None if bias_grad is None else tg.tensor(bias_grad)
    return lin


def test_row_numbers_and_update_ratio():
    lin = _linear_with_grads([[3.0, 0.0], [4.0, 0.0]])
    report = grad_report(lin, lr=0.1)
    w = report["weight"]
    assert (w.name, w.shape, w.grad_norm, w.zero_fraction) == ("weight", (2, 2), 5.0, 0.5)
    assert w.weight_norm == pytest.approx(5.0) and w.update_ratio == pytest.approx(0.1)
    assert w.flags == () and w.has_grad
    b = report["bias"]
    assert not b.has_grad and b.grad_norm is None and b.update_ratio is None and b.flags == ()
    rows = table_rows(report)
    assert rows["weight"].split()[-3:] == ["50.0%", "1.00e-01", "none"]
    assert "no grad" in rows["bias"] and rows["bias"].endswith("none")
    assert "update/weight" in str(report) and "1 without grad" in str(report)
    plain = grad_report(lin)
    assert plain["weight"].update_ratio is None and "update/weight" not in str(plain)


def test_update_ratio_matches_numpy_on_a_real_backward():
    tg.manual_seed(3)
    model = deep_net(2, tg.nn.Tanh, he_init=False, width=8)
    backward_once(model, width=8)
    report = grad_report(model, lr=0.05)
    for name, p in model.named_parameters():
        g, w = p.grad.numpy().astype(np.float64), p.detach().numpy().astype(np.float64)
        row = report[name]
        assert row.grad_norm == pytest.approx(np.linalg.norm(g), rel=1e-12)
        assert row.update_ratio == pytest.approx(0.05 * np.linalg.norm(g) / np.linalg.norm(w))
        assert row.zero_fraction == np.mean(g == 0)


def test_thresholds_are_relative_for_vanishing_and_absolute_for_exploding():
    lin = _linear_with_grads([[2000.0, 0.0], [0.0, 0.0]], bias_grad=[0.1, 0.0])
    report = grad_report(lin)  # bias 0.1 < 1e-4 * 2000 = 0.2; weight 2000 > 1e3
    assert report.flagged("vanishing") == ["bias"] and report.flagged("exploding") == ["weight"]
    assert grad_report(lin, vanishing=1e-5).flagged("vanishing") == []
    assert grad_report(lin, exploding=2000.0).flagged("exploding") == []  # strictly above
    assert report.flagged() == ["weight", "bias"]
    with pytest.raises(ValueError, match="unknown flag"):
        report.flagged("vanished")


@pytest.mark.parametrize("bad, flags", [(math.nan, ("nonfinite",)),
                                        (math.inf, ("exploding", "nonfinite"))])
def test_nonfinite_entries(bad, flags):
    lin = _linear_with_grads([[1.0, bad], [0.0, 1.0]], bias_grad=[1.0, 1.0])
    report = grad_report(lin, lr=0.1)
    assert report["weight"].flags == flags and report["bias"].flags == ()
    assert table_rows(report)["weight"].endswith(", ".join(flags))
    assert report.largest == pytest.approx(math.sqrt(2))  # the largest finite norm


def test_to_dict_is_plain_data():
    lin = _linear_with_grads([[3.0, 0.0], [4.0, 0.0]])
    d = grad_report(lin, lr=0.1).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert (d["lr"], d["vanishing"], d["exploding"], d["largest_grad_norm"]) == (0.1, 1e-4,
                                                                                 1e3, 5.0)
    assert [r["name"] for r in d["rows"]] == ["weight", "bias"]
    assert d["rows"][0]["shape"] == [2, 2] and d["rows"][0]["flags"] == []
    assert d["rows"][1]["grad_norm"] is None


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="vanishing"):
        grad_report(tg.nn.Linear(1, 1), vanishing=-1)
    with pytest.raises(ValueError, match="every"):
        GradientMonitor(tg.nn.Linear(1, 1), every=0)


# ---- exploding with lr 1e3, watched by a GradientMonitor ---------------------------------------
def test_sgd_with_lr_1e3_explodes_then_goes_nonfinite_and_warns_once_per_flag():
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(4, 16), tg.nn.ReLU(), tg.nn.Linear(16, 1))
    x, y = tg.randn(32, 4), tg.randn(32, 1)
    opt = tg.optim.SGD(model.parameters(), lr=1e3)
    monitor = GradientMonitor(model, lr=1e3)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        first = None
        for _ in range(6):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            report = monitor.step()
            first = first or report
            opt.step()
    assert first.flagged() == []  # the first gradient is fine; the lr is what breaks it
    assert monitor.flagged("exploding") == monitor.flagged("nonfinite") == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    step_of = monitor.first_seen
    assert step_of[("0.weight", "exploding")] < step_of[("0.weight", "nonfinite")]
    assert report.flagged("nonfinite") and any(r.update_ratio > 1 for r in monitor.reports[1])
    ours = [str(w.message) for w in caught if issubclass(w.category, GradientWarning)]
    assert len(ours) == len(step_of)  # once per (parameter, flag), though raised every step
    assert sum("'nonfinite'" in m and m.startswith("GradientMonitor: 0.weight") for m in ours) == 1
    assert all("hint:" in m for m in ours)
    assert monitor.steps == [1, 2, 3, 4, 5, 6] and len(monitor.history["0.weight"]) == 6


def test_monitor_records_through_hooks_every_k_and_stops_on_remove():
    tg.manual_seed(1)
    model = tg.nn.Linear(3, 1)
    frozen = tg.nn.Linear(3, 1).requires_grad_(False)
    monitor = GradientMonitor(model, every=2, warn=False)
    norms = []
    for _ in range(5):  # no step(): each new backward closes the previous record
        model.zero_grad()
        out = model(tg.randn(4, 3)).sum()
        out.backward()
        norms.append(model.weight.grad.norm().item())
    assert monitor.step() is not None  # closes the fifth backward
    assert monitor.steps == [1, 3, 5]
    assert monitor.history["weight"] == pytest.approx([norms[0], norms[2], norms[4]])
    monitor.remove()
    model(tg.ones(1, 3)).sum().backward()
    assert monitor.step() is None and monitor.steps == [1, 3, 5]
    assert GradientMonitor(frozen).history == {}


def test_monitor_sees_each_backward_and_parameters_left_out():
    model = tg.nn.Sequential(tg.nn.Linear(2, 2), tg.nn.Linear(2, 2))
    monitor = GradientMonitor(model, warn=False)
    model[0](tg.ones(1, 2)).sum().backward()  # only the first layer gets a gradient
    report = monitor.step()
    assert [r.has_grad for r in report] == [True, True, False, False]
    assert monitor.history["1.weight"] == [None]
    monitor.remove()


# ---- pictures ------------------------------------------------------------------------------------
def _is_png(path):
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == \
        b"\x89PNG\r\n\x1a\n"


def test_plot_grad_flow_and_monitor_plot_write_pngs(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the 'examples' extra")
    tg.manual_seed(0)
    model = deep_net(8, tg.nn.Sigmoid, he_init=False)
    monitor = GradientMonitor(model, warn=False)
    for _ in range(3):
        model.zero_grad()
        backward_once(model)
        monitor.step()
    model[0].bias.grad = None  # a "no grad" bar
    model[2].weight.grad[0, 0] = math.nan  # a nonfinite bar
    assert tg.diagnostics.plot_grad_flow(model, tmp_path / "flow.png") == tmp_path / "flow.png"
    report = grad_report(model)
    assert report.flagged("nonfinite") == ["2.weight"]
    tg.diagnostics.plot_grad_flow(report, tmp_path / "report.png", title="from a report")
    monitor.plot(tmp_path / "monitor.png")
    assert all(_is_png(tmp_path / f) for f in ("flow.png", "report.png", "monitor.png"))


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    lin = _linear_with_grads([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ImportError, match=r"tensorgrad\[examples\]"):
        tg.diagnostics.plot_grad_flow(lin, tmp_path / "x.png")


def test_module_doctests():
    import doctest

    result = doctest.testmod(tg.diagnostics)
    assert result.attempted >= 10 and result.failed == 0
