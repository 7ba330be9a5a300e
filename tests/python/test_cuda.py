"""The CUDA kernels through torch: the ops on CUDA against the CPU ops in float64 (the CPU kernels are tested against
the C reference) and tsrnn.LSTM / tsrnn.GRU on CUDA against nn.LSTM / nn.GRU on CUDA (cuDNN, TF32 off) and in
float64 on the CPU; every gradient; the grid-barrier path (H = 512, 1024) and the stepwise path (H = 2048); the
notebook's shape; run-to-run bit equality; a non-default stream; CUDA-graph capture and replay of a whole training
step and of a PackedSequence call; opcheck; the arguments the CUDA registration must reject.

Everything skips, with the reason, when torch.cuda.is_available() is False (the project machines and CI) or when
this build of tsrnn has no CUDA kernels registered (TSRNN_WITH_CUDA off).

Tolerances: fp32 outputs within torch.testing.assert_close's defaults, fp32 gradients rtol 1e-4 /
atol 1e-5 (atol scaled by sqrt(H / 32) for the long sums of the large-H cases). A failure names the worst element.
"""

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import tsrnn
from rnn_testing import assert_close, twins
from tsrnn import _ops


def _cuda_kernels_registered() -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key("tsrnn::lstm", "CUDA")
    except Exception:  # noqa: BLE001  (an internal helper that may move; then assume registered and let tests say)
        return True


pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False"),
    pytest.mark.skipif(
        torch.cuda.is_available() and not _cuda_kernels_registered(),
        reason="this tsrnn build has no CUDA kernels (built with TSRNN_WITH_CUDA=OFF or against a CPU torch)",
    ),
]

CUDA = torch.device("cuda")
F32, F64 = torch.float32, torch.float64
GRAD_TOL = dict(rtol=1e-4, atol=1e-5)
CELLS = ["lstm", "gru", "gru_reset_before"]  # the op variants; nn has twins for the first two


