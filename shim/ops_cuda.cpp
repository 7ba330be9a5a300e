// CUDA registration of the tsrnn ops: check the arguments (shim/common.h, shared with shim/cpu.cpp), allocate the
// outputs and the workspace on x's device, and queue the CUDA kernels of tsrnn.h (tsrnn_{lstm,gru}_{fwd,bwd}_cuda_f32)
// on PyTorch's current stream of that device. Schemas: shim/ops.cpp.
//
// Built only against a CUDA build of torch (cmake/cuda.cmake): aoti_torch_get_current_cuda_stream exists only there.
// fp32 only; every tensor on x's device; lengths stays a CPU int64 tensor (the kernels copy it to the device
// themselves), a CUDA lengths tensor is rejected by check_lengths. The kernels return without synchronizing.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>

#include "common.h"
#include "tsrnn.h"

// Declared by torch's shim.h only under USE_CUDA, exported only by CUDA builds of torch; declared here so this file
// also compiles (for the compile check) against a CPU torch's headers.
extern "C" AOTITorchError aoti_torch_get_current_cuda_stream(int32_t device_index, void **ret_stream);

namespace tsrnn_shim {
namespace {

using OptTensor = std::optional<Tensor>;

Tensor zeros(const Tensor &like, std::vector<int64_t> shape) { return torch::stable::new_zeros(like, shape); }
Tensor empty(const Tensor &like, std::vector<int64_t> shape) { return torch::stable::new_empty(like, shape); }

Tensor state_or_zeros(const OptTensor &state, const Tensor &like, const Sizes &s) {
    return state.has_value() ? torch::stable::clone(*state) : zeros(like, {s.B, s.H});
}

float *out(const Tensor &t) { return t.mutable_data_ptr<float>(); }
const float *in(const Tensor &t) { return t.const_data_ptr<float>(); }

// Everything one CUDA call needs besides its tensors: the argument checker, x's device made current (restored on
// return) and PyTorch's current stream on it.
struct CudaCall {
    ArgCheck check;
    torch::stable::accelerator::DeviceGuard guard;
    void *stream = nullptr;

    CudaCall(const char *op, const Tensor &x)
        : check(op, x, placement_of(x)), guard(device_index_of(op, x)) {
        check.fail_unless(x.scalar_type() == ScalarType::Float, "x",
                          std::string("must be float32: the CUDA kernels are fp32 only, but got ") +
                              dtype_name(x.scalar_type()));
        const AOTITorchError err = aoti_torch_get_current_cuda_stream(x.get_device_index(), &stream);
        STD_TORCH_CHECK(err == AOTI_TORCH_SUCCESS, op, ": could not get the current CUDA stream of cuda:",
                        x.get_device_index());
    }

