// One preparation per op, shared by the CPU and CUDA registrations: every argument check, the inputs as the
// kernel takes them (contiguous where tsrnn.h wants them so), the outputs allocated on x's device through the
// device's Memory (below), and the desc. A device file then only fills in its part of the desc (num_threads or
// stream), gets a workspace and calls its C function. No arithmetic on tensor data happens here, and no memory
// policy: that is the device's (shim/cpu_memory.h for the CPU).
//
// When no step runs (T = 0 or B = 0) the outputs are final already (empty sequences, the given states or zeros,
// zero gradients) and `run` is false: the kernel is not called.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common.h"

namespace tsrnn_shim {
// Internal linkage, as everything the device files define: torch's stable Tensor has hidden visibility.
namespace {

using OptTensor = std::optional<Tensor>;

inline Tensor zeros(const Tensor &like, std::vector<int64_t> shape) { return torch::stable::new_zeros(like, shape); }

// A new uninitialized contiguous tensor on like's device, of like's dtype or the given C-shim dtype code. Made by
// the C shim's empty_strided, a direct call: the 2.10 stable new_empty goes through the dispatcher by name and
// boxes its arguments, which costs more than a small kernel call.
// No memory policy: the plain allocation a device's policy builds on.
inline Tensor allocate(const Tensor &like, const std::vector<int64_t> &shape,
                       std::optional<int32_t> dtype = std::nullopt) {
    std::vector<int64_t> strides(shape.size());
    int64_t stride = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i] = stride;
        stride *= shape[i] > 1 ? shape[i] : 1;
    }
    int32_t dt = 0, device_type = 0, device_index = 0;
    if (dtype.has_value())
        dt = *dtype;
    else
        TORCH_ERROR_CODE_CHECK(aoti_torch_get_dtype(like.get(), &dt));
    TORCH_ERROR_CODE_CHECK(aoti_torch_get_device_type(like.get(), &device_type));
    TORCH_ERROR_CODE_CHECK(aoti_torch_get_device_index(like.get(), &device_index));
    AtenTensorHandle made = nullptr;
    TORCH_ERROR_CODE_CHECK(aoti_torch_empty_strided(static_cast<int64_t>(shape.size()), shape.data(), strides.data(),
                                                    dt, device_type, device_index, &made));
    return Tensor(made);
}

// Where a registration's new tensors and its workspace come from: its device's memory policy (shim/cpu_memory.h for
// the CPU), or kPlainMemory (CUDA: torch's caching allocator is all the policy it needs).
struct Memory {
    // a new uninitialized contiguous tensor, as allocate() makes it (or built on it)
    Tensor (*new_tensor)(const Tensor &like, const std::vector<int64_t> &shape, std::optional<int32_t> dtype);
    // [opt] scratch the device keeps between calls: `bytes` (> 0) of it for this call, or NULL for a new buffer;
    // *kept: it is the buffer the previous call got (tsrnn_desc.workspace_kept)
    void *(*kept_workspace)(const char *op, size_t bytes, bool *kept);

    Tensor empty(const Tensor &like, const std::vector<int64_t> &shape,
                 std::optional<int32_t> dtype = std::nullopt) const {
        return new_tensor(like, shape, dtype);
    }
};

inline constexpr Memory kPlainMemory{allocate, nullptr};

// The shape of a state output: (1, B, W), or (B, W) as `like_state` (the input whose gradient it is) when that
// is given 2-D (autograd wants a gradient in its input's shape).
inline std::vector<int64_t> state_shape(const OptTensor &like_state, int64_t B, int64_t W) {
    if (like_state.has_value() && like_state->dim() == 2) return {B, W};
    return {1, B, W};
}

// A state output when no step runs: a copy of the given state ((1, B, W) or (B, W)), or zeros, in `shape`.
inline Tensor state_or_zeros(const OptTensor &state, const Tensor &like, const std::vector<int64_t> &shape) {
    if (!state.has_value()) return zeros(like, shape);
    Tensor out = allocate(like, shape);
    const Tensor from = state->dim() == 3 ? torch::stable::select(*state, 0, 0) : *state; // (B, W)
    torch::stable::copy_(out, from); // broadcast to (1, B, W) when out is
    return out;
}

template <class real> real *out(const Tensor &t) { return t.mutable_data_ptr<real>(); }
template <class real> real *out(const OptTensor &t) { return t.has_value() ? t->mutable_data_ptr<real>() : nullptr; }
template <class real> const real *in(const Tensor &t) { return t.const_data_ptr<real>(); }

// Scratch of tsrnn_workspace_size bytes on x's device: what the device keeps for it, else a uint8 tensor from the
// device's allocator; both of torch's allocators align to at least 64 bytes, which is checked.
struct Workspace {
    OptTensor buffer;
    void *data = nullptr;
    size_t bytes = 0;
    bool kept = false; // the device's kept scratch, as the previous call left it
};

