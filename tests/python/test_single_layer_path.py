"""The modules' single-layer path: one layer, one direction, a 3-D tensor input, no return_gates, and no hx or one
of exactly nn.*'s shapes.

forward then calls the op directly instead of the generic _run (argument handling, layer loop, output packaging),
which halves the module's Python time per call at B = 1. It must be exactly the generic path: bit-identical
outputs and gradients, the same errors, and every other call still on the generic path.
"""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import tsrnn
from tsrnn import modules

CELLS = ["lstm", "lstm_proj", "gru", "gru_reset_before"]


def _module(cell, D, H, **kw):
    torch.manual_seed(0)
    if cell.startswith("lstm"):
        return tsrnn.LSTM(D, H, proj_size=3 if cell == "lstm_proj" else 0, **kw)
    return tsrnn.GRU(D, H, reset_after=cell == "gru", **kw)


def _leaves(out):
    return torch.utils._pytree.tree_leaves(out)


def _generic(monkeypatch):
    """Sends every call through the generic path."""
    monkeypatch.setattr(modules._TsrnnRNNMixin, "_single_layer", lambda self, *a: None)


def _count_generic(monkeypatch):
    calls = []
    real = modules._TsrnnRNNMixin._run

    def run(self, *args):
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(modules._TsrnnRNNMixin, "_run", run)
    return calls


def _hx(cell, B, dtype, gen):
    """Initial states of nn.*'s shapes for one layer: (1, B, R) [and (1, B, H)], H = 8, P = 3."""
    h = torch.randn(1, B, 3 if cell == "lstm_proj" else 8, dtype=dtype, generator=gen)
    return (h, torch.randn(1, B, 8, dtype=dtype, generator=gen)) if cell.startswith("lstm") else h


@pytest.mark.parametrize("with_hx", [False, True], ids=["nohx", "hx"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("cell", CELLS)
def test_single_layer_path_is_the_generic_path(cell, batch_first, bias, dtype, with_hx, monkeypatch):
    """Outputs, and in grad mode every gradient (the states' too), bit-identical to the generic path's."""
    m = _module(cell, 3, 8, batch_first=batch_first, bias=bias).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 3, dtype=dtype, generator=gen)
    hx = _hx(cell, 2 if batch_first else 5, dtype, gen) if with_hx else None

    def run():
        with torch.no_grad():
            lean = m(x, hx)
        xg = x.clone().requires_grad_(True)
        states = [] if hx is None else [s.clone().requires_grad_(True) for s in _leaves(hx)]
        hxg = None if hx is None else states[0] if len(states) == 1 else tuple(states)
        m.zero_grad(set_to_none=True)
        out = m(xg, hxg)
        sum(o.sum() * (i + 1) for i, o in enumerate(_leaves(out))).backward()
        return _leaves(lean) + _leaves(out) + [xg.grad] + [s.grad for s in states] + [p.grad for p in m.parameters()]

    calls = _count_generic(monkeypatch)
    fast = run()
    assert calls == [], "the single-layer call should not take the generic path"
    _generic(monkeypatch)
    slow = run()
    assert len(calls) == 2
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "lstm_proj", "gru"])  # nn.GRU has no reset_after=False form
def test_single_layer_path_matches_nn(cell):
    ours = _module(cell, 4, 6)
    torch.manual_seed(0)
    if cell.startswith("lstm"):
        theirs = nn.LSTM(4, 6, proj_size=3 if cell == "lstm_proj" else 0)
    else:
        theirs = nn.GRU(4, 6)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(7, 3, 4)
    with torch.no_grad():
        for a, b in zip(_leaves(ours(x)), _leaves(theirs(x)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _other_calls(cell):
    """Calls that must take the generic path: (name, module kwargs, args, kwargs)."""
    x = torch.randn(5, 2, 3)
    h = torch.zeros(1, 2, 3 if cell == "lstm_proj" else 8)
    hx = (h, torch.zeros(1, 2, 8)) if cell.startswith("lstm") else h
    packed = pack_padded_sequence(x, torch.tensor([5, 3]))
    calls = [
        ("unbatched", {}, (x[:, 0],), {}),
        ("unbatched with hx", {}, (x[:, 0], tuple(s[:, 0] for s in hx) if isinstance(hx, tuple) else h[:, 0]), {}),
        ("return_gates", {}, (x,), {"return_gates": True}),
        ("two layers", {"num_layers": 2}, (x,), {}),
        ("bidirectional", {"bidirectional": True}, (x,), {}),
        ("packed", {}, (packed,), {}),
        ("two layers with hx", {"num_layers": 2}, (x, _hx2(hx)), {}),
    ]
    if isinstance(hx, tuple):
        calls.append(("hx a list", {}, (x, list(hx)), {}))
    return calls


def _hx2(hx):
    """hx for two layers."""
    return tuple(torch.cat([s, s]) for s in hx) if isinstance(hx, tuple) else torch.cat([hx, hx])


@pytest.mark.parametrize("cell", CELLS)
def test_other_calls_take_the_generic_path(cell, monkeypatch):
    calls = _count_generic(monkeypatch)
    for name, kw, args, kwargs in _other_calls(cell):
        m = _module(cell, 3, 8, **kw)
        before = len(calls)
        with torch.no_grad():
            m(*args, **kwargs)
        assert len(calls) == before + 1, name


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bad_inputs_get_nn_messages(cell):
    """Input checks the single-layer path skips are the generic path's (nn.*'s own messages)."""
    ours = _module(cell, 3, 8)
    theirs = (nn.LSTM if cell == "lstm" else nn.GRU)(3, 8)
    for bad in (torch.randn(5, 2, 4), torch.randn(5, 2, 3, dtype=torch.float64), torch.randn(5, 2, 3, 1)):
        with pytest.raises(Exception) as want:
            theirs(bad)
        with pytest.raises(type(want.value)) as got:
            ours(bad)
        assert str(got.value) == str(want.value)
    with pytest.raises(TypeError, match="Tensor or PackedSequence"):
        ours([1.0, 2.0])
    # states nn.* refuses: the wrong batch, hidden size or rank
    x = torch.randn(5, 2, 3)
    for bad in (torch.zeros(1, 3, 8), torch.zeros(1, 2, 7), torch.zeros(2, 8)):
        hx = (bad, torch.zeros(1, 2, 8)) if cell == "lstm" else bad
        with pytest.raises(Exception) as want:
            theirs(x, hx)
        with pytest.raises(type(want.value)) as got:
            ours(x, hx)
        assert str(got.value) == str(want.value)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_single_layer_path_compiles_with_grad(cell):
    m = _module(cell, 3, 8, batch_first=True)
    x = torch.randn(2, 5, 3)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    want = m(x)[0]
    want.sum().backward()
    want_grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad(set_to_none=True)
    got = compiled(x)[0]
    got.sum().backward()
    assert torch.equal(want, got)
    for a, p in zip(want_grads, m.parameters(), strict=True):
        assert torch.equal(a, p.grad)
