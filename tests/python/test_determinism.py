"""Determinism: tsrnn.LSTM / tsrnn.GRU on the CPU in fp32 give bitwise identical outputs, final
states and gradients run to run, and with torch.set_num_threads(1) (or 3) as with 2 threads.

Gradients are taken with torch.autograd.grad against fixed cotangents (no loss reduction in torch, whose own
parallel sums may round differently with the thread count), so every difference would come from tsrnn.
"""

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import tsrnn

CELLS = ["lstm", "gru", "gru_reset_before"]

# name: (B, T, D, H, num_layers, bidirectional, batch_first, packed lengths or None)
SHAPES = {
    "notebook-B64-T60-D1-H32": (64, 60, 1, 32, 1, False, True, None),
    "B16-T50-D128-H128": (16, 50, 128, 128, 1, False, False, None),
    "L2-bidirectional-packed": (6, 12, 8, 16, 2, True, True, [12, 3, 9, 1, 12, 7]),
}


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def make_module(cell, D, H, num_layers, bidirectional, batch_first):
    torch.manual_seed(0)
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    if cell == "lstm":
        return tsrnn.LSTM(D, H, **kwargs)
    return tsrnn.GRU(D, H, reset_after=cell == "gru", **kwargs)


def run(module, shape):
    """Outputs, final states and the gradients w.r.t. input, initial states and every parameter."""
    B, T, D, H, L, bi, batch_first, lengths = shape
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((B, T, D) if batch_first else (T, B, D), generator=gen).requires_grad_()
    n_states = 2 if isinstance(module, tsrnn.LSTM) else 1
    hx = [torch.randn(L * (2 if bi else 1), B, H, generator=gen).requires_grad_() for _ in range(n_states)]
    inp = x if lengths is None else pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, state = module(inp, tuple(hx) if n_states == 2 else hx[0])
    outs = [out.data if isinstance(out, PackedSequence) else out]
    outs += list(state) if n_states == 2 else [state]
    cots = [torch.randn(o.shape, generator=gen) for o in outs]
    grads = torch.autograd.grad(outs, [x, *hx, *module.parameters()], cots)
    return [o.detach() for o in outs] + list(grads)


def assert_bitwise(a, b, what):
    assert len(a) == len(b)
    for k, (p, q) in enumerate(zip(a, b)):
        assert p.shape == q.shape, f"{what}: result {k} has shape {tuple(p.shape)} vs {tuple(q.shape)}"
        if not torch.equal(p, q):
            diff = (p - q).abs()
            raise AssertionError(
                f"{what}: result {k} differs in {int((diff > 0).sum())} of {p.numel()} elements "
                f"(max |diff| {diff.max().item():.3e})"
            )


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("cell", CELLS)
def test_bitwise_run_to_run_and_across_thread_counts(cell, shape, restore_threads):
    B, T, D, H, L, bi, batch_first, _ = SHAPES[shape]
    module = make_module(cell, D, H, L, bi, batch_first)
    torch.set_num_threads(2)
    first = run(module, SHAPES[shape])
    second = run(module, SHAPES[shape])
    assert_bitwise(second, first, "two runs with 2 threads")
    torch.set_num_threads(1)
    single = run(module, SHAPES[shape])
    assert_bitwise(single, first, "1 thread vs 2 threads")
    torch.set_num_threads(3)  # an odd split of the batch and of the work
    three = run(module, SHAPES[shape])
    assert_bitwise(three, first, "3 threads vs 2 threads")
    # a fresh module with the same seed: same weights, same results
    torch.set_num_threads(2)
    again = run(make_module(cell, D, H, L, bi, batch_first), SHAPES[shape])
    assert_bitwise(again, first, "a fresh module")

