// The CUDA kernels against the reference, over a grid of cells, shapes (T = 1, B = 1, H = 1, D = 1, H = 33,
// T = 300, the forecasting job's T = 60 B = 64 D = 1 H = 32), directions, lengths, layouts and optional arguments,
// plus H = 512 / 1024 / 520 for the grid-barrier path (weights split across co-resident blocks), the stepwise path
// (forced over a grid, and chosen by itself just above the persistent plan's limit and at H = 2048). Every output
// buffer is compared whole after a round trip through device memory (so writing outside one's rows fails too), no
// input may change, the workspace must not be written past its queried size, two runs must agree bit for bit, an
// inference forward (saved = NULL) gives the same outputs, a captured CUDA graph (lengths included) replays the same
// results, the runtime's last-error state is left as the caller had it, and every bad call of bad_calls.h gets the
// status the reference and the CPU kernels give it.
//
// Host code only (the kernels live in the library); a .cu file so that the CPU test glob (tests/kernels/*.cpp)
// leaves it out. Built with TSRNN_WITH_CUDA (cmake/cuda.cmake), where every test skips when no device is present,
// and against the emulated runtime of tests/cuda_emu on every build (cmake/cuda_emu.cmake).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>

#include "bad_calls.h"
#include "cuda_impl.cuh"
#include "test_util.h"

