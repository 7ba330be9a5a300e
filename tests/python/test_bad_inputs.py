"""Bad and extreme inputs: every case ends either in a clear error whose message names
the problem, or in exactly nn.LSTM's / nn.GRU's result with identical weights (outputs, final states and every
gradient; NaN where nn.* has NaN).

The raw ops' argument checks are in test_op_errors.py; this file covers the modules' side of the same mistakes, the
layouts (views, stride 0, slices), special values, empty and large sizes, and PackedSequence, for the modules and
the raw ops.
"""

import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import tsrnn
from rnn_testing import op_args, op_call, twins

OPS = torch.ops.tsrnn
F32, F64 = torch.float32, torch.float64
CELLS = ["lstm", "gru"]
NN = {"lstm": nn.LSTM, "gru": nn.GRU}
OURS = {"lstm": tsrnn.LSTM, "gru": tsrnn.GRU}
G = {"lstm": 4, "gru": 3}
T, B, D, H = 5, 2, 3, 4
GRAD_TOL = dict(rtol=1e-4, atol=1e-5)  # fp32 gradients, as test_modules.py


# ---- helpers ----------------------------------------------------------------------------------------------


def randn(*shape, dtype=F32, seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _twins(cell, **kwargs):
    """rnn_testing.twins at this file's default sizes."""
    return twins(cell, **{"input_size": D, "hidden_size": H, **kwargs})


def flat(out):
    """Every tensor of a module's output, in order (PackedSequence -> its data)."""
    if isinstance(out, PackedSequence):
        return [out.data]
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in flat(o)]


def leaves(*tensors):
    """Fresh leaves requiring grad with the same strides as the given tensors (views stay views)."""
    return [t.detach().requires_grad_() for t in tensors]


def cotangent(t, k):
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(100 + k), dtype=t.dtype)


def forward_backward(module, inp, hx, grad_wrt):
    """Outputs of module(inp, hx) and the gradients of sum(out * fixed cotangent) w.r.t. grad_wrt + params."""
    out = module(inp, hx)
    outs = flat(out)
    wrt = list(grad_wrt) + list(module.parameters())
    grads = torch.autograd.grad(outs, wrt, [cotangent(o, k) for k, o in enumerate(outs)], allow_unused=True)
    return [o.detach() for o in outs], list(grads)


def check_same(ours, theirs, what, **tol):
    """Tensor by tensor: same shape, dtype and values (NaN where the other has NaN)."""
    assert len(ours) == len(theirs), f"{what}: {len(ours)} tensors, expected {len(theirs)}"
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if b is None:
            assert a is None, f"{what}[{k}]: expected None"
            continue
        assert a is not None, f"{what}[{k}]: got None"
        assert a.shape == b.shape, f"{what}[{k}]: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
        torch.testing.assert_close(a, b, equal_nan=True, msg=lambda m, k=k: f"{what}[{k}]: {m}", **tol)


def compare_with_nn(ours, theirs, inp, hx=None, extra_leaves=(), norm_atol=None):
    """ours(inp, hx) against theirs(inp, hx): outputs and the gradients w.r.t. extra_leaves and
    every parameter (the same leaves are used for both, through autograd.grad, so nothing accumulates).
    norm_atol: gradients within norm_atol * max|nn.*'s gradient| (sums over many terms, where fp32 rounding
    depends on the summation order), else GRAD_TOL."""
    o1, g1 = forward_backward(ours, inp, hx, extra_leaves)
    o2, g2 = forward_backward(theirs, inp, hx, extra_leaves)
    check_same(o1, o2, "outputs")
    names = [f"leaf {k}" for k in range(len(extra_leaves))] + [n for n, _ in theirs.named_parameters()]
    for a, b, name in zip(g1, g2, names, strict=True):
        tol = GRAD_TOL
        if norm_atol is not None and b is not None and b.numel():
            tol = dict(rtol=GRAD_TOL["rtol"], atol=norm_atol * b.abs().max().item())
        check_same([a], [b], f"grad {name}", **tol)


def expect_error(fn, pattern, types=(RuntimeError, ValueError)):
    with pytest.raises(types) as info:
        fn()
    msg = str(info.value)
    assert re.search(pattern, msg), f"the message does not match {pattern!r}:\n{type(info.value).__name__}: {msg}"
    return info.value


# ---- modules: mistakes that must end in a clear error -------------------------------------------------------
#
# Each case: (id, cells, build(cell) -> (ours_call, theirs_call), pattern our message must match, the exception
# type nn.* raises for the same mistake or None where nn.* computes a result that we refuse on purpose).


