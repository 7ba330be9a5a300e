"""DistributedDataParallel: the notebook's forecaster (tsrnn.app.forecast.TorchRNNForecaster with
backend='tsrnn', LSTM and GRU) trained by 2 processes (gloo, CPU, file store), each on half of every batch,
gets the gradients (and, after the notebook's clipped Adam steps, the parameters) of one process training on
the full batches, to float tolerance.

The two workers are this file run as a script (`python test_ddp.py --worker RANK STORE OUT`), started with
subprocess so that nothing depends on how pytest imported this module.
"""

import os
import subprocess
import sys

import torch
from torch import nn

import tsrnn
from tsrnn.app.forecast import TorchRNNForecaster, make_toy_series, split_and_scale

WORLD = 2
BATCH = 64  # the notebook's batch; each rank gets 32 windows of it
STEPS = 3
CELLS = ("lstm", "gru")
TIMEOUT_S = 150
TOL = dict(rtol=1e-5, atol=1e-6)


def notebook_batches():
    """STEPS batches of the notebook's scaled training windows (B=64, T=60, D=1), float32."""
    t, y = make_toy_series(900, 0.18, 42)
    data = split_and_scale(t, y, seq_len=60)
    X = torch.tensor(data.X_train, dtype=torch.float32)
    Y = torch.tensor(data.y_train, dtype=torch.float32)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(42))[: BATCH * STEPS]
    return [(X[idx], Y[idx]) for idx in order.split(BATCH)]


def train(model, batches):
    """The notebook's loop on the given batches: MSE, backward, clip at 1.0, Adam(1e-3). Returns the gradients
    (before clipping) of every step, by parameter name."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    grads = []
    for xb, yb in batches:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return grads


def make_model(cell):
    torch.manual_seed(0)
    return TorchRNNForecaster(cell, input_size=1, hidden_size=32, backend="tsrnn")


def worker(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)  # two processes on a small machine
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for cell in CELLS:
            model = make_model(cell)
            ddp = DDP(model)
            shard = BATCH // WORLD
            batches = [(x[rank * shard : (rank + 1) * shard], y[rank * shard : (rank + 1) * shard])
                       for x, y in notebook_batches()]
            grads = train(ddp, batches)
            # DDP names parameters "module.<name>"
            grads = [{n.removeprefix("module."): g for n, g in step.items()} for step in grads]
            results[cell] = {"grads": grads, "params": {n: p.detach().clone() for n, p in model.named_parameters()}}
            assert type(model.rnn) is (tsrnn.LSTM if cell == "lstm" else tsrnn.GRU)
        if rank == 0:
            torch.save(results, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_one_process_full_batch(tmp_path):
    store, out = tmp_path / "store", tmp_path / "rank0.pt"
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(tsrnn.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    env["TSRNN_OPS_LIBRARY"] = tsrnn._ops.LIBRARY_PATH
    env["OMP_NUM_THREADS"] = "1"
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the loopback device: no network needed
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", str(rank), str(store), str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in range(WORLD)
    ]
    logs = []
    try:
        for rank, p in enumerate(procs):
            log, _ = p.communicate(timeout=TIMEOUT_S)
            logs.append(f"--- rank {rank} (exit {p.returncode}) ---\n{log}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), "a DDP worker failed:\n" + "\n".join(logs)
    distributed = torch.load(out)

    for cell in CELLS:
        model = make_model(cell)
        grads = train(model, notebook_batches())
        got = distributed[cell]
        assert len(got["grads"]) == STEPS
        for step, (ddp_step, ref_step) in enumerate(zip(got["grads"], grads)):
            assert ddp_step.keys() == ref_step.keys()
            for name in ref_step:
                torch.testing.assert_close(
                    ddp_step[name], ref_step[name], **TOL,
                    msg=lambda m, n=name, s=step: f"{cell}: gradient of {n} at step {s}: {m}",
                )
        for name, p in model.named_parameters():
            torch.testing.assert_close(
                got["params"][name], p.detach(), **TOL, msg=lambda m, n=name: f"{cell}: parameter {n}: {m}"
            )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"usage: {sys.argv[0]} --worker RANK STORE OUT")