namespace tsrnn_test {
namespace {

// ---- device plumbing -----------------------------------------------------------------------------------------

#define CUDA_OK(call)                                                                                              \
    do {                                                                                                           \
        const cudaError_t err_ = (call);                                                                           \
        ASSERT_EQ(err_, cudaSuccess) << #call << ": " << cudaGetErrorString(err_);                                 \
    } while (0)

bool have_device() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define SKIP_WITHOUT_DEVICE()                                                                                      \
    do {                                                                                                           \
        if (!have_device()) GTEST_SKIP() << "no CUDA device present (cudaGetDeviceCount found none)";             \
    } while (0)

// Device copy of one host buffer; NULL for an empty one.
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
        if (bytes && cudaMalloc(&ptr_, bytes) != cudaSuccess) ptr_ = nullptr;
    }
    ~DeviceBuffer() {
        if (ptr_) cudaFree(ptr_);
    }
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
    DeviceBuffer(DeviceBuffer &&o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
    DeviceBuffer &operator=(DeviceBuffer &&o) noexcept {
        std::swap(ptr_, o.ptr_), std::swap(bytes_, o.bytes_);
        return *this;
    }
    void *get() const { return ptr_; }
    float *f() const { return static_cast<float *>(ptr_); }
    size_t bytes() const { return bytes_; }

  private:
    void *ptr_ = nullptr;
    size_t bytes_ = 0;
};

DeviceBuffer upload(const std::vector<float> &v) {
    DeviceBuffer d(v.size() * sizeof(float));
    if (d.get()) cudaMemcpy(d.get(), v.data(), d.bytes(), cudaMemcpyHostToDevice);
    return d;
}

void download(std::vector<float> &v, const DeviceBuffer &d) {
    ASSERT_EQ(cudaMemcpy(v.data(), d.get(), v.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
}

// Workspace of `bytes` followed by a guard zone of kGuard bytes of kFill; guard_intact() after the call.
class DeviceWorkspace {
  public:
    static constexpr size_t kGuard = 4096;
    static constexpr unsigned char kFill = 0xA5;
    explicit DeviceWorkspace(size_t bytes) : bytes_(bytes), buf_(bytes + kGuard) {
        cudaMemset(buf_.get(), kFill, bytes + kGuard);
    }
    void *data() const { return buf_.get(); }
    size_t bytes() const { return bytes_; }
    bool guard_intact() const {
        std::vector<unsigned char> g(kGuard);
        if (cudaMemcpy(g.data(), static_cast<char *>(buf_.get()) + bytes_, kGuard, cudaMemcpyDeviceToHost) !=
            cudaSuccess)
            return false;
        return std::all_of(g.begin(), g.end(), [](unsigned char c) { return c == kFill; });
    }

  private:
    size_t bytes_;
    DeviceBuffer buf_;
};

// Every buffer of a Problem<float> in device memory; outputs start as the host problem's (sentinel-filled) ones.
struct DeviceProblem {
    Problem<float> &p;
    DeviceBuffer x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, h_n, c_n, saved, grad_y, grad_h_n, grad_c_n;
    DeviceBuffer grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh;

    explicit DeviceProblem(Problem<float> &prob) : p(prob) {
        x = upload(p.x), h0 = upload(p.h0), c0 = upload(p.c0), w_ih = upload(p.w_ih), w_hh = upload(p.w_hh);
        b_ih = upload(p.b_ih), b_hh = upload(p.b_hh), y = upload(p.y), h_n = upload(p.h_n), c_n = upload(p.c_n);
        saved = upload(p.saved), grad_y = upload(p.grad_y), grad_h_n = upload(p.grad_h_n);
        grad_c_n = upload(p.grad_c_n), grad_x = upload(p.grad_x), grad_h0 = upload(p.grad_h0);
        grad_c0 = upload(p.grad_c0), grad_w_ih = upload(p.grad_w_ih), grad_w_hh = upload(p.grad_w_hh);
        grad_b_ih = upload(p.grad_b_ih), grad_b_hh = upload(p.grad_b_hh);
    }

    FwdArgs<float> fwd_args(void *ws, size_t bytes) const {
        const Case &c = p.c;
        auto in = [](const DeviceBuffer &d, bool on) -> const float * { return on ? d.f() : nullptr; };
        return FwdArgs<float>{&p.desc,   x.f(),         in(h0, c.has_h0), in(c0, c.has_c0), w_ih.f(),   w_hh.f(),
                              in(b_ih, c.has_b_ih),     in(b_hh, c.has_b_hh),               nullptr, // w_hr: P = 0
                              y.f() + p.y_offset,
                              h_n.f(),   c_n.f(),       c.want_saved ? saved.f() : nullptr, ws,         bytes};
    }

    BwdArgs<float> bwd_args(void *ws, size_t bytes) const {
        const Case &c = p.c;
        auto in = [](const DeviceBuffer &d, bool on) -> const float * { return on ? d.f() : nullptr; };
        auto out = [](const DeviceBuffer &d, bool on) -> float * { return on ? d.f() : nullptr; };
        return BwdArgs<float>{&p.desc,
                              x.f(),
                              in(h0, c.has_h0),
                              in(c0, c.has_c0),
                              w_ih.f(),
                              w_hh.f(),
                              nullptr, // w_hr: the CUDA kernels serve P = 0 only
                              saved.f(),
                              c.has_grad_y ? grad_y.f() + p.y_offset : nullptr,
                              in(grad_h_n, c.has_grad_h_n),
                              in(grad_c_n, c.has_grad_c_n),
                              out(grad_x, c.want_grad_x),
                              out(grad_h0, c.want_grad_h0),
                              out(grad_c0, c.want_grad_c0),
                              out(grad_w_ih, c.want_grad_w_ih),
                              out(grad_w_hh, c.want_grad_w_hh),
                              out(grad_b_ih, c.want_grad_b_ih),
                              out(grad_b_hh, c.want_grad_b_hh),
                              nullptr, // grad_w_hr
                              ws,
                              bytes};
    }

    // Device -> host: every buffer, inputs too (to check they are unchanged).
    void download_all() {
        for (auto [v, d] : {std::pair{&p.x, &x}, {&p.h0, &h0}, {&p.c0, &c0}, {&p.w_ih, &w_ih}, {&p.w_hh, &w_hh},
                            {&p.b_ih, &b_ih}, {&p.b_hh, &b_hh}, {&p.y, &y}, {&p.h_n, &h_n}, {&p.c_n, &c_n},
                            {&p.saved, &saved}, {&p.grad_y, &grad_y}, {&p.grad_h_n, &grad_h_n},
                            {&p.grad_c_n, &grad_c_n}, {&p.grad_x, &grad_x}, {&p.grad_h0, &grad_h0},
                            {&p.grad_c0, &grad_c0}, {&p.grad_w_ih, &grad_w_ih}, {&p.grad_w_hh, &grad_w_hh},
                            {&p.grad_b_ih, &grad_b_ih}, {&p.grad_b_hh, &grad_b_hh}})
            download(*v, *d);
    }
};

using tsrnn_cuda::Path;

// The public entry points (Path::Auto), or the step functions behind them with one path forced (white-box: the
// arguments are valid, so the entry points' checks are not needed).
tsrnn_status call_fwd_cuda(tsrnn_cell cell, const FwdArgs<float> &a, Path path = Path::Auto) {
    if (path != Path::Auto) {
        if (cell == TSRNN_CELL_LSTM)
            return tsrnn_cuda::lstm_forward(a.desc, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.y, a.h_n,
                                            a.c_n, a.saved, a.workspace, path);
        return tsrnn_cuda::gru_forward(a.desc, a.x, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.y, a.h_n, a.saved,
                                       a.workspace, path);
    }
    if (cell == TSRNN_CELL_LSTM)
        return tsrnn_lstm_fwd_cuda_f32(a.desc, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.w_hr, a.y, a.h_n,
                                       a.c_n, a.saved, a.workspace, a.workspace_bytes);
    return tsrnn_gru_fwd_cuda_f32(a.desc, a.x, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.y, a.h_n, a.saved,
                                  a.workspace, a.workspace_bytes);
}

tsrnn_status call_bwd_cuda(tsrnn_cell cell, const BwdArgs<float> &a, Path path = Path::Auto) {
    if (path != Path::Auto) {
        if (cell == TSRNN_CELL_LSTM)
            return tsrnn_cuda::lstm_backward(a.desc, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.saved, a.grad_y, a.grad_h_n,
                                             a.grad_c_n, a.grad_x, a.grad_h0, a.grad_c0, a.grad_w_ih, a.grad_w_hh,
                                             a.grad_b_ih, a.grad_b_hh, a.workspace, path);
        return tsrnn_cuda::gru_backward(a.desc, a.x, a.h0, a.w_ih, a.w_hh, a.saved, a.grad_y, a.grad_h_n, a.grad_x,
                                        a.grad_h0, a.grad_w_ih, a.grad_w_hh, a.grad_b_ih, a.grad_b_hh, a.workspace,
                                        path);
    }
    if (cell == TSRNN_CELL_LSTM)
        return tsrnn_lstm_bwd_cuda_f32(a.desc, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.w_hr, a.saved, a.grad_y,
                                       a.grad_h_n, a.grad_c_n, a.grad_x, a.grad_h0, a.grad_c0, a.grad_w_ih,
                                       a.grad_w_hh, a.grad_b_ih, a.grad_b_hh, a.grad_w_hr, a.workspace,
                                       a.workspace_bytes);
    return tsrnn_gru_bwd_cuda_f32(a.desc, a.x, a.h0, a.w_ih, a.w_hh, a.saved, a.grad_y, a.grad_h_n, a.grad_x,
                                  a.grad_h0, a.grad_w_ih, a.grad_w_hh, a.grad_b_ih, a.grad_b_hh, a.workspace,
                                  a.workspace_bytes);
}

// Forward then backward of p through the CUDA kernels on the default stream, results back in p's host buffers.
void run_cuda(Problem<float> &p, bool backward = true, Path path = Path::Auto) {
    const tsrnn_cell cell = cell_of(p.c.cell);
    DeviceProblem d(p);
    size_t fwd_bytes = 0, bwd_bytes = 0;
    ASSERT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_FWD, TSRNN_BACKEND_CUDA, TSRNN_F32, &p.desc, &fwd_bytes),
              TSRNN_OK);
    ASSERT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_BWD, TSRNN_BACKEND_CUDA, TSRNN_F32, &p.desc, &bwd_bytes),
              TSRNN_OK);
    {
        DeviceWorkspace ws(fwd_bytes);
        ASSERT_EQ(call_fwd_cuda(cell, d.fwd_args(ws.data(), ws.bytes()), path), TSRNN_OK);
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_TRUE(ws.guard_intact()) << "forward wrote past its workspace of " << fwd_bytes << " bytes";
    }
    if (backward) {
        DeviceWorkspace ws(bwd_bytes);
        ASSERT_EQ(call_bwd_cuda(cell, d.bwd_args(ws.data(), ws.bytes()), path), TSRNN_OK);
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_TRUE(ws.guard_intact()) << "backward wrote past its workspace of " << bwd_bytes << " bytes";
    }
    d.download_all();
}

