"""Every bad argument of the raw ops torch.ops.tsrnn.{lstm,gru}[_backward] ends in a RuntimeError that names the op,
the argument and what was expected: dtypes, ranks and shapes of each argument, lengths (values, dtype, shape, device,
odd kinds), devices, and sizes whose element counts overflow (checked before anything is copied or allocated: the
huge cases are stride-0 views). The modules' side of the same mistakes is in test_bad_inputs.py.
"""

import re

import pytest
import torch

from rnn_testing import GATES, OPS, lstm_projection_args, op_args, op_backward_call, op_call, op_name

CELLS = list(GATES)  # lstm, gru, gru_reset_before
T, B, D, H, P = 4, 3, 5, 6, 2  # op_args' and lstm_projection_args' defaults


def _valid(cell):
    args = op_args(cell, T, B, D, H)
    args["lengths"] = torch.tensor([4, 0, 2])
    return args


def _valid_backward(cell):
    args = _valid(cell)
    outs = op_call(cell, args)
    g = torch.Generator().manual_seed(15)
    args.update(saved=outs[-1], grad_y=torch.randn(outs[0].shape, generator=g),
                grad_h_n=torch.randn(outs[1].shape, generator=g))
    if cell == "lstm":
        args["grad_c_n"] = torch.randn(outs[2].shape, generator=g)
    return args


def _all_tensors(convert):
    return lambda a, c: {k: convert(v) for k, v in a.items() if isinstance(v, torch.Tensor) and k != "lengths"}


def _huge_x(T_, B_, D_):
    return torch.zeros(1, 1, 1).expand(T_, B_, 1) if D_ == 1 else torch.zeros(1, 1, D_).expand(T_, B_, D_)


