// The optimized CPU kernels against the reference, over a grid of cells, dtypes, shapes (T = 1, B = 1, H = 1,
// D = 1, H = 33, T = 300), LSTM projections (P = 1, P = H - 1, P not a multiple of the vector width), directions,
// lengths, layouts and optional arguments. Every output buffer is compared whole (so writing outside one's rows
// fails too): forward y, h_n, c_n, saved and every backward gradient, with |cpu - ref| <= atol + rtol |ref|.
// num_threads 1, 2 and 3 must give bit-identical results, no input may change, and an inference forward
// (saved = NULL) must give the same y, h_n, c_n.
#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "test_util.h"

namespace tsrnn_test {
namespace {

struct Shape {
    int64_t T, B, D, H;
    int64_t P = 0; // LSTM projection size
};

// Which optional arguments are passed.
//   Full    every optional input and output
//   Bare    no h0, c0, biases, grad_h_n, grad_c_n (grad_y only); every gradient wanted
//   Sparse  h0 and b_ih but no c0 / b_hh; grad_h_n and grad_c_n but no grad_y; only grad_h0, grad_w_hh,
//           grad_b_hh wanted (not grad_w_hr either)
enum class Opts { Full, Bare, Sparse };

const char *opts_name(Opts o) { return o == Opts::Full ? "full" : o == Opts::Bare ? "bare" : "sparse"; }
void PrintTo(Opts o, std::ostream *os) { *os << opts_name(o); }
void PrintTo(const Shape &s, std::ostream *os) {
    *os << "T" << s.T << " B" << s.B << " D" << s.D << " H" << s.H;
    if (s.P > 0) *os << " P" << s.P;
}

struct Tolerance {
    double fwd_rtol, fwd_atol, bwd_rtol, bwd_atol;
};
constexpr Tolerance kF32Tol{1e-5, 1e-6, 1e-4, 1e-5};
constexpr Tolerance kF64Tol{1e-12, 1e-13, 1e-11, 1e-12};

// Parameter gradients (grad_w_*, grad_b_*) are sums over every (t, b): their rounding error grows like sqrt(T B)
// times the size of the summed terms, which cancellation can make far larger than the sum. At T = 300, B = 5 in
// f32, the f32 reference alone is off from the f64 one by up to half of a flat 1e-5 atol, so their atol grows with
// sqrt(T B / 16).
double param_grad_atol(const Tolerance &tol, const Case &c) {
    return tol.bwd_atol * std::max(1.0, std::sqrt(double(c.T * c.B) / 16.0));
}

using GridParam = std::tuple<Cell, tsrnn_dtype, Shape, int /*reverse*/, bool /*lengths*/, Layout, Opts>;

Case case_of(const GridParam &gp) {
    const auto &[cell, dtype, shape, reverse, lengths, layout, opts] = gp;
    Case c;
    c.cell = cell;
    c.T = shape.T, c.B = shape.B, c.D = shape.D, c.H = shape.H, c.P = shape.P;
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
        c.want_grad_x = c.want_grad_c0 = c.want_grad_w_ih = c.want_grad_b_ih = c.want_grad_w_hr = false;
    }
    return c;
}

std::string grid_name(const ::testing::TestParamInfo<GridParam> &info) {
    const auto &[cell, dtype, shape, reverse, lengths, layout, opts] = info.param;
    return std::string(cell_name(cell)) + (dtype == TSRNN_F32 ? "_f32" : "_f64") + "_T" + std::to_string(shape.T) +
           "_B" + std::to_string(shape.B) + "_D" + std::to_string(shape.D) + "_H" + std::to_string(shape.H) +
           (shape.P > 0 ? "_P" + std::to_string(shape.P) : "") + (reverse ? "_reverse" : "_forward") +
           (lengths ? "_lengths" : "_full") + "_" + layout_name(layout) + "_" + opts_name(opts);
}

template <class real> struct Outputs {
    std::vector<real> y, h_n, c_n, saved, grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh,
        grad_w_hr;
    explicit Outputs(const Problem<real> &p)
        : y(p.y), h_n(p.h_n), c_n(p.c_n), saved(p.saved), grad_x(p.grad_x), grad_h0(p.grad_h0), grad_c0(p.grad_c0),
          grad_w_ih(p.grad_w_ih), grad_w_hh(p.grad_w_hh), grad_b_ih(p.grad_b_ih), grad_b_hh(p.grad_b_hh),
          grad_w_hr(p.grad_w_hr) {}
};

template <class real>
void expect_forward_close(const Problem<real> &got, const Problem<real> &ref, const Tolerance &tol) {
    const Case &c = ref.c;
    const int64_t y_row = c.layout == Layout::Padded ? 2 * c.R() : c.R();
    EXPECT_TRUE(all_close("y", got.y, ref.y, tol.fwd_rtol, tol.fwd_atol, y_row));
    EXPECT_TRUE(all_close("h_n", got.h_n, ref.h_n, tol.fwd_rtol, tol.fwd_atol, c.R()));
    if (c.lstm()) {
        EXPECT_TRUE(all_close("c_n", got.c_n, ref.c_n, tol.fwd_rtol, tol.fwd_atol, c.H));
    }
}

template <class real> void expect_inputs_unchanged(const Problem<real> &p, const Problem<real> &pristine) {
    for (auto [name, a, b] : {std::tuple{"x", &p.x, &pristine.x}, {"h0", &p.h0, &pristine.h0},
                              {"c0", &p.c0, &pristine.c0}, {"w_ih", &p.w_ih, &pristine.w_ih},
                              {"w_hh", &p.w_hh, &pristine.w_hh}, {"w_hr", &p.w_hr, &pristine.w_hr},
                              {"b_ih", &p.b_ih, &pristine.b_ih}, {"b_hh", &p.b_hh, &pristine.b_hh},
                              {"grad_y", &p.grad_y, &pristine.grad_y},
                              {"grad_h_n", &p.grad_h_n, &pristine.grad_h_n},
                              {"grad_c_n", &p.grad_c_n, &pristine.grad_c_n}})
        EXPECT_TRUE(bitwise_equal(std::string("input ") + name + " unchanged", *a, *b));
}

template <class real> void run_grid_case(const Case &base, const Tolerance &tol) {
    const uint64_t seed = 0x5eed + uint64_t(base.T * 131 + base.B * 17 + base.D * 7 + base.H + base.P * 1009);
    Problem<real> ref(base, seed);
    ASSERT_EQ(ref.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(ref.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    const Problem<real> pristine(base, seed); // the inputs as generated, to check nothing changes them
    expect_inputs_unchanged(ref, pristine);
    const Case &c = ref.c;
    const int64_t x_row = c.layout == Layout::Padded ? c.D + 2 : c.D;

    std::vector<Outputs<real>> per_threads;
    for (int threads : {1, 2, 3}) {
        SCOPED_TRACE("num_threads = " + std::to_string(threads));
        Case tc = base;
        tc.num_threads = threads;
        Problem<real> cpu(tc, seed);
        ASSERT_EQ(cpu.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
        ASSERT_EQ(cpu.backward(TSRNN_BACKEND_CPU), TSRNN_OK);

        expect_inputs_unchanged(cpu, pristine);

        if (threads == 1) {
            expect_forward_close(cpu, ref, tol);
            EXPECT_TRUE(all_close("saved", cpu.saved, ref.saved, tol.fwd_rtol, tol.fwd_atol, c.S()));
            EXPECT_TRUE(all_close("grad_x", cpu.grad_x, ref.grad_x, tol.bwd_rtol, tol.bwd_atol, x_row));
            EXPECT_TRUE(all_close("grad_h0", cpu.grad_h0, ref.grad_h0, tol.bwd_rtol, tol.bwd_atol, c.R()));
            EXPECT_TRUE(all_close("grad_c0", cpu.grad_c0, ref.grad_c0, tol.bwd_rtol, tol.bwd_atol, c.H));
            const double sum_atol = param_grad_atol(tol, c);
            EXPECT_TRUE(all_close("grad_w_ih", cpu.grad_w_ih, ref.grad_w_ih, tol.bwd_rtol, sum_atol, c.D));
            EXPECT_TRUE(all_close("grad_w_hh", cpu.grad_w_hh, ref.grad_w_hh, tol.bwd_rtol, sum_atol, c.R()));
            EXPECT_TRUE(all_close("grad_w_hr", cpu.grad_w_hr, ref.grad_w_hr, tol.bwd_rtol, sum_atol, c.H));
            EXPECT_TRUE(all_close("grad_b_ih", cpu.grad_b_ih, ref.grad_b_ih, tol.bwd_rtol, sum_atol));
            EXPECT_TRUE(all_close("grad_b_hh", cpu.grad_b_hh, ref.grad_b_hh, tol.bwd_rtol, sum_atol));
        } else {
            const Outputs<real> &one = per_threads.front();
            EXPECT_TRUE(bitwise_equal("y vs 1 thread", cpu.y, one.y));
            EXPECT_TRUE(bitwise_equal("h_n vs 1 thread", cpu.h_n, one.h_n));
            EXPECT_TRUE(bitwise_equal("c_n vs 1 thread", cpu.c_n, one.c_n));
            EXPECT_TRUE(bitwise_equal("saved vs 1 thread", cpu.saved, one.saved));
            EXPECT_TRUE(bitwise_equal("grad_x vs 1 thread", cpu.grad_x, one.grad_x));
            EXPECT_TRUE(bitwise_equal("grad_h0 vs 1 thread", cpu.grad_h0, one.grad_h0));
            EXPECT_TRUE(bitwise_equal("grad_c0 vs 1 thread", cpu.grad_c0, one.grad_c0));
            EXPECT_TRUE(bitwise_equal("grad_w_ih vs 1 thread", cpu.grad_w_ih, one.grad_w_ih));
            EXPECT_TRUE(bitwise_equal("grad_w_hh vs 1 thread", cpu.grad_w_hh, one.grad_w_hh));
            EXPECT_TRUE(bitwise_equal("grad_b_ih vs 1 thread", cpu.grad_b_ih, one.grad_b_ih));
            EXPECT_TRUE(bitwise_equal("grad_b_hh vs 1 thread", cpu.grad_b_hh, one.grad_b_hh));
            EXPECT_TRUE(bitwise_equal("grad_w_hr vs 1 thread", cpu.grad_w_hr, one.grad_w_hr));
        }
        per_threads.emplace_back(cpu);
    }

    // inference: no saved activations, same outputs
    Case ic = base;
    ic.want_saved = false;
    ic.num_threads = 2;
    Problem<real> inference(ic, seed);
    ASSERT_EQ(inference.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
    SCOPED_TRACE("inference (saved = NULL)");
    expect_forward_close(inference, ref, tol);
    const std::vector<real> untouched(inference.saved.size(), real(kSentinel));
    EXPECT_TRUE(all_close("saved untouched", inference.saved, untouched, 0, 0));
}

class CpuVsRef : public ::testing::TestWithParam<GridParam> {};

TEST_P(CpuVsRef, ForwardAndBackwardMatch) {
    const Case c = case_of(GetParam());
    if (std::get<1>(GetParam()) == TSRNN_F32)
        run_grid_case<float>(c, kF32Tol);
    else
        run_grid_case<double>(c, kF64Tol);
}

INSTANTIATE_TEST_SUITE_P(Grid, CpuVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Values(Shape{1, 1, 1, 1}, Shape{1, 3, 4, 5}, Shape{6, 1, 3, 1},
                                                              Shape{5, 4, 1, 33}, Shape{300, 5, 7, 16},
                                                              Shape{0, 3, 2, 3}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::TimeMajor, Layout::BatchFirst, Layout::Padded),
                                            ::testing::Values(Opts::Full, Opts::Bare, Opts::Sparse)),
                         grid_name);

// Wider problems, where blocking over H and D and splitting B over threads have remainders: B = 9 over 2 or 3
// threads, H = 70, D = 40; B = 3 with D = 40 (a batch below 4 takes the backward's one-row split-sum products,
// grad_x included: D is wide enough for its column panels); and the forecasting job's shape (window 60, batch 32,
// one feature, hidden 32).
INSTANTIATE_TEST_SUITE_P(Wide, CpuVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Values(Shape{12, 9, 40, 70}, Shape{7, 3, 40, 70},
                                                              Shape{60, 32, 1, 32}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::BatchFirst), ::testing::Values(Opts::Full)),
                         grid_name);

// LSTM with a projection: P = 1, P = H - 1 (a multiple of 16 at H = 33), P = 17 (not a multiple of any vector
// width); H = 2, 5, 33 (none a multiple of 16); T = 0 and B = 0 (no rows: the weight gradients are zero).
INSTANTIATE_TEST_SUITE_P(Proj, CpuVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm), ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Values(Shape{1, 1, 1, 2, 1}, Shape{5, 4, 3, 5, 1},
                                                              Shape{5, 4, 3, 5, 4}, Shape{7, 5, 2, 33, 17},
                                                              Shape{4, 3, 6, 33, 32}, Shape{0, 3, 2, 33, 17},
                                                              Shape{4, 0, 2, 33, 17}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::TimeMajor, Layout::BatchFirst, Layout::Padded),
                                            ::testing::Values(Opts::Full, Opts::Bare, Opts::Sparse)),
                         grid_name);

// Projections on problems large enough to be split over 2 or 3 threads (B = 9 and 32), with H = 70 and P = 23
// blocked with remainders, and T = 300 (the weight gradients' m runs over several blocks of MC rows).
INSTANTIATE_TEST_SUITE_P(ProjWide, CpuVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm), ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Values(Shape{12, 9, 40, 70, 23}, Shape{60, 32, 1, 32, 8},
                                                              Shape{300, 5, 7, 16, 5}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::BatchFirst, Layout::Padded),
                                            ::testing::Values(Opts::Full)),
                         grid_name);