def _plain(x, hx=None, **kwargs):
    def build(cell):
        ours, theirs = _twins(cell, **kwargs)
        hx_ = hx(cell) if callable(hx) else hx
        return (lambda: ours(x, hx_)), (lambda: theirs(x, hx_))

    return build


def _with_param(name, make):
    """A module whose parameter `name` was replaced (same values for both) by make(param, cell)."""

    def build(cell):
        ours, theirs = _twins(cell)
        for m in (ours, theirs):
            value = make(getattr(m, name).detach(), cell)
            setattr(m, name, nn.Parameter(value, requires_grad=value.is_floating_point()))
        x = randn(T, B, D)
        return (lambda: ours(x)), (lambda: theirs(x))

    return build


def _typed_module(dtype):
    def build(cell):
        ours, theirs = _twins(cell, dtype=dtype)
        x = randn(T, B, D, dtype=dtype)
        return (lambda: ours(x)), (lambda: theirs(x))

    return build


def _packed(data, batch_sizes, sorted_indices=None, unsorted_indices=None, hx=None, **kwargs):
    def build(cell):
        ours, theirs = _twins(cell, **kwargs)
        packed = PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)
        hx_ = hx(cell) if callable(hx) else hx
        return (lambda: ours(packed, hx_)), (lambda: theirs(packed, hx_))

    return build


def _huge_expanded_x():
    """x of logical size (2^31, 2^31, 1) as a stride-0 view of one element: 2^62 elements, 2^64 bytes."""
    return torch.zeros(1, 1, 1).expand(2**31, 2**31, 1)


def _hx(shape_h, shape_c=None, dtype_h=F32, dtype_c=F32, device_h="cpu"):
    def make(cell):
        h = randn(*shape_h, dtype=dtype_h, seed=2).to(device_h)
        if cell == "gru":
            return h
        return h, randn(*(shape_c or shape_h), dtype=dtype_c, seed=3)

    return make


def _pattern_for(cell, pattern):
    return pattern.replace("{op}", f"tsrnn::{cell}").replace("{G}", str(G[cell]))