    static int32_t device_index_of(const char *op, const Tensor &x) {
        STD_TORCH_CHECK(x.device().type() == DeviceType::CUDA, op, ": argument 'x' must be a CUDA tensor here, but is on ",
                        device_name(x));
        return x.get_device_index();
    }
};

// Scratch of tsrnn_workspace_size bytes, a uint8 tensor on x's device (the caching allocator aligns it to 512 bytes).
struct Workspace {
    OptTensor buffer;
    void *data = nullptr;
    size_t bytes = 0;
};

Workspace workspace(const ArgCheck &c, tsrnn_cell cell, tsrnn_pass pass, const tsrnn_desc &d, const Tensor &like) {
    Workspace w;
    c.status(tsrnn_workspace_size(cell, pass, TSRNN_BACKEND_CUDA, TSRNN_F32, &d, &w.bytes), "tsrnn_workspace_size");
    if (w.bytes == 0) return w;
    STD_TORCH_CHECK(w.bytes <= static_cast<size_t>(INT64_MAX), c.op(), ": workspace of ", w.bytes,
                    " bytes is too large");
    w.buffer = torch::stable::new_empty(like, {static_cast<int64_t>(w.bytes)}, ScalarType::Byte);
    w.data = w.buffer->mutable_data_ptr();
    STD_TORCH_CHECK(reinterpret_cast<uintptr_t>(w.data) % TSRNN_WORKSPACE_ALIGN == 0, c.op(),
                    ": the allocator returned a workspace that is not ", TSRNN_WORKSPACE_ALIGN, "-byte aligned");
    return w;
}

tsrnn_desc cuda_desc(const Sizes &s, SeqStrides x_strides, SeqStrides y_strides, const OptTensor &lengths,
                     bool reverse, int reset_after, void *stream) {
    tsrnn_desc d = make_desc(s, x_strides, y_strides, ptr<int64_t>(lengths), reverse, reset_after, 1);
    d.stream = stream;
    return d;
}

// ---- LSTM -----------------------------------------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_cuda(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh,
                                                     OptTensor b_ih, OptTensor b_hh, OptTensor lengths,
                                                     bool batch_first, bool reverse) {
    const CudaCall call("tsrnn::lstm", x);
    const ArgCheck &c = call.check;
    const Sizes s = check_sizes(c, TSRNN_CELL_LSTM, x, w_ih, w_hh, batch_first);
    const OptTensor h0c = check_state(c, "h0", h0, s), c0c = check_state(c, "c0", c0, s);
    const OptTensor b_ihc = check_bias(c, "b_ih", b_ih, s), b_hhc = check_bias(c, "b_hh", b_hh, s);
    const OptTensor len = check_lengths(c, lengths, s);
    const Tensor x_in = seq_input(x, s), w_ihc = torch::stable::contiguous(w_ih),
                 w_hhc = torch::stable::contiguous(w_hh);

    Tensor y = empty(x, s.seq(s.H)), saved = empty(x, {s.T, s.B, s.S});
    if (s.T == 0 || s.B == 0) return {y, state_or_zeros(h0c, x, s), state_or_zeros(c0c, x, s), saved};
    Tensor h_n = empty(x, {s.B, s.H}), c_n = empty(x, {s.B, s.H});

    const tsrnn_desc d = cuda_desc(s, strides_of(x_in, s), strides_of(y, s), len, reverse, 0, call.stream);
    const Workspace ws = workspace(c, TSRNN_CELL_LSTM, TSRNN_PASS_FWD, d, x);
    c.status(tsrnn_lstm_fwd_cuda_f32(&d, in(x_in), ptr<float>(h0c), ptr<float>(c0c), in(w_ihc), in(w_hhc),
                                     ptr<float>(b_ihc), ptr<float>(b_hhc), nullptr, out(y), out(h_n), out(c_n), out(saved),
                                     ws.data, ws.bytes),
             "tsrnn_lstm_fwd_cuda_f32");
    return {y, h_n, c_n, saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
lstm_backward_cuda(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths,
                   OptTensor grad_y, OptTensor grad_h_n, OptTensor grad_c_n, bool batch_first, bool reverse) {
    const CudaCall call("tsrnn::lstm_backward", x);
    const ArgCheck &c = call.check;
    const Sizes s = check_sizes(c, TSRNN_CELL_LSTM, x, w_ih, w_hh, batch_first);
    const OptTensor h0c = check_state(c, "h0", h0, s), c0c = check_state(c, "c0", c0, s);
    c.floating("saved", saved, {s.T, s.B, s.S}, "(T, B, 6*H)");
    const OptTensor len = check_lengths(c, lengths, s);
    OptTensor gy;
    if (grad_y.has_value()) {
        c.floating("grad_y", *grad_y, s.seq(s.H), s.seq_letters('H'));
        gy = seq_input(*grad_y, s);
    }
    const OptTensor ghn = check_state(c, "grad_h_n", grad_h_n, s), gcn = check_state(c, "grad_c_n", grad_c_n, s);
    const Tensor x_in = torch::stable::contiguous(x), saved_in = torch::stable::contiguous(saved),
                 w_ihc = torch::stable::contiguous(w_ih), w_hhc = torch::stable::contiguous(w_hh);

    const int64_t GH = s.G * s.H;
    if (s.T == 0 || s.B == 0)
        return {zeros(x, s.seq(s.D)), state_or_zeros(ghn, x, s), state_or_zeros(gcn, x, s), zeros(x, {GH, s.D}),
                zeros(x, {GH, s.H}),  zeros(x, {GH}),            zeros(x, {GH})};
    Tensor grad_x = empty(x, s.seq(s.D)), grad_h0 = empty(x, {s.B, s.H}), grad_c0 = empty(x, {s.B, s.H});
    Tensor grad_w_ih = empty(x, {GH, s.D}), grad_w_hh = empty(x, {GH, s.H});
    Tensor grad_b_ih = empty(x, {GH}), grad_b_hh = empty(x, {GH});

    // x and grad_x share the desc's x strides: both contiguous in the caller's convention.
    const SeqStrides y_strides = gy.has_value() ? strides_of(*gy, s) : contiguous_strides(s, s.H);
    const tsrnn_desc d = cuda_desc(s, strides_of(grad_x, s), y_strides, len, reverse, 0, call.stream);
    const Workspace ws = workspace(c, TSRNN_CELL_LSTM, TSRNN_PASS_BWD, d, x);
    c.status(tsrnn_lstm_bwd_cuda_f32(&d, in(x_in), ptr<float>(h0c), ptr<float>(c0c), in(w_ihc), in(w_hhc), nullptr,
                                     in(saved_in), ptr<float>(gy), ptr<float>(ghn), ptr<float>(gcn), out(grad_x),
                                     out(grad_h0), out(grad_c0), out(grad_w_ih), out(grad_w_hh), out(grad_b_ih),
                                     out(grad_b_hh), nullptr, ws.data, ws.bytes),
             "tsrnn_lstm_bwd_cuda_f32");
    return {grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh};
}

// ---- GRU ------------------------------------------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor> gru_cuda(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, OptTensor b_ih,
                                            OptTensor b_hh, OptTensor lengths, bool batch_first, bool reverse,
                                            bool reset_after) {
    const CudaCall call("tsrnn::gru", x);
    const ArgCheck &c = call.check;
    const Sizes s = check_sizes(c, TSRNN_CELL_GRU, x, w_ih, w_hh, batch_first);
    const OptTensor h0c = check_state(c, "h0", h0, s);
    const OptTensor b_ihc = check_bias(c, "b_ih", b_ih, s), b_hhc = check_bias(c, "b_hh", b_hh, s);
    const OptTensor len = check_lengths(c, lengths, s);
    const Tensor x_in = seq_input(x, s), w_ihc = torch::stable::contiguous(w_ih),
                 w_hhc = torch::stable::contiguous(w_hh);

    Tensor y = empty(x, s.seq(s.H)), saved = empty(x, {s.T, s.B, s.S});
    if (s.T == 0 || s.B == 0) return {y, state_or_zeros(h0c, x, s), saved};
    Tensor h_n = empty(x, {s.B, s.H});

    const tsrnn_desc d =
        cuda_desc(s, strides_of(x_in, s), strides_of(y, s), len, reverse, reset_after ? 1 : 0, call.stream);
    const Workspace ws = workspace(c, TSRNN_CELL_GRU, TSRNN_PASS_FWD, d, x);
    c.status(tsrnn_gru_fwd_cuda_f32(&d, in(x_in), ptr<float>(h0c), in(w_ihc), in(w_hhc), ptr<float>(b_ihc),
                                    ptr<float>(b_hhc), out(y), out(h_n), out(saved), ws.data, ws.bytes),
             "tsrnn_gru_fwd_cuda_f32");
    return {y, h_n, saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
gru_backward_cuda(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths, OptTensor grad_y,
                  OptTensor grad_h_n, bool batch_first, bool reverse, bool reset_after) {
    const CudaCall call("tsrnn::gru_backward", x);
    const ArgCheck &c = call.check;
    const Sizes s = check_sizes(c, TSRNN_CELL_GRU, x, w_ih, w_hh, batch_first);
    const OptTensor h0c = check_state(c, "h0", h0, s);
    c.floating("saved", saved, {s.T, s.B, s.S}, "(T, B, 5*H)");
    const OptTensor len = check_lengths(c, lengths, s);
    OptTensor gy;
    if (grad_y.has_value()) {
        c.floating("grad_y", *grad_y, s.seq(s.H), s.seq_letters('H'));
        gy = seq_input(*grad_y, s);
    }
    const OptTensor ghn = check_state(c, "grad_h_n", grad_h_n, s);
    const Tensor x_in = torch::stable::contiguous(x), saved_in = torch::stable::contiguous(saved),
                 w_ihc = torch::stable::contiguous(w_ih), w_hhc = torch::stable::contiguous(w_hh);

    const int64_t GH = s.G * s.H;
    if (s.T == 0 || s.B == 0)
        return {zeros(x, s.seq(s.D)), state_or_zeros(ghn, x, s), zeros(x, {GH, s.D}),
                zeros(x, {GH, s.H}),  zeros(x, {GH}),            zeros(x, {GH})};
    Tensor grad_x = empty(x, s.seq(s.D)), grad_h0 = empty(x, {s.B, s.H});
    Tensor grad_w_ih = empty(x, {GH, s.D}), grad_w_hh = empty(x, {GH, s.H});
    Tensor grad_b_ih = empty(x, {GH}), grad_b_hh = empty(x, {GH});

    const SeqStrides y_strides = gy.has_value() ? strides_of(*gy, s) : contiguous_strides(s, s.H);
    const tsrnn_desc d =
        cuda_desc(s, strides_of(grad_x, s), y_strides, len, reverse, reset_after ? 1 : 0, call.stream);
    const Workspace ws = workspace(c, TSRNN_CELL_GRU, TSRNN_PASS_BWD, d, x);
    c.status(tsrnn_gru_bwd_cuda_f32(&d, in(x_in), ptr<float>(h0c), in(w_ihc), in(w_hhc), in(saved_in), ptr<float>(gy),
                                    ptr<float>(ghn), out(grad_x), out(grad_h0), out(grad_w_ih), out(grad_w_hh),
                                    out(grad_b_ih), out(grad_b_hh), ws.data, ws.bytes),
             "tsrnn_gru_bwd_cuda_f32");
    return {grad_x, grad_h0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh};
}

} // namespace
} // namespace tsrnn_shim

STABLE_TORCH_LIBRARY_IMPL(tsrnn, CUDA, m) {
    m.impl("lstm", TORCH_BOX(&tsrnn_shim::lstm_cuda));
    m.impl("lstm_backward", TORCH_BOX(&tsrnn_shim::lstm_backward_cuda));
    m.impl("gru", TORCH_BOX(&tsrnn_shim::gru_cuda));
    m.impl("gru_backward", TORCH_BOX(&tsrnn_shim::gru_backward_cuda));
}