// ---- the comparisons -------------------------------------------------------------------------------------------

struct Shape {
    int64_t T, B, D, H;
};
void PrintTo(const Shape &s, std::ostream *os) { *os << "T" << s.T << " B" << s.B << " D" << s.D << " H" << s.H; }

enum class Opts { Full, Bare, Sparse }; // as in cpu_vs_ref_test.cpp
const char *opts_name(Opts o) { return o == Opts::Full ? "full" : o == Opts::Bare ? "bare" : "sparse"; }
void PrintTo(Opts o, std::ostream *os) { *os << opts_name(o); }

// fp32 tolerances: the CPU test's, with atol growing like sqrt of the longest dot product (H or D terms; the GPU
// sums them in another order than the reference) and, for parameter gradients (sums over every (t, b)), like
// sqrt(T B / 16) as well.
struct Tolerance {
    double fwd_rtol, fwd_atol, bwd_rtol, bwd_atol, sum_atol;
};
Tolerance tolerance_of(const Case &c) {
    const double width = std::max(1.0, std::sqrt(double(std::max(c.H, c.D)) / 32.0));
    Tolerance t;
    t.fwd_rtol = 1e-5, t.fwd_atol = 1e-6 * width;
    t.bwd_rtol = 1e-4, t.bwd_atol = 1e-5 * width;
    t.sum_atol = t.bwd_atol * std::max(1.0, std::sqrt(double(c.T * c.B) / 16.0));
    return t;
}

void expect_forward_close(const Problem<float> &got, const Problem<float> &ref, const Tolerance &tol) {
    const Case &c = ref.c;
    EXPECT_TRUE(all_close("y", got.y, ref.y, tol.fwd_rtol, tol.fwd_atol, c.layout == Layout::Padded ? 2 * c.H : c.H));
    EXPECT_TRUE(all_close("h_n", got.h_n, ref.h_n, tol.fwd_rtol, tol.fwd_atol, c.H));
    if (c.lstm()) {
        EXPECT_TRUE(all_close("c_n", got.c_n, ref.c_n, tol.fwd_rtol, tol.fwd_atol, c.H));
    }
}

