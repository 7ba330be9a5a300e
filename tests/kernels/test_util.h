// Shared helpers of the kernel tests: a problem description (Case), seeded data with every buffer the API
// takes (Problem), calls through the public C API for any backend and dtype, an aligned workspace with a
// guard zone, and comparisons that report the worst element.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tsrnn.h"

namespace tsrnn_test {

// ---- what is being computed ----------------------------------------------------------------------------

// The three cell variants: LSTM, GRU with reset_after = 0 (notebook form), GRU with reset_after = 1 (PyTorch).
enum class Cell { Lstm, Gru0, Gru1 };

inline tsrnn_cell cell_of(Cell c) { return c == Cell::Lstm ? TSRNN_CELL_LSTM : TSRNN_CELL_GRU; }
inline int reset_after_of(Cell c) { return c == Cell::Gru0 ? 0 : 1; }
inline const char *cell_name(Cell c) { return c == Cell::Lstm ? "LSTM" : c == Cell::Gru0 ? "GRU0" : "GRU1"; }
inline void PrintTo(Cell c, std::ostream *os) { *os << cell_name(c); }
inline int64_t gates_of(Cell c) { return c == Cell::Lstm ? 4 : 3; }

// Memory layout of the sequence tensors x, grad_x (T x B x D) and y, grad_y (T x B x R), R = P or H.
//   TimeMajor   x[t][b][k], y[t][b][k]
//   BatchFirst  x[b][t][k], y[b][t][k]
//   Padded      time-major with 2 unused elements after every x row, and y / grad_y the second half of a
//               (T x B x 2R) buffer (stride_b = 2R, pointer offset R), as one direction of a bidirectional layer
//   Broadcast   x_stride_t = 0: every step reads the same x row (inputs only; grad_x cannot be wanted)
enum class Layout { TimeMajor, BatchFirst, Padded, Broadcast };

inline const char *layout_name(Layout l) {
    switch (l) {
    case Layout::TimeMajor: return "timemajor";
    case Layout::BatchFirst: return "batchfirst";
    case Layout::Padded: return "padded";
    case Layout::Broadcast: return "broadcast";
    }
    return "?";
}

inline void PrintTo(Layout l, std::ostream *os) { *os << layout_name(l); }

struct Case {
    Cell cell = Cell::Lstm;
    int64_t T = 1, B = 1, D = 1, H = 1;
    int64_t P = 0; // LSTM projection size (0 = none)
    int reverse = 0;
    bool use_lengths = false;
    std::vector<int64_t> lengths; // used when use_lengths; B entries
    Layout layout = Layout::TimeMajor;
    int num_threads = 1;
    // optional forward inputs / output
    bool has_h0 = true, has_c0 = true, has_b_ih = true, has_b_hh = true, want_saved = true;
    // optional backward inputs
    bool has_grad_y = true, has_grad_h_n = true, has_grad_c_n = true;
    // optional backward outputs
    bool want_grad_x = true, want_grad_h0 = true, want_grad_c0 = true, want_grad_w_ih = true,
         want_grad_w_hh = true, want_grad_b_ih = true, want_grad_b_hh = true, want_grad_w_hr = true;