# (cells, id, change(valid args, cell) -> replaced arguments, argument the message names or None, pattern). The
# pattern is a regex searched in the message; {G} stands for the cell's gate count.
FORWARD_ERRORS = [
    ("all", "x int32", lambda a, c: dict(x=a["x"].to(torch.int32)), "x", "float32 or float64, but got int32"),
    ("all", "x int64", lambda a, c: dict(x=a["x"].to(torch.int64)), "x", "float32 or float64"),
    ("all", "x bool", lambda a, c: dict(x=a["x"] > 0), "x", "float32 or float64"),
    ("all", "x float16", lambda a, c: dict(x=a["x"].half()), "x", "float32 or float64"),
    ("all", "x complex64", lambda a, c: dict(x=a["x"].to(torch.complex64)), "x", r"float32 or float64, but got \w+"),
    ("all", "all bfloat16", _all_tensors(torch.Tensor.bfloat16), "x", "float32 or float64, but got bfloat16"),
    ("all", "all float16", _all_tensors(torch.Tensor.half), "x", "float32 or float64, but got float16"),
    ("all", "all int64", _all_tensors(torch.Tensor.long), "x", "float32 or float64, but got int64"),
    ("all", "x float64, rest float32", lambda a, c: dict(x=a["x"].double()), None,
     r"argument '\w+' must have the same dtype as x \(float64\), but got float32"),
    ("all", "w_ih float64", lambda a, c: dict(w_ih=a["w_ih"].double()), "w_ih", "same dtype as x"),
    ("all", "w_hh float64", lambda a, c: dict(w_hh=a["w_hh"].double()), "w_hh", "same dtype as x"),
    ("all", "h0 float64", lambda a, c: dict(h0=a["h0"].double()), "h0", "same dtype as x"),
    ("lstm", "c0 int32", lambda a, c: dict(c0=a["c0"].int()), "c0", "same dtype as x"),
    ("all", "b_hh float64", lambda a, c: dict(b_hh=a["b_hh"].double()), "b_hh", "same dtype as x"),
    ("all", "x 2-D", lambda a, c: dict(x=a["x"][0]), "x", "3-D"),
    ("all", "x 4-D", lambda a, c: dict(x=a["x"].unsqueeze(0)), "x", "3-D"),
    ("all", "x without features", lambda a, c: dict(x=a["x"][..., :0]), "x", "D >= 1"),
    ("all", "w_ih 1-D", lambda a, c: dict(w_ih=a["w_ih"].flatten()), "w_ih", "2-D"),
    ("all", "w_hh 3-D", lambda a, c: dict(w_hh=a["w_hh"].unsqueeze(0)), "w_hh", "2-D"),
    ("all", "D mismatch", lambda a, c: dict(w_ih=torch.zeros(a["w_ih"].shape[0], D + 1)), "w_ih", r"\*H, D\)"),
    ("all", "w_ih rows != G*H", lambda a, c: dict(w_ih=torch.zeros(a["w_ih"].shape[0] + 1, D)), "w_ih", r"\*H, D\)"),
    ("all", "H mismatch", lambda a, c: dict(w_hh=torch.zeros(a["w_hh"].shape[0], H + 1)), "w_hh", r"\*H, H\)"),
    ("lstm", "GRU weights", lambda a, c: dict(w_hh=torch.zeros(3 * H, H)), "w_hh", r"4\*H, H"),
    ("gru", "LSTM weights", lambda a, c: dict(w_hh=torch.zeros(4 * H, H)), "w_hh", r"3\*H, H"),
    ("all", "w_hh with H = 0", lambda a, c: dict(w_hh=torch.zeros(0, 0)), "w_hh", "H >= 1"),
    ("all", "h0 (B+1, H)", lambda a, c: dict(h0=torch.zeros(B + 1, H)), "h0", r"\(B, H\) = \(3, 6\)"),
    ("all", "h0 (B, H+1)", lambda a, c: dict(h0=torch.zeros(B, H + 1)), "h0", r"\(B, H\)"),
    ("all", "h0 (2, B, H)", lambda a, c: dict(h0=torch.zeros(2, B, H)), "h0", r"\(1, B, H\) or \(B, H\)"),
    ("all", "h0 (1, B+1, H)", lambda a, c: dict(h0=torch.zeros(1, B + 1, H)), "h0", r"\(1, B, H\) or"),
    ("all", "h0 4-D", lambda a, c: dict(h0=torch.zeros(1, 1, B, H)), "h0", "4-D tensor"),
    ("lstm", "c0 (1, B, H+1)", lambda a, c: dict(c0=torch.zeros(1, B, H + 1)), "c0", r"\(1, B, H\) or"),
    ("lstm", "c0 (B, H-1)", lambda a, c: dict(c0=torch.zeros(B, H - 1)), "c0", r"\(B, H\)"),
    ("all", "b_ih too long", lambda a, c: dict(b_ih=torch.zeros(a["b_ih"].shape[0] + 1)), "b_ih", r"\*H,\)"),
    ("all", "b_hh 2-D", lambda a, c: dict(b_hh=a["b_hh"].unsqueeze(0)), "b_hh", r"\*H,\)"),
    ("all", "lengths > T", lambda a, c: dict(lengths=torch.tensor([4, 5, 0])), "lengths", r"lengths\[1\] = 5"),
    ("all", "lengths < 0", lambda a, c: dict(lengths=torch.tensor([4, -1, 0])), "lengths", r"\[0, T\] = \[0, 4\]"),
    ("all", "lengths 2**40", lambda a, c: dict(lengths=torch.tensor([2**40, 1, 1])), "lengths",
     r"must hold values in \[0, T\] = \[0, 4\], but lengths\[0\] = 1099511627776"),
    ("all", "lengths int64 min", lambda a, c: dict(lengths=torch.tensor([1, -(2**63), 1])), "lengths",
     r"lengths\[1\] = -9223372036854775808"),
    ("all", "lengths int32", lambda a, c: dict(lengths=a["lengths"].int()), "lengths", "int64"),
    ("all", "lengths float", lambda a, c: dict(lengths=a["lengths"].float()), "lengths", "int64"),
    ("all", "lengths bool", lambda a, c: dict(lengths=torch.tensor([True, True, False])), "lengths",
     "must be an int64 tensor, but got bool"),
    ("all", "lengths (B+1,)", lambda a, c: dict(lengths=torch.tensor([1, 1, 1, 1])), "lengths", r"\(B,\) = \(3,\)"),
    ("all", "lengths (B, 1)", lambda a, c: dict(lengths=a["lengths"].unsqueeze(1)), "lengths", r"\(B,\)"),
    ("all", "lengths 0-D", lambda a, c: dict(lengths=torch.tensor(3)), "lengths",
     r"must have shape \(B,\) = \(3,\) \(1-D\), but got a 0-D tensor"),
    ("all", "lengths a Python list", lambda a, c: dict(lengths=[4, 2, 1]), "lengths",
     r"Expected a value of type 'Optional\[Tensor\]' for argument 'lengths'"),
    ("all", "lengths on meta", lambda a, c: dict(lengths=torch.tensor([4, 2, 1], device="meta")), "lengths",
     "must be a CPU tensor"),
    ("all", "batch_first mismatch", lambda a, c: dict(batch_first=True), "h0", r"\(B, H\) = \(4, 6\)"),
    ("all", "h0 on meta", lambda a, c: dict(h0=a["h0"].to("meta")), "h0", "device"),
    ("all", "w_hh on meta", lambda a, c: dict(w_hh=a["w_hh"].to("meta")), "w_hh", "device"),
    ("all", "b_ih on meta", lambda a, c: dict(b_ih=a["b_ih"].to("meta")), "b_ih",
     r"must be on the same device as x \(cpu\), but is on meta"),
    ("all", "x on meta, the rest on cpu", lambda a, c: dict(x=a["x"].to("meta")), None,
     r"argument '\w+' must be on the same device as x \(meta\), but is on cpu"),
    # huge sizes: x below is a stride-0 view of 5 floats with 2^52 * 5 logical elements (a copy would need 90 PB)
    ("all", "x expanded to 2**54 elements, bad h0", lambda a, c: dict(x=_huge_x(2**26, 2**26, D)), "h0",
     r"must have shape \(B, H\) = \(67108864, 6\), but got \(3, 6\)"),
    ("all", "x expanded to 2**54 elements, bad lengths",
     lambda a, c: dict(x=_huge_x(2**26, 2**26, D), h0=None, c0=None, lengths=torch.zeros(3, dtype=torch.long)),
     "lengths", r"must have shape \(B,\) = \(67108864,\), but got \(3,\)"),
    ("all", "w_hh expanded to 2**34 elements, bad w_ih",
     lambda a, c: dict(w_hh=torch.zeros(1, 1).expand(GATES[c] * 2**16, 2**16)), "w_ih",
     r"must have shape \({G}\*H, D\) = \(\d+, 5\), but got"),
    ("all", "x expanded to 2**62 elements",
     lambda a, c: dict(x=_huge_x(2**31, 2**31, 1), h0=None, c0=None, lengths=None, w_ih=torch.zeros(GATES[c], 1),
                       w_hh=torch.zeros(GATES[c], 1), b_ih=None, b_hh=None), None, "too large|overflow"),
    ("all", "D expanded to 2**40",
     lambda a, c: dict(x=torch.zeros(1, 1, 1).expand(1, 1, 2**40), h0=None, c0=None, lengths=None,
                       w_ih=torch.zeros(1, 1).expand(GATES[c], 2**40), w_hh=torch.zeros(GATES[c], 1), b_ih=None,
                       b_hh=None), None, "too large|overflow|allocat"),
]

