"""The tsrnn ops: loads the shim library and registers, for each op, its fake kernel and (forward ops) autograd.

Ops (schemas in shim/ops.cpp; shapes and saved layout in kernels/include/tsrnn.h), one layer and one direction:

    torch.ops.tsrnn.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, w_hr=None,
                         need_saved=True) -> (y, h_n, c_n, saved)
    torch.ops.tsrnn.gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after,
                        need_saved=True) -> (y, h_n, saved)
    torch.ops.tsrnn.lstm_backward / gru_backward: every gradient at once, from the forward's saved activations.

x is (T, B, D), or (B, T, D) when batch_first, and y (T, B, R) follows x; hidden states are (1, B, R) and cell
states (1, B, H), one layer and direction of nn.*'s (L * dirs, B, R): h_n and c_n have that shape; h0 and c0 (and
the backward's grad_h_n, grad_c_n) may also be (B, R) / (B, H), and grad_h0 / grad_c0 take h0's / c0's shape;
w_ih (G*H, D), w_hh (G*H, R), biases (G*H,) with G = 4 (LSTM, gates i f g o) or 3 (GRU, gates r z n);
w_hr (P, H) is an LSTM's projection (nn.LSTM's proj_size = P, 1 <= P < H), and R = P with it, H without;
lengths is an int64 CPU tensor (B,); saved is (T, B, S), always time-major: S = 6H for LSTM
([i f g o | c_t | h_t]), 6H + P with a projection ([i f g o | c_t | m_t | h_t]) and 5H for GRU
([r z n | hn | h_t]). y, h_n and c_n are differentiable; saved is not. need_saved=False is for inference: the
kernels then write no activations, saved is an empty (0, B, S) tensor, and differentiating the call raises.
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


# ---- fake kernels: output metadata only (the real kernels' checks are in shim/common.h) --------------------


def _fake_sizes(op: str, cell: str, x: Tensor, w_hh: Tensor, w_hr: Tensor | None, batch_first: bool, others: dict):
    """(T, B, D, H, R) of a call, with the cheap checks torch.compile should fail on early."""
    torch._check(x.dim() == 3, lambda: f"{op}: argument 'x' must be 3-D, but got {x.dim()}-D")
    torch._check(
        x.dtype in (torch.float32, torch.float64),
        lambda: f"{op}: argument 'x' must be float32 or float64, but got {x.dtype}",
    )
    G = _GATES[cell]
    R = "P" if w_hr is not None else "H"
    torch._check(
        w_hh.dim() == 2 and w_hh.shape[0] % G == 0,
        lambda: f"{op}: argument 'w_hh' must have shape ({G}*H, {R}), but got {tuple(w_hh.shape)}",
    )
    H = w_hh.shape[0] // G
    if w_hr is not None:
        torch._check(
            w_hr.dim() == 2 and w_hr.shape[1] == H and w_hh.shape[1] == w_hr.shape[0],
            lambda: f"{op}: argument 'w_hr' must have shape (P, H) with H = {H} and w_hh (4*H, P), "
            f"but got w_hr {tuple(w_hr.shape)} and w_hh {tuple(w_hh.shape)}",
        )
    else:
        torch._check(
            w_hh.shape[1] == H,
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
    return T, B, x.shape[2], H, w_hh.shape[1]


def _fake_lengths(op: str, lengths: Tensor | None, B) -> None:
    """lengths is a host tensor whatever x's device. Checked here too: a lengths tensor on 'meta' (x on the CPU)
    sends the call to these fake kernels (Meta outranks CPU in dispatch), which would return uninitialized CPU
    tensors as the result."""
    if lengths is None:
        return
    torch._check(
        lengths.device.type == "cpu",
        lambda: f"{op}: argument 'lengths' must be a CPU tensor, but is on {lengths.device}",
    )
    torch._check(
        lengths.dtype == torch.int64,
        lambda: f"{op}: argument 'lengths' must be an int64 tensor, but got {lengths.dtype}",
    )
    torch._check(
        lengths.dim() == 1 and lengths.shape[0] == B,
        lambda: f"{op}: argument 'lengths' must have shape (B,) = ({B},), but got {tuple(lengths.shape)}",
    )


def _state_shape(like, B, W):
    """A state gradient's shape: its input's, (B, W) or (1, B, W); (1, B, W) without one."""
    return (B, W) if like is not None and like.dim() == 2 else (1, B, W)


def _seq(T, B, W, batch_first):
    return (B, T, W) if batch_first else (T, B, W)


@torch.library.register_fake("tsrnn::lstm")
def _lstm_fake(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, w_hr=None, need_saved=True):
    others = dict(h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)
    T, B, _, H, R = _fake_sizes("tsrnn::lstm", "lstm", x, w_hh, w_hr, batch_first, others)
    _fake_lengths("tsrnn::lstm", lengths, B)
    P = R if w_hr is not None else 0
    return (
        x.new_empty(_seq(T, B, R, batch_first)),
        x.new_empty((1, B, R)),
        x.new_empty((1, B, H)),
        x.new_empty((T if need_saved else 0, B, 6 * H + P)),
    )


@torch.library.register_fake("tsrnn::gru")
def _gru_fake(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after, need_saved=True):
    others = dict(h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    T, B, _, H, _ = _fake_sizes("tsrnn::gru", "gru", x, w_hh, None, batch_first, others)
    _fake_lengths("tsrnn::gru", lengths, B)
    return (
        x.new_empty(_seq(T, B, H, batch_first)),
        x.new_empty((1, B, H)),
        x.new_empty((T if need_saved else 0, B, 5 * H)),
    )


def _fake_weight_grads(x, G, D, H, R):
    """grad_w_ih (G*H, D), grad_w_hh (G*H, R), grad_b_ih and grad_b_hh (G*H,)."""
    return x.new_empty((G * H, D)), x.new_empty((G * H, R)), x.new_empty((G * H,)), x.new_empty((G * H,))


@torch.library.register_fake("tsrnn::lstm_backward")
def _lstm_backward_fake(
    x, h0, c0, w_ih, w_hh, saved, lengths, grad_y, grad_h_n, grad_c_n, batch_first, reverse, w_hr=None
):
    others = dict(h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, saved=saved, grad_y=grad_y, grad_h_n=grad_h_n)
    others.update(grad_c_n=grad_c_n, w_hr=w_hr)
    T, B, D, H, R = _fake_sizes("tsrnn::lstm_backward", "lstm", x, w_hh, w_hr, batch_first, others)
    _fake_lengths("tsrnn::lstm_backward", lengths, B)
    grad_x = x.new_empty(_seq(T, B, D, batch_first))
    grad_h0, grad_c0 = x.new_empty(_state_shape(h0, B, R)), x.new_empty(_state_shape(c0, B, H))
    grad_w_hr = x.new_empty((R if w_hr is not None else 0, H))
    return (grad_x, grad_h0, grad_c0, *_fake_weight_grads(x, 4, D, H, R), grad_w_hr)


@torch.library.register_fake("tsrnn::gru_backward")
def _gru_backward_fake(x, h0, w_ih, w_hh, saved, lengths, grad_y, grad_h_n, batch_first, reverse, reset_after):
    others = dict(h0=h0, w_ih=w_ih, w_hh=w_hh, saved=saved, grad_y=grad_y, grad_h_n=grad_h_n)
    T, B, D, H, _ = _fake_sizes("tsrnn::gru_backward", "gru", x, w_hh, None, batch_first, others)
    _fake_lengths("tsrnn::gru_backward", lengths, B)
    grad_h0 = x.new_empty(_state_shape(h0, B, H))
    return (x.new_empty(_seq(T, B, D, batch_first)), grad_h0, *_fake_weight_grads(x, 3, D, H, H))


# ---- autograd: one backward op call, no Python loop over time ----------------------------------------------


def _keep(grad, needed: bool, input_present: bool = True):
    return grad if needed and input_present else None


def _no_saved(op: str):
    raise RuntimeError(
        f"tsrnn: the backward of {op} needs the saved activations, but the forward was called with "
        f"need_saved=False (inference only); call it with need_saved=True (the default) to differentiate it"
    )


def _lstm_setup_context(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, *rest = inputs
    w_hr = rest[0] if rest else None
    ctx.need_saved = rest[1] if len(rest) > 1 else True
    saved = output[3]
    ctx.mark_non_differentiable(saved)
    # Undefined output grads reach backward as None and go to the op as None (= zero), not as zero tensors.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, saved, lengths, w_hr)
    ctx.batch_first, ctx.reverse = batch_first, reverse
    ctx.has_bias = (b_ih is not None, b_hh is not None)


def _lstm_backward(ctx, grad_y, grad_h_n, grad_c_n, _grad_saved):
    if not ctx.need_saved:
        _no_saved("tsrnn::lstm")
    x, h0, c0, w_ih, w_hh, saved, lengths, w_hr = ctx.saved_tensors
    grads = torch.ops.tsrnn.lstm_backward.default(
        x, h0, c0, w_ih, w_hh, saved, lengths, grad_y, grad_h_n, grad_c_n, ctx.batch_first, ctx.reverse, w_hr
    )
    g_x, g_h0, g_c0, g_w_ih, g_w_hh, g_b_ih, g_b_hh, g_w_hr = grads
    need = ctx.needs_input_grad
    # w_hr's gradient only when the call passed w_hr (needs_input_grad covers the arguments passed)
    w_hr_grad = (_keep(g_w_hr, need[10], w_hr is not None),) if len(need) > 10 else ()
    need_saved_grad = (None,) if len(need) > 11 else ()
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
        *w_hr_grad,
        *need_saved_grad,
    )


def _gru_setup_context(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after, *rest = inputs
    ctx.need_saved = rest[0] if rest else True
    saved = output[2]
    ctx.mark_non_differentiable(saved)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, h0, w_ih, w_hh, saved, lengths)
    ctx.batch_first, ctx.reverse, ctx.reset_after = batch_first, reverse, reset_after
    ctx.has_bias = (b_ih is not None, b_hh is not None)


def _gru_backward(ctx, grad_y, grad_h_n, _grad_saved):
    if not ctx.need_saved:
        _no_saved("tsrnn::gru")
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
        *((None,) if len(need) > 10 else ()),  # need_saved, when passed
    )


def _no_double_backward(ctx, *grads):
    raise RuntimeError(
        "tsrnn: double backward through tsrnn.LSTM / tsrnn.GRU (a gradient of a gradient, e.g. after "
        "autograd.grad(..., create_graph=True)) is not supported; use torch.nn.LSTM / torch.nn.GRU for "
        "second-order derivatives"
    )


def _no_context(ctx, inputs, output):
    pass


# The backward ops are differentiable only in name: without these, differentiating through them would silently
# give zero (torch warns "an autograd kernel was not registered ... may lead to silently incorrect results").
torch.library.register_autograd("tsrnn::lstm_backward", _no_double_backward, setup_context=_no_context)
torch.library.register_autograd("tsrnn::gru_backward", _no_double_backward, setup_context=_no_context)
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
    w_hr: Tensor | None = None,
    need_saved: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction (w_hr: its projection): returns (y, h_n, c_n, saved). Shapes: see above."""
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse)
    if need_saved:
        return torch.ops.tsrnn.lstm.default(*args) if w_hr is None else torch.ops.tsrnn.lstm.default(*args, w_hr)
    return torch.ops.tsrnn.lstm.default(*args, w_hr, False)


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
    need_saved: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """One GRU layer in one direction: returns (y, h_n, saved). reset_after=False is the notebook/Keras form."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_first, reverse, reset_after)
    return torch.ops.tsrnn.gru.default(*args) if need_saved else torch.ops.tsrnn.gru.default(*args, False)