void expect_backward_close(const Problem<float> &got, const Problem<float> &ref, const Tolerance &tol) {
    const Case &c = ref.c;
    const int64_t x_row = c.layout == Layout::Padded ? c.D + 2 : c.D;
    EXPECT_TRUE(all_close("grad_x", got.grad_x, ref.grad_x, tol.bwd_rtol, tol.bwd_atol, x_row));
    EXPECT_TRUE(all_close("grad_h0", got.grad_h0, ref.grad_h0, tol.bwd_rtol, tol.bwd_atol, c.H));
    EXPECT_TRUE(all_close("grad_c0", got.grad_c0, ref.grad_c0, tol.bwd_rtol, tol.bwd_atol, c.H));
    EXPECT_TRUE(all_close("grad_w_ih", got.grad_w_ih, ref.grad_w_ih, tol.bwd_rtol, tol.sum_atol, c.D));
    EXPECT_TRUE(all_close("grad_w_hh", got.grad_w_hh, ref.grad_w_hh, tol.bwd_rtol, tol.sum_atol, c.H));
    EXPECT_TRUE(all_close("grad_b_ih", got.grad_b_ih, ref.grad_b_ih, tol.bwd_rtol, tol.sum_atol));
    EXPECT_TRUE(all_close("grad_b_hh", got.grad_b_hh, ref.grad_b_hh, tol.bwd_rtol, tol.sum_atol));
}

void expect_inputs_unchanged(const Problem<float> &p, const Problem<float> &pristine) {
    for (auto [name, a, b] : {std::tuple{"x", &p.x, &pristine.x}, {"h0", &p.h0, &pristine.h0},
                              {"c0", &p.c0, &pristine.c0}, {"w_ih", &p.w_ih, &pristine.w_ih},
                              {"w_hh", &p.w_hh, &pristine.w_hh}, {"b_ih", &p.b_ih, &pristine.b_ih},
                              {"b_hh", &p.b_hh, &pristine.b_hh}, {"grad_y", &p.grad_y, &pristine.grad_y},
                              {"grad_h_n", &p.grad_h_n, &pristine.grad_h_n},
                              {"grad_c_n", &p.grad_c_n, &pristine.grad_c_n}})
        EXPECT_TRUE(bitwise_equal(std::string("input ") + name + " unchanged", *a, *b));
}

void expect_same_bits(const Problem<float> &a, const Problem<float> &b) {
    for (auto [name, u, v] :
         {std::tuple{"y", &a.y, &b.y}, {"h_n", &a.h_n, &b.h_n}, {"c_n", &a.c_n, &b.c_n}, {"saved", &a.saved, &b.saved},
          {"grad_x", &a.grad_x, &b.grad_x}, {"grad_h0", &a.grad_h0, &b.grad_h0}, {"grad_c0", &a.grad_c0, &b.grad_c0},
          {"grad_w_ih", &a.grad_w_ih, &b.grad_w_ih}, {"grad_w_hh", &a.grad_w_hh, &b.grad_w_hh},
          {"grad_b_ih", &a.grad_b_ih, &b.grad_b_ih}, {"grad_b_hh", &a.grad_b_hh, &b.grad_b_hh}})
        EXPECT_TRUE(bitwise_equal(std::string(name) + " run to run", *u, *v));
}

