// CUDA registration of the tsrnn ops: the shared preparation (shim/prepare.h: checks, outputs on x's device from
// torch's caching allocator, desc), then the CUDA kernels of tsrnn.h (tsrnn_{lstm,gru}_{fwd,bwd}_cuda_f32) queued on
// PyTorch's current stream of that device. Schemas: shim/ops.cpp.
//
// Built only against a CUDA build of torch (cmake/cuda.cmake): aoti_torch_get_current_cuda_stream exists only there.
// fp32 only; every tensor on x's device; lengths stays a CPU int64 tensor (the kernels copy it to the device
// themselves), a CUDA lengths tensor is rejected by check_lengths. The kernels return without synchronizing. LSTM
// projections (w_hr) are refused with a clear error: the CUDA kernels do not have them yet.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>

#include "prepare.h"
#include "tsrnn.h"

// Declared by torch's shim.h only under USE_CUDA, exported only by CUDA builds of torch; declared here so this file
// also compiles (for the compile check) against a CPU torch's headers.
extern "C" AOTITorchError aoti_torch_get_current_cuda_stream(int32_t device_index, void **ret_stream);

namespace tsrnn_shim {
namespace {


// Everything one CUDA call needs besides its tensors: the argument checker, x's device made current (restored on
// return) and PyTorch's current stream on it.
struct CudaCall {
    ArgCheck check;
    torch::stable::accelerator::DeviceGuard guard;
    void *stream = nullptr;