MODULE_ERRORS = [
    # rank and dtype of the input (nn.*'s own checks and messages)
    ("x-1d", CELLS, _plain(randn(D)), r"Expected input to be 2D or 3D, got 1D", ValueError),
    ("x-4d", CELLS, _plain(randn(T, B, D, 1)), r"Expected input to be 2D or 3D, got 4D", ValueError),
    ("x-0d", CELLS, _plain(torch.tensor(1.0)), r"Expected input to be 2D or 3D, got 0D", ValueError),
    ("x-int64", CELLS, _plain(randn(T, B, D).long()),
     r"input dtype \(torch\.int64\) does not match weight dtype \(torch\.float32\)", ValueError),
    ("x-bool", CELLS, _plain(randn(T, B, D) > 0), r"input dtype \(torch\.bool\) does not match weight", ValueError),
    ("x-float16-in-float32-module", CELLS, _plain(randn(T, B, D).half()),
     r"input dtype \(torch\.float16\) does not match weight dtype \(torch\.float32\)", ValueError),
    ("x-bfloat16-in-float32-module", CELLS, _plain(randn(T, B, D).bfloat16()),
     r"input dtype \(torch\.bfloat16\) does not match", ValueError),
    ("x-float64-in-float32-module", CELLS, _plain(randn(T, B, D, dtype=F64)),
     r"input dtype \(torch\.float64\) does not match weight dtype \(torch\.float32\)", ValueError),
    ("x-float32-in-float64-module", CELLS, _plain(randn(T, B, D), dtype=F64),
     r"input dtype \(torch\.float32\) does not match weight dtype \(torch\.float64\)", ValueError),
    # float16 / bfloat16 models on the CPU: nn.* computes them, the kernels refuse them by name
    ("float16-module", CELLS, _typed_module(torch.float16),
     r"{op}: argument 'x' must be float32 or float64, but got float16", None),
    ("bfloat16-module", CELLS, _typed_module(torch.bfloat16),
     r"{op}: argument 'x' must be float32 or float64, but got bfloat16", None),
    # feature size
    ("x-wrong-feature-size", CELLS, _plain(randn(T, B, D + 1)),
     r"input\.size\(-1\) must be equal to input_size\. Expected 3, got 4", RuntimeError),
    ("x-unbatched-wrong-feature-size", CELLS, _plain(randn(T, D - 1)),
     r"input\.size\(-1\) must be equal to input_size\. Expected 3, got 2", RuntimeError),
    # initial states: shape, rank, dtype, device, structure
    ("h0-wrong-batch", CELLS, _plain(randn(T, B, D), _hx((1, B + 1, H), (1, B, H))),
     r"Expected hidden(\[0\])? size \(1, 2, 4\), got \[1, 3, 4\]", RuntimeError),
    ("h0-wrong-num-layers", CELLS, _plain(randn(T, B, D), _hx((2, B, H), (1, B, H))),
     r"Expected hidden(\[0\])? size \(1, 2, 4\), got \[2, 2, 4\]", RuntimeError),
    ("h0-wrong-hidden-size", CELLS, _plain(randn(T, B, D), _hx((1, B, H + 1), (1, B, H))),
     r"Expected hidden(\[0\])? size \(1, 2, 4\), got \[1, 2, 5\]", RuntimeError),
    ("c0-wrong-hidden-size", ["lstm"], _plain(randn(T, B, D), _hx((1, B, H), (1, B, H + 1))),
     r"Expected hidden\[1\] size \(1, 2, 4\), got \[1, 2, 5\]", RuntimeError),
    ("h0-2d-for-batched-x", CELLS, _plain(randn(T, B, D), _hx((B, H))),
     r"For batched 3-D input, hx (and cx )?should also be 3-D", RuntimeError),
    ("h0-3d-for-unbatched-x", CELLS, _plain(randn(T, D), _hx((1, B, H))),
     r"For unbatched 2-D input, hx (and cx )?should also be 2-D", RuntimeError),
    ("h0-float64", CELLS, _plain(randn(T, B, D), _hx((1, B, H), dtype_h=F64)),
     r"hx dtype \(torch\.float64\) does not match input dtype \(torch\.float32\)", RuntimeError),
    ("c0-float64", ["lstm"], _plain(randn(T, B, D), _hx((1, B, H), dtype_c=F64)),
     r"hx dtype \(torch\.float64\) does not match input dtype \(torch\.float32\)", None),
    ("h0-on-meta", CELLS, _plain(randn(T, B, D), _hx((1, B, H), device_h="meta")),
     r"hx is on meta but input is on cpu", RuntimeError),
    ("lstm-hx-one-tensor", ["lstm"], _plain(randn(T, B, D), randn(1, B, H)), r"hx must be a tuple \(h_0, c_0\)", None),
    ("lstm-hx-three-tensors", ["lstm"], _plain(randn(T, B, D), (randn(1, B, H),) * 3),
     r"hx must be a tuple \(h_0, c_0\), got 3 tensors", RuntimeError),
    # devices
    ("x-on-meta-module-on-cpu", CELLS, _plain(randn(T, B, D).to("meta")),
     r"{op}: argument '\w+' must be on the same device as x \(meta\), but is on cpu", RuntimeError),
    # parameters a user replaced by ones of the wrong dtype or shape
    ("bias-float64-in-float32-module", CELLS, _with_param("bias_hh_l0", lambda p, c: p.double()),
     r"{op}: argument 'b_hh' must have the same dtype as x \(float32\), but got float64", None),
    ("w_hh-wrong-shape", CELLS, _with_param("weight_hh_l0", lambda p, c: torch.zeros(G[c] * H, H + 1)),
     r"{op}: argument 'w_hh' must have shape \({G}\*H, H\)", None),
    ("w_ih-int-in-module", CELLS, _with_param("weight_ih_l0", lambda p, c: p.to(torch.int32)),
     r"argument 'w_ih' must have the same dtype as x \(float32\), but got int32|"
     r"input dtype \(torch\.float32\) does not match weight dtype \(torch\.int32\)", None),
    # PackedSequence
    ("packed-data-float64", CELLS, _packed(randn(6, D, dtype=F64), torch.tensor([3, 2, 1])),
     r"input dtype \(torch\.float64\) does not match weight dtype \(torch\.float32\)", None),
    ("packed-wrong-feature-size", CELLS, _packed(randn(6, D + 2), torch.tensor([3, 2, 1])),
     r"input\.size\(-1\) must be equal to input_size\. Expected 3, got 5", RuntimeError),
    ("packed-batch_sizes-int32", CELLS, _packed(randn(6, D), torch.tensor([3, 2, 1], dtype=torch.int32)),
     r"int64|Long", RuntimeError),
    ("packed-rows-not-sum-of-batch_sizes", CELLS, _packed(randn(6, D), torch.tensor([3, 3, 3])),
     r"invalid for input of size|exceeds dimension size", RuntimeError),
    # hand-made PackedSequences with impossible batch_sizes: torch's own unpacking refuses them, as nn.* does
    # (neither names batch_sizes; the error types match)
    ("packed-batch_sizes-increasing", CELLS, _packed(randn(6, D), torch.tensor([1, 2, 3])),
     r"shape|size", RuntimeError),
    ("packed-batch_sizes-negative", CELLS, _packed(randn(6, D), torch.tensor([4, 3, -1])),
     r"shape|size", RuntimeError),
    ("packed-hx-wrong-batch", CELLS, _packed(randn(6, D), torch.tensor([3, 2, 1]), hx=_hx((1, 2, H))),
     r"Expected hidden(\[0\])? size \(1, 3, 4\), got \[1, 2, 4\]", RuntimeError),
    ("packed-data-on-meta", CELLS, _packed(randn(6, D).to("meta"), torch.tensor([3, 2, 1])),
     r"{op}: argument '\w+' must be on the same device as x \(meta\)", RuntimeError),
    ("packed-sorted_indices-out-of-range", CELLS,
     _packed(randn(6, D), torch.tensor([3, 2, 1]), torch.tensor([2, 0, 5]), torch.tensor([1, 2, 0])),
     r"out of .*bounds|index .* out of range", None),
    # sizes whose element counts overflow: refused with a message, nothing allocated, no crash
    ("x-expanded-2**62-elements", CELLS, _plain(_huge_expanded_x(), input_size=1, hidden_size=1),
     r"{op}.*(too large|overflow)", RuntimeError),
]


