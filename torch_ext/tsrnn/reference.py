"""Pure-torch references of the tsrnn ops: same signatures, same outputs (including saved), forward only.

Plain and slow on purpose: a Python loop over time with PyTorch's cell formulas, differentiable through autograd,
so tests can compare the fused kernels' outputs *and* gradients against it. Covers what nn.LSTM / nn.GRU cannot:
GRU with reset_after=False, the saved-activation layout, zero lengths.

Semantics (kernels/include/tsrnn.h): sequence b has length L = lengths[b] (T when lengths is None); reverse walks
t = L-1 .. 0, forward t = 0 .. L-1; past L, y and saved rows are zero and the state stops updating, so h_n / c_n
hold the state after the last valid step (h0 / c0 when L = 0), (1, B, R) as the ops return them. saved is
(T, B, S), time-major: LSTM [i f g o | c_t | h_t] (S = 6H), with a projection w_hr (P, H)
[i f g o | c_t | m_t | h_t] (S = 6H + P, m_t = o * tanh(c_t), h_t = m_t w_hr^T), GRU [r z n | hn | h_t] (S = 5H)
with hn = h_{t-1} W_hn^T + b_hn (reset_after) or (r * h_{t-1}) W_hn^T + b_hn (not reset_after).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["lstm_reference", "gru_reference"]


def _time_index(T: int, B: int, lengths: Tensor | None, reverse: bool, device) -> tuple[Tensor, Tensor]:
    """(T, B) time index of step k for each sequence, and (T, B) mask of valid steps.

    For reverse, step k of sequence b reads time L_b - 1 - k; steps k >= L_b map to themselves. Either way the map
    is its own inverse, so the same index also puts per-step results back in time order.
    """
    k = torch.arange(T, device=device).unsqueeze(1).expand(T, B)
    L = torch.full((B,), T, dtype=torch.int64) if lengths is None else lengths.to(torch.int64)
    L = L.to(device).unsqueeze(0).expand(T, B)
    valid = k < L
    index = torch.where(valid, L - 1 - k, k) if reverse else k
    return index, valid


def _to_time_order(per_step: list[Tensor], index: Tensor, like: Tensor) -> Tensor:
    """Stacks per-step (B, W) rows and moves row (k, b) to time index[k, b]."""
    steps = torch.stack(per_step) if per_step else like.new_zeros((0,) + tuple(like.shape[1:]))
    return steps.gather(0, index.unsqueeze(2).expand_as(steps))


def _linear(v: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    out = v @ w.t()
    return out if b is None else out + b


def _prepare(x: Tensor, batch_first: bool, lengths: Tensor | None, reverse: bool):
    x_tm = x.transpose(0, 1) if batch_first else x  # (T, B, D)
    T, B = x_tm.shape[0], x_tm.shape[1]
    index, valid = _time_index(T, B, lengths, reverse, x.device)
    # x in step order: row (k, b) is x at time index[k, b]
    x_steps = x_tm.gather(0, index.unsqueeze(2).expand_as(x_tm))
    return x_tm, x_steps, index, valid


def lstm_reference(
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
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torch.ops.tsrnn.lstm in plain torch: returns (y, h_n, c_n, saved)."""
    x_tm, x_steps, index, valid = _prepare(x, batch_first, lengths, reverse)
    T, B = x_tm.shape[0], x_tm.shape[1]
    H, R = w_hh.shape[0] // 4, w_hh.shape[1]
    h = h0.reshape(B, R) if h0 is not None else x.new_zeros(B, R)  # h0 (1, B, R) or (B, R)
    c = c0.reshape(B, H) if c0 is not None else x.new_zeros(B, H)
    ys, rows = [], []
    for k in range(T):
        gates = _linear(x_steps[k], w_ih, b_ih) + _linear(h, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c + i * g
        m_new = o * torch.tanh(c_new)
        h_new = m_new if w_hr is None else m_new @ w_hr.t()
        m = valid[k].unsqueeze(1)  # (B, 1): does sequence b take step k?
        h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
        ys.append(torch.where(m, h_new, torch.zeros_like(h_new)))
        parts = [i, f, g, o, c_new, h_new] if w_hr is None else [i, f, g, o, c_new, m_new, h_new]
        row = torch.cat(parts, dim=1)
        rows.append(torch.where(m, row, torch.zeros_like(row)))
    y = _to_time_order(ys, index, x.new_zeros(T, B, R))
    saved = _to_time_order(rows, index, x.new_zeros(T, B, 6 * H + (0 if w_hr is None else R)))
    return (y.transpose(0, 1) if batch_first else y), h.unsqueeze(0), c.unsqueeze(0), saved


def gru_reference(
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
    """torch.ops.tsrnn.gru in plain torch: returns (y, h_n, saved)."""
    x_tm, x_steps, index, valid = _prepare(x, batch_first, lengths, reverse)
    T, B = x_tm.shape[0], x_tm.shape[1]
    H = w_hh.shape[1]
    h = h0.reshape(B, H) if h0 is not None else x.new_zeros(B, H)
    w_hrz, w_hn = w_hh[: 2 * H], w_hh[2 * H :]
    b_hrz = None if b_hh is None else b_hh[: 2 * H]
    b_hn = None if b_hh is None else b_hh[2 * H :]
    ys, rows = [], []
    for k in range(T):
        gi = _linear(x_steps[k], w_ih, b_ih)
        gi_r, gi_z, gi_n = gi.chunk(3, dim=1)
        gh_r, gh_z = _linear(h, w_hrz, b_hrz).chunk(2, dim=1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        if reset_after:
            hn = _linear(h, w_hn, b_hn)
            n = torch.tanh(gi_n + r * hn)
        else:
            hn = _linear(r * h, w_hn, b_hn)
            n = torch.tanh(gi_n + hn)
        h_new = (1 - z) * n + z * h
        m = valid[k].unsqueeze(1)
        h = torch.where(m, h_new, h)
        ys.append(torch.where(m, h_new, torch.zeros_like(h_new)))
        row = torch.cat([r, z, n, hn, h_new], dim=1)
        rows.append(torch.where(m, row, torch.zeros_like(row)))
    y = _to_time_order(ys, index, x.new_zeros(T, B, H))
    saved = _to_time_order(rows, index, x.new_zeros(T, B, 5 * H))
    return (y.transpose(0, 1) if batch_first else y), h.unsqueeze(0), saved
