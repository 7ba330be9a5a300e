"""tsrnn.LSTM and tsrnn.GRU: nn.LSTM / nn.GRU with the fused tsrnn kernels inside.

The classes are built on nn.RNNBase exactly as nn.LSTM / nn.GRU are, and borrow their argument checks, so the
constructor, its validation, ``reset_parameters``, the parameter names and the ``state_dict`` are nn.*'s own; only
``forward`` differs. (They are deliberately not subclasses of nn.LSTM / nn.GRU: torch.compile refuses to trace
any instance of those.)

``forward`` composes one ``torch.ops.tsrnn`` call per layer and direction: the reverse direction is the kernel's
``reverse`` flag, a PackedSequence becomes a padded batch plus the kernel's per-sequence ``lengths``, an LSTM's
``proj_size`` is the kernel's projection ``w_hr`` (applied inside its time loop), and dropout is applied between
layers in training mode, as nn.* does. The common call (one layer, one direction, a 3-D tensor, no hx, no
return_gates) calls its op directly, without the generic path's argument handling and layer loop: the same op
call and the same results (tests/python/test_single_layer_path.py), for the per-call cost of small calls.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import _ops  # noqa: F401  (loads the shim library: registers torch.ops.tsrnn)

__all__ = ["LSTM", "GRU"]


# The ops, called positionally with every argument (the _ops wrappers' defaults are for people).
_LSTM_OP = torch.ops.tsrnn.lstm.default
_GRU_OP = torch.ops.tsrnn.gru.default
# Their C++ entry points, which OpOverload.__call__ forwards to: calling them directly saves that Python frame in
# small calls (B = 1) that need no autograd. torch.compile traces the OpOverloads, so compiled code uses those.
_LSTM_RAW = getattr(_LSTM_OP, "_op", _LSTM_OP)
_GRU_RAW = getattr(_GRU_OP, "_op", _GRU_OP)
_BELOW_AUTOGRAD = torch._C._AutoDispatchBelowAutograd


def _op_dispatch(need_grad: bool):
    """Where the op calls of one forward go: through autograd when a gradient can flow (or while compiling), else
    straight below it, which skips torch.library's Python autograd wrapper (a large part of a small call's cost)."""
    if need_grad or torch.compiler.is_compiling():
        return contextlib.nullcontext()
    return torch._C._AutoDispatchBelowAutograd()


class _TsrnnRNNMixin:
    """Shared forward plumbing for the two cells: argument checks as nn.*, then one op per layer and direction."""

    def _prepare(self, input, hx, num_states: int):
        """nn.*'s input/hx handling. Returns (padded input, lengths or None, states or None, is_batched, packed),
        states a tuple of (L*dirs, B, H) tensors in the caller's batch order."""
        name = type(self).__name__
        if isinstance(input, PackedSequence):
            packed = input
            self.check_input(packed.data, packed.batch_sizes)
            # padded (T, B, D) in the caller's batch order, lengths int64 on the CPU
            x, lengths = pad_packed_sequence(packed, batch_first=self.batch_first)
            is_batched = True
        else:
            packed, lengths = None, None
            if not isinstance(input, Tensor):
                raise TypeError(f"{name}: expected input to be a Tensor or PackedSequence, got {type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            is_batched = input.dim() == 3
            x = input if is_batched else input.unsqueeze(0 if self.batch_first else 1)
        states = None
        if hx is not None:
            states = (hx,) if num_states == 1 else tuple(hx)
            if num_states == 2 and len(states) != 2:
                raise ValueError(f"{name}: hx must be a tuple (h_0, c_0), got {len(states)} tensors")
            for s in states:
                if not isinstance(s, Tensor):
                    raise TypeError(f"{name}: expected hx to hold Tensors, got {type(s).__name__}")
            want = 3 if is_batched else 2
            if any(s.dim() != want for s in states):
                dims = ", ".join(f"{s.dim()}-D" for s in states)
                kind = "batched 3-D" if is_batched else "unbatched 2-D"
                if num_states == 2:
                    raise RuntimeError(f"For {kind} input, hx and cx should also be {want}-D but got ({dims}) tensors")
                raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got {dims} tensor")
            if not is_batched:
                states = tuple(s.unsqueeze(1) for s in states)
            # nn.*'s own checks and messages (dtype, input size, hidden sizes), on the padded batch
            self.check_forward_args(x, states if num_states == 2 else states[0], None)
        else:
            self.check_input(x, None)
        for s in states or ():
            if s.dtype != x.dtype:
                raise ValueError(f"{name}: hx dtype ({s.dtype}) does not match input dtype ({x.dtype})")
            if s.device != x.device:
                raise ValueError(f"{name}: hx is on {s.device} but input is on {x.device}")
        return x, lengths, states, is_batched, packed

    def _single_layer(self, input, hx, return_gates: bool, num_states: int):
        """(output, final states as nn.* returns them) when ``forward`` can skip the generic path: one layer in one
        direction, a batched tensor input nn.*'s checks accept (same dtype as the weights, last size input_size),
        no return_gates, and no hx or one that is exactly what nn.* expects ((1, B, R) [and (1, B, H)] tensors of
        the input's dtype and device); else None. Anything else, errors included, takes ``_run``.
        The same op call as ``_run`` makes, without its argument handling and layer loop (the path of small
        streaming calls, B = 1, where each attribute lookup and Python frame shows). The op's states are
        (1, B, R) already, nn.*'s shape for one layer."""
        if return_gates or self.num_layers != 1 or self.bidirectional:
            return None
        w = self._flat_weights
        if not isinstance(input, Tensor) or input.dim() != 3 or input.dtype != w[0].dtype:
            return None
        if input.shape[2] != self.input_size:
            return None
        states = (None,) * num_states
        state_grad = False
        if hx is not None:
            states = self._single_states(input, hx, num_states)
            if states is None:
                return None
            state_grad = any(s.requires_grad for s in states)
        if torch.is_grad_enabled() and (input.requires_grad or state_grad or any(p.requires_grad for p in w)):
            return self._single_call(True, input, states, w, True)
        if torch.compiler.is_compiling():
            return self._single_call(True, input, states, w, False)
        if torch.is_inference_mode_enabled():  # autograd is off in dispatch already
            return self._single_call(False, input, states, w, False)
        with _BELOW_AUTOGRAD():  # no_grad: below autograd, which skips torch.library's Python autograd wrapper
            return self._single_call(False, input, states, w, False)

    def _single_states(self, x, hx, num_states: int):
        """hx as a tuple of states when it is exactly what nn.* accepts for the batched x, else None."""
        states = (hx,) if num_states == 1 else hx
        if not isinstance(states, tuple) or len(states) != num_states:
            return None
        B = x.shape[0] if self.batch_first else x.shape[1]
        R = self.proj_size if self.proj_size > 0 else self.hidden_size
        for s, width in zip(states, (R, self.hidden_size)):
            if not isinstance(s, Tensor) or s.shape != (1, B, width) or s.dtype != x.dtype or s.device != x.device:
                return None
        return states

    def _grad_can_flow(self, x, states) -> bool:
        return torch.is_grad_enabled() and (
            x.requires_grad
            or any(p.requires_grad for p in self._flat_weights)
            or (states is not None and any(s.requires_grad for s in states))
        )

    def _layer_weights(self, k: int):
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of layer * dirs + direction k; None for what the module does not have.
        Read from nn.RNNBase's _flat_weights (kept current by its __setattr__, as nn.LSTM's forward relies on):
        per k, [w_ih, w_hh], then [b_ih, b_hh] with bias, then [w_hr] with proj_size."""
        n = 2 + 2 * self.bias + (self.proj_size > 0)
        w = self._flat_weights[k * n : (k + 1) * n]
        b_ih, b_hh = (w[2], w[3]) if self.bias else (None, None)
        return w[0], w[1], b_ih, b_hh, (w[-1] if self.proj_size > 0 else None)

    def _run(self, input, hx, num_states: int, return_gates: bool):
        """Runs every layer and direction through the cell's ``_layer_call(x, states_k, weights, lengths, reverse,
        need_saved)``, which returns (y, new_states_tuple, saved). Returns (output, tuple of stacked final states,
        tuple of saved).

        When no gradient can flow (grad mode off, or nothing requires grad) the kernels keep no activations unless
        return_gates asks for them, and the ops are called below the autograd dispatch key, so the call skips the
        Python autograd wrapper of torch.library."""
        x, lengths, states, is_batched, packed = self._prepare(input, hx, num_states)
        need_grad = self._grad_can_flow(x, states)
        with _op_dispatch(need_grad):
            return self._layers(x, lengths, states, is_batched, packed, num_states, need_grad or return_gates)

    def _layers(self, x, lengths, states, is_batched, packed, num_states: int, need_saved: bool):
        """The body of _run: every layer and direction, then nn.*'s output packaging."""
        if self.num_layers == 1 and not self.bidirectional:  # the common case, without the lists
            # states and the op's new states are (1, B, R), nn.*'s shape for one layer
            state_k = states if states is not None else (None,) * num_states
            output, finals, saved = self._layer_call(x, state_k, self._layer_weights(0), lengths, False, need_saved)
            saved_all = [saved]
        else:
            output, finals, saved_all = self._stack(x, lengths, states, num_states, need_saved)
        if packed is not None:
            output = _repack(output, lengths, packed, self.batch_first)
        elif not is_batched:
            output = output.squeeze(0 if self.batch_first else 1)
            finals = tuple(f.squeeze(1) for f in finals)
            saved_all = [s.squeeze(1) for s in saved_all]
        return output, finals, tuple(saved_all)

    def _stack(self, x, lengths, states, num_states: int, need_saved: bool):
        """Several layers or two directions: (output, stacked final states, list of saved)."""
        dirs = 2 if self.bidirectional else 1
        finals = [[] for _ in range(num_states)]
        saved_all = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for d in range(dirs):
                k = layer * dirs + d
                weights = self._layer_weights(k)
                state_k = tuple(s[k] for s in states) if states is not None else (None,) * num_states
                y, new_states, saved = self._layer_call(layer_input, state_k, weights, lengths, bool(d), need_saved)
                outputs.append(y)
                for f, s in zip(finals, new_states):
                    f.append(s)
                saved_all.append(saved)
            layer_input = outputs[0] if dirs == 1 else torch.cat(outputs, dim=-1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, p=self.dropout, training=True)
        return layer_input, tuple(torch.cat(f) for f in finals), saved_all  # each (1, B, R)