void run_case(const Case &base, Path path = Path::Auto) {
    const uint64_t seed = 0xc0da + uint64_t(base.T * 131 + base.B * 17 + base.D * 7 + base.H);
    const Tolerance tol = tolerance_of(base);
    Problem<float> ref(base, seed);
    ASSERT_EQ(ref.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(ref.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    const Problem<float> pristine(base, seed);

    Problem<float> gpu(base, seed);
    ASSERT_NO_FATAL_FAILURE(run_cuda(gpu, true, path));
    expect_inputs_unchanged(gpu, pristine);
    expect_forward_close(gpu, ref, tol);
    EXPECT_TRUE(all_close("saved", gpu.saved, ref.saved, tol.fwd_rtol, tol.fwd_atol, gpu.c.S()));
    expect_backward_close(gpu, ref, tol);

    {
        SCOPED_TRACE("second run (must match the first bit for bit)");
        Problem<float> again(base, seed);
        ASSERT_NO_FATAL_FAILURE(run_cuda(again, true, path));
        expect_same_bits(again, gpu);
    }
    {
        SCOPED_TRACE("inference (saved = NULL)");
        Case ic = base;
        ic.want_saved = false;
        Problem<float> inference(ic, seed);
        ASSERT_NO_FATAL_FAILURE(run_cuda(inference, false, path));
        expect_forward_close(inference, ref, tol);
        const std::vector<float> untouched(inference.saved.size(), float(kSentinel));
        EXPECT_TRUE(all_close("saved untouched", inference.saved, untouched, 0, 0));
    }
}

using GridParam = std::tuple<Cell, Shape, int /*reverse*/, bool /*lengths*/, Layout, Opts>;

Case case_of(const GridParam &gp) {
    const auto &[cell, shape, reverse, lengths, layout, opts] = gp;
    Case c;
    c.cell = cell;
    c.T = shape.T, c.B = shape.B, c.D = shape.D, c.H = shape.H;
    c.reverse = reverse;
    c.use_lengths = lengths;
    c.lengths = mixed_lengths(c.T, c.B);
    c.layout = layout;
    if (opts == Opts::Bare) {
        c.has_h0 = c.has_c0 = c.has_b_ih = c.has_b_hh = false;
        c.has_grad_h_n = c.has_grad_c_n = false;
    } else if (opts == Opts::Sparse) {
        c.has_c0 = c.has_b_hh = false;
        c.has_grad_y = false;
        c.want_grad_x = c.want_grad_c0 = c.want_grad_w_ih = c.want_grad_b_ih = false;
    }
    return c;
}

std::string grid_name(const ::testing::TestParamInfo<GridParam> &info) {
    const auto &[cell, shape, reverse, lengths, layout, opts] = info.param;
    return std::string(cell_name(cell)) + "_T" + std::to_string(shape.T) + "_B" + std::to_string(shape.B) + "_D" +
           std::to_string(shape.D) + "_H" + std::to_string(shape.H) + (reverse ? "_reverse" : "_forward") +
           (lengths ? "_lengths" : "_full") + "_" + layout_name(layout) + "_" + opts_name(opts);
}

class CudaVsRef : public ::testing::TestWithParam<GridParam> {};

TEST_P(CudaVsRef, ForwardAndBackwardMatch) {
    SKIP_WITHOUT_DEVICE();
    run_case(case_of(GetParam()));
}

// Small H: one block holds all of W_hh, the batch is split over independent blocks.
INSTANTIATE_TEST_SUITE_P(Grid, CudaVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(Shape{1, 1, 1, 1}, Shape{1, 3, 4, 5}, Shape{6, 1, 3, 1},
                                                              Shape{5, 4, 1, 33}, Shape{300, 5, 7, 16},
                                                              Shape{0, 3, 2, 3}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::TimeMajor, Layout::BatchFirst, Layout::Padded),
                                            ::testing::Values(Opts::Full, Opts::Bare, Opts::Sparse)),
                         grid_name);

// The forecasting job's shape (window 60, batch 64, one feature, hidden 32); B = 70 over several blocks with a
// remainder; D = 600 (the projection GEMM splits K); H = 100 (the largest one-block H class).
INSTANTIATE_TEST_SUITE_P(Wide, CudaVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(Shape{60, 64, 1, 32}, Shape{7, 70, 9, 24},
                                                              Shape{2, 3, 600, 8}, Shape{9, 6, 20, 100}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::BatchFirst), ::testing::Values(Opts::Full)),
                         grid_name);

// Large H: W_hh split over many co-resident blocks with a grid barrier per step; H = 520 leaves a last block with
// fewer units, B = 70 more than one batch group when the device has room.
INSTANTIATE_TEST_SUITE_P(GridBarrier, CudaVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(Shape{12, 8, 16, 512}, Shape{6, 4, 8, 1024},
                                                              Shape{4, 70, 5, 520}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::TimeMajor), ::testing::Values(Opts::Full)),
                         grid_name);

// The stepwise path (one GEMM and one gate kernel per step), forced, over the awkward shapes, directions, lengths,
// layouts and optional arguments; the shapes where it is chosen by itself are in CudaLargeHidden below.
class CudaVsRefStepwise : public ::testing::TestWithParam<GridParam> {};

TEST_P(CudaVsRefStepwise, ForwardAndBackwardMatch) {
    SKIP_WITHOUT_DEVICE();
    run_case(case_of(GetParam()), Path::Stepwise);
}

INSTANTIATE_TEST_SUITE_P(Stepwise, CudaVsRefStepwise,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(Shape{1, 1, 1, 1}, Shape{6, 1, 3, 1}, Shape{5, 4, 1, 33},
                                                              Shape{0, 3, 2, 3}, Shape{7, 70, 9, 24},
                                                              Shape{60, 64, 1, 32}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::TimeMajor, Layout::BatchFirst, Layout::Padded),
                                            ::testing::Values(Opts::Full, Opts::Bare, Opts::Sparse)),
                         grid_name);

