"""What the Python tests share: tolerances, a comparison that names the worst element, nn.* / tsrnn module twins,
and valid arguments of the raw ops."""

import torch
from torch import nn

import tsrnn

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}
OPS = torch.ops.tsrnn
GATES = {"lstm": 4, "gru": 3, "gru_reset_before": 3}  # the op variants; "gru" is reset_after=True (PyTorch's)


def assert_close(actual, expected, what, **tol):
    """torch.testing.assert_close that names the worst element (NaN counts as worst) on failure."""
    try:
        torch.testing.assert_close(actual, expected, **tol)
    except AssertionError as e:
        msg = f"{what}: {e}"
        if actual.shape == expected.shape and actual.numel() > 0:
            diff = (actual.detach() - expected.detach()).abs()
            diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
            idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
            msg = (f"{what}: worst element at {idx}: got {actual[idx].item()!r}, expected {expected[idx].item()!r} "
                   f"(|diff| = {diff[idx].item():.3e})\n{e}")
        raise AssertionError(msg) from None


def twins(cell, seed=0, **kwargs):
    """(ours, theirs): a tsrnn.LSTM / GRU and the nn.* module (built from the same arguments, seeded) whose
    state_dict it loads."""
    ours_cls, theirs_cls = (tsrnn.LSTM, nn.LSTM) if cell == "lstm" else (tsrnn.GRU, nn.GRU)
    torch.manual_seed(seed)
    theirs = theirs_cls(**kwargs)
    ours = ours_cls(**kwargs)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def op_name(cell):
    return "lstm" if cell == "lstm" else "gru"


def op_args(cell, T=4, B=3, D=5, H=6, dtype=torch.float32, seed=8):
    """Valid keyword arguments of torch.ops.tsrnn.lstm / gru for an op variant of GATES (lengths None)."""
    g = torch.Generator().manual_seed(seed)
    G = GATES[cell]

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=dtype) * scale

    args = dict(x=randn(T, B, D), h0=randn(B, H))
    if cell == "lstm":
        args["c0"] = randn(B, H)
    args.update(w_ih=randn(G * H, D, scale=0.3), w_hh=randn(G * H, H, scale=0.3), b_ih=randn(G * H, scale=0.1),
                b_hh=randn(G * H, scale=0.1), lengths=None, batch_first=False, reverse=False)
    if cell != "lstm":
        args["reset_after"] = cell == "gru"
    return args


def op_call(cell, args):
    """torch.ops.tsrnn.lstm / gru with keyword arguments (op_args' names)."""
    return getattr(OPS, op_name(cell))(**args)


def op_backward_call(cell, args):
    """torch.ops.tsrnn.lstm_backward / gru_backward with op_args' names plus saved, grad_y, grad_h_n[, grad_c_n]."""
    keys = ["x", "h0", "c0", "w_ih", "w_hh", "saved", "lengths", "grad_y", "grad_h_n", "grad_c_n", "batch_first",
            "reverse"] if cell == "lstm" else ["x", "h0", "w_ih", "w_hh", "saved", "lengths", "grad_y", "grad_h_n",
                                                "batch_first", "reverse", "reset_after"]
    return getattr(OPS, op_name(cell) + "_backward")(**{k: args[k] for k in keys})


def lstm_projection_args(T=4, B=3, D=5, H=6, P=2, dtype=torch.float64, seed=20):
    """Valid keyword arguments of torch.ops.tsrnn.lstm with a projection: w_hh (4H, P), h0 (B, P), w_hr (P, H);
    lengths with a 0."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, dtype=dtype, generator=g)

    return dict(x=randn(T, B, D), h0=randn(B, P), c0=randn(B, H), w_ih=randn(4 * H, D) / 3, w_hh=randn(4 * H, P) / 3,
                b_ih=randn(4 * H) / 3, b_hh=randn(4 * H) / 3, lengths=torch.tensor([4, 0, 2]), batch_first=False,
                reverse=False, w_hr=randn(P, H) / 3)
