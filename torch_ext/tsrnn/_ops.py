"""The tsrnn ops: loads the shim library and registers, for each op, its fake kernel and (forward ops) autograd.

Ops (schemas in shim/ops.cpp; shapes and saved layout in kernels/include/tsrnn.h), one layer and one direction:

    torch.ops.tsrnn.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse) -> (y, h_n, c_n, saved)
    torch.ops.tsrnn.gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after) -> (y, h_n, saved)
    torch.ops.tsrnn.lstm_backward / gru_backward: every gradient at once, from the forward's saved activations.

x is (T, B, D), or (B, T, D) when batch_first, and y follows x; states are (B, H); w_ih (G*H, D), w_hh (G*H, H),
biases (G*H,) with G = 4 (LSTM, gates i f g o) or 3 (GRU, gates r z n); lengths is an int64 CPU tensor (B,);
saved is (T, B, S), always time-major, S = 6H for LSTM ([i f g o | c_t | h_t]) and 5H for GRU ([r z n | hn | h_t]).
y, h_n and c_n are differentiable; saved is not.
"""

from __future__ import annotations

import glob
import os

import torch
from torch import Tensor

__all__ = ["lstm", "gru", "LIBRARY_PATH"]

_ENV = "TSRNN_OPS_LIBRARY"


def _find_library() -> str:
    """The shim library: next to this file when installed, else the path in $TSRNN_OPS_LIBRARY (a dev build)."""
    here = os.path.dirname(os.path.abspath(__file__))
    installed = sorted(glob.glob(os.path.join(here, "_tsrnn_ops*.so")))
    if installed:
        return installed[0]
    path = os.environ.get(_ENV)
    if path:
        if not os.path.isfile(path):
            raise ImportError(f"tsrnn: {_ENV}={path!r} does not name a file (expected the built _tsrnn_ops.so)")
        return os.path.abspath(path)
    raise ImportError(
        f"tsrnn: the compiled library _tsrnn_ops*.so is not next to {__file__} and {_ENV} is not set. "
        f"Install the package (pip install --no-build-isolation .) or build the shim with CMake and set "
        f"{_ENV}=/path/to/_tsrnn_ops.so"
    )


LIBRARY_PATH = _find_library()
torch.ops.load_library(LIBRARY_PATH)

_GATES = {"lstm": 4, "gru": 3}
_SAVED_ROW = {"lstm": 6, "gru": 5}


# ---- fake kernels: output metadata only (the real kernels' checks are in shim/common.h) --------------------


def _fake_sizes(op: str, cell: str, x: Tensor, w_hh: Tensor, batch_first: bool, others: dict):
    """(T, B, D, H) of a call, with the cheap checks torch.compile should fail on early."""
    torch._check(x.dim() == 3, lambda: f"{op}: argument 'x' must be 3-D, but got {x.dim()}-D")
    torch._check(
        x.dtype in (torch.float32, torch.float64),
        lambda: f"{op}: argument 'x' must be float32 or float64, but got {x.dtype}",
    )
    G = _GATES[cell]
    torch._check(
        w_hh.dim() == 2 and w_hh.shape[0] == G * w_hh.shape[1],
        lambda: f"{op}: argument 'w_hh' must have shape ({G}*H, H), but got {tuple(w_hh.shape)}",
    )
    for name, t in others.items():
        if t is None:
            continue
        torch._check(
            t.dtype == x.dtype,
            lambda: f"{op}: argument '{name}' must have the same dtype as x ({x.dtype}), but got {t.dtype}",
        )
        torch._check(
            t.device == x.device,
            lambda: f"{op}: argument '{name}' must be on the same device as x ({x.device}), but is on {t.device}",
        )
    T, B = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    return T, B, x.shape[2], w_hh.shape[1]


def _seq(T, B, W, batch_first):
    return (B, T, W) if batch_first else (T, B, W)


