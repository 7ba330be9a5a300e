"""torch.ops.tsrnn.* (one layer, one direction) against nn.LSTM / nn.GRU, the pure-torch reference, gradcheck,
opcheck, and every bad argument the shim must reject with a message naming it.

Tolerances (shared/DESIGN.md): fp32 outputs within assert_close defaults, fp32 gradients rtol 1e-4 / atol 1e-5,
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
from tsrnn.reference import gru_reference, lstm_reference

OPS = torch.ops.tsrnn
F32, F64 = torch.float32, torch.float64
OUT_TOL = {F32: {}, F64: dict(rtol=1e-10, atol=1e-10)}
GRAD_TOL = {F32: dict(rtol=1e-4, atol=1e-5), F64: dict(rtol=1e-10, atol=1e-10)}
# the op variants: LSTM, GRU (reset_after=True, PyTorch's form), GRU with reset_after=False (nn has no twin)
CELLS = ["lstm", "gru", "gru_reset_before"]
NN_CELLS = ["lstm", "gru"]


# ---- helpers ----------------------------------------------------------------------------------------------


def check_close(actual, expected, what, **tol):
    """torch.testing.assert_close that names the worst element on failure."""
    try:
        torch.testing.assert_close(actual, expected, **tol)
    except AssertionError as e:
        msg = f"{what}: {e}"
        if actual.shape == expected.shape and actual.numel() > 0:
            diff = (actual.detach() - expected.detach()).abs()
            diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
            idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
            msg = (
                f"{what}: worst element at {idx}: got {actual[idx].item()!r}, expected {expected[idx].item()!r} "
                f"(|diff| = {diff[idx].item():.3e})\n{e}"
            )
        raise AssertionError(msg) from None


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
        check_close(a, b, name, **tol)


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
    theirs = [y_nn, s_nn[0][0], s_nn[1][0]] if is_lstm(cell) else [y_nn, s_nn[0]]
    ours = list(call_op(cell, x, h0, c0, weights, batch_first=batch_first)[:-1])
    check_all(ours, theirs, ["y", "h_n", "c_n"][: len(ours)], OUT_TOL[dtype])

    inputs = grad_inputs(cell, x, h0, c0, weights)
    check_all(grads_of(ours, inputs), grads_of(theirs, inputs), INPUT_NAMES[cell], GRAD_TOL[dtype])


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
    theirs = [y_nn.flip(tdim), s_nn[0][0], s_nn[1][0]] if is_lstm(cell) else [y_nn.flip(tdim), s_nn[0]]
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
    theirs = [y_nn, s_nn[0][-1], s_nn[1][-1]] if is_lstm(cell) else [y_nn, s_nn[-1]]

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
        check_close(y_ref, y_nn, f"{cell} reference y", **OUT_TOL[F64])


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
    check_close(c0.grad, g_nn[0], "grad c0", **GRAD_TOL[F64])
    check_close(w_ih.grad, g_nn[1], "grad w_ih", **GRAD_TOL[F64])
    check_close(b_ih.grad, g_nn[2], "grad b_ih", **GRAD_TOL[F64])


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
    h_nn = s_nn[0][0] if is_lstm(cell) else s_nn[0]
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
    check_close(compiled_loss, eager_loss, "compiled loss")
    eager = torch.autograd.grad(eager_loss, [t for t in inputs if t is not None])
    got = torch.autograd.grad(compiled_loss, [t for t in inputs if t is not None])
    for a, b in zip(got, eager):
        check_close(a, b, "compiled gradient", rtol=0, atol=0)


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
        check_close(y, expected[0], f"y with x {what}", rtol=1e-12, atol=1e-12)
        check_close(got[-1], expected[-1], f"saved with x {what}", rtol=1e-12, atol=1e-12)

    # broadcast x: one sequence repeated B times (stride 0 over b)
    x1 = x[:, :1].expand(T, B, D)
    got = call_op(cell, x1, h0, c0, weights)
    check_close(got[0], call_op(cell, x1.contiguous(), h0, c0, weights)[0], "y with broadcast x", rtol=0, atol=0)

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
            check_close(a, b, f"{name} with grad_y {what}", rtol=1e-12, atol=1e-12)


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
    check_close(outs[1], h0, "h_n with T = 0", rtol=0, atol=0)
    if is_lstm(cell):
        check_close(outs[2], c0, "c_n with T = 0", rtol=0, atol=0)
    outs = call_op(cell, x, None, None, weights, None, batch_first)
    assert torch.count_nonzero(outs[1]) == 0
    # backward with T = 0: grad_h0 = grad_h_n, weight gradients zero
    g = torch.randn(2, H)
    if is_lstm(cell):
        grads = OPS.lstm_backward(x, h0, c0, weights[0], weights[1], outs[-1], None, None, g, None, batch_first, False)
        check_close(grads[2], torch.zeros(2, H), "grad_c0 with T = 0", rtol=0, atol=0)
    else:
        grads = OPS.gru_backward(x, h0, weights[0], weights[1], outs[-1], None, None, g, batch_first, False, True)
    check_close(grads[1], g, "grad_h0 with T = 0", rtol=0, atol=0)
    assert grads[0].shape == x.shape and all(torch.count_nonzero(t) == 0 for t in grads[-4:])

    # the fake kernels agree with the real ones on empty shapes too
    if is_lstm(cell):
        torch.library.opcheck(OPS.lstm.default, (x, h0, c0, *weights, None, batch_first, False))
    else:
        torch.library.opcheck(OPS.gru.default, (x, h0, *weights, None, batch_first, False, reset_after(cell)))

    # B = 0
    x, h0, c0 = make_inputs(cell, 5, 0, D, H, F32, batch_first, requires_grad=False)
    outs = call_op(cell, x, h0, c0, weights, None, batch_first)
    assert outs[0].shape == ((0, 5, H) if batch_first else (5, 0, H)) and outs[1].shape == (0, H)
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
    check_close(h_n[0], h0[0], "h_n of a zero-length sequence", rtol=0, atol=0)
    check_close(c_n[0], c0[0], "c_n of a zero-length sequence", rtol=0, atol=0)
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


# ---- bad arguments ----------------------------------------------------------------------------------------

T_, B_, D_, H_ = 4, 3, 5, 6


def _valid(cell):
    """Valid keyword arguments of the forward op (and, with 'saved', of the backward op)."""
    weights = make_weights(cell, D_, H_, F32, requires_grad=False)
    x, h0, c0 = make_inputs(cell, T_, B_, D_, H_, F32, requires_grad=False)
    args = dict(x=x, h0=h0, w_ih=weights[0], w_hh=weights[1], b_ih=weights[2], b_hh=weights[3])
    args.update(lengths=torch.tensor([4, 0, 2]), batch_first=False, reverse=False)
    if is_lstm(cell):
        args["c0"] = c0
    else:
        args["reset_after"] = True
    return args


def _fwd(cell, args):
    if is_lstm(cell):
        keys = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "lengths", "batch_first", "reverse"]
        return OPS.lstm(*[args[k] for k in keys])
    keys = ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "lengths", "batch_first", "reverse", "reset_after"]
    return OPS.gru(*[args[k] for k in keys])


def _bwd(cell, args):
    if is_lstm(cell):
        keys = ["x", "h0", "c0", "w_ih", "w_hh", "saved", "lengths", "grad_y", "grad_h_n", "grad_c_n"]
        return OPS.lstm_backward(*[args[k] for k in keys], args["batch_first"], args["reverse"])
    keys = ["x", "h0", "w_ih", "w_hh", "saved", "lengths", "grad_y", "grad_h_n"]
    return OPS.gru_backward(*[args[k] for k in keys], args["batch_first"], args["reverse"], args["reset_after"])


G4, G3 = 4 * H_, 3 * H_
# (cells, description, changes to the valid arguments, argument the message must name, expected text)
BAD_FORWARD = [
    ("all", "x int32", lambda a: dict(x=a["x"].to(torch.int32)), "x", "float32 or float64"),
    ("all", "x int64", lambda a: dict(x=a["x"].to(torch.int64)), "x", "float32 or float64"),
    ("all", "x bool", lambda a: dict(x=a["x"] > 0), "x", "float32 or float64"),
    ("all", "x float16", lambda a: dict(x=a["x"].half()), "x", "float32 or float64"),
    ("all", "w_ih float64", lambda a: dict(w_ih=a["w_ih"].double()), "w_ih", "same dtype as x"),
    ("all", "w_hh float64", lambda a: dict(w_hh=a["w_hh"].double()), "w_hh", "same dtype as x"),
    ("all", "h0 float64", lambda a: dict(h0=a["h0"].double()), "h0", "same dtype as x"),
    ("lstm", "c0 int32", lambda a: dict(c0=a["c0"].int()), "c0", "same dtype as x"),
    ("all", "b_hh float64", lambda a: dict(b_hh=a["b_hh"].double()), "b_hh", "same dtype as x"),
    ("all", "x 2-D", lambda a: dict(x=a["x"][0]), "x", "3-D"),
    ("all", "x 4-D", lambda a: dict(x=a["x"].unsqueeze(0)), "x", "3-D"),
    ("all", "x without features", lambda a: dict(x=a["x"][..., :0]), "x", "D >= 1"),
    ("all", "w_ih 1-D", lambda a: dict(w_ih=a["w_ih"].flatten()), "w_ih", "2-D"),
    ("all", "w_hh 3-D", lambda a: dict(w_hh=a["w_hh"].unsqueeze(0)), "w_hh", "2-D"),
    ("all", "D mismatch", lambda a: dict(w_ih=torch.zeros(a["w_ih"].shape[0], D_ + 1)), "w_ih", r"\*H, D\)"),
    ("all", "w_ih rows != G*H", lambda a: dict(w_ih=torch.zeros(a["w_ih"].shape[0] + 1, D_)), "w_ih", r"\*H, D\)"),
    ("all", "H mismatch", lambda a: dict(w_hh=torch.zeros(a["w_hh"].shape[0], H_ + 1)), "w_hh", r"\*H, H\)"),
    ("lstm", "GRU weights", lambda a: dict(w_hh=torch.zeros(G3, H_)), "w_hh", r"4\*H, H"),
    ("gru", "LSTM weights", lambda a: dict(w_hh=torch.zeros(G4, H_)), "w_hh", r"3\*H, H"),
    ("all", "w_hh with H = 0", lambda a: dict(w_hh=torch.zeros(0, 0)), "w_hh", "H >= 1"),
    ("all", "h0 (B+1, H)", lambda a: dict(h0=torch.zeros(B_ + 1, H_)), "h0", r"\(B, H\) = \(3, 6\)"),
    ("all", "h0 (B, H+1)", lambda a: dict(h0=torch.zeros(B_, H_ + 1)), "h0", r"\(B, H\)"),
    ("all", "h0 (1, B, H)", lambda a: dict(h0=torch.zeros(1, B_, H_)), "h0", "3-D tensor"),
    ("lstm", "c0 (B, H-1)", lambda a: dict(c0=torch.zeros(B_, H_ - 1)), "c0", r"\(B, H\)"),
    ("all", "b_ih too long", lambda a: dict(b_ih=torch.zeros(a["b_ih"].shape[0] + 1)), "b_ih", r"\*H,\)"),
    ("all", "b_hh 2-D", lambda a: dict(b_hh=a["b_hh"].unsqueeze(0)), "b_hh", r"\*H,\)"),
    ("all", "lengths > T", lambda a: dict(lengths=torch.tensor([4, 5, 0])), "lengths", r"lengths\[1\] = 5"),
    ("all", "lengths < 0", lambda a: dict(lengths=torch.tensor([4, -1, 0])), "lengths", r"\[0, T\] = \[0, 4\]"),
    ("all", "lengths int32", lambda a: dict(lengths=a["lengths"].int()), "lengths", "int64"),
    ("all", "lengths float", lambda a: dict(lengths=a["lengths"].float()), "lengths", "int64"),
    ("all", "lengths (B+1,)", lambda a: dict(lengths=torch.tensor([1, 1, 1, 1])), "lengths", r"\(B,\) = \(3,\)"),
    ("all", "lengths (B, 1)", lambda a: dict(lengths=a["lengths"].unsqueeze(1)), "lengths", r"\(B,\)"),
    ("all", "batch_first mismatch", lambda a: dict(batch_first=True), "h0", r"\(B, H\) = \(4, 6\)"),
    ("all", "h0 on meta", lambda a: dict(h0=a["h0"].to("meta")), "h0", "device"),
    ("all", "w_hh on meta", lambda a: dict(w_hh=a["w_hh"].to("meta")), "w_hh", "device"),
]


def _cells_of(which):
    return CELLS if which == "all" else (["lstm"] if which == "lstm" else ["gru", "gru_reset_before"])


def _cases(table):
    for which, what, change, arg, text in table:
        for cell in _cells_of(which):
            yield pytest.param(cell, change, arg, text, id=f"{cell}-{what}")


def _expect_error(fn, op, arg, text):
    with pytest.raises(RuntimeError) as info:
        fn()
    msg = str(info.value)
    assert f"'{arg}'" in msg, f"the message does not name argument {arg!r}: {msg}"
    assert f"tsrnn::{op}" in msg, f"the message does not name the op: {msg}"
    assert re.search(text, msg), f"expected {text!r} in: {msg}"


@pytest.mark.parametrize("cell,change,arg,text", list(_cases(BAD_FORWARD)))
def test_bad_forward_arguments(cell, change, arg, text):
    args = _valid(cell)
    _fwd(cell, args)  # the valid call works
    args.update(change(args))
    _expect_error(lambda: _fwd(cell, args), "lstm" if is_lstm(cell) else "gru", arg, text)


def _valid_backward(cell):
    args = _valid(cell)
    outs = _fwd(cell, args)
    torch.manual_seed(15)
    args.update(saved=outs[-1], grad_y=torch.randn_like(outs[0]), grad_h_n=torch.randn_like(outs[1]))
    if is_lstm(cell):
        args["grad_c_n"] = torch.randn_like(outs[2])
    return args


BAD_BACKWARD = [
    ("lstm", "saved (T, B, 5H)", lambda a: dict(saved=torch.zeros(T_, B_, 5 * H_)), "saved", r"6\*H\) = \(4, 3, 36\)"),
    ("gru", "saved (T, B, 6H)", lambda a: dict(saved=torch.zeros(T_, B_, 6 * H_)), "saved", r"5\*H\) = \(4, 3, 30\)"),
    ("all", "saved batch-first", lambda a: dict(saved=a["saved"].transpose(0, 1)), "saved", r"\(T, B, "),
    ("all", "saved float64", lambda a: dict(saved=a["saved"].double()), "saved", "same dtype as x"),
    ("all", "saved 2-D", lambda a: dict(saved=a["saved"][0]), "saved", "2-D tensor"),
    ("all", "grad_y (T, B, H+1)", lambda a: dict(grad_y=torch.zeros(T_, B_, H_ + 1)), "grad_y", r"\(T, B, H\)"),
    ("all", "grad_y batch-first", lambda a: dict(grad_y=torch.zeros(B_, T_, H_)), "grad_y", r"\(T, B, H\)"),
    ("all", "grad_y float64", lambda a: dict(grad_y=a["grad_y"].double()), "grad_y", "same dtype"),
    ("all", "grad_h_n (B+1, H)", lambda a: dict(grad_h_n=torch.zeros(B_ + 1, H_)), "grad_h_n", r"\(B, H\)"),
    ("lstm", "grad_c_n (H,)", lambda a: dict(grad_c_n=torch.zeros(H_)), "grad_c_n", r"\(B, H\)"),
    ("all", "x int32", lambda a: dict(x=a["x"].int()), "x", "float32 or float64"),
    ("all", "h0 wrong shape", lambda a: dict(h0=torch.zeros(B_, 1)), "h0", r"\(B, H\)"),
    ("all", "D mismatch", lambda a: dict(w_ih=torch.zeros(a["w_ih"].shape[0], 2)), "w_ih", r"\*H, D\)"),
    ("all", "lengths > T", lambda a: dict(lengths=torch.tensor([9, 0, 0])), "lengths", r"\[0, T\]"),
    ("all", "lengths int32", lambda a: dict(lengths=a["lengths"].int()), "lengths", "int64"),
    ("all", "saved on meta", lambda a: dict(saved=a["saved"].to("meta")), "saved", "device"),
]


@pytest.mark.parametrize("cell,change,arg,text", list(_cases(BAD_BACKWARD)))
def test_bad_backward_arguments(cell, change, arg, text):
    args = _valid_backward(cell)
    _bwd(cell, args)  # the valid call works
    args.update(change(args))
    _expect_error(lambda: _bwd(cell, args), "lstm_backward" if is_lstm(cell) else "gru_backward", arg, text)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_kernel_rejects_cuda_state():
    args = _valid("lstm")
    args["h0"] = args["h0"].cuda()
    with pytest.raises(RuntimeError):  # the CPU kernel names h0; without a CUDA kernel the dispatcher refuses
        _fwd("lstm", args)


def test_wrappers_default_arguments():
    args = _valid("gru")
    y, h_n, saved = _ops.gru(args["x"], args["h0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"])
    ref = gru_reference(args["x"], args["h0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"])
    check_close(y, ref[0], "gru wrapper y")
    args = _valid("lstm")
    y, h_n, c_n, saved = _ops.lstm(
        args["x"], args["h0"], args["c0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"], reverse=True
    )
    ref = lstm_reference(
        args["x"], args["h0"], args["c0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"], reverse=True
    )
    check_close(y, ref[0], "lstm wrapper y")


# ---- LSTM projection (w_hr, nn.LSTM's proj_size) ------------------------------------------------------------

P_ = 2


def _proj_args(dtype=F64, seed=20):
    """A valid projected LSTM call: w_hh (4H, P), h0 (B, P), w_hr (P, H); lengths with a 0."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, dtype=dtype, generator=g)  # noqa: E731
    return dict(
        x=r(T_, B_, D_), h0=r(B_, P_), c0=r(B_, H_), w_ih=r(4 * H_, D_) / 3, w_hh=r(4 * H_, P_) / 3,
        b_ih=r(4 * H_) / 3, b_hh=r(4 * H_) / 3, lengths=torch.tensor([4, 0, 2]), batch_first=False, reverse=False,
        w_hr=r(P_, H_) / 3,
    )


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
        check_close(a, b, name, **OUT_TOL[F64])
    g = torch.Generator().manual_seed(3)
    cot = [torch.randn(o.shape, dtype=F64, generator=g) for o in ours[:3]]
    got = torch.autograd.grad(sum((o * c).sum() for o, c in zip(ours[:3], cot)), [args[k] for k in diff])
    want = torch.autograd.grad(sum((o * c).sum() for o, c in zip(theirs[:3], cot)), [args[k] for k in diff])
    for name, a, b in zip(diff, got, want):
        check_close(a, b, f"grad {name}", **GRAD_TOL[F64])


