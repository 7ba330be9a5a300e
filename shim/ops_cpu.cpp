// CPU registration of the tsrnn ops: the shared preparation (shim/prepare.h: checks, outputs, desc) with the CPU's
// memory policy (shim/cpu_memory.h), then the optimized CPU kernels of tsrnn.h (tsrnn_{lstm,gru}_{fwd,bwd}_cpu_{f32,
// f64}) on torch's intra-op threads, and a bad status turned into an error. Schemas: shim/ops.cpp.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <climits>
#include <cstdint>
#include <optional>
#include <tuple>

#include "cpu_memory.h"
#include "prepare.h"
#include "tsrnn.h"

namespace tsrnn_shim {
namespace {

// Every tensor of a CPU call lives on the CPU, and comes from the CPU's memory policy.
constexpr Placement kCpu{DeviceType::CPU, -1};
constexpr Memory kCpuMemory{cpu_memory::empty, cpu_memory::kept_workspace};

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

// The kernels' pieces of work run on torch's own intra-op pool (at::parallel_for, exposed by the 2.10 stable ABI
// as torch_parallel_for): no thread is started per call, and the kernels never compete for cores with torch's
// OpenMP threads, which keep spinning for a while after every torch op. Inside a parallel region torch runs the
// range serially on the calling thread, which the kernels allow (tsrnn.h: pieces never wait for each other).
struct Pieces {
    tsrnn_task task;
    void *ctx;
    int count;
};

void run_pieces(int64_t begin, int64_t end, void *p) {
    const Pieces *pieces = static_cast<const Pieces *>(p);
    for (int64_t i = begin; i < end; ++i) pieces->task(pieces->ctx, static_cast<int>(i), pieces->count);
}

int torch_pool(void *, int count, tsrnn_task task, void *ctx) {
    Pieces pieces{task, ctx, count};
    return torch_parallel_for(0, count, 1, run_pieces, &pieces) == AOTI_TORCH_SUCCESS ? 0 : 1;
}

// Runs call<real>(workspace) for x's dtype on torch's threads; a bad status becomes an error.
template <class Call>
void run_cpu(const ArgCheck &c, tsrnn_cell cell, tsrnn_pass pass, tsrnn_desc &d, const Tensor &x, const char *name,
             Call &&call) {
    d.num_threads = cpu_threads();
    d.parallel = torch_pool;
    const Workspace ws = workspace(c, kCpuMemory, cell, pass, TSRNN_BACKEND_CPU, d, x);
    d.workspace_kept = ws.kept ? 1 : 0;
    c.status(c.dtype() == ScalarType::Float ? call(0.0f, ws) : call(0.0, ws), name);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_cpu(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh,
                                                    OptTensor b_ih, OptTensor b_hh, OptTensor lengths,
                                                    bool batch_first, bool reverse, OptTensor w_hr,
                                                    bool need_saved) {
    const ArgCheck c("tsrnn::lstm", x, kCpu);
    Forward f = prepare_forward(c, kCpuMemory, TSRNN_CELL_LSTM, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths,
                                batch_first, reverse, false, need_saved);
    if (f.run)
        run_cpu(c, TSRNN_CELL_LSTM, TSRNN_PASS_FWD, f.desc, x, "tsrnn_lstm_fwd_cpu",
                [&]<class real>(real, const Workspace &ws) {
                    return CpuKernels<real>::lstm_fwd(&f.desc, in<real>(f.x), ptr<real>(f.h0), ptr<real>(f.c0),
                                                      in<real>(f.w_ih), in<real>(f.w_hh), ptr<real>(f.b_ih),
                                                      ptr<real>(f.b_hh), ptr<real>(f.w_hr), out<real>(f.y),
                                                      out<real>(f.h_n), out<real>(f.c_n), saved_ptr<real>(f), ws.data,
                                                      ws.bytes);
                });
    return {f.y, f.h_n, *f.c_n, f.saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
lstm_backward_cpu(Tensor x, OptTensor h0, OptTensor c0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths,
                  OptTensor grad_y, OptTensor grad_h_n, OptTensor grad_c_n, bool batch_first, bool reverse,
                  OptTensor w_hr) {
    const ArgCheck c("tsrnn::lstm_backward", x, kCpu);
    Backward g = prepare_backward(c, kCpuMemory, TSRNN_CELL_LSTM, x, h0, c0, w_ih, w_hh, w_hr, saved, lengths, grad_y,
                                  grad_h_n, grad_c_n, batch_first, reverse, false);
    if (g.run)
        run_cpu(c, TSRNN_CELL_LSTM, TSRNN_PASS_BWD, g.desc, x, "tsrnn_lstm_bwd_cpu",
                [&]<class real>(real, const Workspace &ws) {
                    return CpuKernels<real>::lstm_bwd(
                        &g.desc, in<real>(g.x), ptr<real>(g.h0), ptr<real>(g.c0), in<real>(g.w_ih), in<real>(g.w_hh),
                        ptr<real>(g.w_hr), in<real>(g.saved), ptr<real>(g.grad_y), ptr<real>(g.grad_h_n),
                        ptr<real>(g.grad_c_n), out<real>(g.grad_x), out<real>(g.grad_h0), out<real>(g.grad_c0),
                        out<real>(g.grad_w_ih), out<real>(g.grad_w_hh), out<real>(g.grad_b_ih), out<real>(g.grad_b_hh),
                        grad_w_hr_ptr<real>(g), ws.data, ws.bytes);
                });
    return {g.grad_x,    g.grad_h0,   *g.grad_c0,  g.grad_w_ih,
            g.grad_w_hh, g.grad_b_ih, g.grad_b_hh, g.grad_w_hr};
}

std::tuple<Tensor, Tensor, Tensor> gru_cpu(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, OptTensor b_ih,
                                           OptTensor b_hh, OptTensor lengths, bool batch_first, bool reverse,
                                           bool reset_after, bool need_saved) {
    const ArgCheck c("tsrnn::gru", x, kCpu);
    Forward f = prepare_forward(c, kCpuMemory, TSRNN_CELL_GRU, x, h0, std::nullopt, w_ih, w_hh, b_ih, b_hh,
                                std::nullopt, lengths, batch_first, reverse, reset_after, need_saved);
    if (f.run)
        run_cpu(c, TSRNN_CELL_GRU, TSRNN_PASS_FWD, f.desc, x, "tsrnn_gru_fwd_cpu",
                [&]<class real>(real, const Workspace &ws) {
                    return CpuKernels<real>::gru_fwd(&f.desc, in<real>(f.x), ptr<real>(f.h0), in<real>(f.w_ih),
                                                     in<real>(f.w_hh), ptr<real>(f.b_ih), ptr<real>(f.b_hh),
                                                     out<real>(f.y), out<real>(f.h_n), saved_ptr<real>(f), ws.data,
                                                     ws.bytes);
                });
    return {f.y, f.h_n, f.saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
gru_backward_cpu(Tensor x, OptTensor h0, Tensor w_ih, Tensor w_hh, Tensor saved, OptTensor lengths, OptTensor grad_y,
                 OptTensor grad_h_n, bool batch_first, bool reverse, bool reset_after) {
    const ArgCheck c("tsrnn::gru_backward", x, kCpu);
    Backward g = prepare_backward(c, kCpuMemory, TSRNN_CELL_GRU, x, h0, std::nullopt, w_ih, w_hh, std::nullopt, saved,
                                  lengths, grad_y, grad_h_n, std::nullopt, batch_first, reverse, reset_after);
    if (g.run)
        run_cpu(c, TSRNN_CELL_GRU, TSRNN_PASS_BWD, g.desc, x, "tsrnn_gru_bwd_cpu",
                [&]<class real>(real, const Workspace &ws) {
                    return CpuKernels<real>::gru_bwd(&g.desc, in<real>(g.x), ptr<real>(g.h0), in<real>(g.w_ih),
                                                     in<real>(g.w_hh), in<real>(g.saved), ptr<real>(g.grad_y),
                                                     ptr<real>(g.grad_h_n), out<real>(g.grad_x), out<real>(g.grad_h0),
                                                     out<real>(g.grad_w_ih), out<real>(g.grad_w_hh),
                                                     out<real>(g.grad_b_ih), out<real>(g.grad_b_hh), ws.data,
                                                     ws.bytes);
                });
    return {g.grad_x, g.grad_h0, g.grad_w_ih, g.grad_w_hh, g.grad_b_ih, g.grad_b_hh};
}

} // namespace
} // namespace tsrnn_shim

STABLE_TORCH_LIBRARY_IMPL(tsrnn, CPU, m) {
    m.impl("lstm", TORCH_BOX(&tsrnn_shim::lstm_cpu));
    m.impl("lstm_backward", TORCH_BOX(&tsrnn_shim::lstm_backward_cpu));
    m.impl("gru", TORCH_BOX(&tsrnn_shim::gru_cpu));
    m.impl("gru_backward", TORCH_BOX(&tsrnn_shim::gru_backward_cpu));
}