    bool lstm() const { return cell == Cell::Lstm; }
    int64_t G() const { return gates_of(cell); }
    int64_t S() const { return tsrnn_saved_row(cell_of(cell), H, P); }
    int64_t R() const { return P > 0 ? P : H; } // width of h and y
    int64_t length(int64_t b) const { return use_lengths ? lengths[b] : T; }
};

// Unsorted lengths with a 0 and a T among them once B >= 3: T-1, 0, T, T/2, 1, T/3, T-1, ...
inline std::vector<int64_t> mixed_lengths(int64_t T, int64_t B) {
    const int64_t pattern[6] = {T - 1, 0, T, T / 2, 1, T / 3};
    std::vector<int64_t> out;
    for (int64_t b = 0; b < B; ++b) out.push_back(std::clamp<int64_t>(pattern[b % 6], 0, T));
    return out;
}

// ---- typed access to the C API -------------------------------------------------------------------------

template <class real> struct Fns;
template <> struct Fns<float> {
    static constexpr tsrnn_dtype dtype = TSRNN_F32;
    static constexpr const char *name = "f32";
    static constexpr auto lstm_fwd_ref = &tsrnn_lstm_fwd_ref_f32, lstm_fwd_cpu = &tsrnn_lstm_fwd_cpu_f32;
    static constexpr auto lstm_bwd_ref = &tsrnn_lstm_bwd_ref_f32, lstm_bwd_cpu = &tsrnn_lstm_bwd_cpu_f32;
    static constexpr auto gru_fwd_ref = &tsrnn_gru_fwd_ref_f32, gru_fwd_cpu = &tsrnn_gru_fwd_cpu_f32;
    static constexpr auto gru_bwd_ref = &tsrnn_gru_bwd_ref_f32, gru_bwd_cpu = &tsrnn_gru_bwd_cpu_f32;
};
template <> struct Fns<double> {
    static constexpr tsrnn_dtype dtype = TSRNN_F64;
    static constexpr const char *name = "f64";
    static constexpr auto lstm_fwd_ref = &tsrnn_lstm_fwd_ref_f64, lstm_fwd_cpu = &tsrnn_lstm_fwd_cpu_f64;
    static constexpr auto lstm_bwd_ref = &tsrnn_lstm_bwd_ref_f64, lstm_bwd_cpu = &tsrnn_lstm_bwd_cpu_f64;
    static constexpr auto gru_fwd_ref = &tsrnn_gru_fwd_ref_f64, gru_fwd_cpu = &tsrnn_gru_fwd_cpu_f64;
    static constexpr auto gru_bwd_ref = &tsrnn_gru_bwd_ref_f64, gru_bwd_cpu = &tsrnn_gru_bwd_cpu_f64;
};

// Every argument of a forward call; c0 / c_n are ignored for GRU.
template <class real> struct FwdArgs {
    const tsrnn_desc *desc;
    const real *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh, *w_hr;
    real *y, *h_n, *c_n, *saved;
    void *workspace;
    size_t workspace_bytes;
};

// Every argument of a backward call; c0, grad_c_n, grad_c0 are ignored for GRU.
template <class real> struct BwdArgs {
    const tsrnn_desc *desc;
    const real *x, *h0, *c0, *w_ih, *w_hh, *w_hr, *saved, *grad_y, *grad_h_n, *grad_c_n;
    real *grad_x, *grad_h0, *grad_c0, *grad_w_ih, *grad_w_hh, *grad_b_ih, *grad_b_hh, *grad_w_hr;
    void *workspace;
    size_t workspace_bytes;
};

template <class real> tsrnn_status call_fwd(tsrnn_cell cell, tsrnn_backend backend, const FwdArgs<real> &a) {
    using F = Fns<real>;
    const bool ref = backend == TSRNN_BACKEND_REF;
    if (cell == TSRNN_CELL_LSTM)
        return (ref ? F::lstm_fwd_ref : F::lstm_fwd_cpu)(a.desc, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh,
                                                          a.w_hr, a.y, a.h_n, a.c_n, a.saved, a.workspace,
                                                          a.workspace_bytes);
    return (ref ? F::gru_fwd_ref : F::gru_fwd_cpu)(a.desc, a.x, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.y, a.h_n,
                                                    a.saved, a.workspace, a.workspace_bytes);
}

template <class real> tsrnn_status call_bwd(tsrnn_cell cell, tsrnn_backend backend, const BwdArgs<real> &a) {
    using F = Fns<real>;
    const bool ref = backend == TSRNN_BACKEND_REF;
    if (cell == TSRNN_CELL_LSTM)
        return (ref ? F::lstm_bwd_ref : F::lstm_bwd_cpu)(
            a.desc, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.w_hr, a.saved, a.grad_y, a.grad_h_n, a.grad_c_n, a.grad_x,
            a.grad_h0, a.grad_c0, a.grad_w_ih, a.grad_w_hh, a.grad_b_ih, a.grad_b_hh, a.grad_w_hr, a.workspace,
            a.workspace_bytes);
    return (ref ? F::gru_bwd_ref : F::gru_bwd_cpu)(a.desc, a.x, a.h0, a.w_ih, a.w_hh, a.saved, a.grad_y, a.grad_h_n,
                                                    a.grad_x, a.grad_h0, a.grad_w_ih, a.grad_w_hh, a.grad_b_ih,
                                                    a.grad_b_hh, a.workspace, a.workspace_bytes);
}

// ---- workspace -----------------------------------------------------------------------------------------

// 64-byte aligned scratch of `bytes` bytes followed by a guard zone; guard_intact() says whether a call wrote
// past the size it asked for.
class Workspace {
  public:
    static constexpr size_t kGuard = 256;
    static constexpr unsigned char kFill = 0xA5;