def _module_error_cases():
    for case_id, cells, build, pattern, nn_type in MODULE_ERRORS:
        for cell in cells:
            yield pytest.param(cell, build, pattern, nn_type, id=f"{cell}-{case_id}")


@pytest.mark.parametrize("cell,build,pattern,nn_type", list(_module_error_cases()))
def test_module_refuses_bad_input(cell, build, pattern, nn_type):
    ours, theirs = build(cell)
    types = (RuntimeError, ValueError) if nn_type is None else (RuntimeError, ValueError, nn_type)
    expect_error(ours, _pattern_for(cell, pattern), types)
    if nn_type is not None:  # the mistake is one for nn.* too
        with pytest.raises(nn_type):
            theirs()


@pytest.mark.parametrize("cell", CELLS)
def test_hx_of_the_wrong_type_is_a_type_error(cell):
    """A tuple where a tensor is expected (GRU) or a tuple holding a non-tensor: TypeError naming hx (nn.*
    fails with an AttributeError from deep inside)."""
    ours, _ = _twins(cell)
    h = randn(1, B, H)
    hx = (h,) if cell == "gru" else (h, [h])
    expect_error(lambda: ours(randn(T, B, D), hx), r"expected hx to hold Tensors", (TypeError,))


@pytest.mark.parametrize("cell", CELLS)
def test_weights_modified_in_place_before_backward(cell):
    """The saved weights are version-checked like nn.*'s: an in-place update between forward and backward
    is an error, not a gradient of the wrong weights."""
    for module in _twins(cell):
        y = module(randn(T, B, D).requires_grad_())[0]
        with torch.no_grad():
            module.weight_hh_l0.mul_(1.5)
        expect_error(lambda: y.sum().backward(), r"modified by an inplace operation")


@pytest.mark.parametrize("cell", CELLS)
def test_double_backward_is_right_or_refused(cell):
    """create_graph=True: first-order gradients as nn.*; second-order ones either nn.*'s or a clear error,
    never a silently wrong (e.g. zero) second derivative."""
    ours, theirs = _twins(cell, seed=4)
    x = randn(T, B, D).requires_grad_()

    def first(m):
        y = m(x)[0]
        return torch.autograd.grad((y**2).sum(), [x, m.weight_hh_l0], create_graph=True)

    g_ours, g_theirs = first(ours), first(theirs)
    check_same([g.detach() for g in g_ours], [g.detach() for g in g_theirs], "first-order grads", **GRAD_TOL)
    expected = torch.autograd.grad(g_theirs[0].pow(2).sum(), [x, theirs.weight_hh_l0, theirs.weight_ih_l0])

    def second():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a warning alone is not a refusal: the result is checked below
            return torch.autograd.grad(
                g_ours[0].pow(2).sum(), [x, ours.weight_hh_l0, ours.weight_ih_l0], allow_unused=True
            )

    try:
        got = second()
    except RuntimeError as e:  # NotImplementedError is a RuntimeError
        assert re.search(r"double backward|differentiate twice|twice differentiable|second[- ]order|not supported", str(e)), (
            f"double backward refused without saying so: {type(e).__name__}: {e}"
        )
        return
    got = [torch.zeros_like(e) if g is None else g for g, e in zip(got, expected)]
    check_same(got, list(expected), "second-order grads (x, w_hh, w_ih)", **GRAD_TOL)