def test_projection_opcheck_and_gradcheck():
    args = _proj_args()
    torch.library.opcheck(OPS.lstm.default, tuple(args.values())[:-1], {"w_hr": args["w_hr"]})
    diff = ["x", "h0", "c0", "w_hh", "w_hr"]

    def f(*tensors):
        a = dict(args, **dict(zip(diff, tensors)))
        return OPS.lstm(**a)[:3]

    assert torch.autograd.gradcheck(f, tuple(args[k].clone().requires_grad_() for k in diff), eps=1e-6, atol=1e-7)


BAD_PROJECTION = [
    ("w_hr with P = H", dict(w_hr=torch.zeros(H_, H_), w_hh=torch.zeros(4 * H_, H_)), "w_hr", "1 <= P < H"),
    ("w_hr 1-D", dict(w_hr=torch.zeros(P_ * H_)), "w_hr", "2-D"),
    ("w_hr columns != H", dict(w_hr=torch.zeros(P_, H_ + 1)), "w_hr", r"\(P, H\)"),
    ("w_hr float64", dict(w_hr=torch.zeros(P_, H_, dtype=F64)), "w_hr", "same dtype as x"),
    ("w_hh (4H, H) with w_hr", dict(w_hh=torch.zeros(4 * H_, H_)), "w_hh", r"4\*H, P"),
    ("h0 (B, H) with w_hr", dict(h0=torch.zeros(B_, H_)), "h0", r"\(B, P\)"),
    ("c0 (B, P) with w_hr", dict(c0=torch.zeros(B_, P_)), "c0", r"\(B, H\)"),
]


