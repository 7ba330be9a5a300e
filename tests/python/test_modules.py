"""tsrnn.LSTM / tsrnn.GRU against nn.LSTM / nn.GRU with identical weights: outputs, states, every gradient."""

import itertools

import pytest
import torch
from torch import nn

import tsrnn
import tsrnn.app
from rnn_testing import TOL, assert_close, twins

CELLS = {"lstm": (tsrnn.LSTM, nn.LSTM), "gru": (tsrnn.GRU, nn.GRU)}


def run(module, x, hx):
    out, state = module(x, hx)
    states = state if isinstance(state, tuple) else (state,)
    return out, states


@pytest.mark.parametrize(
    "cell,dtype,batch_first,bias,with_hx,batched",
    list(itertools.product(["lstm", "gru"], [torch.float32, torch.float64], [False, True], [True, False],
                           [False, True], [True, False])),
)
def test_matches_nn(cell, dtype, batch_first, bias, with_hx, batched):
    D, H, T, B = 3, 7, 9, 4
    ours, theirs = twins(cell, dtype=dtype, input_size=D, hidden_size=H, bias=bias, batch_first=batch_first)
    gen = torch.Generator().manual_seed(1)
    shape = ((B, T, D) if batch_first else (T, B, D)) if batched else (T, D)
    x = torch.randn(shape, dtype=dtype, generator=gen)
    hx = None
    if with_hx:
        hshape = (1, B, H) if batched else (1, H)
        hs = [torch.randn(hshape, dtype=dtype, generator=gen) for _ in range(2 if cell == "lstm" else 1)]
        hx = tuple(hs) if cell == "lstm" else hs[0]

    results = []
    for module in (ours, theirs):
        xi = x.clone().requires_grad_()
        hxi = None
        if hx is not None:
            hxi = tuple(h.clone().requires_grad_() for h in hx) if cell == "lstm" else hx.clone().requires_grad_()
        out, states = run(module, xi, hxi)
        g_out = torch.randn(out.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
        loss = (out * g_out).sum() + sum((s * (k + 2)).sum() for k, s in enumerate(states))
        module.zero_grad()
        loss.backward()
        hx_grads = [] if hxi is None else [h.grad for h in (hxi if cell == "lstm" else (hxi,))]
        param_grads = {n: p.grad.clone() for n, p in module.named_parameters()}
        results.append((out, states, xi.grad, hx_grads, param_grads))

    (o1, s1, gx1, gh1, gp1), (o2, s2, gx2, gh2, gp2) = results
    out_tol = {} if dtype == torch.float32 else TOL[dtype]
    assert_close(o1, o2, "output", **out_tol)
    for a, b in zip(s1, s2, strict=True):
        assert_close(a, b, "final state", **out_tol)
    assert_close(gx1, gx2, "grad input", **TOL[dtype])
    for a, b in zip(gh1, gh2, strict=True):
        assert_close(a, b, "grad hx", **TOL[dtype])
    assert gp1.keys() == gp2.keys()
    for name in gp1:
        assert_close(gp1[name], gp2[name], f"grad {name}", **TOL[dtype])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_dict_and_init_match_nn(cell):
    ours_cls, theirs_cls = CELLS[cell]
    torch.manual_seed(123)
    theirs = theirs_cls(5, 8, bias=True, batch_first=True)
    torch.manual_seed(123)
    ours = ours_cls(5, 8, bias=True, batch_first=True)
    sd_theirs, sd_ours = theirs.state_dict(), ours.state_dict()
    assert list(sd_ours.keys()) == list(sd_theirs.keys())
    for k in sd_theirs:
        assert sd_ours[k].shape == sd_theirs[k].shape
        assert torch.equal(sd_ours[k], sd_theirs[k]), f"{k}: reset_parameters drew differently"
    theirs.load_state_dict(ours.state_dict())  # both directions load
    torch.manual_seed(7)
    ours.reset_parameters()
    torch.manual_seed(7)
    theirs.reset_parameters()
    for k in sd_theirs:
        assert torch.equal(ours.state_dict()[k], theirs.state_dict()[k])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_same_validation_errors_as_nn(cell):
    ours_cls, theirs_cls = CELLS[cell]
    # constructor errors come from nn.* itself
    for kwargs in ({"input_size": 3, "hidden_size": 0}, {"input_size": 3, "hidden_size": 4, "dropout": 2.0}):
        with pytest.raises(ValueError):
            theirs_cls(**kwargs)
        with pytest.raises(ValueError):
            ours_cls(**kwargs)
    ours, theirs = twins(cell, dtype=torch.float32, input_size=3, hidden_size=4)
    bad_inputs = [torch.randn(5, 2, 4), torch.randn(5, 2, 3, 1), torch.randn(5)]
    for x in bad_inputs:
        with pytest.raises(Exception) as theirs_err:
            theirs(x)
        with pytest.raises(type(theirs_err.value)) as ours_err:
            ours(x)
        assert str(ours_err.value) == str(theirs_err.value)
    x = torch.randn(5, 2, 3)
    bad_h = torch.randn(1, 3, 4)
    hx = (bad_h, torch.randn(1, 2, 4)) if cell == "lstm" else bad_h
    with pytest.raises(RuntimeError) as theirs_err:
        theirs(x, hx)
    with pytest.raises(RuntimeError) as ours_err:
        ours(x, hx)
    assert str(ours_err.value) == str(theirs_err.value)
    with pytest.raises(ValueError, match="dtype"):
        ours(x.double())


def test_proj_size_shapes_and_errors_as_nn():
    """proj_size: nn.LSTM's parameter shapes and state_dict, its checks on the argument and on h0's width."""
    ours, theirs = twins("lstm", dtype=torch.float32, input_size=3, hidden_size=4, proj_size=2, num_layers=2)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    out, (h_n, c_n) = ours(torch.randn(6, 5, 3))
    assert out.shape == (6, 5, 2) and h_n.shape == (2, 5, 2) and c_n.shape == (2, 5, 4)
    for bad in (4, 5, -1):  # proj_size must be in [0, hidden_size)
        with pytest.raises(ValueError) as theirs_err:
            nn.LSTM(3, 4, proj_size=bad)
        with pytest.raises(type(theirs_err.value), match="proj_size"):
            tsrnn.LSTM(3, 4, proj_size=bad)
    hx = (torch.randn(2, 5, 4), torch.randn(2, 5, 4))  # h0 must be (L, B, proj_size)
    with pytest.raises(RuntimeError) as theirs_err:
        theirs(torch.randn(6, 5, 3), hx)
    with pytest.raises(RuntimeError) as ours_err:
        ours(torch.randn(6, 5, 3), hx)
    assert str(ours_err.value) == str(theirs_err.value)
    with pytest.raises(ValueError, match="proj_size"):
        tsrnn.GRU(3, 4, proj_size=2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_in_eval_mode(cell):
    ours, theirs = twins(cell, dtype=torch.float32, input_size=2, hidden_size=5, batch_first=True)
    ours.eval(), theirs.eval()
    x = torch.randn(3, 8, 2)
    for m in (ours, theirs):
        m.zero_grad()
        m(x)[0].sum().backward()
    for (n, p1), (_, p2) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert_close(p1.grad, p2.grad, f"grad {n}", **TOL[torch.float32])


def test_gates_are_the_kernels_saved_activations():
    ours, _ = twins("lstm", dtype=torch.float64, input_size=1, hidden_size=3, batch_first=True)
    x = torch.randn(2, 5, 1, dtype=torch.float64)
    y, (h_n, c_n), (gates,) = ours(x, return_gates=True)
    H = 3
    assert gates.shape == (5, 2, 6 * H)
    # recompute step 0 by hand from the weights: [i f g o] with zero initial state
    pre = x[:, 0] @ ours.weight_ih_l0.T + ours.bias_ih_l0 + ours.bias_hh_l0
    i, f, g, o = pre.split(H, dim=1)
    expect = torch.cat([i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()], dim=1)
    assert_close(gates[0, :, : 4 * H], expect, "gates at t=0", **TOL[torch.float64])
    assert_close(gates[:, :, 5 * H :].transpose(0, 1), y, "saved h", **TOL[torch.float64])
    assert_close(gates[-1, :, 4 * H : 5 * H], c_n[0], "saved c", **TOL[torch.float64])
    gru, _ = twins("gru", dtype=torch.float64, input_size=1, hidden_size=3)
    y, h_n, (gates,) = gru(torch.randn(4, 2, 1, dtype=torch.float64), return_gates=True)
    assert gates.shape == (4, 2, 5 * 3)
    assert_close(gates[:, :, 12:], y, "GRU saved h", **TOL[torch.float64])


def test_gru_reset_after_false_is_the_notebook_form():
    torch.manual_seed(0)
    gru = tsrnn.GRU(2, 4, reset_after=False, dtype=torch.float64)
    assert "reset_after=False" in repr(gru)
    x = torch.randn(6, 3, 2, dtype=torch.float64)
    y, h_n = gru(x)
    w_ir, w_iz, w_in = gru.weight_ih_l0.chunk(3)
    w_hr, w_hz, w_hn = gru.weight_hh_l0.chunk(3)
    b_ir, b_iz, b_in = gru.bias_ih_l0.chunk(3)
    b_hr, b_hz, b_hn = gru.bias_hh_l0.chunk(3)
    h = torch.zeros(3, 4, dtype=torch.float64)
    for t in range(6):
        r = torch.sigmoid(x[t] @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
        z = torch.sigmoid(x[t] @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
        n = torch.tanh(x[t] @ w_in.T + b_in + (r * h) @ w_hn.T + b_hn)
        h = (1 - z) * n + z * h
        assert_close(y[t], h, f"step {t}", **TOL[torch.float64])
    with pytest.raises(TypeError):
        tsrnn.GRU(2, 4, reset_after="no")


def test_compile_fullgraph_forecaster():
    torch.manual_seed(0)
    model = tsrnn.app.TorchRNNForecaster("lstm", hidden_size=8)
    x = torch.randn(4, 12, 1)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    assert_close(out, eager, "compiled forecaster", **TOL[torch.float32])
    out.sum().backward()
    assert model.rnn.weight_hh_l0.grad is not None


def test_import_tsrnn_loads_the_library_only():
    """`import tsrnn` is torch and the ops: the applications (tsrnn.app) and their extra dependencies stay out."""
    import os
    import subprocess
    import sys

    code = ("import sys, tsrnn; bad = [m for m in ('tsrnn.app', 'plotly') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    where = os.path.dirname(os.path.dirname(tsrnn.__file__))  # the installed package or the dev tree's torch_ext
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [where, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