BACKWARD_ERRORS = [
    ("lstm", "saved (T, B, 5H)", lambda a, c: dict(saved=torch.zeros(T, B, 5 * H)), "saved", r"6\*H\) = \(4, 3, 36\)"),
    ("gru", "saved (T, B, 6H)", lambda a, c: dict(saved=torch.zeros(T, B, 6 * H)), "saved", r"5\*H\) = \(4, 3, 30\)"),
    ("all", "saved batch-first", lambda a, c: dict(saved=a["saved"].transpose(0, 1)), "saved", r"\(T, B, "),
    ("all", "saved float64", lambda a, c: dict(saved=a["saved"].double()), "saved", "same dtype as x"),
    ("all", "saved 2-D", lambda a, c: dict(saved=a["saved"][0]), "saved", "2-D tensor"),
    ("all", "grad_y (T, B, H+1)", lambda a, c: dict(grad_y=torch.zeros(T, B, H + 1)), "grad_y", r"\(T, B, H\)"),
    ("all", "grad_y batch-first", lambda a, c: dict(grad_y=torch.zeros(B, T, H)), "grad_y", r"\(T, B, H\)"),
    ("all", "grad_y float64", lambda a, c: dict(grad_y=a["grad_y"].double()), "grad_y", "same dtype"),
    ("all", "grad_h_n (B+1, H)", lambda a, c: dict(grad_h_n=torch.zeros(B + 1, H)), "grad_h_n", r"\(B, H\)"),
    ("lstm", "grad_c_n (H,)", lambda a, c: dict(grad_c_n=torch.zeros(H)), "grad_c_n", r"\(B, H\)"),
    ("all", "x int32", lambda a, c: dict(x=a["x"].int()), "x", "float32 or float64"),
    ("all", "h0 wrong shape", lambda a, c: dict(h0=torch.zeros(B, 1)), "h0", r"\(B, H\)"),
    ("all", "D mismatch", lambda a, c: dict(w_ih=torch.zeros(a["w_ih"].shape[0], 2)), "w_ih", r"\*H, D\)"),
    ("all", "lengths > T", lambda a, c: dict(lengths=torch.tensor([9, 0, 0])), "lengths", r"\[0, T\]"),
    ("all", "lengths int32", lambda a, c: dict(lengths=a["lengths"].int()), "lengths", "int64"),
    ("all", "saved on meta", lambda a, c: dict(saved=a["saved"].to("meta")), "saved", "device"),
]