// Long sums: M = T * B rows past 16 and past 256 blocks of TSRNN_CPU_WGRAD_BLOCK_ROWS, so the weight gradients go
// through one and two levels of their tree (cpu_impl.h) and the bias gradients through many pairwise levels; D = 3
// takes the transposed grad_w_ih (D below the vector width), D = 20 the plain one (for f32); with and without a
// projection.
INSTANTIATE_TEST_SUITE_P(LongSums, CpuVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Values(Shape{130, 40, 3, 5}, Shape{1100, 64, 3, 5},
                                                              Shape{1100, 64, 20, 6}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::BatchFirst), ::testing::Values(Opts::Full)),
                         grid_name);
INSTANTIATE_TEST_SUITE_P(ProjLongSums, CpuVsRef,
                         ::testing::Combine(::testing::Values(Cell::Lstm), ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Values(Shape{1100, 64, 3, 5, 2}),
                                            ::testing::Values(0, 1), ::testing::Bool(),
                                            ::testing::Values(Layout::BatchFirst), ::testing::Values(Opts::Full)),
                         grid_name);

// x_stride_t = 0 (every step reads the same x row), forward and backward without grad_x; LSTM also with P = 3.
class CpuVsRefBroadcast : public ::testing::TestWithParam<std::tuple<Cell, tsrnn_dtype, int64_t /*P*/>> {};

