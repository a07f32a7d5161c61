"""RNN (tanh, relu), LSTM, GRU and their cells.

Forward passes are compared with an independent NumPy implementation of PyTorch's equations
written here; gradients by gradcheck in float64; parameter names and shapes against
PyTorch's, listed explicitly; plus init bounds, dropout, shape errors, a 500-step BPTT whose
peak memory must grow linearly, and an optional cross-check with torch.nn.
"""

import gc
import tracemalloc
import warnings

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.errors import ShapeError
from tensorgrad.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell


# ---- the NumPy reference -------------------------------------------------------------------
def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_cell(mode, x, state, w_ih, w_hh, b_ih=None, b_hh=None):
    """One step of PyTorch's equations; state is h, or (h, c) for LSTM."""
    h, c = state if mode == "lstm" else (state, None)
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0 if b_hh is None else b_hh)
    if mode == "tanh":
        return np.tanh(gi + gh)
    if mode == "relu":
        return np.maximum(gi + gh, 0)
    if mode == "lstm":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = _sig(f) * c + _sig(i) * np.tanh(g)
        return _sig(o) * np.tanh(c), c
    i_r, i_z, i_n = np.split(gi, 3, axis=-1)
    h_r, h_z, h_n = np.split(gh, 3, axis=-1)
    r, z = _sig(i_r + h_r), _sig(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def np_rnn(mode, params, x, h0, c0, num_layers, bidirectional, batch_first):
    """The multi-layer module over x (batched): (output, h_n, c_n)."""
    if batch_first:
        x = x.swapaxes(0, 1)
    T = x.shape[0]
    dirs = 2 if bidirectional else 1
    h_n, c_n = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            k, sfx = layer * dirs + d, "_reverse" if d else ""
            w = [params.get(f"{kind}_l{layer}{sfx}") for kind in
                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            state = (h0[k], c0[k]) if mode == "lstm" else h0[k]
            out = np.zeros((T,) + h0[k].shape)
            for t in (range(T - 1, -1, -1) if d else range(T)):
                state = np_cell(mode, x[t], state, *w)
                out[t] = state[0] if mode == "lstm" else state
            outs.append(out)
            h_n.append(state[0] if mode == "lstm" else state)
            c_n.append(state[1] if mode == "lstm" else None)
        x = np.concatenate(outs, axis=-1)
    out = x.swapaxes(0, 1) if batch_first else x
    return out, np.stack(h_n), (np.stack(c_n) if mode == "lstm" else None)


def _np(t):
    return t.detach().cpu().numpy()


def _params(m):
    return {n: _np(p) for n, p in m.named_parameters()}


def _make(mode, *args, **kwargs):
    if mode in ("tanh", "relu"):
        return RNN(*args, nonlinearity=mode, **kwargs)
    return {"lstm": LSTM, "gru": GRU}[mode](*args, **kwargs)


def _make_cell(mode, *args, **kwargs):
    if mode in ("tanh", "relu"):
        return RNNCell(*args, nonlinearity=mode, **kwargs)
    return {"lstm": LSTMCell, "gru": GRUCell}[mode](*args, **kwargs)


MODES = ["tanh", "relu", "lstm", "gru"]
CONFIGS = [  # num_layers, bidirectional, batch_first, bias
    (1, False, False, True), (2, True, False, True), (2, True, True, True),
    (2, False, True, False), (3, True, False, False)]


# ---- forward against NumPy -----------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{}-bi{}-bf{}-bias{}".format(*c))
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("mode", MODES)
def test_forward_matches_numpy(mode, config, with_state, device):
    layers, bi, bf, bias = config
    T, N, I, H = 4, 3, 5, 6
    m = _make(mode, I, H, num_layers=layers, bidirectional=bi, batch_first=bf, bias=bias,
              device=device, dtype=tg.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, I) if bf else (T, N, I))
    states = [rng.standard_normal((layers * (1 + bi), N, H)) if with_state else
              np.zeros((layers * (1 + bi), N, H)) for _ in range(2)]
    out_ref, h_ref, c_ref = np_rnn(mode, _params(m), x, *states, layers, bi, bf)
    hx = None
    if with_state:
        hx = [tg.tensor(s, device=device) for s in states]
        hx = tuple(hx) if mode == "lstm" else hx[0]
    out, hidden = m(tg.tensor(x, device=device), hx)
    h_n, c_n = hidden if mode == "lstm" else (hidden, None)
    assert out.shape == ((N, T, H * (1 + bi)) if bf else (T, N, H * (1 + bi)))
    assert out.device == tg.device(device) and out.dtype == tg.float64
    np.testing.assert_allclose(_np(out), out_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(h_n), h_ref, rtol=1e-12, atol=1e-12)
    if mode == "lstm":
        np.testing.assert_allclose(_np(c_n), c_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input_gives_unbatched_outputs(mode):
    m = _make(mode, 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = tg.randn(5, 3)
    h = tg.randn(4, 4)
    hx = (h, tg.randn(4, 4)) if mode == "lstm" else h
    out, hidden = m(x, hx)
    assert out.shape == (5, 8)
    batched_hx = tuple(s.unsqueeze(1) for s in hx) if mode == "lstm" else h.unsqueeze(1)
    out_b, hidden_b = m(x.unsqueeze(0), batched_hx)  # batch_first: (1, L, H_in)
    np.testing.assert_allclose(_np(out), _np(out_b[0]), rtol=1e-6)
    pairs = zip(hidden, hidden_b) if mode == "lstm" else [(hidden, hidden_b)]
    for a, b in pairs:
        assert a.shape == (4, 4)
        np.testing.assert_allclose(_np(a), _np(b[:, 0]), rtol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_cells_match_numpy(mode, bias, device):
    cell = _make_cell(mode, 5, 4, bias=bias, device=device, dtype=tg.float64)
    p = _params(cell)
    w = [p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")]
    rng = np.random.default_rng(2)
    x, h, c = rng.standard_normal((3, 5)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    given = (h, c) if mode == "lstm" else h
    zero = (0 * h, 0 * c) if mode == "lstm" else 0 * h
    t = lambda a: tg.tensor(a, device=device)  # noqa: E731
    for hx, ref_state in ((None, zero), (tuple(map(t, given)) if mode == "lstm" else t(h), given)):
        got = cell(t(x), hx)
        ref = np_cell(mode, x, ref_state, *w)
        for g, r in zip(got, ref) if mode == "lstm" else [(got, ref)]:
            assert g.shape == (3, 4) and g.device == tg.device(device)
            np.testing.assert_allclose(_np(g), r, rtol=1e-12, atol=1e-12)
        unbatched = cell(t(x[0]), None if hx is None else
                         (tuple(s[0] for s in hx) if mode == "lstm" else hx[0]))
        first = unbatched[0] if mode == "lstm" else unbatched
        assert first.shape == (4,)
        np.testing.assert_allclose(_np(first), (ref[0] if mode == "lstm" else ref)[0],
                                   rtol=1e-12, atol=1e-12)


# ---- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode, bidirectional, device):
    m = _make(mode, 2, 2, num_layers=2, bidirectional=bidirectional, device=device,
              dtype=tg.float64)
    d = 2 if bidirectional else 1
    x = tg.randn(3, 2, 2, dtype=tg.float64, device=device, requires_grad=True)
    states = [tg.randn(2 * d, 2, 2, dtype=tg.float64, device=device, requires_grad=True)
              for _ in range(2 if mode == "lstm" else 1)]
    if mode == "relu":  # keep pre-activations away from the kink at 0
        with tg.no_grad():
            for p in m.parameters():
                p.add_(p.sign() * 0.1)

    def fn(x, *rest):
        out, hidden = m(x, tuple(rest[:2]) if mode == "lstm" else rest[0])
        return (out,) + (hidden if mode == "lstm" else (hidden,))

    assert tg.autograd.gradcheck(fn, [x] + states + list(m.parameters()))


@pytest.mark.parametrize("mode", MODES)
def test_cell_gradcheck(mode, device):
    cell = _make_cell(mode, 3, 2, device=device, dtype=tg.float64)
    x = tg.randn(2, 3, dtype=tg.float64, device=device, requires_grad=True)
    h = tg.randn(2, 2, dtype=tg.float64, device=device, requires_grad=True)
    c = tg.randn(2, 2, dtype=tg.float64, device=device, requires_grad=True)
    if mode == "lstm":
        fn, inputs = (lambda x, h, c, *_: cell(x, (h, c))), [x, h, c]
    else:
        fn, inputs = (lambda x, h, *_: cell(x, h)), [x, h]
    assert tg.autograd.gradcheck(fn, inputs + list(cell.parameters()))


def test_second_order_through_the_sequence():
    m = GRU(2, 2, bidirectional=True, dtype=tg.float64)
    x = tg.randn(3, 1, 2, dtype=tg.float64, requires_grad=True)
    assert tg.autograd.gradgradcheck(lambda x: m(x)[0], [x])


def test_lstm_second_order_through_the_sequence_and_the_cell():
    m = LSTM(2, 2, bidirectional=True, dtype=tg.float64)
    x = tg.randn(3, 1, 2, dtype=tg.float64, requires_grad=True)
    assert tg.autograd.gradgradcheck(lambda x: m(x)[1][1], [x])  # c_n, through both paths
    cell = LSTMCell(2, 2, dtype=tg.float64)
    h = tg.randn(1, 2, dtype=tg.float64, requires_grad=True)
    assert tg.autograd.gradgradcheck(lambda x, h: cell(x[0], (h, h))[0], [x, h])


# ---- parameters -----------------------------------------------------------------------------
def _names_and_shapes(m):
    return [(n, tuple(t.shape)) for n, t in m.state_dict().items()]


def test_parameter_names_and_shapes_are_pytorchs():
    lstm = LSTM(10, 20, num_layers=2, bidirectional=True)
    assert _names_and_shapes(lstm) == [
        ("weight_ih_l0", (80, 10)), ("weight_hh_l0", (80, 20)), ("bias_ih_l0", (80,)),
        ("bias_hh_l0", (80,)),
        ("weight_ih_l0_reverse", (80, 10)), ("weight_hh_l0_reverse", (80, 20)),
        ("bias_ih_l0_reverse", (80,)), ("bias_hh_l0_reverse", (80,)),
        ("weight_ih_l1", (80, 40)), ("weight_hh_l1", (80, 20)), ("bias_ih_l1", (80,)),
        ("bias_hh_l1", (80,)),
        ("weight_ih_l1_reverse", (80, 40)), ("weight_hh_l1_reverse", (80, 20)),
        ("bias_ih_l1_reverse", (80,)), ("bias_hh_l1_reverse", (80,))]
    assert _names_and_shapes(GRU(10, 20, num_layers=2, bias=False)) == [
        ("weight_ih_l0", (60, 10)), ("weight_hh_l0", (60, 20)),
        ("weight_ih_l1", (60, 20)), ("weight_hh_l1", (60, 20))]
    assert _names_and_shapes(RNN(10, 20, nonlinearity="relu")) == [
        ("weight_ih_l0", (20, 10)), ("weight_hh_l0", (20, 20)), ("bias_ih_l0", (20,)),
        ("bias_hh_l0", (20,))]
    assert _names_and_shapes(LSTMCell(10, 20)) == [
        ("weight_ih", (80, 10)), ("weight_hh", (80, 20)), ("bias_ih", (80,)), ("bias_hh", (80,))]
    assert _names_and_shapes(GRUCell(10, 20, bias=False)) == [
        ("weight_ih", (60, 10)), ("weight_hh", (60, 20))]
    assert _names_and_shapes(RNNCell(10, 20)) == [
        ("weight_ih", (20, 10)), ("weight_hh", (20, 20)), ("bias_ih", (20,)), ("bias_hh", (20,))]
    assert GRUCell(3, 4, bias=False).bias_ih is None
    assert [len(w) for w in lstm.all_weights] == [4, 4, 4, 4]


def test_repr_is_pytorchs():
    assert repr(LSTM(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                     bidirectional=True)) == ("LSTM(3, 4, num_layers=2, bias=False, "
                                              "batch_first=True, dropout=0.5, bidirectional=True)")
    assert repr(RNN(3, 4)) == "RNN(3, 4)"
    assert repr(RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"
    assert repr(GRUCell(3, 4, bias=False)) == "GRUCell(3, 4, bias=False)"


@pytest.mark.parametrize("make", [lambda: LSTM(4, 16, num_layers=2, bidirectional=True),
                                  lambda: GRU(4, 16), lambda: RNN(4, 16),
                                  lambda: LSTMCell(4, 16), lambda: GRUCell(4, 16),
                                  lambda: RNNCell(4, 16)])
def test_default_init_is_uniform_within_one_over_sqrt_hidden(make):
    tg.manual_seed(3)
    m = make()
    tg.manual_seed(3)
    again = make()
    bound = 1 / 16 ** 0.5
    values = np.concatenate([_np(p).ravel() for p in m.parameters()])
    assert np.abs(values).max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound  # fills the interval
    assert abs(values.mean()) < 0.1 * bound
    for p, q in zip(m.parameters(), again.parameters()):
        np.testing.assert_array_equal(_np(p), _np(q))  # reproducible under tg.manual_seed


def test_dtype_and_device_arguments(device):
    m = LSTM(3, 4, dtype=tg.float64, device=device)
    assert all(p.dtype == tg.float64 and p.device == tg.device(device) for p in m.parameters())
    out, (h, c) = m(tg.zeros(2, 1, 3, dtype=tg.float64, device=device))
    assert h.device == tg.device(device) and c.dtype == tg.float64


def test_inference_under_no_grad_records_nothing():
    m = LSTM(3, 4, bidirectional=True)
    with tg.no_grad():
        out, (h, c) = m(tg.randn(5, 2, 3))
    assert not out.requires_grad and not h.requires_grad and out.shape == (5, 2, 8)


# ---- dropout --------------------------------------------------------------------------------
def test_dropout_only_between_layers_and_only_in_training():
    m = GRU(3, 4, num_layers=2, dropout=1.0)
    x = tg.randn(5, 2, 3)
    # p = 1 zeroes the second layer's input: the same as a zero weight_ih_l1.
    zeroed = GRU(3, 4, num_layers=2)
    zeroed.load_state_dict(m.state_dict())
    with tg.no_grad():
        zeroed.weight_ih_l1.zero_()
    np.testing.assert_allclose(_np(m(x)[0]), _np(zeroed(x)[0]), rtol=1e-6)
    m.eval()
    plain = GRU(3, 4, num_layers=2)
    plain.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(_np(m(x)[0]), _np(plain(x)[0]))


def test_dropout_half_is_random_in_training_and_deterministic_in_eval():
    m = LSTM(3, 8, num_layers=2, dropout=0.5)
    x = tg.randn(4, 2, 3)
    a, b = _np(m(x)[0]), _np(m(x)[0])
    assert not np.allclose(a, b)
    m.eval()
    np.testing.assert_array_equal(_np(m(x)[0]), _np(m(x)[0]))


def test_dropout_masks_with_inverted_scaling():
    # Layer 2 passes its input straight through (identity W_ih, no recurrence, relu), so the
    # output is dropout applied to layer 1's output: each element 0 or 2x, about half of each.
    m = RNN(3, 4, num_layers=2, nonlinearity="relu", dropout=0.5, dtype=tg.float64)
    first = RNN(3, 4, nonlinearity="relu", dtype=tg.float64)
    with tg.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("_l0"):
                getattr(first, name).copy_(p)
            else:
                p.copy_(tg.eye(4, dtype=tg.float64) if name == "weight_ih_l1" else 0 * p)
    x = tg.randn(50, 4, 3, dtype=tg.float64)
    ref, out = _np(first(x)[0]), _np(m(x)[0])
    live = ref > 1e-9
    kept = np.isclose(out[live], 2 * ref[live], rtol=1e-12)
    assert np.all(kept | (out[live] == 0))
    assert 0.4 < kept.mean() < 0.6


def test_dropout_arguments_are_checked():
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        LSTM(3, 4, num_layers=2, dropout=1.5)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        GRU(3, 4, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRU(3, 4, num_layers=2, dropout=0.2)


# ---- long sequences -------------------------------------------------------------------------
def _bptt_peak(m, T):
    x = tg.randn(T, 4, 3, requires_grad=True)
    gc.collect()
    tracemalloc.start()
    try:
        out, (h, c) = m(x)
        (out.sum() + c.sum()).backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.grad is not None and np.abs(_np(x.grad[0])).sum() > 0  # reaches the first step
    return peak


def test_bptt_500_steps_no_recursion_and_linear_memory():
    # 500 steps are thousands of nodes deep, past the default recursion limit of 1000.
    m = LSTM(3, 8)
    _bptt_peak(m, 20)  # warm up caches (op records, selector classes) outside the measure
    small, large = _bptt_peak(m, 100), _bptt_peak(m, 500)
    assert large / small <= 5.5, f"peak memory 500 vs 100 steps: {large} / {small}"


# ---- errors ------------------------------------------------------------------------------------
def test_shape_errors_name_the_layer_and_both_shapes():
    lstm = LSTM(10, 20, num_layers=2)
    with pytest.raises(ShapeError, match=r"LSTM: input.size\(-1\) must be equal to input_size. "
                       r"Expected 10, got 7 \(input of shape \(5, 3, 7\)\)"):
        lstm(tg.zeros(5, 3, 7))
    with pytest.raises(ShapeError, match=r"LSTM: expected input to be 2-D .* got 4-D"):
        lstm(tg.zeros(5, 3, 2, 10))
    h, c = tg.zeros(2, 3, 20), tg.zeros(2, 3, 20)
    with pytest.raises(ShapeError, match=r"LSTM: expected h_0 \(hx\[0\]\) of shape "
                       r"\(2, 3, 20\).*got \(1, 3, 20\)"):
        lstm(tg.zeros(5, 3, 10), (tg.zeros(1, 3, 20), c))
    with pytest.raises(ShapeError, match=r"LSTM: expected c_0 \(hx\[1\]\) of shape "
                       r"\(2, 3, 20\).*got \(2, 4, 20\)"):
        lstm(tg.zeros(5, 3, 10), (h, tg.zeros(2, 4, 20)))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        lstm(tg.zeros(5, 3, 10), h)
    gru = GRU(4, 6, bidirectional=True)
    with pytest.raises(ShapeError, match=r"GRU: expected hx of shape \(2, 2, 6\).*got "
                       r"\(1, 2, 6\)"):
        gru(tg.zeros(3, 2, 4), tg.zeros(1, 2, 6))
    with pytest.raises(ShapeError, match=r"GRU: for unbatched 2-D input, hx should also be "
                       r"2-D but got a 3-D tensor of shape \(2, 1, 6\)"):
        gru(tg.zeros(3, 4), tg.zeros(2, 1, 6))
    with pytest.raises(ShapeError, match=r"RNN: expected hx of shape \(1, 6\).*got \(1, 5\)"):
        RNN(4, 6)(tg.zeros(3, 4), tg.zeros(1, 5))


def test_cell_shape_errors():
    cell = LSTMCell(10, 20)
    with pytest.raises(ShapeError, match=r"LSTMCell: expected input of shape \(N, 10\) or "
                       r"\(10,\).*got \(3, 7\)"):
        cell(tg.zeros(3, 7))
    with pytest.raises(ShapeError, match=r"LSTMCell: expected c \(hx\[1\]\) of shape "
                       r"\(3, 20\).*got \(2, 20\)"):
        cell(tg.zeros(3, 10), (tg.zeros(3, 20), tg.zeros(2, 20)))
    with pytest.raises(ShapeError, match=r"GRUCell: expected hx of shape \(20,\).*got \(1, 20\)"):
        GRUCell(10, 20)(tg.zeros(10), tg.zeros(1, 20))


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        GRU(3, 0)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        LSTM(3, 4, num_layers=0)


# ---- optional cross-check with PyTorch --------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_matches_torch(mode):
    torch = pytest.importorskip("torch")
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    m = _make(mode, 3, 4, dtype=tg.float64, **kw)
    tcls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    extra = {} if mode in ("lstm", "gru") else {"nonlinearity": mode}
    t = tcls(3, 4, dtype=torch.float64, **kw, **extra)
    assert list(t.state_dict()) == list(m.state_dict())
    t.load_state_dict({k: torch.from_numpy(_np(v).copy()) for k, v in m.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((2, 6, 3))
    out, hidden = m(tg.tensor(x))
    t_out, t_hidden = t(torch.from_numpy(x))
    np.testing.assert_allclose(_np(out), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    (out.sum() + (hidden[1] if mode == "lstm" else hidden).sum()).backward()
    (t_out.sum() + (t_hidden[1] if mode == "lstm" else t_hidden).sum()).backward()
    for name, p in m.named_parameters():
        np.testing.assert_allclose(_np(p.grad), getattr(t, name).grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)
