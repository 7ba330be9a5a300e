// CPU registration of the tsrnn ops: check the arguments, allocate the outputs and the workspace, call the
// optimized CPU kernels of tsrnn.h (tsrnn_{lstm,gru}_{fwd,bwd}_cpu_{f32,f64}) and turn a bad status into an
// error. Schemas: shim/ops.cpp. Checks shared with the CUDA registration: shim/common.h.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <climits>
#include <cstdint>
#include <optional>
#include <tuple>

#include "common.h"
#include "tsrnn.h"

namespace tsrnn_shim {
namespace {

using OptTensor = std::optional<Tensor>;

// Every tensor of a CPU call lives on the CPU.
constexpr Placement kCpu{DeviceType::CPU, -1};

// The kernels of one dtype, so each op body is written once for float and double.
template <class real> struct CpuKernels;
template <> struct CpuKernels<float> {
    static constexpr auto lstm_fwd = tsrnn_lstm_fwd_cpu_f32;
    static constexpr auto lstm_bwd = tsrnn_lstm_bwd_cpu_f32;
    static constexpr auto gru_fwd = tsrnn_gru_fwd_cpu_f32;
    static constexpr auto gru_bwd = tsrnn_gru_bwd_cpu_f32;
};
template <> struct CpuKernels<double> {
    static constexpr auto lstm_fwd = tsrnn_lstm_fwd_cpu_f64;
    static constexpr auto lstm_bwd = tsrnn_lstm_bwd_cpu_f64;
    static constexpr auto gru_fwd = tsrnn_gru_fwd_cpu_f64;
    static constexpr auto gru_bwd = tsrnn_gru_bwd_cpu_f64;
};

// PyTorch's intra-op thread count (at::get_num_threads, exposed by the 2.10 stable ABI), so the kernels follow
// torch.set_num_threads like every other CPU op.
int cpu_threads() {
    const uint32_t n = torch::stable::get_num_threads();
    if (n < 1) return 1;
    return n > static_cast<uint32_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
}

// Scratch of tsrnn_workspace_size bytes as a uint8 tensor; the CPU allocator aligns to 64 bytes, checked here.
struct Workspace {
    OptTensor buffer;
    void *data = nullptr;
    size_t bytes = 0;
};

Workspace workspace(const ArgCheck &c, tsrnn_cell cell, tsrnn_pass pass, const tsrnn_desc &d, const Tensor &like) {
    Workspace w;
    c.status(tsrnn_workspace_size(cell, pass, TSRNN_BACKEND_CPU, c.kernel_dtype(), &d, &w.bytes),
             "tsrnn_workspace_size");
    if (w.bytes == 0) return w;
    STD_TORCH_CHECK(w.bytes <= static_cast<size_t>(INT64_MAX), c.op(), ": workspace of ", w.bytes,
                    " bytes is too large");
    w.buffer = torch::stable::new_empty(like, {static_cast<int64_t>(w.bytes)}, ScalarType::Byte);
    w.data = w.buffer->mutable_data_ptr();
    STD_TORCH_CHECK(reinterpret_cast<uintptr_t>(w.data) % TSRNN_WORKSPACE_ALIGN == 0, c.op(),
                    ": the allocator returned a workspace that is not ", TSRNN_WORKSPACE_ALIGN, "-byte aligned");
    return w;
}

Tensor zeros(const Tensor &like, std::vector<int64_t> shape) { return torch::stable::new_zeros(like, shape); }
Tensor empty(const Tensor &like, std::vector<int64_t> shape) { return torch::stable::new_empty(like, shape); }

// A state output when no step runs (T = 0 or B = 0): the given state, or zeros.
Tensor state_or_zeros(const OptTensor &state, const Tensor &like, const Sizes &s) {
    return state.has_value() ? torch::stable::clone(*state) : zeros(like, {s.B, s.H});
}

template <class real> real *out(const Tensor &t) { return t.mutable_data_ptr<real>(); }
template <class real> const real *in(const Tensor &t) { return t.const_data_ptr<real>(); }

// ---- LSTM -----------------------------------------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_cpu(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh,
                                                    OptTensor b_ih, OptTensor b_hh, OptTensor lengths,
                                                    bool batch_first, bool reverse) {
    const ArgCheck c("tsrnn::lstm", x, kCpu);
    const Sizes s = check_sizes(c, TSRNN_CELL_LSTM, x, w_ih, w_hh, batch_first);
    const OptTensor h0c = check_state(c, "h0", h0, s), c0c = check_state(c, "c0", c0, s);
    const OptTensor b_ihc = check_bias(c, "b_ih", b_ih, s), b_hhc = check_bias(c, "b_hh", b_hh, s);
    const OptTensor len = check_lengths(c, lengths, s);
    const Tensor x_in = seq_input(x, s), w_ihc = torch::stable::contiguous(w_ih),
                 w_hhc = torch::stable::contiguous(w_hh);

    Tensor y = empty(x, s.seq(s.H)), saved = empty(x, {s.T, s.B, s.S});
    if (s.T == 0 || s.B == 0) return {y, state_or_zeros(h0c, x, s), state_or_zeros(c0c, x, s), saved};
    Tensor h_n = empty(x, {s.B, s.H}), c_n = empty(x, {s.B, s.H});

    const tsrnn_desc d =
        make_desc(s, strides_of(x_in, s), strides_of(y, s), ptr<int64_t>(len), reverse, 0, cpu_threads());
    const Workspace ws = workspace(c, TSRNN_CELL_LSTM, TSRNN_PASS_FWD, d, x);
    auto call = [&]<class real>(real) {
        return CpuKernels<real>::lstm_fwd(&d, in<real>(x_in), ptr<real>(h0c), ptr<real>(c0c), in<real>(w_ihc),
                                          in<real>(w_hhc), ptr<real>(b_ihc), ptr<real>(b_hhc), nullptr, out<real>(y),
                                          out<real>(h_n), out<real>(c_n), out<real>(saved), ws.data, ws.bytes);
    };
    c.status(c.dtype() == ScalarType::Float ? call(0.0f) : call(0.0), "tsrnn_lstm_fwd_cpu");
    return {y, h_n, c_n, saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
lstm_backward_cpu(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths,
                  OptTensor grad_y, OptTensor grad_h_n, OptTensor grad_c_n, bool batch_first, bool reverse) {
    const ArgCheck c("tsrnn::lstm_backward", x, kCpu);
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
        return {zeros(x, s.seq(s.D)),     state_or_zeros(ghn, x, s), state_or_zeros(gcn, x, s),
                zeros(x, {GH, s.D}),      zeros(x, {GH, s.H}),       zeros(x, {GH}),
                zeros(x, {GH})};
    Tensor grad_x = empty(x, s.seq(s.D)), grad_h0 = empty(x, {s.B, s.H}), grad_c0 = empty(x, {s.B, s.H});
    Tensor grad_w_ih = empty(x, {GH, s.D}), grad_w_hh = empty(x, {GH, s.H});
    Tensor grad_b_ih = empty(x, {GH}), grad_b_hh = empty(x, {GH});

    // x and grad_x share the desc's x strides: both contiguous in the caller's convention.
    const SeqStrides y_strides = gy.has_value() ? strides_of(*gy, s) : contiguous_strides(s, s.H);
    const tsrnn_desc d = make_desc(s, strides_of(grad_x, s), y_strides, ptr<int64_t>(len), reverse, 0, cpu_threads());
    const Workspace ws = workspace(c, TSRNN_CELL_LSTM, TSRNN_PASS_BWD, d, x);
    auto call = [&]<class real>(real) {
        return CpuKernels<real>::lstm_bwd(&d, in<real>(x_in), ptr<real>(h0c), ptr<real>(c0c), in<real>(w_ihc),
                                          in<real>(w_hhc), nullptr, in<real>(saved_in), ptr<real>(gy), ptr<real>(ghn),
                                          ptr<real>(gcn), out<real>(grad_x), out<real>(grad_h0), out<real>(grad_c0),
                                          out<real>(grad_w_ih), out<real>(grad_w_hh), out<real>(grad_b_ih),
                                          out<real>(grad_b_hh), nullptr, ws.data, ws.bytes);
    };
    c.status(c.dtype() == ScalarType::Float ? call(0.0f) : call(0.0), "tsrnn_lstm_bwd_cpu");
    return {grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh};
}

// ---- GRU ------------------------------------------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor> gru_cpu(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, OptTensor b_ih,
                                           OptTensor b_hh, OptTensor lengths, bool batch_first, bool reverse,
                                           bool reset_after) {
    const ArgCheck c("tsrnn::gru", x, kCpu);
    const Sizes s = check_sizes(c, TSRNN_CELL_GRU, x, w_ih, w_hh, batch_first);
    const OptTensor h0c = check_state(c, "h0", h0, s);
    const OptTensor b_ihc = check_bias(c, "b_ih", b_ih, s), b_hhc = check_bias(c, "b_hh", b_hh, s);
    const OptTensor len = check_lengths(c, lengths, s);
    const Tensor x_in = seq_input(x, s), w_ihc = torch::stable::contiguous(w_ih),
                 w_hhc = torch::stable::contiguous(w_hh);

    Tensor y = empty(x, s.seq(s.H)), saved = empty(x, {s.T, s.B, s.S});
    if (s.T == 0 || s.B == 0) return {y, state_or_zeros(h0c, x, s), saved};
    Tensor h_n = empty(x, {s.B, s.H});

    const tsrnn_desc d = make_desc(s, strides_of(x_in, s), strides_of(y, s), ptr<int64_t>(len), reverse,
                                   reset_after ? 1 : 0, cpu_threads());
    const Workspace ws = workspace(c, TSRNN_CELL_GRU, TSRNN_PASS_FWD, d, x);
    auto call = [&]<class real>(real) {
        return CpuKernels<real>::gru_fwd(&d, in<real>(x_in), ptr<real>(h0c), in<real>(w_ihc), in<real>(w_hhc),
                                         ptr<real>(b_ihc), ptr<real>(b_hhc), out<real>(y), out<real>(h_n),
                                         out<real>(saved), ws.data, ws.bytes);
    };
    c.status(c.dtype() == ScalarType::Float ? call(0.0f) : call(0.0), "tsrnn_gru_fwd_cpu");
    return {y, h_n, saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
gru_backward_cpu(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths, OptTensor grad_y,
                 OptTensor grad_h_n, bool batch_first, bool reverse, bool reset_after) {
    const ArgCheck c("tsrnn::gru_backward", x, kCpu);
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
    const tsrnn_desc d = make_desc(s, strides_of(grad_x, s), y_strides, ptr<int64_t>(len), reverse,
                                   reset_after ? 1 : 0, cpu_threads());
    const Workspace ws = workspace(c, TSRNN_CELL_GRU, TSRNN_PASS_BWD, d, x);
    auto call = [&]<class real>(real) {
        return CpuKernels<real>::gru_bwd(&d, in<real>(x_in), ptr<real>(h0c), in<real>(w_ihc), in<real>(w_hhc),
                                         in<real>(saved_in), ptr<real>(gy), ptr<real>(ghn), out<real>(grad_x),
                                         out<real>(grad_h0), out<real>(grad_w_ih), out<real>(grad_w_hh),
                                         out<real>(grad_b_ih), out<real>(grad_b_hh), ws.data, ws.bytes);
    };
    c.status(c.dtype() == ScalarType::Float ? call(0.0f) : call(0.0), "tsrnn_gru_bwd_cpu");
    return {grad_x, grad_h0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh};
}

} // namespace
} // namespace tsrnn_shim

STABLE_TORCH_LIBRARY_IMPL(tsrnn, CPU, m) {
    m.impl("lstm", TORCH_BOX(&tsrnn_shim::lstm_cpu));
    m.impl("lstm_backward", TORCH_BOX(&tsrnn_shim::lstm_backward_cpu));
    m.impl("gru", TORCH_BOX(&tsrnn_shim::gru_cpu));
    m.impl("gru_backward", TORCH_BOX(&tsrnn_shim::gru_backward_cpu));
}