inline Workspace workspace(const ArgCheck &c, const Memory &memory, tsrnn_cell cell, tsrnn_pass pass,
                           tsrnn_backend backend, const tsrnn_desc &d, const Tensor &like) {
    Workspace w;
    c.status(tsrnn_workspace_size(cell, pass, backend, c.kernel_dtype(), &d, &w.bytes), "tsrnn_workspace_size");
    if (w.bytes == 0) return w;
    if (memory.kept_workspace) {
        w.data = memory.kept_workspace(c.op(), w.bytes, &w.kept);
        if (w.data) return w;
    }
    STD_TORCH_CHECK(w.bytes <= static_cast<size_t>(INT64_MAX), c.op(), ": workspace of ", w.bytes,
                    " bytes is too large");
    w.buffer = memory.empty(like, {static_cast<int64_t>(w.bytes)}, aoti_torch_dtype_uint8());
    w.data = w.buffer->mutable_data_ptr();
    STD_TORCH_CHECK(reinterpret_cast<uintptr_t>(w.data) % TSRNN_WORKSPACE_ALIGN == 0, c.op(),
                    ": the allocator returned a workspace that is not ", TSRNN_WORKSPACE_ALIGN, "-byte aligned");
    return w;
}

// A copy or an output the allocator could not provide: the stable ABI's error text names only the dispatcher
// call, so say which op and which sizes.
[[noreturn]] inline void throw_allocation_failure(const ArgCheck &c, const Sizes &s, const std::exception &e) {
    throw std::runtime_error(std::string(c.op()) + ": could not allocate the contiguous inputs and the outputs for " +
                             "(T, B, D, H) = (" + std::to_string(s.T) + ", " + std::to_string(s.B) + ", " +
                             std::to_string(s.D) + ", " + std::to_string(s.H) + ") (out of memory?): " + e.what());
}

// ---- forward ----------------------------------------------------------------------------------------------

// tsrnn::lstm and tsrnn::gru (c0, c_n, w_hr: LSTM only).
struct Forward {
    Sizes s{};
    Tensor x, w_ih, w_hh;
    OptTensor h0, c0, b_ih, b_hh, w_hr, lengths;
    Tensor y, h_n, saved;
    OptTensor c_n;
    bool run = false, need_saved = true;
    tsrnn_desc desc{};
};

inline Forward prepare_forward(const ArgCheck &c, const Memory &memory, tsrnn_cell cell, const Tensor &x,
                               const OptTensor &h0, const OptTensor &c0, const Tensor &w_ih, const Tensor &w_hh,
                               const OptTensor &b_ih, const OptTensor &b_hh, const OptTensor &w_hr,
                               const OptTensor &lengths, bool batch_first, bool reverse, bool reset_after,
                               bool need_saved) {
    const bool lstm = cell == TSRNN_CELL_LSTM;
    const Sizes s = check_sizes(c, cell, x, w_ih, w_hh, w_hr, batch_first);
    check_counts(c, s);
    Forward f;
    f.s = s;
    f.need_saved = need_saved;
    // every check before the first copy or allocation
    f.h0 = check_hidden(c, "h0", h0, s);
    if (lstm) f.c0 = check_cell(c, "c0", c0, s);
    f.b_ih = check_bias(c, "b_ih", b_ih, s);
    f.b_hh = check_bias(c, "b_hh", b_hh, s);
    f.lengths = check_lengths(c, lengths, s);
    try {
        f.x = seq_input(x, s);
        f.w_ih = contig(w_ih);
        f.w_hh = contig(w_hh);
        if (w_hr.has_value()) f.w_hr = contig(*w_hr);
        f.y = memory.empty(x, s.seq(s.R));
        f.saved = memory.empty(x, {need_saved ? s.T : 0, s.B, s.S});
    } catch (const std::exception &e) {
        throw_allocation_failure(c, s, e);
    }
    f.run = s.T > 0 && s.B > 0;
    if (!f.run) {
        f.h_n = state_or_zeros(f.h0, x, {1, s.B, s.R});
        if (lstm) f.c_n = state_or_zeros(f.c0, x, {1, s.B, s.H});
        return f;
    }
    f.h_n = memory.empty(x, {1, s.B, s.R});
    if (lstm) f.c_n = memory.empty(x, {1, s.B, s.H});
    f.desc = make_desc(s, strides_of(f.x, s), strides_of(f.y, s), ptr<int64_t>(f.lengths), reverse,
                       lstm ? 0 : (reset_after ? 1 : 0));
    return f;
}

// ---- backward ---------------------------------------------------------------------------------------------