# ---- modules: unusual layouts give exactly nn.*'s result -------------------------------------------------


def _views(cell, kind):
    """(input, hx, batch_first, {parameter name: make(param) -> its strided replacement}) of a layout case."""
    batch_first = False
    hx = None
    params = {}
    x = randn(T, B, D)
    if kind == "x-transposed":  # batch-first view of time-major memory
        x, batch_first = randn(T, B, D).transpose(0, 1), True
    elif kind == "x-batch-strided":  # every other sequence of a wider batch
        x = randn(T, 2 * B, D)[:, ::2]
    elif kind == "x-feature-slice":  # columns 1..D of a (T, B, D + 2) buffer
        x = randn(T, B, D + 2)[..., 1 : 1 + D]
    elif kind == "x-last-dim-strided":
        x = randn(T, B, 2 * D)[..., ::2]
    elif kind == "x-expanded-batch":  # one sequence repeated: stride 0 over b
        x = randn(T, 1, D).expand(T, B, D)
    elif kind == "x-expanded-time":  # one step repeated: stride 0 over t
        x = randn(1, B, D).expand(T, B, D)
    elif kind == "x-expanded-all":  # one value everywhere
        x = randn(1, 1, 1).expand(T, B, D)
    elif kind == "x-unfold-windows":  # the forecaster's overlapping windows of a series, batch-first
        # a D-variate series (N, D); window b is rows b .. b+T-1: (B, T, D) with strides (D, D, 1)
        x, batch_first = randn(T + B - 1, D).unfold(0, T, 1).transpose(1, 2)[:B], True
    elif kind == "hx-expanded-batch":
        hx = (randn(1, 1, H, seed=2).expand(1, B, H), randn(1, 1, H, seed=3).expand(1, B, H))
    elif kind == "hx-transposed":
        hx = (randn(H, B, 1, seed=2).permute(2, 1, 0), randn(1, H, B, seed=3).transpose(1, 2))
    elif kind == "weights-transposed":
        params = {
            "weight_ih_l0": lambda p: p.t().contiguous().t(),
            "weight_hh_l0": lambda p: p.t().contiguous().t(),
        }
    elif kind == "weights-sliced":
        def wide(p):
            buf = torch.zeros(p.shape[0], p.shape[1] + 3)
            buf[:, 2 : 2 + p.shape[1]] = p
            return buf[:, 2 : 2 + p.shape[1]]

        params = {"weight_ih_l0": wide, "weight_hh_l0": wide, "bias_ih_l0": lambda p: torch.stack([p, p], 1)[:, 1]}
    elif kind == "weights-expanded":  # every row the same: stride 0 over rows
        params = {
            "weight_ih_l0": lambda p: p[:1].expand_as(p),
            "weight_hh_l0": lambda p: p[:1].expand_as(p),
        }
    elif kind == "bias-expanded":
        params = {"bias_ih_l0": lambda p: p[:1].expand_as(p), "bias_hh_l0": lambda p: p[-1:].expand_as(p)}
    else:
        raise AssertionError(kind)
    if hx is not None and cell == "gru":
        hx = hx[0]
    return x, hx, batch_first, params


LAYOUTS = [
    "x-transposed", "x-batch-strided", "x-feature-slice", "x-last-dim-strided", "x-expanded-batch",
    "x-expanded-time", "x-expanded-all", "x-unfold-windows", "hx-expanded-batch", "hx-transposed",
    "weights-transposed", "weights-sliced", "weights-expanded", "bias-expanded",
]


def _compare_as_leaves(ours, theirs, x, hx):
    """compare_with_nn with x and the states (a tensor or an (h, c) tuple, or None) as gradient leaves."""
    x = leaves(x)[0]
    hx_leaves = []
    if hx is not None:
        hx_leaves = leaves(*(hx if isinstance(hx, tuple) else (hx,)))
        hx = tuple(hx_leaves) if isinstance(hx, tuple) else hx_leaves[0]
    compare_with_nn(ours, theirs, x, hx, extra_leaves=[x, *hx_leaves])


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("cell", CELLS)
def test_layouts_match_nn(cell, kind):
    x, hx, batch_first, params = _views(cell, kind)
    ours, theirs = _twins(cell, batch_first=batch_first)
    for name, make in params.items():
        for m in (ours, theirs):  # same values, same strides, each module its own memory
            value = make(getattr(m, name).detach().clone())
            assert not value.is_contiguous(), f"{kind}: {name} should be a non-contiguous view"
            setattr(m, name, nn.Parameter(value))
    _compare_as_leaves(ours, theirs, x, hx)