// The largest H whose persistent plan fits this device, forward or backward (the plan depends on H, the batch and
// the device only); the search relies on the plan fitting for every smaller H, which the test checks at the edge.
int64_t persistent_limit(Cell cell, bool backward, int64_t B) {
    const int c = tsrnn_cuda::cell_of(cell_of(cell), cell == Cell::Gru1);
    auto fits = [&](int64_t H) {
        tsrnn_cuda::RecPlan plan;
        const tsrnn_status st = backward ? tsrnn_cuda::persistent_bwd_plan(c, H, B, &plan)
                                         : tsrnn_cuda::persistent_fwd_plan(c, H, B, &plan);
        EXPECT_TRUE(st == TSRNN_OK || st == TSRNN_ERR_UNSUPPORTED) << tsrnn_status_string(st);
        return st == TSRNN_OK;
    };
    int64_t lo = 1, hi = 1 << 14; // fits(lo); not fits(hi)
    EXPECT_TRUE(fits(lo));
    EXPECT_FALSE(fits(hi));
    while (hi - lo > 1) {
        const int64_t mid = (lo + hi) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo;
}

// Every H works: just above the largest H the persistent kernels take (forward's and backward's limits), the
// stepwise path takes over by itself; and H = 2048, twice the size the product's large-H points use.
using LargeParam = std::tuple<Cell, int /*0: forward's limit + 1, 1: backward's limit + 1, 2: H = 2048*/>;
class CudaLargeHidden : public ::testing::TestWithParam<LargeParam> {};

TEST_P(CudaLargeHidden, StepwiseTakesOverPastThePersistentLimit) {
    SKIP_WITHOUT_DEVICE();
    const auto [cell, which] = GetParam();
    Case c;
    c.cell = cell;
    c.T = 3, c.B = 5, c.D = 7, c.H = 2048;
    c.use_lengths = true;
    c.lengths = mixed_lengths(c.T, c.B);
    c.layout = Layout::BatchFirst;
    if (which < 2) {
        const int64_t limit = persistent_limit(cell, which == 1, c.B);
        std::printf("persistent %s limit for %s, B = %lld: H = %lld\n", which == 1 ? "backward" : "forward",
                    cell_name(cell), (long long)c.B, (long long)limit);
        c.H = limit + 1;
    }
    run_case(c);
}

INSTANTIATE_TEST_SUITE_P(Grid, CudaLargeHidden,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(0, 1, 2)),
                         [](const ::testing::TestParamInfo<LargeParam> &info) {
                             const int which = std::get<1>(info.param);
                             return std::string(cell_name(std::get<0>(info.param))) +
                                    (which == 0 ? "_FwdLimitPlus1" : which == 1 ? "_BwdLimitPlus1" : "_H2048");
                         });

// Accuracy of the long sums: at T * B = 128,000 rows, every fp32 output and gradient of the CUDA kernels is at least
// about as accurate as the CPU kernels' (which tests/python/test_accuracy.py holds to nn.*'s) against the fp64
// reference on the same (fp32) inputs: error max|fp32 - fp64| / max|fp64| <= 1.5 x the CPU's + 1e-7.
double relative_error(const std::vector<float> &got, const std::vector<double> &truth) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < truth.size(); ++i) {
        scale = std::max(scale, std::fabs(truth[i]));
        worst = std::max(worst, std::fabs(double(got[i]) - truth[i]));
    }
    return scale > 0 ? worst / scale : worst;
}

class CudaAccuracy : public ::testing::TestWithParam<Cell> {};