// tsrnn::lstm_backward and tsrnn::gru_backward (c0, grad_c_n, grad_c0, w_hr, grad_w_hr: LSTM only).
struct Backward {
    Sizes s{};
    Tensor x, w_ih, w_hh, saved;
    OptTensor h0, c0, w_hr, lengths, grad_y, grad_h_n, grad_c_n;
    Tensor grad_x, grad_h0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh;
    OptTensor grad_c0;
    Tensor grad_w_hr; // (P, H); (0, H) without a projection
    bool run = false;
    tsrnn_desc desc{};
};

inline Backward prepare_backward(const ArgCheck &c, const Memory &memory, tsrnn_cell cell, const Tensor &x,
                                 const OptTensor &h0, const OptTensor &c0, const Tensor &w_ih, const Tensor &w_hh,
                                 const OptTensor &w_hr, const Tensor &saved, const OptTensor &lengths,
                                 const OptTensor &grad_y, const OptTensor &grad_h_n, const OptTensor &grad_c_n,
                                 bool batch_first, bool reverse, bool reset_after) {
    const bool lstm = cell == TSRNN_CELL_LSTM;
    const Sizes s = check_sizes(c, cell, x, w_ih, w_hh, w_hr, batch_first);
    check_counts(c, s);
    Backward g;
    g.s = s;
    // every check before the first copy or allocation
    g.h0 = check_hidden(c, "h0", h0, s);
    if (lstm) g.c0 = check_cell(c, "c0", c0, s);
    const std::string saved_letters = lstm ? (s.P > 0 ? "(T, B, 6*H + P)" : "(T, B, 6*H)") : "(T, B, 5*H)";
    c.floating("saved", saved, {s.T, s.B, s.S}, saved_letters.c_str());
    g.lengths = check_lengths(c, lengths, s);
    if (grad_y.has_value()) c.floating("grad_y", *grad_y, s.seq(s.R), s.seq_letters('R').c_str());
    g.grad_h_n = check_hidden(c, "grad_h_n", grad_h_n, s);
    if (lstm) g.grad_c_n = check_cell(c, "grad_c_n", grad_c_n, s);
    try {
        g.x = contig(x);
        g.w_ih = contig(w_ih);
        g.w_hh = contig(w_hh);
        if (w_hr.has_value()) g.w_hr = contig(*w_hr);
        g.saved = contig(saved);
        if (grad_y.has_value()) g.grad_y = seq_input(*grad_y, s);
    } catch (const std::exception &e) {
        throw_allocation_failure(c, s, e);
    }

    const int64_t GH = s.G * s.H;
    g.run = s.T > 0 && s.B > 0;
    if (!g.run) {
        g.grad_x = zeros(x, s.seq(s.D));
        g.grad_h0 = state_or_zeros(g.grad_h_n, x, state_shape(g.h0, s.B, s.R));
        if (lstm) g.grad_c0 = state_or_zeros(g.grad_c_n, x, state_shape(g.c0, s.B, s.H));
        g.grad_w_ih = zeros(x, {GH, s.D});
        g.grad_w_hh = zeros(x, {GH, s.R});
        g.grad_b_ih = zeros(x, {GH});
        g.grad_b_hh = zeros(x, {GH});
        g.grad_w_hr = zeros(x, {s.P, s.H});
        return g;
    }
    g.grad_x = memory.empty(x, s.seq(s.D));
    g.grad_h0 = memory.empty(x, state_shape(g.h0, s.B, s.R));
    if (lstm) g.grad_c0 = memory.empty(x, state_shape(g.c0, s.B, s.H));
    g.grad_w_ih = memory.empty(x, {GH, s.D});
    g.grad_w_hh = memory.empty(x, {GH, s.R});
    g.grad_b_ih = memory.empty(x, {GH});
    g.grad_b_hh = memory.empty(x, {GH});
    g.grad_w_hr = memory.empty(x, {s.P, s.H});

    // x and grad_x share the desc's x strides: both contiguous in the caller's convention.
    const SeqStrides y_strides = g.grad_y.has_value() ? strides_of(*g.grad_y, s) : contiguous_strides(s, s.R);
    g.desc = make_desc(s, strides_of(g.grad_x, s), y_strides, ptr<int64_t>(g.lengths), reverse,
                       lstm ? 0 : (reset_after ? 1 : 0));
    return g;
}

// saved as the forward kernel takes it: NULL when the caller keeps no activations (need_saved=False).
template <class real> real *saved_ptr(const Forward &f) {
    return f.need_saved ? f.saved.mutable_data_ptr<real>() : nullptr;
}

// grad_w_hr as the kernel takes it: NULL without a projection.
template <class real> real *grad_w_hr_ptr(const Backward &g) {
    return g.s.P > 0 ? g.grad_w_hr.mutable_data_ptr<real>() : nullptr;
}

} // namespace
} // namespace tsrnn_shim