TEST_P(CpuVsRefBroadcast, ForwardAndBackwardMatch) {
    Case c;
    c.cell = std::get<0>(GetParam());
    c.T = 9, c.B = 4, c.D = 5, c.H = 6, c.P = std::get<2>(GetParam());
    c.use_lengths = true;
    c.lengths = mixed_lengths(c.T, c.B);
    c.layout = Layout::Broadcast;
    c.want_grad_x = false;
    if (std::get<1>(GetParam()) == TSRNN_F32)
        run_grid_case<float>(c, kF32Tol);
    else
        run_grid_case<double>(c, kF64Tol);
}

std::string broadcast_name(const ::testing::TestParamInfo<std::tuple<Cell, tsrnn_dtype, int64_t>> &info) {
    const auto &[cell, dtype, P] = info.param;
    return std::string(cell_name(cell)) + (dtype == TSRNN_F32 ? "_f32" : "_f64") +
           (P > 0 ? "_P" + std::to_string(P) : "");
}

INSTANTIATE_TEST_SUITE_P(Grid, CpuVsRefBroadcast,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(TSRNN_F32, TSRNN_F64), ::testing::Values(int64_t{0})),
                         broadcast_name);
INSTANTIATE_TEST_SUITE_P(Proj, CpuVsRefBroadcast,
                         ::testing::Combine(::testing::Values(Cell::Lstm), ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Values(int64_t{3})),
                         broadcast_name);

} // namespace
} // namespace tsrnn_test