    explicit Workspace(size_t bytes) : bytes_(bytes) {
        size_t total = (bytes + kGuard + TSRNN_WORKSPACE_ALIGN - 1) / TSRNN_WORKSPACE_ALIGN * TSRNN_WORKSPACE_ALIGN;
        data_ = static_cast<unsigned char *>(std::aligned_alloc(TSRNN_WORKSPACE_ALIGN, total));
        std::memset(data_, kFill, total);
        total_ = total;
    }
    ~Workspace() { std::free(data_); }
    Workspace(const Workspace &) = delete;
    Workspace &operator=(const Workspace &) = delete;

    void *data() const { return data_; }
    size_t bytes() const { return bytes_; }
    size_t capacity() const { return total_; }
    bool guard_intact() const {
        for (size_t i = bytes_; i < total_; ++i)
            if (data_[i] != kFill) return false;
        return true;
    }

  private:
    unsigned char *data_ = nullptr;
    size_t bytes_ = 0, total_ = 0;
};

// ---- data ----------------------------------------------------------------------------------------------

// Value written into every output buffer before a call: a call must overwrite what it owns and leave gaps alone.
inline constexpr double kSentinel = -1234.5;

// One problem's buffers in the precision `real`. Values are drawn in double from the seed, then rounded, so
// the f32 and f64 problems of one seed hold the same numbers. Padding elements of inputs (gaps of the Padded
// layout) and grad_y rows past a sequence's length hold NaN: the kernels must never use them. Every buffer has
// at least one element, so its pointer is never NULL even when T or B is 0.
template <class real> struct Problem {
    Case c;
    tsrnn_desc desc{};
    int64_t y_offset = 0; // y and grad_y start this many elements into their buffers (Padded layout)
    std::vector<real> x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr;
    std::vector<real> y, h_n, c_n, saved;
    std::vector<real> grad_y, grad_h_n, grad_c_n;
    std::vector<real> grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_w_hr;

    Problem(const Case &cs, uint64_t seed) : c(cs) {
        const int64_t T = c.T, B = c.B, D = c.D, H = c.H, G = c.G(), P = c.P, R = c.R();
        if (c.use_lengths && (int64_t)c.lengths.size() != B) c.lengths = mixed_lengths(T, B);
        desc.T = T;
        desc.B = B;
        desc.D = D;
        desc.H = H;
        desc.P = P;
        desc.lengths = c.use_lengths ? c.lengths.data() : nullptr;
        desc.reverse = c.reverse;
        desc.reset_after = reset_after_of(c.cell);
        desc.num_threads = c.num_threads;
        int64_t x_row = D, y_row = R;
        switch (c.layout) {
        case Layout::TimeMajor:
            desc.x_stride_t = B * D, desc.x_stride_b = D, desc.y_stride_t = B * R, desc.y_stride_b = R;
            break;
        case Layout::BatchFirst:
            desc.x_stride_t = D, desc.x_stride_b = T * D, desc.y_stride_t = R, desc.y_stride_b = T * R;
            break;
        case Layout::Padded:
            x_row = D + 2, y_row = 2 * R, y_offset = R;
            desc.x_stride_t = B * x_row, desc.x_stride_b = x_row, desc.y_stride_t = B * y_row, desc.y_stride_b = y_row;
            break;
        case Layout::Broadcast:
            desc.x_stride_t = 0, desc.x_stride_b = D, desc.y_stride_t = B * R, desc.y_stride_b = R;
            break;
        }
        const int64_t x_elems = c.layout == Layout::Broadcast ? B * D : T * B * x_row;
        const int64_t y_elems = T * B * y_row;

        std::mt19937_64 rng(seed);
        auto fill = [&](std::vector<real> &v, int64_t n, double scale) {
            std::uniform_real_distribution<double> u(-scale, scale);
            v.assign(std::max<int64_t>(n, 1), real(0));
            for (int64_t i = 0; i < n; ++i) v[i] = real(u(rng));
        };
        const double w_scale = 1.0 / std::sqrt(double(H)); // PyTorch's init range
        fill(x, x_elems, 1.0);
        fill(h0, B * R, 1.0);
        fill(c0, B * H, 1.0);
        fill(w_ih, G * H * D, w_scale);
        fill(w_hh, G * H * R, w_scale);
        fill(b_ih, G * H, w_scale);
        fill(b_hh, G * H, w_scale);
        fill(grad_y, y_elems, 1.0);
        fill(grad_h_n, B * R, 1.0);
        fill(grad_c_n, B * H, 1.0);
        fill(w_hr, P * H, w_scale); // drawn last: the P = 0 problems keep the numbers they always had

        const real nan = std::numeric_limits<real>::quiet_NaN();
        if (c.layout == Layout::Padded) {
            for (int64_t i = 0; i < x_elems; ++i)
                if (i % x_row >= D) x[i] = nan; // padding of x rows
            for (int64_t i = 0; i < y_elems; ++i)
                if (i % y_row < R) grad_y[i] = nan; // the other direction's half of grad_y
        }
        for (int64_t b = 0; b < B; ++b)
            for (int64_t t = c.length(b); t < T; ++t)
                for (int64_t k = 0; k < R; ++k) grad_y[y_index(t, b, k)] = nan; // ignored rows

        y.resize(std::max<int64_t>(y_elems, 1));
        h_n.resize(std::max<int64_t>(B * R, 1));
        c_n.resize(std::max<int64_t>(B * H, 1));
        saved.resize(std::max<int64_t>(T * B * c.S(), 1));
        grad_x.resize(c.layout == Layout::Broadcast ? 1 : x.size());
        grad_h0.resize(h0.size());
        grad_c0.resize(c0.size());
        grad_w_ih.resize(w_ih.size());
        grad_w_hh.resize(w_hh.size());
        grad_b_ih.resize(b_ih.size());
        grad_b_hh.resize(b_hh.size());
        grad_w_hr.resize(w_hr.size());
        reset_fwd_outputs();
        reset_bwd_outputs();
    }

    int64_t x_index(int64_t t, int64_t b, int64_t k) const { return t * desc.x_stride_t + b * desc.x_stride_b + k; }
    int64_t y_index(int64_t t, int64_t b, int64_t k) const {
        return y_offset + t * desc.y_stride_t + b * desc.y_stride_b + k;
    }

    void reset_fwd_outputs() {
        for (auto *v : {&y, &h_n, &c_n, &saved}) v->assign(v->size(), real(kSentinel));
    }
    void reset_bwd_outputs() {
        for (auto *v : {&grad_x, &grad_h0, &grad_c0, &grad_w_ih, &grad_w_hh, &grad_b_ih, &grad_b_hh, &grad_w_hr})
            v->assign(v->size(), real(kSentinel));
    }

    FwdArgs<real> fwd_args(void *workspace, size_t bytes) {
        auto in = [](const std::vector<real> &v, bool on) -> const real * { return on ? v.data() : nullptr; };
        return FwdArgs<real>{&desc,
                             x.data(),
                             in(h0, c.has_h0),
                             in(c0, c.has_c0),
                             w_ih.data(),
                             w_hh.data(),
                             in(b_ih, c.has_b_ih),
                             in(b_hh, c.has_b_hh),
                             in(w_hr, c.P > 0),
                             y.data() + y_offset,
                             h_n.data(),
                             c_n.data(),
                             c.want_saved ? saved.data() : nullptr,
                             workspace,
                             bytes};
    }

    BwdArgs<real> bwd_args(void *workspace, size_t bytes) {
        auto in = [](const std::vector<real> &v, bool on) -> const real * { return on ? v.data() : nullptr; };
        auto out = [](std::vector<real> &v, bool on) -> real * { return on ? v.data() : nullptr; };
        return BwdArgs<real>{&desc,
                             x.data(),
                             in(h0, c.has_h0),
                             in(c0, c.has_c0),
                             w_ih.data(),
                             w_hh.data(),
                             in(w_hr, c.P > 0),
                             saved.data(),
                             c.has_grad_y ? grad_y.data() + y_offset : nullptr,
                             in(grad_h_n, c.has_grad_h_n),
                             in(grad_c_n, c.has_grad_c_n),
                             out(grad_x, c.want_grad_x),
                             out(grad_h0, c.want_grad_h0),
                             out(grad_c0, c.want_grad_c0),
                             out(grad_w_ih, c.want_grad_w_ih),
                             out(grad_w_hh, c.want_grad_w_hh),
                             out(grad_b_ih, c.want_grad_b_ih),
                             out(grad_b_hh, c.want_grad_b_hh),
                             out(grad_w_hr, c.P > 0 && c.want_grad_w_hr),
                             workspace,
                             bytes};
    }

    // Forward through `backend`, with a workspace of exactly the queried size; fails the test if the
    // workspace query fails or the call writes past that size.
    tsrnn_status forward(tsrnn_backend backend) {
        size_t bytes = 0;
        tsrnn_status st =
            tsrnn_workspace_size(cell_of(c.cell), TSRNN_PASS_FWD, backend, Fns<real>::dtype, &desc, &bytes);
        if (st != TSRNN_OK) return st;
        Workspace ws(bytes);
        st = call_fwd(cell_of(c.cell), backend, fwd_args(ws.data(), ws.bytes()));
        EXPECT_TRUE(ws.guard_intact()) << "forward wrote past its workspace of " << bytes << " bytes";
        return st;
    }

    tsrnn_status backward(tsrnn_backend backend) {
        size_t bytes = 0;
        tsrnn_status st =
            tsrnn_workspace_size(cell_of(c.cell), TSRNN_PASS_BWD, backend, Fns<real>::dtype, &desc, &bytes);
        if (st != TSRNN_OK) return st;
        Workspace ws(bytes);
        st = call_bwd(cell_of(c.cell), backend, bwd_args(ws.data(), ws.bytes()));
        EXPECT_TRUE(ws.guard_intact()) << "backward wrote past its workspace of " << bytes << " bytes";
        return st;
    }
};

// ---- comparisons ---------------------------------------------------------------------------------------

// |got - want| <= atol + rtol * |want| element-wise (NaN matches only NaN). On failure: how many elements
// fail, and the worst one (largest |diff| / (atol + rtol |want|)) with its index (row, column for width `row`).
template <class real>
::testing::AssertionResult all_close(const std::string &what, const std::vector<real> &got,
                                     const std::vector<real> &want, double rtol, double atol, int64_t row = 0) {
    if (got.size() != want.size())
        return ::testing::AssertionFailure() << what << ": size " << got.size() << " != " << want.size();
    size_t worst = 0, failures = 0;
    double worst_ratio = -1;
    for (size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = want[i];
        double ratio;
        if (std::isnan(g) || std::isnan(w))
            ratio = (std::isnan(g) && std::isnan(w)) ? 0 : std::numeric_limits<double>::infinity();
        else
            ratio = std::fabs(g - w) / (atol + rtol * std::fabs(w));
        if (ratio > 1) ++failures;
        if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
    }
    if (failures == 0) return ::testing::AssertionSuccess();
    std::ostringstream msg;
    msg.precision(17);
    msg << what << ": " << failures << " of " << got.size() << " elements exceed atol " << atol << " + rtol "
        << rtol << " * |ref|; worst at index " << worst;
    if (row > 0) msg << " (row " << worst / row << ", column " << worst % row << ")";
    msg << ": got " << double(got[worst]) << ", ref " << double(want[worst]) << ", |diff| "
        << std::fabs(double(got[worst]) - double(want[worst]));
    return ::testing::AssertionFailure() << msg.str();
}

// Bit-for-bit equality; on failure the first differing index and both values.
template <class real>
::testing::AssertionResult bitwise_equal(const std::string &what, const std::vector<real> &a,
                                         const std::vector<real> &b) {
    if (a.size() != b.size())
        return ::testing::AssertionFailure() << what << ": size " << a.size() << " != " << b.size();
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::memcmp(&a[i], &b[i], sizeof(real)) != 0) {
            std::ostringstream msg;
            msg.precision(17);
            msg << what << ": first difference at index " << i << ": " << double(a[i]) << " vs " << double(b[i]);
            return ::testing::AssertionFailure() << msg.str();
        }
    }
    return ::testing::AssertionSuccess();
}

} // namespace tsrnn_test
