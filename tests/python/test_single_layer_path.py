"""The modules' single-layer path: one layer, one direction, a 3-D tensor input, no hx, no return_gates.

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("cell", CELLS)
def test_single_layer_path_is_the_generic_path(cell, batch_first, bias, dtype, monkeypatch):
    """Outputs, and in grad mode every gradient, bit-identical to the generic path's."""
    m = _module(cell, 3, 8, batch_first=batch_first, bias=bias).to(dtype)
    x = torch.randn(2, 5, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))

    def run():
        with torch.no_grad():
            lean = m(x)
        xg = x.clone().requires_grad_(True)
        m.zero_grad(set_to_none=True)
        out = m(xg)
        sum(o.sum() * (i + 1) for i, o in enumerate(_leaves(out))).backward()
        return _leaves(lean) + _leaves(out) + [xg.grad] + [p.grad for p in m.parameters()]

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
    return [
        ("hx", {}, (x, hx), {}),
        ("unbatched", {}, (x[:, 0],), {}),
        ("return_gates", {}, (x,), {"return_gates": True}),
        ("two layers", {"num_layers": 2}, (x,), {}),
        ("bidirectional", {"bidirectional": True}, (x,), {}),
        ("packed", {}, (packed,), {}),
    ]


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
