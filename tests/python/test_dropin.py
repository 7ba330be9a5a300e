"""The whole nn.LSTM / nn.GRU interface: every combination of the constructor's switches and the input kinds,
outputs, final states and every gradient against nn.* with identical weights."""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import tsrnn
import tsrnn.app
from rnn_testing import TOL, assert_close

T, B, D, H, P = 5, 4, 3, 4, 2
LENGTHS = {"packed_sorted": [5, 5, 3, 1], "packed_unsorted": [3, 5, 1, 5]}
KINDS = ["batched", "unbatched", "packed_sorted", "packed_unsorted"]


def _grid():
    for cell, layers, bias, batch_first, bidirectional, proj, with_hx, kind, dtype in itertools.product(
        ["lstm", "gru"], [1, 2, 3], [True, False], [False, True], [False, True], [0, P], [False, True], KINDS,
        [torch.float32, torch.float64],
    ):
        if proj and cell != "lstm":
            continue  # proj_size is an LSTM argument (nn.GRU refuses it; test_modules checks that we do too)
        yield pytest.param(cell, layers, bias, batch_first, bidirectional, proj, with_hx, kind, dtype,
                           id=f"{cell}-L{layers}-bias{int(bias)}-bf{int(batch_first)}-bi{int(bidirectional)}"
                              f"-proj{proj}-hx{int(with_hx)}-{kind}-{str(dtype)[6:]}")