@pytest.fixture(autouse=True)
def _exact_fp32():
    """nn.LSTM on CUDA runs cuDNN, which uses TF32 by default: compare against true fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def is_lstm(cell):
    return cell == "lstm"


def grad_tol(H):
    return dict(rtol=GRAD_TOL["rtol"], atol=GRAD_TOL["atol"] * max(1.0, math.sqrt(H / 32)))


# ---- the ops: CUDA fp32 against the CPU ops in fp64 -----------------------------------------------------------


def make_problem(cell, T, B, D, H, batch_first, state, bias, seed=0):
    """fp64 CPU leaves: x, h0, c0 (LSTM), w_ih, w_hh, b_ih, b_hh (None when absent)."""
    g = torch.Generator().manual_seed(seed)
    G = 4 if is_lstm(cell) else 3
    k = H**-0.5

    def uniform(*shape):
        return (torch.rand(*shape, generator=g, dtype=F64) * 2 - 1) * k

    x = torch.randn((B, T, D) if batch_first else (T, B, D), generator=g, dtype=F64)
    h0 = torch.randn(B, H, generator=g, dtype=F64) if state else None
    c0 = torch.randn(B, H, generator=g, dtype=F64) if state and is_lstm(cell) else None
    w_ih, w_hh = uniform(G * H, D), uniform(G * H, H)
    b_ih, b_hh = (uniform(G * H), uniform(G * H)) if bias else (None, None)
    return [x, h0, c0, w_ih, w_hh, b_ih, b_hh]


def run_op(cell, leaves, lengths, batch_first, reverse, device, dtype, seed=5):
    """Forward op + autograd backward of sum(out * cotangent); returns (outputs incl. saved, input gradients)."""
    inputs = [None if t is None else t.detach().to(device, dtype).requires_grad_() for t in leaves]
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = inputs
    if is_lstm(cell):
        outs = _ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, batch_first=batch_first, reverse=reverse)
    else:
        outs = _ops.gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, batch_first=batch_first, reverse=reverse,
                        reset_after=cell == "gru")
    g = torch.Generator().manual_seed(seed)
    cotangents = [torch.randn(o.shape, generator=g, dtype=F64).to(device, dtype) for o in outs[:-1]]
    loss = sum((o * c).sum() for o, c in zip(outs[:-1], cotangents))
    present = [t for t in inputs if t is not None]
    got = iter(torch.autograd.grad(loss, present))
    grads = [None if t is None else next(got) for t in inputs]
    return [o.detach() for o in outs], grads


OUT_NAMES = {"lstm": ["y", "h_n", "c_n", "saved"], "gru": ["y", "h_n", "saved"]}
GRAD_NAMES = ["grad x", "grad h0", "grad c0", "grad w_ih", "grad w_hh", "grad b_ih", "grad b_hh"]


def compare_op(cell, T, B, D, H, batch_first=False, reverse=False, lengths=None, state=True, bias=True):
    leaves = make_problem(cell, T, B, D, H, batch_first, state, bias)
    outs, grads = run_op(cell, leaves, lengths, batch_first, reverse, CUDA, F32)
    ref_outs, ref_grads = run_op(cell, leaves, lengths, batch_first, reverse, "cpu", F64)
    names = OUT_NAMES["lstm" if is_lstm(cell) else "gru"]
    for got, want, name in zip(outs, ref_outs, names):
        assert got.device.type == CUDA.type and got.dtype == F32, name
        assert_close(got.cpu(), want.to(F32), f"{cell} {name}")  # assert_close's fp32 defaults
    for got, want, name in zip(grads, ref_grads, GRAD_NAMES):
        if want is None:
            assert got is None, name
            continue
        assert_close(got.cpu(), want.to(F32), f"{cell} {name}", **grad_tol(max(H, D)))


@pytest.mark.parametrize(
    "cell,batch_first,reverse,with_lengths,state,bias",
    [
        (cell, bf, rev, ln, st, bi)
        for cell, bf, rev, ln in itertools.product(CELLS, [False, True], [False, True], [False, True])
        for st, bi in [(True, True), (False, False)]
    ],
)
def test_op_matches_cpu_fp64(cell, batch_first, reverse, with_lengths, state, bias):
    T, B, D, H = 9, 6, 4, 33  # H not a multiple of the warp size or of 4
    lengths = torch.tensor([9, 0, 4, 9, 1, 7]) if with_lengths else None
    compare_op(cell, T, B, D, H, batch_first, reverse, lengths, state, bias)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,D,H", [(1, 1, 1, 1), (300, 3, 2, 8), (60, 64, 1, 32)], ids=["tiny", "T300", "notebook"])
def test_op_shapes(cell, T, B, D, H):
    compare_op(cell, T, B, D, H, batch_first=True)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("H", [512, 1024])
def test_op_grid_barrier_path(cell, H):
    """W_hh split across co-resident blocks, a grid barrier per step (and per phase for reset_before)."""
    compare_op(cell, 10, 8, 16, H, lengths=torch.tensor([10, 3, 0, 10, 7, 1, 9, 5]), reverse=True)


@pytest.mark.parametrize("cell", CELLS)
def test_empty_sizes(cell):
    for T, B in [(0, 3), (4, 0)]:
        compare_op(cell, T, B, 2, 5)


# ---- the modules against nn.* -----------------------------------------------------------------------------------


def module_run(module, x, hx, packed_lengths=None, batch_first=False, seed=3):
    """Output, final states and every gradient (input, states, parameters) of a random linear loss."""
    xi = x.clone().requires_grad_()
    hxi = None if hx is None else tuple(h.clone().requires_grad_() for h in hx)
    inp = xi
    if packed_lengths is not None:
        inp = pack_padded_sequence(xi, packed_lengths, batch_first=batch_first, enforce_sorted=False)
    out, state = module(inp, None if hxi is None else (hxi if len(hxi) == 2 else hxi[0]))
    if packed_lengths is not None:
        out = out.data
    states = state if isinstance(state, tuple) else (state,)
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=F64).to(out)).sum()
    loss = loss + sum((s * torch.randn(s.shape, generator=g, dtype=F64).to(s)).sum() for s in states)
    module.zero_grad()
    loss.backward()
    grads = {"x": xi.grad}
    if hxi is not None:
        grads.update({f"hx{i}": h.grad for i, h in enumerate(hxi)})
    grads.update({n: p.grad.clone() for n, p in module.named_parameters()})
    return out.detach(), [s.detach() for s in states], grads


@pytest.mark.parametrize(
    "cell,num_layers,bidirectional,batch_first,packed",
    [(c, 2, bi, bf, pk) for c in ["lstm", "gru"] for bi in [False, True] for bf in [False, True] for pk in [False, True]],
)
def test_module_matches_nn(cell, num_layers, bidirectional, batch_first, packed):
    D, H, T, B = 5, 20, 11, 6
    kw = dict(input_size=D, hidden_size=H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    ours, theirs = twins(cell, **kw)
    ref64 = copy.deepcopy(theirs).double()  # fp64 CPU nn.* as the second opinion
    ours, theirs = ours.to(CUDA), theirs.to(CUDA)
    g = torch.Generator().manual_seed(1)
    x = torch.randn((B, T, D) if batch_first else (T, B, D), generator=g)
    L = num_layers * (2 if bidirectional else 1)
    hx = tuple(torch.randn(L, B, H, generator=g) for _ in range(2 if is_lstm(cell) else 1))
    lengths = torch.tensor([11, 3, 7, 11, 1, 5]) if packed else None

    got = module_run(ours, x.to(CUDA), tuple(h.to(CUDA) for h in hx), lengths, batch_first)
    cudnn = module_run(theirs, x.to(CUDA), tuple(h.to(CUDA) for h in hx), lengths, batch_first)
    exact = module_run(ref64, x.double(), tuple(h.double() for h in hx), lengths, batch_first)
    for want, label in [(cudnn, "nn cuda fp32"), (exact, "nn cpu fp64")]:
        assert_close(got[0].cpu(), want[0].float().cpu(), f"output vs {label}")
        for i, (a, b) in enumerate(zip(got[1], want[1])):
            assert_close(a.cpu(), b.float().cpu(), f"state {i} vs {label}")
        for name, a in got[2].items():
            assert_close(a.cpu(), want[2][name].float().cpu(), f"grad {name} vs {label}", **GRAD_TOL)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("H", [512, 1024, 2048])  # 2048: past the persistent kernels' limit, the stepwise path
def test_module_large_hidden(cell, H):
    ours, theirs = twins(cell, input_size=64, hidden_size=H, batch_first=True)
    ours, theirs = ours.to(CUDA), theirs.double()
    x = torch.randn(8, 12, 64, generator=torch.Generator().manual_seed(1))
    got = module_run(ours, x.to(CUDA), None)
    want = module_run(theirs, x.double(), None)
    assert_close(got[0].cpu(), want[0].float(), "output")
    for name, a in got[2].items():
        assert_close(a.cpu(), want[2][name].float(), f"grad {name}", **grad_tol(H))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_notebook_shape(cell):
    """The forecasting job: window 60, batch 64, one feature, hidden 32, batch-first."""
    ours, theirs = twins(cell, input_size=1, hidden_size=32, batch_first=True)
    ours, theirs = ours.to(CUDA), theirs.to(CUDA)
    x = torch.randn(64, 60, 1, generator=torch.Generator().manual_seed(4)).to(CUDA)
    got, want = module_run(ours, x, None), module_run(theirs, x, None)
    assert_close(got[0], want[0], "output")
    for name, a in got[2].items():
        assert_close(a, want[2][name], f"grad {name}", **GRAD_TOL)


# ---- determinism and streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("H", [32, 512])
def test_bitwise_deterministic(cell, H):
    leaves = make_problem(cell, 20, 16, 8, H, False, True, True)
    lengths = torch.tensor([20, 5, 0, 19] * 4)
    first = run_op(cell, leaves, lengths, False, False, CUDA, F32)
    for _ in range(2):
        again = run_op(cell, leaves, lengths, False, False, CUDA, F32)
        for a, b in zip(first[0] + first[1], again[0] + again[1]):
            assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_non_default_stream(cell):
    leaves = make_problem(cell, 15, 5, 3, 24, True, True, True)
    want = run_op(cell, leaves, None, True, False, CUDA, F32)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = run_op(cell, leaves, None, True, False, CUDA, F32)
    stream.synchronize()
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        assert (a is None and b is None) or torch.equal(a, b)


# ---- CUDA graphs: a whole training step captured and replayed ----------------------------------------------------


class Forecaster(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = (tsrnn.LSTM if is_lstm(cell) else tsrnn.GRU)(1, 32, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cuda_graph_train_step(cell):
    torch.manual_seed(0)
    graphed = Forecaster(cell).to(CUDA)
    eager = copy.deepcopy(graphed)
    opt_g = torch.optim.SGD(graphed.parameters(), lr=0.05)
    opt_e = torch.optim.SGD(eager.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(64, 60, 1, generator=gen), torch.randn(64, 1, generator=gen)) for _ in range(6)]

    def step(model, opt, x, y):
        opt.zero_grad(set_to_none=False)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    static_x, static_y = batches[0][0].to(CUDA), batches[0][1].to(CUDA)
    # warm up on a side stream (as torch.cuda.graphs asks), the eager twin taking the same steps
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(graphed, opt_g, static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    for _ in range(3):
        step(eager, opt_e, static_x, static_y)

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step(graphed, opt_g, static_x, static_y)

    for x, y in batches[1:]:
        static_x.copy_(x.to(CUDA))
        static_y.copy_(y.to(CUDA))
        graph.replay()
        want = step(eager, opt_e, x.to(CUDA), y.to(CUDA))
        torch.cuda.synchronize()
        assert_close(static_loss.detach(), want.detach(), "replayed loss", rtol=1e-6, atol=1e-7)
    for (name, a), (_, b) in zip(graphed.named_parameters(), eager.named_parameters()):
        assert_close(a.detach(), b.detach(), f"parameter {name} after replays", rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cuda_graph_packed_sequence(cell):
    """A PackedSequence call captured into a graph: the kernels' host lengths travel in kernel arguments (a
    pageable host-to-device copy would invalidate the capture). Packed with enforce_sorted=True, since torch's own
    unsorted packing copies indices between host and device, which no capture allows."""
    ours, _ = twins(cell, input_size=3, hidden_size=16, batch_first=True)
    ours = ours.to(CUDA)
    lengths = torch.tensor([9, 7, 7, 4, 1])
    static_x = torch.randn(5, 9, 3, device=CUDA)

    def step(x):
        ours.zero_grad(set_to_none=False)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=True)
        out, h = ours(packed)
        loss = (out.data ** 2).sum() + sum((s ** 2).sum() for s in (h if isinstance(h, tuple) else (h,)))
        loss.backward()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step(static_x)
    for seed in range(3):
        x = torch.randn(5, 9, 3, generator=torch.Generator().manual_seed(seed)).to(CUDA)
        static_x.copy_(x)
        graph.replay()
        torch.cuda.synchronize()
        replayed = [static_loss.detach().clone()] + [p.grad.detach().clone() for p in ours.parameters()]
        eager = [step(x).detach()] + [p.grad.detach() for p in ours.parameters()]
        for a, b in zip(replayed, eager):
            assert torch.equal(a, b), "the replayed packed call differs from the eager one"


# ---- opcheck and rejected arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_opcheck_cuda(cell):
    leaves = make_problem(cell, 4, 3, 3, 5, True, True, True)
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = [None if t is None else t.to(CUDA, F32).requires_grad_() for t in leaves]
    lengths = torch.tensor([4, 1, 0])
    if is_lstm(cell):
        torch.library.opcheck(torch.ops.tsrnn.lstm.default, (x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, True, True))
    else:
        args = (x, h0, w_ih, w_hh, b_ih, b_hh, lengths, True, True, cell == "gru")
        torch.library.opcheck(torch.ops.tsrnn.gru.default, args)


def _lstm_args(**changes):
    leaves = make_problem("lstm", 4, 3, 2, 5, False, True, True)
    args = dict(zip(["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"], [t.to(CUDA, F32) for t in leaves]))
    args.update(changes)
    return args


def _call_lstm(args, lengths=None):
    return _ops.lstm(args["x"], args["h0"], args["c0"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"],
                     lengths=lengths)


def test_rejects_cuda_lengths():
    with pytest.raises(RuntimeError, match="lengths"):
        _call_lstm(_lstm_args(), lengths=torch.tensor([4, 2, 1], device=CUDA))


def test_rejects_float64():
    args = {k: v.double() for k, v in _lstm_args().items()}
    with pytest.raises(RuntimeError, match="float32"):
        _call_lstm(args)


def test_rejects_mixed_devices():
    args = _lstm_args()
    args["h0"] = args["h0"].cpu()
    with pytest.raises(RuntimeError, match="h0"):
        _call_lstm(args)


def test_compile_fullgraph():
    model = tsrnn.LSTM(3, 16, batch_first=True).to(CUDA)
    x = torch.randn(4, 7, 3, device=CUDA)
    want, _ = model(x)
    got, _ = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
    assert_close(got, want, "compiled output")