@torch.library.register_fake("tsrnn::lstm")
def _lstm_fake(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse):
    others = dict(h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    T, B, _, H = _fake_sizes("tsrnn::lstm", "lstm", x, w_hh, batch_first, others)
    return (
        x.new_empty(_seq(T, B, H, batch_first)),
        x.new_empty((B, H)),
        x.new_empty((B, H)),
        x.new_empty((T, B, _SAVED_ROW["lstm"] * H)),
    )


@torch.library.register_fake("tsrnn::gru")
def _gru_fake(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after):
    others = dict(h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    T, B, _, H = _fake_sizes("tsrnn::gru", "gru", x, w_hh, batch_first, others)
    return (
        x.new_empty(_seq(T, B, H, batch_first)),
        x.new_empty((B, H)),
        x.new_empty((T, B, _SAVED_ROW["gru"] * H)),
    )


def _fake_weight_grads(x, G, D, H):
    """grad_w_ih (G*H, D), grad_w_hh (G*H, H), grad_b_ih and grad_b_hh (G*H,)."""
    return x.new_empty((G * H, D)), x.new_empty((G * H, H)), x.new_empty((G * H,)), x.new_empty((G * H,))


@torch.library.register_fake("tsrnn::lstm_backward")
def _lstm_backward_fake(x, h0, c0, w_ih, w_hh, saved, lengths, grad_y, grad_h_n, grad_c_n, batch_first, reverse):
    others = dict(h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, saved=saved, grad_y=grad_y, grad_h_n=grad_h_n)
    others["grad_c_n"] = grad_c_n
    T, B, D, H = _fake_sizes("tsrnn::lstm_backward", "lstm", x, w_hh, batch_first, others)
    grad_x, grad_h0, grad_c0 = x.new_empty(_seq(T, B, D, batch_first)), x.new_empty((B, H)), x.new_empty((B, H))
    return (grad_x, grad_h0, grad_c0, *_fake_weight_grads(x, 4, D, H))


@torch.library.register_fake("tsrnn::gru_backward")
def _gru_backward_fake(x, h0, w_ih, w_hh, saved, lengths, grad_y, grad_h_n, batch_first, reverse, reset_after):
    others = dict(h0=h0, w_ih=w_ih, w_hh=w_hh, saved=saved, grad_y=grad_y, grad_h_n=grad_h_n)
    T, B, D, H = _fake_sizes("tsrnn::gru_backward", "gru", x, w_hh, batch_first, others)
    return (x.new_empty(_seq(T, B, D, batch_first)), x.new_empty((B, H)), *_fake_weight_grads(x, 3, D, H))


# ---- autograd: one backward op call, no Python loop over time ----------------------------------------------


def _keep(grad, needed: bool, input_present: bool = True):
    return grad if needed and input_present else None


def _lstm_setup_context(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse = inputs
    saved = output[3]
    ctx.mark_non_differentiable(saved)
    # Undefined output grads reach backward as None and go to the op as None (= zero), not as zero tensors.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, saved, lengths)
    ctx.batch_first, ctx.reverse = batch_first, reverse
    ctx.has_bias = (b_ih is not None, b_hh is not None)


def _lstm_backward(ctx, grad_y, grad_h_n, grad_c_n, _grad_saved):
    x, h0, c0, w_ih, w_hh, saved, lengths = ctx.saved_tensors
    grads = torch.ops.tsrnn.lstm_backward.default(
        x, h0, c0, w_ih, w_hh, saved, lengths, grad_y, grad_h_n, grad_c_n, ctx.batch_first, ctx.reverse
    )
    g_x, g_h0, g_c0, g_w_ih, g_w_hh, g_b_ih, g_b_hh = grads
    need = ctx.needs_input_grad
    return (
        _keep(g_x, need[0]),
        _keep(g_h0, need[1], h0 is not None),
        _keep(g_c0, need[2], c0 is not None),
        _keep(g_w_ih, need[3]),
        _keep(g_w_hh, need[4]),
        _keep(g_b_ih, need[5], ctx.has_bias[0]),
        _keep(g_b_hh, need[6], ctx.has_bias[1]),
        None,  # lengths
        None,  # batch_first
        None,  # reverse
    )


def _gru_setup_context(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after = inputs
    saved = output[2]
    ctx.mark_non_differentiable(saved)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, h0, w_ih, w_hh, saved, lengths)
    ctx.batch_first, ctx.reverse, ctx.reset_after = batch_first, reverse, reset_after
    ctx.has_bias = (b_ih is not None, b_hh is not None)


def _gru_backward(ctx, grad_y, grad_h_n, _grad_saved):
    x, h0, w_ih, w_hh, saved, lengths = ctx.saved_tensors
    grads = torch.ops.tsrnn.gru_backward.default(
        x, h0, w_ih, w_hh, saved, lengths, grad_y, grad_h_n, ctx.batch_first, ctx.reverse, ctx.reset_after
    )
    g_x, g_h0, g_w_ih, g_w_hh, g_b_ih, g_b_hh = grads
    need = ctx.needs_input_grad
    return (
        _keep(g_x, need[0]),
        _keep(g_h0, need[1], h0 is not None),
        _keep(g_w_ih, need[2]),
        _keep(g_w_hh, need[3]),
        _keep(g_b_ih, need[4], ctx.has_bias[0]),
        _keep(g_b_hh, need[5], ctx.has_bias[1]),
        None,  # lengths
        None,  # batch_first
        None,  # reverse
        None,  # reset_after
    )


torch.library.register_autograd("tsrnn::lstm", _lstm_backward, setup_context=_lstm_setup_context)
torch.library.register_autograd("tsrnn::gru", _gru_backward, setup_context=_gru_setup_context)


# ---- thin wrappers -----------------------------------------------------------------------------------------


def lstm(
    x: Tensor,
    h0: Tensor | None,
    c0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None = None,
    batch_first: bool = False,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction: returns (y, h_n, c_n, saved). See the module docstring for shapes."""
    return torch.ops.tsrnn.lstm.default(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse)


def gru(
    x: Tensor,
    h0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None = None,
    batch_first: bool = False,
    reverse: bool = False,
    reset_after: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """One GRU layer in one direction: returns (y, h_n, saved). reset_after=False is the notebook/Keras form."""
    return torch.ops.tsrnn.gru.default(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after)