def make_twins(cell, dtype, **kwargs):
    ours_cls, theirs_cls = (tsrnn.LSTM, nn.LSTM) if cell == "lstm" else (tsrnn.GRU, nn.GRU)
    torch.manual_seed(0)
    theirs = theirs_cls(D, H, dtype=dtype, **kwargs)
    ours = ours_cls(D, H, dtype=dtype, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def make_input(kind, batch_first, dtype, gen):
    if kind == "unbatched":
        return torch.randn(T, D, dtype=dtype, generator=gen), None
    x = torch.randn((B, T, D) if batch_first else (T, B, D), dtype=dtype, generator=gen)
    return x, LENGTHS.get(kind)


def forward_backward(module, x, lengths, hx, batch_first, enforce_sorted):
    x = x.clone().requires_grad_()
    hx = None if hx is None else tuple(h.clone().requires_grad_() for h in hx)
    inp = x if lengths is None else pack_padded_sequence(x, lengths, batch_first=batch_first,
                                                          enforce_sorted=enforce_sorted)
    hx_arg = None if hx is None else (hx if len(hx) == 2 else hx[0])
    out, state = module(inp, hx_arg)
    states = state if isinstance(state, tuple) else (state,)
    out_t = out.data if isinstance(out, PackedSequence) else out
    gen = torch.Generator().manual_seed(5)
    loss = (out_t * torch.randn(out_t.shape, dtype=out_t.dtype, generator=gen)).sum()
    loss = loss + sum(((k + 2) * s).sum() for k, s in enumerate(states))
    module.zero_grad()
    loss.backward()
    grads = {"input": x.grad}
    for k, h in enumerate(hx or ()):
        grads[f"hx[{k}]"] = h.grad
    grads.update({n: p.grad for n, p in module.named_parameters()})
    return out, states, grads


@pytest.mark.parametrize("cell,layers,bias,batch_first,bidirectional,proj,with_hx,kind,dtype", list(_grid()))
def test_grid_matches_nn(cell, layers, bias, batch_first, bidirectional, proj, with_hx, kind, dtype):
    kwargs = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    if proj:
        kwargs["proj_size"] = proj
    ours, theirs = make_twins(cell, dtype, **kwargs)
    gen = torch.Generator().manual_seed(1)
    x, lengths = make_input(kind, batch_first, dtype, gen)
    hx = None
    if with_hx:
        dirs = 2 if bidirectional else 1
        batch = () if kind == "unbatched" else (B,)
        shapes = [(layers * dirs, *batch, proj or H)] + ([(layers * dirs, *batch, H)] if cell == "lstm" else [])
        hx = tuple(torch.randn(s, dtype=dtype, generator=gen) for s in shapes)
    enforce_sorted = kind == "packed_sorted"
    o1, s1, g1 = forward_backward(ours, x, lengths, hx, batch_first, enforce_sorted)
    o2, s2, g2 = forward_backward(theirs, x, lengths, hx, batch_first, enforce_sorted)
    out_tol = {} if dtype == torch.float32 else TOL[dtype]
    if lengths is not None:
        assert isinstance(o1, PackedSequence)
        assert torch.equal(o1.batch_sizes, o2.batch_sizes)
        for a, b in ((o1.sorted_indices, o2.sorted_indices), (o1.unsorted_indices, o2.unsorted_indices)):
            assert (a is None and b is None) or torch.equal(a, b)
        o1, o2 = o1.data, o2.data
    assert_close(o1, o2, "output", **out_tol)
    for k, (a, b) in enumerate(zip(s1, s2, strict=True)):
        assert_close(a, b, f"final state {k}", **out_tol)
    assert g1.keys() == g2.keys()
    for name in g1:
        assert_close(g1[name], g2[name], f"grad {name}", **TOL[dtype])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_zero_is_exact_and_eval_ignores_dropout(cell):
    ours, theirs = make_twins(cell, torch.float64, num_layers=3, dropout=0.0, bidirectional=True)
    x = torch.randn(T, B, D, dtype=torch.float64)
    ours.train(), theirs.train()
    assert_close(ours(x)[0], theirs(x)[0], "p=0 output", **TOL[torch.float64])
    ours, theirs = make_twins(cell, torch.float64, num_layers=3, dropout=0.7)
    ours.eval(), theirs.eval()
    assert_close(ours(x)[0], theirs(x)[0], "eval-mode output with dropout=0.7", **TOL[torch.float64])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_statistics_match_nn(cell):
    """In training, dropout between layers makes the output random: its mean and spread over many draws must
    match nn.*'s (same weights, independent draws), and differ from the deterministic p=0 output."""
    p, draws = 0.5, 300
    ours, theirs = make_twins(cell, torch.float64, num_layers=2, dropout=p)
    ours.train(), theirs.train()
    x = torch.randn(T, 2, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        samples = {}
        for name, m in (("tsrnn", ours), ("torch", theirs)):
            torch.manual_seed(11 if name == "tsrnn" else 12)
            samples[name] = torch.stack([m(x)[0] for _ in range(draws)])
    mean_a, mean_b = samples["tsrnn"].mean(0), samples["torch"].mean(0)
    std_a, std_b = samples["tsrnn"].std(0), samples["torch"].std(0)
    assert std_a.min() > 0, "dropout had no effect in training mode"
    # difference of two sample means: standard error sqrt(2/draws) * std; allow 5 standard errors
    se = (std_a.pow(2) / draws + std_b.pow(2) / draws).sqrt()
    z = ((mean_a - mean_b).abs() / se).max().item()
    assert z < 5.0, f"mean output under dropout differs from nn.* by {z:.1f} standard errors"
    ratio = (std_a.mean() / std_b.mean()).item()
    assert 0.85 < ratio < 1.15, f"spread under dropout differs from nn.*: ratio {ratio:.3f}"


def test_gradcheck_two_layer_bidirectional_packed():
    for cell, kwargs in (("lstm", {}), ("lstm", {"proj_size": 2}), ("gru", {})):
        torch.manual_seed(0)
        cls = tsrnn.LSTM if cell == "lstm" else tsrnn.GRU
        m = cls(2, 3, num_layers=2, bidirectional=True, dtype=torch.float64, **kwargs)
        x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
        lengths = [4, 2, 3]

        names = [n for n, _ in m.named_parameters()]

        def f(x, *weights):
            packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
            out, state = torch.func.functional_call(m, dict(zip(names, weights, strict=True)), (packed,))
            states = state if isinstance(state, tuple) else (state,)
            return (out.data, *states)

        weights = [w.detach().clone().requires_grad_() for w in m.parameters()]
        assert torch.autograd.gradcheck(f, (x, *weights), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", ["lstm", "lstm-proj", "gru"])
def test_compile_fullgraph_two_layer_bidirectional(cell):
    cls = tsrnn.GRU if cell == "gru" else tsrnn.LSTM
    kwargs = {"proj_size": 2} if cell == "lstm-proj" else {}
    torch.manual_seed(0)
    m = cls(3, 5, num_layers=2, bidirectional=True, batch_first=True, **kwargs)
    x = torch.randn(2, 6, 3)
    eager_out, _ = m(x)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    out, _ = compiled(x)
    assert_close(out, eager_out, "compiled output", **TOL[torch.float32])
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


class _Seq2One(nn.Module):
    """A user model with recurrent layers nested at two depths."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.LSTM(3, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.inner = nn.Sequential(nn.Identity(), nn.GRU(12, 5, batch_first=True))
        self.head = nn.Linear(5, 1)

    def forward(self, x):
        y, _ = self.encoder(x)
        y, _ = self.inner[1](y)
        return self.head(y[:, -1])


def test_convert_and_to_torch_round_trip():
    torch.manual_seed(0)
    model = _Seq2One()
    x = torch.randn(4, 7, 3)
    expected = model(x)
    fast = tsrnn.convert(model)
    assert type(fast.encoder) is tsrnn.LSTM and type(fast.inner[1]) is tsrnn.GRU
    assert type(model.encoder) is nn.LSTM, "convert(inplace=False) must leave the original alone"
    assert fast.state_dict().keys() == model.state_dict().keys()
    assert_close(fast(x), expected, "converted model", **TOL[torch.float32])
    back = tsrnn.to_torch(fast)
    assert type(back.encoder) is nn.LSTM and type(back.inner[1]) is nn.GRU
    assert_close(back(x), expected, "round-tripped model", **TOL[torch.float32])
    single = tsrnn.convert(nn.GRU(2, 3))
    assert type(single) is tsrnn.GRU


def test_convert_inplace_keeps_optimizer_parameters():
    torch.manual_seed(0)
    model = _Seq2One()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.encoder.weight_hh_l0
    tsrnn.convert(model, inplace=True)
    assert type(model.encoder) is tsrnn.LSTM and model.encoder.weight_hh_l0 is before
    model(torch.randn(2, 5, 3)).sum().backward()
    old = before.detach().clone()
    opt.step()
    assert not torch.equal(before.detach(), old), "the optimizer no longer updates the swapped parameters"


def test_to_torch_refuses_notebook_gru_and_non_modules():
    with pytest.raises(ValueError, match="reset_after=False"):
        tsrnn.to_torch(nn.Sequential(tsrnn.GRU(2, 3, reset_after=False)))
    with pytest.raises(TypeError):
        tsrnn.convert("not a module")


def test_flatten_parameters_exists_and_changes_nothing():
    m = tsrnn.LSTM(2, 3)
    x = torch.randn(4, 1, 2)
    before = m(x)[0]
    m.flatten_parameters()
    assert torch.equal(m(x)[0], before)


def test_one_line_swap_on_the_notebook_forecaster():
    torch.manual_seed(0)
    model = tsrnn.app.TorchRNNForecaster("gru", input_size=1, hidden_size=32, backend="torch")
    x = torch.randn(8, 60, 1)
    fast = tsrnn.convert(model)
    assert type(fast.rnn) is tsrnn.GRU
    assert_close(fast(x), model(x), "converted forecaster", **TOL[torch.float32])