def _repack(y: Tensor, lengths: Tensor, like: PackedSequence, batch_first: bool) -> PackedSequence:
    """Packs a padded output (caller's batch order) with the input's own batch_sizes and indices."""
    if like.sorted_indices is not None:
        y = y.index_select(0 if batch_first else 1, like.sorted_indices)
        lengths = lengths.index_select(0, like.sorted_indices.cpu())
    data = pack_padded_sequence(y, lengths, batch_first=batch_first, enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


class LSTM(_TsrnnRNNMixin, nn.RNNBase):
    """Drop-in replacement for :class:`torch.nn.LSTM` running the fused tsrnn kernels.

    Same constructor, parameters and ``state_dict`` as nn.LSTM. ``forward(input, hx=None, return_gates=False)``
    returns ``(output, (h_n, c_n))`` like nn.LSTM; with ``return_gates=True`` a third element holds the
    kernel's saved activations, a tuple with one tensor per layer and direction (index ``layer * dirs + d``),
    each (T, B, 6H) time-major (T, 6H unbatched): ``[i f g o | c_t | h_t]`` per step, or with ``proj_size`` P
    (T, B, 6H + P): ``[i f g o | c_t | m_t | h_t]``, m_t = o * tanh(c_t) and h_t = m_t W_hr^T.
    """

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    # nn.LSTM's own checks, so the error messages are the same
    get_expected_cell_size = nn.LSTM.get_expected_cell_size
    check_forward_args = nn.LSTM.check_forward_args
    permute_hidden = nn.LSTM.permute_hidden

    def _layer_call(self, x, states, weights, lengths, reverse, need_saved):
        """One layer and direction: (y, (h_n, c_n), saved)."""
        w_ih, w_hh, b_ih, b_hh, w_hr = weights
        y, h_n, c_n, saved = _LSTM_OP(
            x, *states, w_ih, w_hh, b_ih, b_hh, lengths, self.batch_first, reverse, w_hr, need_saved
        )
        return y, (h_n, c_n), saved

    def _single_call(self, overload: bool, x, states, w, need_saved: bool):
        """The single-layer path's op call on (h0, c0) and _flat_weights w: (y, (h_n, c_n)). overload: through
        the OpOverload (autograd, torch.compile), else its C++ entry."""
        b_ih, b_hh = (w[2], w[3]) if self.bias else (None, None)
        w_hr = w[-1] if self.proj_size > 0 else None
        op = _LSTM_OP if overload else _LSTM_RAW
        y, h_n, c_n, _ = op(x, *states, w[0], w[1], b_ih, b_hh, None, self.batch_first, False, w_hr, need_saved)
        return y, (h_n, c_n)

    def forward(self, input, hx=None, return_gates: bool = False):
        single = self._single_layer(input, hx, return_gates, 2)
        if single is not None:
            return single
        output, (h_n, c_n), saved = self._run(input, hx, 2, return_gates)
        if return_gates:
            return output, (h_n, c_n), saved
        return output, (h_n, c_n)


class GRU(_TsrnnRNNMixin, nn.RNNBase):
    """Drop-in replacement for :class:`torch.nn.GRU` running the fused tsrnn kernels.

    Same constructor, parameters and ``state_dict`` as nn.GRU, plus ``reset_after`` (default True, PyTorch's
    form ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``; False gives the seed notebook's / Keras'
    ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``). ``forward(input, hx=None, return_gates=False)``
    returns ``(output, h_n)``; with ``return_gates=True`` a third element holds the saved activations, one
    tensor per layer and direction, each (T, B, 5H) time-major: ``[r z n | hn | h_t]`` per step.
    """

    def __init__(self, *args, reset_after: bool = True, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)
        if not isinstance(reset_after, bool):
            raise TypeError(f"reset_after should be a bool, got {type(reset_after).__name__}")
        self.reset_after = reset_after

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.reset_after else s + ", reset_after=False"

    def _layer_call(self, x, states, weights, lengths, reverse, need_saved):
        """One layer and direction: (y, (h_n,), saved)."""
        y, h_n, saved = _GRU_OP(x, states[0], *weights[:4], lengths, self.batch_first, reverse, self.reset_after, need_saved)
        return y, (h_n,), saved

    def _single_call(self, overload: bool, x, states, w, need_saved: bool):
        """The single-layer path's op call on (h0,) and _flat_weights w: (y, h_n). overload: as LSTM's."""
        b_ih, b_hh = (w[2], w[3]) if self.bias else (None, None)
        op = _GRU_OP if overload else _GRU_RAW
        y, h_n, _ = op(x, states[0], w[0], w[1], b_ih, b_hh, None, self.batch_first, False, self.reset_after,
                       need_saved)
        return y, h_n

    def forward(self, input, hx=None, return_gates: bool = False):
        single = self._single_layer(input, hx, return_gates, 1)
        if single is not None:
            return single
        output, (h_n,), saved = self._run(input, hx, 1, return_gates)
        if return_gates:
            return output, h_n, saved
        return output, h_n
