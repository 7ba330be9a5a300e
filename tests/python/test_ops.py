"""torch.ops.tsrnn.* (one layer, one direction) against nn.LSTM / nn.GRU, the pure-torch reference, gradcheck,
and opcheck (the bad arguments the shim must reject are in test_op_errors.py).

Tolerances: fp32 outputs within assert_close defaults, fp32 gradients rtol 1e-4 / atol 1e-5,
fp64 everything within 1e-10. A failure names the worst element.
"""

import itertools
import re

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import tsrnn  # noqa: F401  (loads the library, registers fake kernels and autograd)
from tsrnn import _ops
from rnn_testing import assert_close, lstm_projection_args, op_args
from tsrnn.reference import gru_reference, lstm_reference

OPS = torch.ops.tsrnn
F32, F64 = torch.float32, torch.float64
OUT_TOL = {F32: {}, F64: dict(rtol=1e-10, atol=1e-10)}
GRAD_TOL = {F32: dict(rtol=1e-4, atol=1e-5), F64: dict(rtol=1e-10, atol=1e-10)}
# the op variants: LSTM, GRU (reset_after=True, PyTorch's form), GRU with reset_after=False (nn has no twin)
CELLS = ["lstm", "gru", "gru_reset_before"]
NN_CELLS = ["lstm", "gru"]


# ---- helpers ----------------------------------------------------------------------------------------------


def is_lstm(cell):
    return cell == "lstm"


def reset_after(cell):
    return cell != "gru_reset_before"


def make_weights(cell, D, H, dtype, bias=True, requires_grad=True, seed=0):
    """(w_ih, w_hh, b_ih, b_hh) as nn.* initializes them."""
    torch.manual_seed(seed)
    G = 4 if is_lstm(cell) else 3
    bound = H**-0.5
    ws = [torch.empty(G * H, D, dtype=dtype), torch.empty(G * H, H, dtype=dtype)]
    ws += [torch.empty(G * H, dtype=dtype), torch.empty(G * H, dtype=dtype)] if bias else [None, None]
    return tuple(None if w is None else w.uniform_(-bound, bound).requires_grad_(requires_grad) for w in ws)


def make_inputs(cell, T, B, D, H, dtype, batch_first=False, state=True, requires_grad=True, seed=1):
    """x in the caller's convention and the initial states (h0, c0); c0 is None for GRU."""
    torch.manual_seed(seed)
    x = torch.randn((B, T, D) if batch_first else (T, B, D), dtype=dtype, requires_grad=requires_grad)
    h0 = torch.randn(B, H, dtype=dtype, requires_grad=requires_grad) if state else None
    c0 = torch.randn(B, H, dtype=dtype, requires_grad=requires_grad) if state and is_lstm(cell) else None
    return x, h0, c0


def call_op(cell, x, h0, c0, weights, lengths=None, batch_first=False, reverse=False):
    """The forward op; returns (outputs..., saved) with c_n only for LSTM."""
    if is_lstm(cell):
        return OPS.lstm(x, h0, c0, *weights, lengths, batch_first, reverse)
    return OPS.gru(x, h0, *weights, lengths, batch_first, reverse, reset_after(cell))


def call_reference(cell, x, h0, c0, weights, lengths=None, batch_first=False, reverse=False):
    if is_lstm(cell):
        return lstm_reference(x, h0, c0, *weights, lengths, batch_first, reverse)
    return gru_reference(x, h0, *weights, lengths, batch_first, reverse, reset_after(cell))


def grads_of(outputs, inputs, seed=2):
    """Gradients of sum(out * random cotangent) w.r.t. the inputs that are tensors (None stays None)."""
    torch.manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, dtype=o.dtype)).sum() for o in outputs)  # not randn_like: strides differ
    present = [t for t in inputs if t is not None]
    got = iter(torch.autograd.grad(loss, present))
    return [None if t is None else next(got) for t in inputs]


def check_all(ours, theirs, names, tol):
    assert len(ours) == len(theirs) == len(names)
    for a, b, name in zip(ours, theirs, names):
        if b is None:
            assert a is None, f"{name}: expected None"
            continue
        assert_close(a, b, name, **tol)