    CudaCall(const char *op, const Tensor &x)
        : check(op, x, placement_of(x)), guard(device_index_of(op, x)) {
        TSRNN_SHIM_CHECK(check, x.scalar_type() == ScalarType::Float, "x",
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

    // The stream into the desc, a workspace on x's device, the call; a bad status becomes an error.
    template <class Call>
    void run(tsrnn_cell cell, tsrnn_pass pass, tsrnn_desc &d, const Tensor &x, const char *name, Call &&call) const {
        d.stream = stream;
        const Workspace ws = workspace(check, kPlainMemory, cell, pass, TSRNN_BACKEND_CUDA, d, x);
        check.status(call(ws), name);
    }

    void no_projection(const OptTensor &w_hr) const {
        TSRNN_SHIM_CHECK(check, !w_hr.has_value(), "w_hr",
                          "must be None on CUDA: the CUDA kernels have no LSTM projection (proj_size) yet");
    }
};

// ---- LSTM -----------------------------------------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_cuda(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh,
                                                     OptTensor b_ih, OptTensor b_hh, OptTensor lengths,
                                                     bool batch_first, bool reverse, OptTensor w_hr,
                                                     bool need_saved) {
    const CudaCall call("tsrnn::lstm", x);
    call.no_projection(w_hr);
    Forward f = prepare_forward(call.check, kPlainMemory, TSRNN_CELL_LSTM, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
                                lengths, batch_first, reverse, false, need_saved);
    if (f.run)
        call.run(TSRNN_CELL_LSTM, TSRNN_PASS_FWD, f.desc, x, "tsrnn_lstm_fwd_cuda_f32", [&](const Workspace &ws) {
            return tsrnn_lstm_fwd_cuda_f32(&f.desc, in<float>(f.x), ptr<float>(f.h0), ptr<float>(f.c0),
                                           in<float>(f.w_ih), in<float>(f.w_hh), ptr<float>(f.b_ih), ptr<float>(f.b_hh),
                                           nullptr, out<float>(f.y), out<float>(f.h_n), out<float>(f.c_n),
                                           saved_ptr<float>(f), ws.data, ws.bytes);
        });
    return {f.y, f.h_n, *f.c_n, f.saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
lstm_backward_cuda(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths,
                   OptTensor grad_y, OptTensor grad_h_n, OptTensor grad_c_n, bool batch_first, bool reverse,
                   OptTensor w_hr) {
    const CudaCall call("tsrnn::lstm_backward", x);
    call.no_projection(w_hr);
    Backward g = prepare_backward(call.check, kPlainMemory, TSRNN_CELL_LSTM, x, h0, c0, w_ih, w_hh, w_hr, saved,
                                  lengths, grad_y, grad_h_n, grad_c_n, batch_first, reverse, false);
    if (g.run)
        call.run(TSRNN_CELL_LSTM, TSRNN_PASS_BWD, g.desc, x, "tsrnn_lstm_bwd_cuda_f32", [&](const Workspace &ws) {
            return tsrnn_lstm_bwd_cuda_f32(&g.desc, in<float>(g.x), ptr<float>(g.h0), ptr<float>(g.c0),
                                           in<float>(g.w_ih), in<float>(g.w_hh), nullptr, in<float>(g.saved),
                                           ptr<float>(g.grad_y), ptr<float>(g.grad_h_n), ptr<float>(g.grad_c_n),
                                           out<float>(g.grad_x), out<float>(g.grad_h0), out<float>(g.grad_c0),
                                           out<float>(g.grad_w_ih), out<float>(g.grad_w_hh), out<float>(g.grad_b_ih),
                                           out<float>(g.grad_b_hh), nullptr, ws.data, ws.bytes);
        });
    return {g.grad_x,    g.grad_h0,   *g.grad_c0,  g.grad_w_ih,
            g.grad_w_hh, g.grad_b_ih, g.grad_b_hh, g.grad_w_hr};
}

// ---- GRU ------------------------------------------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor> gru_cuda(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, OptTensor b_ih,
                                            OptTensor b_hh, OptTensor lengths, bool batch_first, bool reverse,
                                            bool reset_after, bool need_saved) {
    const CudaCall call("tsrnn::gru", x);
    Forward f = prepare_forward(call.check, kPlainMemory, TSRNN_CELL_GRU, x, h0, std::nullopt, w_ih, w_hh, b_ih, b_hh,
                                std::nullopt, lengths, batch_first, reverse, reset_after, need_saved);
    if (f.run)
        call.run(TSRNN_CELL_GRU, TSRNN_PASS_FWD, f.desc, x, "tsrnn_gru_fwd_cuda_f32", [&](const Workspace &ws) {
            return tsrnn_gru_fwd_cuda_f32(&f.desc, in<float>(f.x), ptr<float>(f.h0), in<float>(f.w_ih),
                                          in<float>(f.w_hh), ptr<float>(f.b_ih), ptr<float>(f.b_hh), out<float>(f.y),
                                          out<float>(f.h_n), saved_ptr<float>(f), ws.data, ws.bytes);
        });
    return {f.y, f.h_n, f.saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
gru_backward_cuda(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths, OptTensor grad_y,
                  OptTensor grad_h_n, bool batch_first, bool reverse, bool reset_after) {
    const CudaCall call("tsrnn::gru_backward", x);
    Backward g = prepare_backward(call.check, kPlainMemory, TSRNN_CELL_GRU, x, h0, std::nullopt, w_ih, w_hh,
                                  std::nullopt, saved, lengths, grad_y, grad_h_n, std::nullopt, batch_first, reverse,
                                  reset_after);
    if (g.run)
        call.run(TSRNN_CELL_GRU, TSRNN_PASS_BWD, g.desc, x, "tsrnn_gru_bwd_cuda_f32", [&](const Workspace &ws) {
            return tsrnn_gru_bwd_cuda_f32(&g.desc, in<float>(g.x), ptr<float>(g.h0), in<float>(g.w_ih),
                                          in<float>(g.w_hh), in<float>(g.saved), ptr<float>(g.grad_y),
                                          ptr<float>(g.grad_h_n), out<float>(g.grad_x), out<float>(g.grad_h0),
                                          out<float>(g.grad_w_ih), out<float>(g.grad_w_hh), out<float>(g.grad_b_ih),
                                          out<float>(g.grad_b_hh), ws.data, ws.bytes);
        });
    return {g.grad_x, g.grad_h0, g.grad_w_ih, g.grad_w_hh, g.grad_b_ih, g.grad_b_hh};
}

} // namespace
} // namespace tsrnn_shim

STABLE_TORCH_LIBRARY_IMPL(tsrnn, CUDA, m) {
    m.impl("lstm", TORCH_BOX(&tsrnn_shim::lstm_cuda));
    m.impl("lstm_backward", TORCH_BOX(&tsrnn_shim::lstm_backward_cuda));
    m.impl("gru", TORCH_BOX(&tsrnn_shim::gru_cuda));
    m.impl("gru_backward", TORCH_BOX(&tsrnn_shim::gru_backward_cuda));
}
