"""Inference without saved activations: the ops' need_saved=False, and the modules choosing it by themselves.

need_saved=False must give bit-identical y / h_n / c_n with an empty (0, B, S) saved; differentiating such a call
must raise a clear error; the modules must keep activations exactly when a gradient can flow or return_gates
asks for them, and must give the same results either way (also under torch.compile and inference_mode).
"""

import pytest
import torch

import tsrnn
from tsrnn import _ops, modules

CELLS = ["lstm", "lstm_proj", "gru", "gru_reset_before"]


def _weights(cell, D, H, requires_grad, seed=0):
    g = torch.Generator().manual_seed(seed)
    G = 4 if cell.startswith("lstm") else 3
    R = 3 if cell == "lstm_proj" else H
    shapes = [(G * H, D), (G * H, R), (G * H,), (G * H,)] + ([(R, H)] if cell == "lstm_proj" else [])
    return [(torch.rand(s, generator=g) - 0.5).requires_grad_(requires_grad) for s in shapes]


def _call(cell, x, w, lengths, batch_first, reverse, need_saved):
    if cell.startswith("lstm"):
        w_hr = w[4] if cell == "lstm_proj" else None
        return _ops.lstm(x, None, None, *w[:4], lengths, batch_first, reverse, w_hr=w_hr, need_saved=need_saved)
    return _ops.gru(x, None, *w[:4], lengths, batch_first, reverse, reset_after=cell == "gru", need_saved=need_saved)


@pytest.mark.parametrize("lengths", [None, [5, 0, 3, 5]], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("cell", CELLS)
def test_op_without_saved_is_bit_identical(cell, batch_first, reverse, lengths):
    T, B, D, H = 5, 4, 3, 8
    x = torch.randn((B, T, D) if batch_first else (T, B, D), generator=torch.Generator().manual_seed(1))
    w = _weights(cell, D, H, requires_grad=False)
    lengths = None if lengths is None else torch.tensor(lengths)
    full = _call(cell, x, w, lengths, batch_first, reverse, True)
    lean = _call(cell, x, w, lengths, batch_first, reverse, False)
    for a, b in zip(full[:-1], lean[:-1], strict=True):
        assert torch.equal(a, b)
    S = full[-1].shape[2]
    assert full[-1].shape == (T, B, S)
    assert lean[-1].shape == (0, B, S)


@pytest.mark.parametrize("cell", CELLS)
def test_op_without_saved_refuses_backward(cell):
    x = torch.randn(4, 2, 3, requires_grad=True)
    w = _weights(cell, 3, 8, requires_grad=True)
    y = _call(cell, x, w, None, False, False, False)[0]
    with pytest.raises(RuntimeError, match="need_saved=False"):
        y.sum().backward()


@pytest.mark.parametrize("cell", CELLS)
def test_opcheck_without_saved(cell):
    T, B, D, H = 4, 3, 3, 5
    w = _weights(cell, D, H, requires_grad=False)
    x = torch.randn(T, B, D)
    if cell.startswith("lstm"):
        w_hr = w[4] if cell == "lstm_proj" else None
        args = (x, None, None, *w[:4], torch.tensor([4, 0, 2]), False, True, w_hr, False)
        torch.library.opcheck(torch.ops.tsrnn.lstm.default, args)
    else:
        args = (x, None, *w[:4], None, True, False, cell == "gru", False)
        torch.library.opcheck(torch.ops.tsrnn.gru.default, args)


def _module(cell, D, H):
    torch.manual_seed(0)
    if cell.startswith("lstm"):
        return tsrnn.LSTM(D, H, proj_size=3 if cell == "lstm_proj" else 0, batch_first=True)
    return tsrnn.GRU(D, H, batch_first=True, reset_after=cell == "gru")


class _Spy:
    """Records the need_saved of every op call the modules make (through the op handles of tsrnn.modules, the
    OpOverloads and their C++ entries, which they always call with need_saved, last)."""

    def __init__(self, monkeypatch):
        self.seen = []
        for name in ("_LSTM_OP", "_GRU_OP", "_LSTM_RAW", "_GRU_RAW"):
            real = getattr(modules, name)

            def op_spy(*args, _real=real):
                self.seen.append(args[-1])
                return _real(*args)

            monkeypatch.setattr(modules, name, op_spy)


@pytest.mark.parametrize("cell", CELLS)
def test_module_keeps_activations_only_when_needed(cell, monkeypatch):
    m = _module(cell, 3, 8)
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        want = m(x)
    spy = _Spy(monkeypatch)
    with torch.no_grad():
        got = m(x)
    with torch.inference_mode():
        got_inf = m(x)
    for a, b, c in zip(torch.utils._pytree.tree_leaves(want), torch.utils._pytree.tree_leaves(got),
                       torch.utils._pytree.tree_leaves(got_inf), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert spy.seen == [False, False]

    spy.seen.clear()
    with torch.no_grad():
        gates = m(x, return_gates=True)[2]
    assert spy.seen == [True] and gates[0].shape[0] == 5

    # grad mode, parameters frozen, input without grad: nothing to differentiate, no activations kept
    spy.seen.clear()
    m.requires_grad_(False)
    out = m(x)[0]
    assert spy.seen == [False] and not out.requires_grad
    # ... but an input that requires grad needs them, and its gradient is nn.*'s
    xg = x.clone().requires_grad_(True)
    m(xg)[0].sum().backward()
    assert spy.seen[-1] is True and xg.grad is not None
    m.requires_grad_(True)
    spy.seen.clear()
    m(x)[0].sum().backward()
    assert spy.seen == [True] and all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_module_stack_without_saved_matches_nn(cell):
    """2 layers, bidirectional, no grad: the lean path gives nn.*'s results."""
    torch.manual_seed(0)
    ours = (tsrnn.LSTM if cell == "lstm" else tsrnn.GRU)(3, 6, num_layers=2, bidirectional=True)
    theirs = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(3, 6, num_layers=2, bidirectional=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(7, 4, 3)
    with torch.no_grad():
        for a, b in zip(torch.utils._pytree.tree_leaves(ours(x)), torch.utils._pytree.tree_leaves(theirs(x)),
                        strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_compiled_module_without_grad(cell):
    m = _module(cell, 3, 8)
    x = torch.randn(2, 5, 3)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        want = m(x)
        got = compiled(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(want), torch.utils._pytree.tree_leaves(got), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_weights_changed_between_calls_are_used(cell):
    """The CPU forward keeps the weights it packed for the next call on the thread (tsrnn_desc.workspace_kept);
    weights changed in place between calls (an optimizer step, load_state_dict, one element edited) must be the
    ones used: every call bit-identical to a fresh module's with the same weights, here after other modules' calls
    in between too."""
    m = _module(cell, 3, 8)
    other = _module(cell, 3, 8)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    x = torch.randn(1, 4, 3)

    def fresh_copy():
        c = _module(cell, 3, 8)
        c.load_state_dict(m.state_dict())
        return c

    with torch.inference_mode():
        before = m(x)
        for name, p in m.named_parameters():
            for at in (0, p.numel() - 1):
                p.view(-1)[at] += 0.25
                got = m(x)
                other(x)
                want = fresh_copy()(x)
                again = m(x)
                for a, b, c, d in zip(*(torch.utils._pytree.tree_leaves(o) for o in (got, want, again, before)),
                                      strict=True):
                    assert torch.equal(a, b) and torch.equal(c, b), f"{name}[{at}]"
                assert not all(torch.equal(a, d) for a, d in zip(torch.utils._pytree.tree_leaves(got),
                                                                torch.utils._pytree.tree_leaves(before))), name
                before = got