def nn_module(cell, D, H, dtype, bias=True, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    cls = nn.LSTM if is_lstm(cell) else nn.GRU
    return cls(D, H, bias=bias, dtype=dtype, bidirectional=bidirectional)


def nn_weights(module, suffix=""):
    def get(name):
        return getattr(module, f"{name}_l0{suffix}") if (module.bias or name.startswith("weight")) else None

    return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")


INPUT_NAMES = {
    "lstm": ["grad x", "grad h0", "grad c0", "grad w_ih", "grad w_hh", "grad b_ih", "grad b_hh"],
    "gru": ["grad x", "grad h0", "grad w_ih", "grad w_hh", "grad b_ih", "grad b_hh"],
}


def grad_inputs(cell, x, h0, c0, weights):
    return [x, h0, c0, *weights] if is_lstm(cell) else [x, h0, *weights]


# ---- against nn.LSTM / nn.GRU ----------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("state", [True, False], ids=["h0", "noh0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", NN_CELLS)
def test_matches_nn(cell, dtype, batch_first, state, bias):
    T, B, D, H = 7, 3, 5, 6
    module = nn_module(cell, D, H, dtype, bias=bias, seed=0)
    weights = nn_weights(module)
    x, h0, c0 = make_inputs(cell, T, B, D, H, dtype, batch_first, state)
    module.batch_first = batch_first

    hx = None if not state else ((h0.unsqueeze(0), c0.unsqueeze(0)) if is_lstm(cell) else h0.unsqueeze(0))
    y_nn, s_nn = module(x, hx)
    theirs = [y_nn, s_nn[0], s_nn[1]] if is_lstm(cell) else [y_nn, s_nn]
    ours = list(call_op(cell, x, h0, c0, weights, batch_first=batch_first)[:-1])
    check_all(ours, theirs, ["y", "h_n", "c_n"][: len(ours)], OUT_TOL[dtype])

    inputs = grad_inputs(cell, x, h0, c0, weights)
    check_all(grads_of(ours, inputs), grads_of(theirs, inputs), INPUT_NAMES[cell], GRAD_TOL[dtype])


@pytest.mark.parametrize("cell", CELLS)
def test_states_are_one_layer_of_nn_shape(cell):
    """h_n / c_n are (1, B, R), one layer of nn.*'s (L * dirs, B, R); h0 / c0 may be that or (B, R): the same
    results either way, and each state's gradient has its input's shape (also through the backward op's
    grad_h_n / grad_c_n in either shape)."""
    T, B, D, H = 5, 3, 4, 6
    weights = make_weights(cell, D, H, F64)
    x, h0, c0 = make_inputs(cell, T, B, D, H, F64)
    flat = call_op(cell, x, h0, c0, weights)
    h0_3d = h0.detach().unsqueeze(0).requires_grad_(True)
    c0_3d = None if c0 is None else c0.detach().unsqueeze(0).requires_grad_(True)
    deep = call_op(cell, x, h0_3d, c0_3d, weights)
    for a, b in zip(flat, deep, strict=True):
        assert torch.equal(a, b)
    assert flat[1].shape == (1, B, H) and (not is_lstm(cell) or flat[2].shape == (1, B, H))
    g_flat = grads_of(flat[:-1], [h0, c0])
    g_deep = grads_of(deep[:-1], [h0_3d, c0_3d])
    for a, b, want in zip(g_flat, g_deep, [(B, H), (B, H)], strict=True):
        if a is not None:
            assert a.shape == want and b.shape == (1, *want) and torch.equal(a, b[0])
    # the backward op with 2-D and 3-D state gradients
    saved = flat[-1]
    g_y, g_h = torch.randn(T, B, H, dtype=F64), torch.randn(B, H, dtype=F64)
    if is_lstm(cell):
        g_c = torch.randn(B, H, dtype=F64)
        a = OPS.lstm_backward(x, h0, c0, weights[0], weights[1], saved, None, g_y, g_h, g_c, False, False)
        b = OPS.lstm_backward(x, h0_3d, c0_3d, weights[0], weights[1], saved, None, g_y, g_h[None], g_c[None], False,
                              False)
    else:
        a = OPS.gru_backward(x, h0, weights[0], weights[1], saved, None, g_y, g_h, False, False, reset_after(cell))
        b = OPS.gru_backward(x, h0_3d, weights[0], weights[1], saved, None, g_y, g_h[None], False, False,
                             reset_after(cell))
    states = (1, 2) if is_lstm(cell) else (1,)  # grad_h0 [, grad_c0]: in h0's [, c0's] shape
    for k, (u, v) in enumerate(zip(a, b, strict=True)):
        assert torch.equal(u, v.reshape(u.shape)), k
        if k in states:
            assert u.shape == (B, H) and v.shape == (1, B, H), k
        else:
            assert u.shape == v.shape, k


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", NN_CELLS)
def test_reverse_matches_nn_on_flipped_input(cell, dtype, batch_first):
    T, B, D, H = 6, 2, 4, 5
    module = nn_module(cell, D, H, dtype, seed=3)
    module.batch_first = batch_first
    weights = nn_weights(module)
    x, h0, c0 = make_inputs(cell, T, B, D, H, dtype, batch_first)
    tdim = 1 if batch_first else 0

    hx = (h0.unsqueeze(0), c0.unsqueeze(0)) if is_lstm(cell) else h0.unsqueeze(0)
    y_nn, s_nn = module(x.flip(tdim), hx)
    theirs = [y_nn.flip(tdim), s_nn[0], s_nn[1]] if is_lstm(cell) else [y_nn.flip(tdim), s_nn]
    ours = list(call_op(cell, x, h0, c0, weights, batch_first=batch_first, reverse=True)[:-1])
    check_all(ours, theirs, ["y", "h_n", "c_n"][: len(ours)], OUT_TOL[dtype])

    inputs = grad_inputs(cell, x, h0, c0, weights)
    check_all(grads_of(ours, inputs), grads_of(theirs, inputs), INPUT_NAMES[cell], GRAD_TOL[dtype])


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", NN_CELLS)
def test_lengths_match_nn_packed(cell, dtype, batch_first, reverse):
    """Per-sequence lengths (unsorted) against nn on a PackedSequence; reverse against nn's backward direction."""
    T, B, D, H = 7, 4, 3, 5
    lengths = torch.tensor([5, 7, 1, 3])
    module = nn_module(cell, D, H, dtype, bidirectional=reverse, seed=4)
    module.batch_first = batch_first
    weights = nn_weights(module, "_reverse" if reverse else "")
    x, h0, c0 = make_inputs(cell, T, B, D, H, dtype, batch_first)

    def nn_state(s):  # nn's (dirs, B, H) initial state; our direction is the last one
        return torch.stack([torch.zeros_like(s), s]) if reverse else s.unsqueeze(0)

    hx = (nn_state(h0), nn_state(c0)) if is_lstm(cell) else nn_state(h0)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, s_nn = module(packed, hx)
    y_nn, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    y_nn = y_nn[..., H:] if reverse else y_nn
    theirs = [y_nn, s_nn[0][-1:], s_nn[1][-1:]] if is_lstm(cell) else [y_nn, s_nn[-1:]]

    ours = list(call_op(cell, x, h0, c0, weights, lengths, batch_first, reverse)[:-1])
    check_all(ours, theirs, ["y", "h_n", "c_n"][: len(ours)], OUT_TOL[dtype])

    inputs = grad_inputs(cell, x, h0, c0, weights)
    check_all(grads_of(ours, inputs), grads_of(theirs, inputs), INPUT_NAMES[cell], GRAD_TOL[dtype])


# ---- against the pure-torch reference (saved layout, GRU reset_after=False, zero lengths) -------------------


@pytest.mark.parametrize("lengths", [None, [0, 6, 2, 0, 5]], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_reference(cell, dtype, batch_first, reverse, lengths):
    T, B, D, H = 6, 5, 4, 7
    lengths = None if lengths is None else torch.tensor(lengths)
    weights = make_weights(cell, D, H, dtype, seed=5)
    x, h0, c0 = make_inputs(cell, T, B, D, H, dtype, batch_first)

    ours = call_op(cell, x, h0, c0, weights, lengths, batch_first, reverse)
    ref = call_reference(cell, x, h0, c0, weights, lengths, batch_first, reverse)
    names = ["y", "h_n", "c_n", "saved"] if is_lstm(cell) else ["y", "h_n", "saved"]
    check_all(list(ours), list(ref), names, OUT_TOL[dtype])
    assert not ours[-1].requires_grad, "saved must not be differentiable"

    inputs = grad_inputs(cell, x, h0, c0, weights)
    names = INPUT_NAMES["lstm" if is_lstm(cell) else "gru"]
    check_all(grads_of(ours[:-1], inputs), grads_of(ref[:-1], inputs), names, GRAD_TOL[dtype])


def test_reference_matches_nn():
    """The reference itself agrees with nn (so tests against it mean something)."""
    T, B, D, H = 5, 3, 4, 6
    for cell in NN_CELLS:
        module = nn_module(cell, D, H, F64, seed=6)
        x, h0, c0 = make_inputs(cell, T, B, D, H, F64)
        hx = (h0.unsqueeze(0), c0.unsqueeze(0)) if is_lstm(cell) else h0.unsqueeze(0)
        y_nn, _ = module(x, hx)
        y_ref = call_reference(cell, x, h0, c0, nn_weights(module))[0]
        assert_close(y_ref, y_nn, f"{cell} reference y", **OUT_TOL[F64])


# ---- gradcheck --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths,reverse,batch_first",
    [(None, False, False), (None, True, True), ([3, 0, 4], False, True), ([3, 0, 4], True, False)],
    ids=["full", "full-rev-bf", "lengths-bf", "lengths-rev"],
)
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck(cell, lengths, reverse, batch_first):
    T, B, D, H = 4, 3, 3, 2
    lengths = None if lengths is None else torch.tensor(lengths)
    weights = make_weights(cell, D, H, F64, seed=7)
    x, h0, c0 = make_inputs(cell, T, B, D, H, F64, batch_first)

    def fn(x, h0, c0, *weights):
        return tuple(call_op(cell, x, h0, c0, weights, lengths, batch_first, reverse)[:-1])

    assert torch.autograd.gradcheck(fn, (x, h0, c0, *weights), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_without_state_or_bias(cell):
    T, B, D, H = 3, 2, 3, 2
    weights = make_weights(cell, D, H, F64, bias=False, seed=8)
    x, _, _ = make_inputs(cell, T, B, D, H, F64, state=False)

    def fn(x, w_ih, w_hh):
        return tuple(call_op(cell, x, None, None, (w_ih, w_hh, None, None))[:-1])

    assert torch.autograd.gradcheck(fn, (x, weights[0], weights[1]), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_partial_requires_grad():
    """Only some inputs require grad: they get the right gradients, the others none."""
    T, B, D, H = 4, 2, 3, 5
    module = nn_module("lstm", D, H, F64, seed=9)
    w_ih, w_hh, b_ih, b_hh = nn_weights(module)
    x, h0, c0 = make_inputs("lstm", T, B, D, H, F64)
    x_const = x.detach()
    y, h_n, c_n, _ = OPS.lstm(x_const, h0.detach(), c0, w_ih, w_hh.detach(), b_ih, b_hh.detach(), None, False, False)
    y.sum().backward()
    assert x_const.grad is None and w_hh.grad is None
    y_nn, _ = module(x_const, (h0.detach().unsqueeze(0), c0.unsqueeze(0)))
    g_nn = torch.autograd.grad(y_nn.sum(), [c0, w_ih, b_ih])
    assert_close(c0.grad, g_nn[0], "grad c0", **GRAD_TOL[F64])
    assert_close(w_ih.grad, g_nn[1], "grad w_ih", **GRAD_TOL[F64])
    assert_close(b_ih.grad, g_nn[2], "grad b_ih", **GRAD_TOL[F64])


# ---- backward with only some output gradients defined -----------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_backward_op_with_some_grads_none(cell):
    T, B, D, H = 5, 3, 4, 3
    lengths = torch.tensor([5, 2, 0])
    weights = make_weights(cell, D, H, F64, seed=10)
    x, h0, c0 = make_inputs(cell, T, B, D, H, F64)
    outs = call_op(cell, x, h0, c0, weights, lengths)
    saved = outs[-1].detach()
    ref_outs = call_reference(cell, x, h0, c0, weights, lengths)[:-1]
    inputs = grad_inputs(cell, x, h0, c0, weights)
    n_out = 3 if is_lstm(cell) else 2

    torch.manual_seed(11)
    cotangents = [torch.randn_like(o) for o in ref_outs]
    for defined in itertools.product([False, True], repeat=n_out):
        grads = [g if d else None for g, d in zip(cotangents, defined)]
        if is_lstm(cell):
            got = OPS.lstm_backward(x, h0, c0, weights[0], weights[1], saved, lengths, *grads, False, False)
            assert got[-1].shape == (0, H), "grad_w_hr without a projection is (0, H)"
            got = got[:-1]
        else:
            got = OPS.gru_backward(
                x, h0, weights[0], weights[1], saved, lengths, *grads, False, False, reset_after(cell)
            )
        loss = sum((o * g).sum() for o, g in zip(ref_outs, grads) if g is not None)
        if isinstance(loss, int):  # nothing defined: every gradient is zero
            expected = [torch.zeros_like(t) for t in inputs]
        else:
            expected = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
            expected = [torch.zeros_like(t) if e is None else e for t, e in zip(inputs, expected)]
        names = INPUT_NAMES["lstm" if is_lstm(cell) else "gru"]
        check_all(list(got), expected, [f"{n} (defined={defined})" for n in names], GRAD_TOL[F64])


@pytest.mark.parametrize("cell", NN_CELLS)
def test_autograd_with_only_final_state_used(cell):
    """Only h_n in the loss: backward receives no grad_y (None) and must still match nn."""
    T, B, D, H = 6, 2, 3, 4
    module = nn_module(cell, D, H, F32, seed=12)
    weights = nn_weights(module)
    x, h0, c0 = make_inputs(cell, T, B, D, H, F32)
    h_n = call_op(cell, x, h0, c0, weights)[1]
    hx = (h0.unsqueeze(0), c0.unsqueeze(0)) if is_lstm(cell) else h0.unsqueeze(0)
    s_nn = module(x, hx)[1]
    h_nn = s_nn[0] if is_lstm(cell) else s_nn
    inputs = grad_inputs(cell, x, h0, c0, weights)
    check_all(grads_of([h_n], inputs), grads_of([h_nn], inputs), INPUT_NAMES[cell], GRAD_TOL[F32])


# ---- opcheck ----------------------------------------------------------------------------------------------


def _forward_samples(cell):
    T, B, D, H = 4, 3, 3, 5
    samples = []
    for dtype, batch_first, reverse, lengths, state, bias, rg in [
        (F32, False, False, None, True, True, True),
        (F64, True, True, torch.tensor([4, 1, 0]), True, True, True),
        (F32, False, True, torch.tensor([2, 4, 3]), False, False, False),
    ]:
        weights = make_weights(cell, D, H, dtype, bias=bias, requires_grad=rg)
        x, h0, c0 = make_inputs(cell, T, B, D, H, dtype, batch_first, state, requires_grad=rg)
        if is_lstm(cell):
            samples.append((x, h0, c0, *weights, lengths, batch_first, reverse))
        else:
            samples.append((x, h0, *weights, lengths, batch_first, reverse, reset_after(cell)))
    return samples


@pytest.mark.parametrize("cell", CELLS)
def test_opcheck_forward(cell):
    op = OPS.lstm.default if is_lstm(cell) else OPS.gru.default
    for args in _forward_samples(cell):
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("cell", CELLS)
def test_opcheck_backward(cell):
    for i, args in enumerate(_forward_samples(cell)):
        args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
        outs = (OPS.lstm if is_lstm(cell) else OPS.gru)(*args)
        torch.manual_seed(13)
        grads = [torch.randn_like(o) for o in outs[:-1]]
        if i > 0:  # some output gradients undefined: grad_y (sample 1), grad_h_n (sample 2)
            grads[i - 1] = None
        if is_lstm(cell):
            x, h0, c0, w_ih, w_hh, _, _, lengths, batch_first, reverse = args
            bwd = (x, h0, c0, w_ih, w_hh, outs[-1], lengths, *grads, batch_first, reverse)
            torch.library.opcheck(OPS.lstm_backward.default, bwd)
        else:
            x, h0, w_ih, w_hh, _, _, lengths, batch_first, reverse, ra = args
            bwd = (x, h0, w_ih, w_hh, outs[-1], lengths, *grads, batch_first, reverse, ra)
            torch.library.opcheck(OPS.gru_backward.default, bwd)


@pytest.mark.parametrize("cell", CELLS)
def test_compile_fullgraph(cell):
    """torch.compile traces through the fake kernels and the registered autograd (aot_eager keeps it quick)."""
    T, B, D, H = 5, 3, 4, 6
    lengths = torch.tensor([5, 0, 3])
    weights = make_weights(cell, D, H, F32, seed=16)
    x, h0, c0 = make_inputs(cell, T, B, D, H, F32, batch_first=True)

    def loss(x, h0, c0, *weights):
        outs = call_op(cell, x, h0, c0, weights, lengths, True, True)
        return sum(o.tanh().sum() for o in outs[:-1])

    inputs = grad_inputs(cell, x, h0, c0, weights)
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    eager_loss, compiled_loss = loss(x, h0, c0, *weights), compiled(x, h0, c0, *weights)
    assert_close(compiled_loss, eager_loss, "compiled loss")
    eager = torch.autograd.grad(eager_loss, [t for t in inputs if t is not None])
    got = torch.autograd.grad(compiled_loss, [t for t in inputs if t is not None])
    for a, b in zip(got, eager):
        assert_close(a, b, "compiled gradient", rtol=0, atol=0)


# ---- layouts, empty shapes, threads -----------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_strided_inputs_match_contiguous(cell):
    """x and grad_y as views (half of a wider buffer, transposed, broadcast) give the contiguous results."""
    T, B, D, H = 5, 3, 4, 6
    weights = make_weights(cell, D, H, F64, requires_grad=False)
    x, h0, c0 = make_inputs(cell, T, B, D, H, F64, requires_grad=False)
    expected = call_op(cell, x, h0, c0, weights)

    wide = torch.zeros(T, B, 2 * D, dtype=F64)
    wide[..., D:] = x
    views = {
        "half of a (T, B, 2D) buffer": (wide[..., D:], False),
        "batch-first view of time-major memory": (x.transpose(0, 1), True),
        "time-major view of batch-first memory": (x.transpose(0, 1).contiguous().transpose(0, 1), False),
        "last dim strided": (torch.stack([x, x], dim=3)[..., 0], False),
    }
    for what, (xv, bf) in views.items():
        got = call_op(cell, xv, h0, c0, weights, batch_first=bf)
        y = got[0].transpose(0, 1) if bf else got[0]
        assert_close(y, expected[0], f"y with x {what}", rtol=1e-12, atol=1e-12)
        assert_close(got[-1], expected[-1], f"saved with x {what}", rtol=1e-12, atol=1e-12)

    # broadcast x: one sequence repeated B times (stride 0 over b)
    x1 = x[:, :1].expand(T, B, D)
    got = call_op(cell, x1, h0, c0, weights)
    assert_close(got[0], call_op(cell, x1.contiguous(), h0, c0, weights)[0], "y with broadcast x", rtol=0, atol=0)

    # backward: grad_y as half of a wider buffer, and broadcast
    saved = expected[-1]
    torch.manual_seed(14)
    g = torch.randn(T, B, H, dtype=F64)
    g_wide = torch.zeros(T, B, 2 * H, dtype=F64)
    g_wide[..., :H] = g
    g_bcast = torch.randn(1, 1, H, dtype=F64).expand(T, B, H)
    for what, gv in {"half of a (T, B, 2H) buffer": g_wide[..., :H], "broadcast": g_bcast}.items():
        if is_lstm(cell):
            got = OPS.lstm_backward(x, h0, c0, weights[0], weights[1], saved, None, gv, None, None, False, False)
            want = OPS.lstm_backward(
                x, h0, c0, weights[0], weights[1], saved, None, gv.contiguous(), None, None, False, False
            )
        else:
            ra = reset_after(cell)
            got = OPS.gru_backward(x, h0, weights[0], weights[1], saved, None, gv, None, False, False, ra)
            want = OPS.gru_backward(x, h0, weights[0], weights[1], saved, None, gv.contiguous(), None, False, False, ra)
        for a, b, name in zip(got, want, INPUT_NAMES["lstm" if is_lstm(cell) else "gru"]):
            assert_close(a, b, f"{name} with grad_y {what}", rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("cell", CELLS)
def test_empty_time_or_batch(cell, batch_first):
    D, H = 3, 4
    weights = make_weights(cell, D, H, F32, requires_grad=False)
    # T = 0: no step runs, the final state is the initial one (zeros without h0)
    x, h0, c0 = make_inputs(cell, 0, 2, D, H, F32, batch_first, requires_grad=False)
    outs = call_op(cell, x, h0, c0, weights, torch.zeros(2, dtype=torch.int64), batch_first)
    assert outs[0].shape == ((2, 0, H) if batch_first else (0, 2, H))
    assert outs[-1].shape == (0, 2, (6 if is_lstm(cell) else 5) * H)
    assert_close(outs[1], h0.unsqueeze(0), "h_n with T = 0", rtol=0, atol=0)  # (1, B, H) from h0 (B, H)
    if is_lstm(cell):
        assert_close(outs[2], c0.unsqueeze(0), "c_n with T = 0", rtol=0, atol=0)
    outs = call_op(cell, x, None, None, weights, None, batch_first)
    assert torch.count_nonzero(outs[1]) == 0
    # backward with T = 0: grad_h0 = grad_h_n, weight gradients zero
    g = torch.randn(2, H)
    if is_lstm(cell):
        grads = OPS.lstm_backward(x, h0, c0, weights[0], weights[1], outs[-1], None, None, g, None, batch_first, False)
        assert_close(grads[2], torch.zeros(2, H), "grad_c0 with T = 0", rtol=0, atol=0)
    else:
        grads = OPS.gru_backward(x, h0, weights[0], weights[1], outs[-1], None, None, g, batch_first, False, True)
    assert_close(grads[1], g, "grad_h0 with T = 0", rtol=0, atol=0)
    assert grads[0].shape == x.shape and all(torch.count_nonzero(t) == 0 for t in grads[-4:])

    # the fake kernels agree with the real ones on empty shapes too
    if is_lstm(cell):
        torch.library.opcheck(OPS.lstm.default, (x, h0, c0, *weights, None, batch_first, False))
    else:
        torch.library.opcheck(OPS.gru.default, (x, h0, *weights, None, batch_first, False, reset_after(cell)))

    # B = 0
    x, h0, c0 = make_inputs(cell, 5, 0, D, H, F32, batch_first, requires_grad=False)
    outs = call_op(cell, x, h0, c0, weights, None, batch_first)
    assert outs[0].shape == ((0, 5, H) if batch_first else (5, 0, H)) and outs[1].shape == (1, 0, H)
    if is_lstm(cell):
        grads = OPS.lstm_backward(x, h0, c0, weights[0], weights[1], outs[-1], None, None, None, None, batch_first,
                                  False)
    else:
        grads = OPS.gru_backward(x, h0, weights[0], weights[1], outs[-1], None, None, None, batch_first, False, True)
    assert grads[0].shape == x.shape and grads[1].shape == (0, H)
    assert all(torch.count_nonzero(t) == 0 for t in grads[-4:])


def test_zero_length_sequence_keeps_initial_state():
    T, B, D, H = 4, 2, 3, 5
    weights = make_weights("lstm", D, H, F64, requires_grad=False)
    x, h0, c0 = make_inputs("lstm", T, B, D, H, F64, requires_grad=False)
    y, h_n, c_n, saved = OPS.lstm(x, h0, c0, *weights, torch.tensor([0, 4]), False, False)
    assert_close(h_n[0, 0], h0[0], "h_n of a zero-length sequence", rtol=0, atol=0)
    assert_close(c_n[0, 0], c0[0], "c_n of a zero-length sequence", rtol=0, atol=0)
    assert torch.count_nonzero(y[:, 0]) == 0 and torch.count_nonzero(saved[:, 0]) == 0
    assert torch.count_nonzero(y[:, 1]) > 0


@pytest.mark.parametrize("cell", CELLS)
def test_results_do_not_depend_on_thread_count(cell):
    T, B, D, H = 9, 8, 16, 24
    weights = make_weights(cell, D, H, F32, requires_grad=False)
    x, h0, c0 = make_inputs(cell, T, B, D, H, F32, requires_grad=False)
    torch.manual_seed(17)
    grad_y, grad_h_n = torch.randn(T, B, H), torch.randn(B, H)

    def forward_and_backward():
        outs = call_op(cell, x, h0, c0, weights)
        if is_lstm(cell):
            grads = OPS.lstm_backward(x, h0, c0, weights[0], weights[1], outs[-1], None, grad_y, grad_h_n, None,
                                      False, False)
        else:
            grads = OPS.gru_backward(x, h0, weights[0], weights[1], outs[-1], None, grad_y, grad_h_n, False, False,
                                     reset_after(cell))
        return list(outs) + list(grads)

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = forward_and_backward()
        torch.set_num_threads(max(2, before))
        many = forward_and_backward()
    finally:
        torch.set_num_threads(before)
    for i, (a, b) in enumerate(zip(one, many)):
        assert torch.equal(a, b), f"result {i} changed with the thread count: max |diff| {(a - b).abs().max()}"


# ---- the Python wrappers ------------------------------------------------------------------------------------


def test_wrappers_default_arguments():
    args = op_args("gru")
    y, h_n, saved = _ops.gru(args["x"], args["h0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"])
    ref = gru_reference(args["x"], args["h0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"])
    assert_close(y, ref[0], "gru wrapper y")
    args = op_args("lstm")
    y, h_n, c_n, saved = _ops.lstm(
        args["x"], args["h0"], args["c0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"], reverse=True
    )
    ref = lstm_reference(
        args["x"], args["h0"], args["c0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"], reverse=True
    )
    assert_close(y, ref[0], "lstm wrapper y")


# ---- LSTM projection (w_hr, nn.LSTM's proj_size) ------------------------------------------------------------

T_, B_, D_, H_, P_ = 4, 3, 5, 6, 2  # lstm_projection_args' defaults


def _proj_args(dtype=F64):
    return lstm_projection_args(T_, B_, D_, H_, P_, dtype)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_projection_matches_reference_with_saved_and_gradients(reverse, batch_first):
    args = _proj_args()
    args.update(reverse=reverse, batch_first=batch_first)
    if batch_first:
        args["x"] = args["x"].transpose(0, 1).contiguous()
    diff = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr"]
    for k in diff:
        args[k].requires_grad_()
    ours = OPS.lstm(**args)
    theirs = lstm_reference(**args)
    assert ours[3].shape == (T_, B_, 6 * H_ + P_)
    for name, a, b in zip(["y", "h_n", "c_n", "saved"], ours, theirs):
        assert_close(a, b, name, **OUT_TOL[F64])
    g = torch.Generator().manual_seed(3)
    cot = [torch.randn(o.shape, dtype=F64, generator=g) for o in ours[:3]]
    got = torch.autograd.grad(sum((o * c).sum() for o, c in zip(ours[:3], cot)), [args[k] for k in diff])
    want = torch.autograd.grad(sum((o * c).sum() for o, c in zip(theirs[:3], cot)), [args[k] for k in diff])
    for name, a, b in zip(diff, got, want):
        assert_close(a, b, f"grad {name}", **GRAD_TOL[F64])


def test_projection_opcheck_and_gradcheck():
    args = _proj_args()
    torch.library.opcheck(OPS.lstm.default, tuple(args.values())[:-1], {"w_hr": args["w_hr"]})
    diff = ["x", "h0", "c0", "w_hh", "w_hr"]

    def f(*tensors):
        a = dict(args, **dict(zip(diff, tensors)))
        return OPS.lstm(**a)[:3]

    assert torch.autograd.gradcheck(f, tuple(args[k].clone().requires_grad_() for k in diff), eps=1e-6, atol=1e-7)