TEST_P(CudaAccuracy, LongSumsAsAccurateAsTheCpuKernels) {
    SKIP_WITHOUT_DEVICE();
    Case c;
    c.cell = GetParam();
    c.T = 2000, c.B = 64, c.D = 1, c.H = 32;
    c.layout = Layout::BatchFirst;
    const uint64_t seed = 77;
    Problem<float> gpu(c, seed), cpu(c, seed);
    Problem<double> truth(c, seed);
    auto widen = [](std::vector<double> &to, const std::vector<float> &from) { to.assign(from.begin(), from.end()); };
    widen(truth.x, gpu.x), widen(truth.h0, gpu.h0), widen(truth.c0, gpu.c0), widen(truth.w_ih, gpu.w_ih);
    widen(truth.w_hh, gpu.w_hh), widen(truth.b_ih, gpu.b_ih), widen(truth.b_hh, gpu.b_hh);
    widen(truth.grad_y, gpu.grad_y), widen(truth.grad_h_n, gpu.grad_h_n), widen(truth.grad_c_n, gpu.grad_c_n);
    ASSERT_EQ(truth.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(truth.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(cpu.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
    ASSERT_EQ(cpu.backward(TSRNN_BACKEND_CPU), TSRNN_OK);
    ASSERT_NO_FATAL_FAILURE(run_cuda(gpu));
    for (auto [name, g, p, t] : {std::tuple{"y", &gpu.y, &cpu.y, &truth.y}, {"h_n", &gpu.h_n, &cpu.h_n, &truth.h_n},
                                 {"grad_x", &gpu.grad_x, &cpu.grad_x, &truth.grad_x},
                                 {"grad_h0", &gpu.grad_h0, &cpu.grad_h0, &truth.grad_h0},
                                 {"grad_w_ih", &gpu.grad_w_ih, &cpu.grad_w_ih, &truth.grad_w_ih},
                                 {"grad_w_hh", &gpu.grad_w_hh, &cpu.grad_w_hh, &truth.grad_w_hh},
                                 {"grad_b_ih", &gpu.grad_b_ih, &cpu.grad_b_ih, &truth.grad_b_ih},
                                 {"grad_b_hh", &gpu.grad_b_hh, &cpu.grad_b_hh, &truth.grad_b_hh}}) {
        const double e_gpu = relative_error(*g, *t), e_cpu = relative_error(*p, *t);
        std::printf("%-10s cuda %.2e  cpu %.2e\n", name, e_gpu, e_cpu);
        EXPECT_LE(e_gpu, 1.5 * e_cpu + 1e-7) << name << ": cuda " << e_gpu << ", cpu " << e_cpu;
    }
}

INSTANTIATE_TEST_SUITE_P(Grid, CudaAccuracy, ::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                         [](const ::testing::TestParamInfo<Cell> &info) { return std::string(cell_name(info.param)); });

// x_stride_t = 0 (every step reads the same x row), forward and backward without grad_x.
class CudaVsRefBroadcast : public ::testing::TestWithParam<Cell> {};

TEST_P(CudaVsRefBroadcast, ForwardAndBackwardMatch) {
    SKIP_WITHOUT_DEVICE();
    Case c;
    c.cell = GetParam();
    c.T = 9, c.B = 4, c.D = 5, c.H = 6;
    c.use_lengths = true;
    c.lengths = mixed_lengths(c.T, c.B);
    c.layout = Layout::Broadcast;
    c.want_grad_x = false;
    run_case(c);
}

INSTANTIATE_TEST_SUITE_P(Grid, CudaVsRefBroadcast, ::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                         [](const ::testing::TestParamInfo<Cell> &info) { return std::string(cell_name(info.param)); });

// ---- CUDA graphs: a forward + backward captured on a stream replays to the same results --------------------------

using GraphParam = std::tuple<Cell, int64_t /*H*/, bool /*lengths*/>;
class CudaGraph : public ::testing::TestWithParam<GraphParam> {};

TEST_P(CudaGraph, CaptureAndReplay) {
    SKIP_WITHOUT_DEVICE();
    Case c;
    c.cell = std::get<0>(GetParam());
    c.T = 10, c.B = 6, c.D = 3, c.H = std::get<1>(GetParam());
    c.layout = Layout::BatchFirst;
    c.use_lengths = std::get<2>(GetParam()); // host lengths: they travel as kernel arguments, captured by value
    c.lengths = mixed_lengths(c.T, c.B);
    const uint64_t seed = 99;
    Problem<float> eager(c, seed);
    ASSERT_NO_FATAL_FAILURE(run_cuda(eager));

    Problem<float> p(c, seed);
    DeviceProblem d(p);
    const tsrnn_cell cell = cell_of(c.cell);
    size_t fwd_bytes = 0, bwd_bytes = 0;
    ASSERT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_FWD, TSRNN_BACKEND_CUDA, TSRNN_F32, &p.desc, &fwd_bytes), TSRNN_OK);
    ASSERT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_BWD, TSRNN_BACKEND_CUDA, TSRNN_F32, &p.desc, &bwd_bytes), TSRNN_OK);
    DeviceWorkspace fws(fwd_bytes), bws(bwd_bytes);
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    p.desc.stream = stream;

    cudaGraph_t graph = nullptr;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const tsrnn_status fs = call_fwd_cuda(cell, d.fwd_args(fws.data(), fws.bytes()));
    const tsrnn_status bs = call_bwd_cuda(cell, d.bwd_args(bws.data(), bws.bytes()));
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    ASSERT_EQ(fs, TSRNN_OK);
    ASSERT_EQ(bs, TSRNN_OK);
    ASSERT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
    cudaGraphExec_t exec = nullptr;
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int replay = 0; replay < 3; ++replay) CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    d.download_all();
    expect_same_bits(p, eager);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
}

INSTANTIATE_TEST_SUITE_P(Grid, CudaGraph,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(int64_t{32}, int64_t{512}), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<GraphParam> &info) {
                             return std::string(cell_name(std::get<0>(info.param))) + "_H" +
                                    std::to_string(std::get<1>(info.param)) +
                                    (std::get<2>(info.param) ? "_lengths" : "_full");
                         });

// ---- the runtime's last-error state belongs to the caller ------------------------------------------------------

TEST(CudaErrorState, CallerErrorSurvivesAndNoneIsLeftBehind) {
    SKIP_WITHOUT_DEVICE();
    Case c;
    c.T = 4, c.B = 3, c.D = 2, c.H = 5;
    Problem<float> p(c, 3);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess) << "an earlier test left an error";
    // a clean state stays clean
    ASSERT_NO_FATAL_FAILURE(run_cuda(p));
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    // a caller's pending (non-sticky) error is still there after a successful call
    void *huge = nullptr;
    ASSERT_NE(cudaMalloc(&huge, size_t{1} << 60), cudaSuccess);
    ASSERT_NO_FATAL_FAILURE(run_cuda(p));
    EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation) << "the caller's error was swallowed";
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// ---- arguments ---------------------------------------------------------------------------------------------------