@pytest.mark.parametrize("change,arg,text", [pytest.param(*c[1:], id=c[0]) for c in BAD_PROJECTION])
def test_bad_projection_arguments(change, arg, text):
    args = _proj_args(F32)
    OPS.lstm(**args)  # the valid call works
    args.update(change)
    _expect_error(lambda: OPS.lstm(**args), "lstm", arg, text)


def test_projection_backward_checks_grad_shapes():
    args = _proj_args(F32)
    y, h_n, c_n, saved = OPS.lstm(**args)
    bwd = {k: args[k] for k in ["x", "h0", "c0", "w_ih", "w_hh", "lengths", "batch_first", "reverse", "w_hr"]}
    grads = OPS.lstm_backward(**bwd, saved=saved, grad_y=torch.ones_like(y), grad_h_n=None, grad_c_n=None)
    assert grads[-1].shape == (P_, H_) and grads[4].shape == (4 * H_, P_) and grads[1].shape == (B_, P_)
    _expect_error(
        lambda: OPS.lstm_backward(**bwd, saved=saved[..., :-1], grad_y=None, grad_h_n=None, grad_c_n=None),
        "lstm_backward", "saved", r"6\*H \+ P",
    )
    _expect_error(
        lambda: OPS.lstm_backward(**bwd, saved=saved, grad_y=torch.ones(T_, B_, H_), grad_h_n=None, grad_c_n=None),
        "lstm_backward", "grad_y", r"\(T, B, P\)",
    )