# ---- special values: NaN, inf, 1e30 --------------------------------------------------------------------------


def _special(kind, cell, ours, theirs):
    """Puts the special value in place; returns (x, hx)."""
    x = randn(T, B, D)
    hx = None
    where = (2, 1, 1)
    value = {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf")}
    target, val = kind.split("=")
    if kind == "x=*1e30":
        x = x * 1e30
    elif kind == "x=float32-max":
        x[where] = torch.finfo(F32).max
        x[0, 0, 0] = -torch.finfo(F32).max
    elif target == "x":
        x[where] = value[val]
    else:
        val = {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf"), "1e30": 1e30, "-1e30": -1e30}[val]
        if target in ("h0", "c0"):
            h, c = randn(1, B, H, seed=2), randn(1, B, H, seed=3)
            (h if target == "h0" else c)[0, 1, 2] = val
            hx = (h, c) if cell == "lstm" else h
        else:
            name = {"w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}[target]
            index = (1,) if name.startswith("bias") else (1, 0)
            with torch.no_grad():
                for m in (ours, theirs):
                    getattr(m, name)[index] = val
    return x, hx


SPECIALS = [
    ("x=nan", CELLS), ("x=+inf", CELLS), ("x=-inf", CELLS), ("x=*1e30", CELLS), ("x=float32-max", CELLS),
    ("w_ih=nan", CELLS), ("w_hh=nan", CELLS), ("w_hh=+inf", CELLS), ("w_ih=-inf", CELLS), ("b_ih=+inf", CELLS),
    ("b_hh=nan", CELLS), ("w_hh=1e30", CELLS), ("w_ih=-1e30", CELLS), ("h0=nan", CELLS), ("h0=+inf", CELLS),
    ("c0=nan", ["lstm"]), ("c0=-inf", ["lstm"]),
]


@pytest.mark.parametrize("cell,kind", [pytest.param(c, k, id=f"{c}-{k}") for k, cells in SPECIALS for c in cells])
def test_special_values_match_nn(cell, kind):
    ours, theirs = _twins(cell, seed=5)
    x, hx = _special(kind, cell, ours, theirs)
    _compare_as_leaves(ours, theirs, x, hx)


# ---- sizes: empty, long, wide, and too large -------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("cell", CELLS)
def test_empty_batch_matches_nn(cell, batch_first):
    ours, theirs = _twins(cell, batch_first=batch_first)
    x = leaves(randn(*((0, T, D) if batch_first else (T, 0, D))))[0]
    hx_leaves = leaves(randn(1, 0, H), randn(1, 0, H))
    hx = tuple(hx_leaves) if cell == "lstm" else hx_leaves[0]
    compare_with_nn(ours, theirs, x, hx, extra_leaves=[x, *(hx_leaves if cell == "lstm" else hx_leaves[:1])])
    compare_with_nn(ours, theirs, x)


@pytest.mark.parametrize("cell", CELLS)
def test_empty_time_keeps_the_initial_state_or_refuses(cell):
    """nn.* refuses T = 0 ("Expected sequence length to be larger than 0"); tsrnn may either refuse too or
    return an empty output with the initial state as the final state (and gradients passed straight through)."""
    ours, theirs = _twins(cell)
    x = randn(0, B, D).requires_grad_()
    h, c = randn(1, B, H, seed=2).requires_grad_(), randn(1, B, H, seed=3).requires_grad_()
    hx = (h, c) if cell == "lstm" else h
    with pytest.raises(RuntimeError, match="sequence length"):
        theirs(x, hx)
    try:
        out, state = ours(x, hx)
    except (RuntimeError, ValueError) as e:
        assert re.search(r"sequence length|T = 0|T >= 1|empty", str(e)), f"unclear refusal of T = 0: {e}"
        return
    assert out.shape == (0, B, H)
    finals = state if cell == "lstm" else (state,)
    for final, initial in zip(finals, hx if cell == "lstm" else (h,)):
        assert torch.equal(final, initial)
    grads = torch.autograd.grad(sum((f * (k + 2)).sum() for k, f in enumerate(finals)), [x, h], allow_unused=True)
    assert grads[0] is None or grads[0].shape == x.shape
    assert torch.equal(grads[1], torch.full_like(h, 2.0))


@pytest.mark.parametrize("cell", CELLS)
def test_long_sequence_matches_nn(cell):
    """T = 20000 steps, small H: the forward against nn.* (nn.*'s backward over 20000 steps takes minutes on
    the CPU, so the gradients are only checked to be finite and to reach the first step)."""
    ours, theirs = _twins(cell, input_size=1, hidden_size=3, seed=6)
    x = randn(20000, 2, 1)
    with torch.no_grad():
        got = flat(ours(x))
        # nn.*'s oneDNN path takes from 3 to 30 s on 20000 steps here; its native path (the same arithmetic,
        # step by step) a fraction of a second
        mkldnn = torch.backends.mkldnn.enabled
        try:
            torch.backends.mkldnn.enabled = False
            expected = flat(theirs(x))
        finally:
            torch.backends.mkldnn.enabled = mkldnn
    check_same(got, expected, "outputs")
    xl = x.clone().requires_grad_()
    out, _ = ours(xl)
    gx, gw = torch.autograd.grad(out[-1].sum() + out[0].sum(), [xl, ours.weight_hh_l0])
    assert torch.isfinite(gx).all() and torch.isfinite(gw).all()
    assert gx[0].abs().sum() > 0


@pytest.mark.parametrize("cell", CELLS)
def test_wide_batch_matches_nn(cell):
    ours, theirs = _twins(cell, input_size=1, hidden_size=8, seed=7, batch_first=True)
    x = leaves(randn(4096, 12, 1))[0]
    # weight gradients sum 4096 * 12 terms: fp32 rounding (ours and nn.*'s alike, against fp64) is ~1e-5 of
    # the largest gradient element
    compare_with_nn(ours, theirs, x, extra_leaves=[x], norm_atol=2e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_meta_module_with_more_than_2_31_elements(cell):
    """A meta model (shape propagation only) on an input of 2^32 logical elements: right shapes, no memory."""
    m = OURS[cell](1, 2, num_layers=2, bidirectional=True, device="meta")
    x = torch.empty(2**20, 2**12, 1, device="meta")
    out, state = m(x)
    assert out.shape == (2**20, 2**12, 4) and out.device.type == "meta"
    for s in state if cell == "lstm" else (state,):
        assert s.shape == (4, 2**12, 2) and s.device.type == "meta"


@pytest.mark.parametrize("cell", CELLS)
def test_packed_with_trailing_empty_step_matches_nn(cell):
    """A hand-made PackedSequence whose last step holds no sequence (batch_sizes ends in 0): as nn.*."""
    ours, theirs = _twins(cell)
    data = leaves(randn(6, D))[0]
    packed = PackedSequence(data, torch.tensor([3, 2, 1, 0]), None, None)
    compare_with_nn(ours, theirs, packed, extra_leaves=[data])


@pytest.mark.parametrize("cell", CELLS)
def test_packed_with_only_sorted_indices_matches_nn(cell):
    ours, theirs = _twins(cell)
    data = leaves(randn(6, D))[0]
    packed = PackedSequence(data, torch.tensor([3, 2, 1]), torch.tensor([2, 0, 1]), None)
    hx_leaves = leaves(randn(1, 3, H, seed=2), randn(1, 3, H, seed=3))
    hx = tuple(hx_leaves) if cell == "lstm" else hx_leaves[0]
    compare_with_nn(ours, theirs, packed, hx, extra_leaves=[data, *(hx_leaves if cell == "lstm" else hx_leaves[:1])])


# ---- raw ops ------------------------------------------------------------------------------------------------


def _nn_single_layer(cell, args):
    """nn.* with the raw call's weights (one layer, one direction)."""
    w_ih = args["w_ih"]
    m = NN[cell](w_ih.shape[1], args["w_hh"].shape[1], dtype=w_ih.dtype)
    with torch.no_grad():
        for name, key in (("weight_ih_l0", "w_ih"), ("weight_hh_l0", "w_hh"), ("bias_ih_l0", "b_ih"),
                          ("bias_hh_l0", "b_hh")):
            getattr(m, name).copy_(args[key])
    return m


def _raw_vs_nn(cell, args, lengths_list=None):
    """The raw op's (y, h_n[, c_n]) and every gradient against nn.* on the same (possibly strided) tensors."""
    names = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"] if cell == "lstm" else ["x", "h0", "w_ih", "w_hh",
                                                                                         "b_ih", "b_hh"]
    for n in names:
        args[n] = args[n].detach().requires_grad_()
    outs = list(op_call(cell, args)[:-1])
    m = _nn_single_layer(cell, args)
    # nn.* on the same leaves, through functional_call so the (strided) weight leaves are used as they are
    params = {"weight_ih_l0": args["w_ih"], "weight_hh_l0": args["w_hh"], "bias_ih_l0": args["b_ih"],
              "bias_hh_l0": args["b_hh"]}
    hx = (args["h0"][None], args["c0"][None]) if cell == "lstm" else args["h0"][None]
    x = args["x"]
    if lengths_list is not None:
        x = pack_padded_sequence(x, lengths_list, enforce_sorted=False)
    y, state = torch.func.functional_call(m, params, (x, hx))
    if lengths_list is not None:
        y = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=args["x"].shape[0])[0]
    theirs = [y, state[0], state[1]] if cell == "lstm" else [y, state]
    check_same([o.detach() for o in outs], [t.detach() for t in theirs], "outputs")
    wrt = [args[n] for n in names]
    cots = [cotangent(o, k) for k, o in enumerate(outs)]
    g1 = torch.autograd.grad(outs, wrt, cots)
    g2 = torch.autograd.grad(theirs, wrt, cots)
    for a, b, n in zip(g1, g2, names):
        check_same([a], [b], f"grad {n}", **GRAD_TOL)


RAW_LAYOUTS = {
    "weights-transposed": lambda a: dict(w_ih=a["w_ih"].t().contiguous().t(), w_hh=a["w_hh"].t().contiguous().t()),
    "weights-expanded-rows": lambda a: dict(w_ih=a["w_ih"][:1].expand_as(a["w_ih"]),
                                            w_hh=a["w_hh"][2:3].expand_as(a["w_hh"])),
    "weights-column-slices": lambda a: dict(w_ih=torch.cat([a["w_ih"], a["w_ih"]], 1)[:, 1 : 1 + a["w_ih"].shape[1]],
                                            w_hh=torch.cat([a["w_hh"], a["w_hh"]], 1)[:, 2 : 2 + a["w_hh"].shape[1]]),
    "biases-expanded-and-strided": lambda a: dict(b_ih=a["b_ih"][:1].expand_as(a["b_ih"]),
                                                  b_hh=torch.stack([a["b_hh"], a["b_ih"]], 1)[:, 0]),
    "states-transposed": lambda a: dict(h0=a["h0"].t().contiguous().t(),
                                        c0=a.get("c0", a["h0"]).t().contiguous().t()),
    "states-expanded": lambda a: dict(h0=a["h0"][:1].expand_as(a["h0"]),
                                      c0=a.get("c0", a["h0"])[1:2].expand_as(a["h0"])),
    "x-expanded-batch": lambda a: dict(x=a["x"][:, :1].expand_as(a["x"])),
}


@pytest.mark.parametrize("kind", list(RAW_LAYOUTS))
@pytest.mark.parametrize("cell", CELLS)
def test_raw_op_layouts_match_nn(cell, kind):
    args = op_args(cell)
    args.update(RAW_LAYOUTS[kind](args))
    if cell == "gru":
        args.pop("c0", None)
    _raw_vs_nn(cell, args)


@pytest.mark.parametrize("kind", ["strided", "expanded"])
@pytest.mark.parametrize("cell", CELLS)
def test_raw_op_lengths_views_match_nn(cell, kind):
    """lengths as a strided view (every other element) or stride-0 (every sequence full): as nn.* packed."""
    args = op_args(cell)
    if kind == "strided":
        args["lengths"] = torch.tensor([4, 9, 1, 9, 3, 9])[::2]
        lengths_list = [4, 1, 3]
    else:
        args["lengths"] = torch.tensor([4]).expand(3)
        lengths_list = [4, 4, 4]
    assert not args["lengths"].is_contiguous()
    if cell == "gru":
        args.pop("c0", None)
    _raw_vs_nn(cell, args, lengths_list)


@pytest.mark.parametrize("cell", CELLS)
def test_raw_op_on_meta_gives_shapes(cell):
    args = op_args(cell, T=7, B=3, D=5, H=6)
    meta = {k: (v.to("meta") if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    meta["lengths"] = torch.tensor([7, 1, 0])  # lengths stay on the CPU whatever x's device
    outs = op_call(cell, meta)
    expected = [(7, 3, 6), (1, 3, 6), (1, 3, 6), (7, 3, 36)] if cell == "lstm" else [(7, 3, 6), (1, 3, 6), (7, 3, 30)]
    assert [tuple(o.shape) for o in outs] == expected
    assert all(o.device.type == "meta" and o.dtype == F32 for o in outs)
