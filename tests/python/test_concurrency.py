"""Concurrency: several Python threads calling the tsrnn modules and ops at the same time (forward
and backward) get bitwise the results of the same calls made one after the other.

Each thread gets its own input (so a result that leaked from another thread's call would show) and repeats
its call; gradients are taken with torch.autograd.grad, so the shared modules' .grad is never written. The
threads are daemons joined with a timeout, so a deadlock fails the test instead of hanging the run.
"""

import threading

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import tsrnn

N_THREADS = 6
REPEATS = 3
TIMEOUT_S = 120


def make_module(kind):
    torch.manual_seed(0)
    if kind == "lstm":
        return tsrnn.LSTM(1, 32, batch_first=True)
    if kind == "gru":
        return tsrnn.GRU(1, 32, batch_first=True)
    if kind == "gru_reset_before":
        return tsrnn.GRU(1, 32, batch_first=True, reset_after=False)
    if kind == "lstm-L2-bidirectional-packed":
        return tsrnn.LSTM(4, 12, num_layers=2, bidirectional=True)
    raise AssertionError(kind)


def job(module, kind, k, backward=True):
    """One forward (+ backward) on input number k: outputs, final states and gradients."""
    gen = torch.Generator().manual_seed(1000 + k)
    if kind.endswith("packed"):
        x = torch.randn(9, 5, 4, generator=gen).requires_grad_()
        lengths = [9, 1 + k % 9, 4, 9 - k % 3, 2]
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False)
    else:
        x = torch.randn(16, 60, 1, generator=gen).requires_grad_()
        inp = x
    with torch.set_grad_enabled(backward):
        out, state = module(inp)
    outs = [out.data if isinstance(out, PackedSequence) else out]
    outs += list(state) if isinstance(state, tuple) else [state]
    if not backward:
        return outs
    cots = [torch.randn(o.shape, generator=gen) for o in outs]
    grads = torch.autograd.grad(outs, [x, *module.parameters()], cots)
    return [o.detach() for o in outs] + list(grads)


def raw_job(k):
    """The raw ops directly: an LSTM and a GRU layer with per-sequence lengths, forward and backward op."""
    gen = torch.Generator().manual_seed(2000 + k)
    T, B, D, H = 20, 7, 3, 16
    x = torch.randn(T, B, D, generator=gen)
    lengths = torch.tensor([20, 0, 5, 13, 20, 1 + k, 9])
    results = []
    for cell, G in (("lstm", 4), ("gru", 3)):
        w_ih, w_hh = torch.randn(G * H, D, generator=gen) * 0.3, torch.randn(G * H, H, generator=gen) * 0.3
        b_ih, b_hh = torch.randn(G * H, generator=gen) * 0.1, torch.randn(G * H, generator=gen) * 0.1
        h0 = torch.randn(B, H, generator=gen)
        leaves = [t.requires_grad_() for t in (x.clone(), h0, w_ih, w_hh, b_ih, b_hh)]
        if cell == "lstm":
            c0 = torch.randn(B, H, generator=gen).requires_grad_()
            outs = tsrnn._ops.lstm(leaves[0], leaves[1], c0, *leaves[2:], lengths=lengths, reverse=k % 2 == 1)[:-1]
            leaves.append(c0)
        else:
            outs = tsrnn._ops.gru(leaves[0], leaves[1], *leaves[2:], lengths=lengths, batch_first=False)[:-1]
        cots = [torch.randn(o.shape, generator=gen) for o in outs]
        results += [o.detach() for o in outs] + list(torch.autograd.grad(outs, leaves, cots))
    return results


def run_concurrently(fn, n_threads=N_THREADS, repeats=REPEATS):
    """fn(k) in thread k, `repeats` times each, all threads released at once. Returns {k: [results...]}."""
    barrier = threading.Barrier(n_threads)
    results = {k: [] for k in range(n_threads)}
    errors = []

    def worker(k):
        try:
            barrier.wait(timeout=TIMEOUT_S)
            for _ in range(repeats):
                results[k].append(fn(k))
        except BaseException as e:  # reported by the main thread
            errors.append((k, e))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT_S)
    hung = [k for k, t in enumerate(threads) if t.is_alive()]
    assert not hung, f"threads {hung} did not finish within {TIMEOUT_S} s (deadlock?)"
    if errors:
        k, e = errors[0]
        raise AssertionError(f"thread {k} raised {type(e).__name__}: {e}") from e
    return results


def assert_bitwise(got, expected, what):
    assert len(got) == len(expected), what
    for i, (a, b) in enumerate(zip(got, expected)):
        if not torch.equal(a, b):
            raise AssertionError(f"{what}: result {i} differs (max |diff| {(a - b).abs().max().item():.3e})")


@pytest.mark.parametrize("backward", [True, False], ids=["fwd+bwd", "fwd-no-grad"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before", "lstm-L2-bidirectional-packed"])
def test_threads_sharing_a_module_match_serial(kind, backward):
    module = make_module(kind)
    serial = [job(module, kind, k, backward) for k in range(N_THREADS)]
    concurrent = run_concurrently(lambda k: job(module, kind, k, backward))
    for k in range(N_THREADS):
        for r, got in enumerate(concurrent[k]):
            assert_bitwise(got, serial[k], f"thread {k}, repeat {r}")


def test_threads_calling_the_raw_ops_match_serial():
    serial = [raw_job(k) for k in range(N_THREADS)]
    concurrent = run_concurrently(raw_job)
    for k in range(N_THREADS):
        for r, got in enumerate(concurrent[k]):
            assert_bitwise(got, serial[k], f"thread {k}, repeat {r}")


def test_threads_mixing_cells_and_thread_counts_match_serial():
    """Threads running different models at once, while the main thread's torch thread count is 1: every
    thread still gets its serial results."""
    kinds = ["lstm", "gru", "gru_reset_before", "lstm-L2-bidirectional-packed", "raw", "lstm"]
    modules = {kind: make_module(kind) for kind in set(kinds) if kind != "raw"}

    def call(k):
        kind = kinds[k]
        return raw_job(k) if kind == "raw" else job(modules[kind], kind, k)

    serial = [call(k) for k in range(len(kinds))]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        concurrent = run_concurrently(call, n_threads=len(kinds))
    finally:
        torch.set_num_threads(before)
    for k in range(len(kinds)):
        for r, got in enumerate(concurrent[k]):
            assert_bitwise(got, serial[k], f"thread {k} ({kinds[k]}), repeat {r}")