TEST(CudaArgs, WorkspaceQueryAndBadArguments) {
    Case c;
    c.T = 3, c.B = 2, c.D = 2, c.H = 3;
    Problem<float> p(c, 7);
    size_t bytes = 0;
    // no device needed for the query
    EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_LSTM, TSRNN_PASS_FWD, TSRNN_BACKEND_CUDA, TSRNN_F64, &p.desc, &bytes),
              TSRNN_ERR_UNSUPPORTED);
    ASSERT_EQ(tsrnn_workspace_size(TSRNN_CELL_LSTM, TSRNN_PASS_FWD, TSRNN_BACKEND_CUDA, TSRNN_F32, &p.desc, &bytes),
              TSRNN_OK);
    EXPECT_GT(bytes, 0u);
    // checks run before any CUDA call, so they need no device either (host pointers are never touched)
    FwdArgs<float> a = p.fwd_args(nullptr, 0);
    a.x = nullptr;
    EXPECT_EQ(call_fwd_cuda(TSRNN_CELL_LSTM, a), TSRNN_ERR_NULL);
    a = p.fwd_args(nullptr, 0);
    EXPECT_EQ(call_fwd_cuda(TSRNN_CELL_LSTM, a), TSRNN_ERR_WORKSPACE);
    int64_t bad_lengths[2] = {4, 1};
    p.desc.lengths = bad_lengths;
    a = p.fwd_args(nullptr, 0);
    EXPECT_EQ(call_fwd_cuda(TSRNN_CELL_LSTM, a), TSRNN_ERR_LENGTHS);
}

// One check sequence for every backend (tsrnn.h, "Errors"): each bad call of bad_calls.h gets the same status from
// the reference, the CPU kernels and the CUDA kernels. The calls are refused before any data is read, so the CUDA
// functions get host buffers and no device is needed.
tsrnn_status call_any(tsrnn_backend backend, tsrnn_cell cell, tsrnn_pass pass, const CallUnderTest<float> &c) {
    if (backend != TSRNN_BACKEND_CUDA) return call_host(backend, cell, pass, c);
    return pass == TSRNN_PASS_FWD ? call_fwd_cuda(cell, c.fwd) : call_bwd_cuda(cell, c.bwd);
}

class CudaSameStatus : public ::testing::TestWithParam<size_t> {};

TEST_P(CudaSameStatus, RefCpuAndCuda) {
    const BadCall<float> bc = bad_calls<float>()[GetParam()];
    for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU, TSRNN_BACKEND_CUDA})
        EXPECT_EQ(make_bad_call(bc, backend, call_any), bc.want)
            << backend_name(backend) << ": " << tsrnn_status_string(bc.want) << " expected";
}

INSTANTIATE_TEST_SUITE_P(BadCalls, CudaSameStatus, ::testing::Range(size_t(0), bad_calls<float>().size()),
                         [](const ::testing::TestParamInfo<size_t> &info) {
                             return bad_calls<float>()[info.param].name;
                         });

// What the CUDA kernels refuse of valid requests (an LSTM projection; fp64, which has no CUDA function, only the
// query) they refuse after the common checks: the call and the query answer TSRNN_ERR_UNSUPPORTED where the other
// backends serve it, while bad calls with a projection get the common statuses (CudaSameStatus, "Projection*").
TEST(CudaArgs, RefusalsComeAfterTheCommonChecks) {
    for (tsrnn_pass pass : {TSRNN_PASS_FWD, TSRNN_PASS_BWD}) {
        SCOPED_TRACE(pass == TSRNN_PASS_FWD ? "forward" : "backward");
        const BadCall<float> projection{"projection", Cell::Lstm, pass, 2, TSRNN_OK, [](CallUnderTest<float> &) {}};
        EXPECT_EQ(make_bad_call(projection, TSRNN_BACKEND_REF, call_any), TSRNN_OK);
        EXPECT_EQ(make_bad_call(projection, TSRNN_BACKEND_CPU, call_any), TSRNN_OK);
        EXPECT_EQ(make_bad_call(projection, TSRNN_BACKEND_CUDA, call_any), TSRNN_ERR_UNSUPPORTED);
        CallUnderTest<float> c(Cell::Lstm, 2, 0);
        size_t bytes = 123;
        EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_LSTM, pass, TSRNN_BACKEND_CUDA, TSRNN_F32, &c.desc, &bytes),
                  TSRNN_ERR_UNSUPPORTED);
        EXPECT_EQ(bytes, 0u);
        EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_LSTM, pass, TSRNN_BACKEND_CPU, TSRNN_F32, &c.desc, &bytes), TSRNN_OK);
        // a bad desc is the desc's status first, fp64 or not
        c.desc.H = 0;
        EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_LSTM, pass, TSRNN_BACKEND_CUDA, TSRNN_F64, &c.desc, &bytes),
                  TSRNN_ERR_SHAPE);
    }
}

} // namespace
} // namespace tsrnn_test