def _cases(table):
    for which, what, change, arg, pattern in table:
        for cell in CELLS if which == "all" else (["lstm"] if which == "lstm" else ["gru", "gru_reset_before"]):
            yield pytest.param(cell, change, arg, pattern, id=f"{cell}-{what}")


def expect_op_error(call, op, arg, pattern, cell):
    """call() raises a RuntimeError naming the op (tsrnn::op), the argument (when given) and matching pattern."""
    with pytest.raises(RuntimeError) as info:
        call()
    msg = str(info.value)
    assert f"tsrnn::{op}" in msg, f"the message does not name the op tsrnn::{op}: {msg}"
    if arg is not None:
        assert f"'{arg}'" in msg, f"the message does not name argument {arg!r}: {msg}"
    pattern = pattern.replace("{G}", str(GATES[cell]))
    assert re.search(pattern, msg), f"expected {pattern!r} in: {msg}"


@pytest.mark.parametrize("cell,change,arg,pattern", list(_cases(FORWARD_ERRORS)))
def test_forward_op_refuses(cell, change, arg, pattern):
    args = _valid(cell)
    op_call(cell, args)  # the valid call works
    args.update(change(args, cell))
    if cell != "lstm":
        args.pop("c0", None)  # changes written for both cells may set it
    expect_op_error(lambda: op_call(cell, args), op_name(cell), arg, pattern, cell)


@pytest.mark.parametrize("cell,change,arg,pattern", list(_cases(BACKWARD_ERRORS)))
def test_backward_op_refuses(cell, change, arg, pattern):
    args = _valid_backward(cell)
    op_backward_call(cell, args)  # the valid call works
    args.update(change(args, cell))
    expect_op_error(lambda: op_backward_call(cell, args), op_name(cell) + "_backward", arg, pattern, cell)


# an LSTM with a projection (w_hr, nn.LSTM's proj_size): (id, replaced arguments, argument named, pattern)
PROJECTION_ERRORS = [
    ("w_hr with P = H", dict(w_hr=torch.zeros(H, H), w_hh=torch.zeros(4 * H, H)), "w_hr", "1 <= P < H"),
    ("w_hr 1-D", dict(w_hr=torch.zeros(P * H)), "w_hr", "2-D"),
    ("w_hr columns != H", dict(w_hr=torch.zeros(P, H + 1)), "w_hr", r"\(P, H\)"),
    ("w_hr float64", dict(w_hr=torch.zeros(P, H, dtype=torch.float64)), "w_hr", "same dtype as x"),
    ("w_hh (4H, H) with w_hr", dict(w_hh=torch.zeros(4 * H, H)), "w_hh", r"4\*H, P"),
    ("h0 (B, H) with w_hr", dict(h0=torch.zeros(B, H)), "h0", r"\(B, P\)"),
    ("c0 (B, P) with w_hr", dict(c0=torch.zeros(B, P)), "c0", r"\(B, H\)"),
]


@pytest.mark.parametrize("change,arg,pattern", [pytest.param(*c[1:], id=c[0]) for c in PROJECTION_ERRORS])
def test_projected_forward_op_refuses(change, arg, pattern):
    args = lstm_projection_args(dtype=torch.float32)
    OPS.lstm(**args)  # the valid call works
    args.update(change)
    expect_op_error(lambda: OPS.lstm(**args), "lstm", arg, pattern, "lstm")


def test_projected_backward_op_checks_grad_shapes():
    args = lstm_projection_args(dtype=torch.float32)
    y, h_n, c_n, saved = OPS.lstm(**args)
    bwd = {k: args[k] for k in ["x", "h0", "c0", "w_ih", "w_hh", "lengths", "batch_first", "reverse", "w_hr"]}
    grads = OPS.lstm_backward(**bwd, saved=saved, grad_y=torch.ones_like(y), grad_h_n=None, grad_c_n=None)
    assert grads[-1].shape == (P, H) and grads[4].shape == (4 * H, P) and grads[1].shape == (B, P)
    expect_op_error(lambda: OPS.lstm_backward(**bwd, saved=saved[..., :-1], grad_y=None, grad_h_n=None, grad_c_n=None),
                    "lstm_backward", "saved", r"6\*H \+ P", "lstm")
    expect_op_error(lambda: OPS.lstm_backward(**bwd, saved=saved, grad_y=torch.ones(T, B, H), grad_h_n=None,
                                              grad_c_n=None), "lstm_backward", "grad_y", r"\(T, B, P\)", "lstm")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_kernel_rejects_cuda_state():
    args = _valid("lstm")
    args["h0"] = args["h0"].cuda()
    with pytest.raises(RuntimeError):  # the CPU kernel names h0; without a CUDA kernel the dispatcher refuses
        op_call("lstm", args)
