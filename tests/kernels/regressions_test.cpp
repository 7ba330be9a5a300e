// Regression tests for what the reliability checks found (make sanitize-tests / valgrind-tests / fuzz-smoke; the
// fuzz target is tests/fuzz/fuzz_api.cpp, its failing inputs are kept in tests/fuzz/regressions), and a check of
// which CPU kernel variant the run-time dispatch takes on this machine.
#include <cstdlib>
#include <limits>
#include <string>
#include <tuple>

#include "test_util.h"

namespace tsrnn_test {
namespace {

// ---- the CPU kernels' dispatch ---------------------------------------------------------------------------

// The variant kernels/cpu/cpu_api.c picks, by the same cpuid tests: "avx512", "avx2" or "generic".
std::string cpu_variant() {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_supports("avx512f") ? "avx512" : "avx2";
#endif
    return "generic";
}

// Under valgrind (make valgrind-tests sets TSRNN_TEST_NO_AVX512=1) the emulated CPU has no AVX-512, so the
// dispatch takes the AVX2 variant (or the generic one on a CPU without AVX2 + FMA).
TEST(Environment, CpuDispatch) {
    const std::string variant = cpu_variant();
    std::printf("[ INFO     ] the CPU kernels run their %s variant here\n", variant.c_str());
    if (std::getenv("TSRNN_TEST_NO_AVX512")) {
        EXPECT_NE(variant, "avx512");
    }
}

// ---- backward with T = 0 or B = 0 (no rows at all) ---------------------------------------------------------

// Found by the fuzz target: with T * B = 0 every buffer of the backward's workspace layout that scales with T*B is
// 0 bytes long and sits at the same offset, so the CPU backward told the W_ih product from the W_hh one by
// comparing those pointers (x.A == c->xc in wgrad_pass) and ran the W_hh product (J = H columns) through the
// transposed small-D path, whose stack tile holds VL rows: a stack overflow once H > VL with D < VL (f32 AVX-512:
// H >= 17, AVX2: H >= 9). GRU reset_after = 0 also did pointer arithmetic on a NULL rhprev (UB, clang's UBSan).
// Every result is plain here: no step runs, the weight and bias gradients are zero, the state gradients pass
// through (T = 0) and grad_x is all zero.
struct EmptyParam {
    Cell cell;
    tsrnn_dtype dtype;
    int64_t T, B;
};

std::string empty_name(const ::testing::TestParamInfo<EmptyParam> &info) {
    const EmptyParam &p = info.param;
    return std::string(cell_name(p.cell)) + (p.dtype == TSRNN_F32 ? "_f32" : "_f64") + "_T" + std::to_string(p.T) +
           "_B" + std::to_string(p.B);
}

class EmptyBackward : public ::testing::TestWithParam<EmptyParam> {};

template <class real> void check_empty(const EmptyParam &ep) {
    Case c;
    c.cell = ep.cell;
    c.T = ep.T, c.B = ep.B, c.D = 1, c.H = 33;
    for (int threads : {1, 3}) {
        SCOPED_TRACE("num_threads = " + std::to_string(threads));
        c.num_threads = threads;
        Problem<real> ref(c, 5), cpu(c, 5);
        ASSERT_EQ(ref.forward(TSRNN_BACKEND_REF), TSRNN_OK);
        ASSERT_EQ(cpu.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
        EXPECT_TRUE(bitwise_equal("h_n", cpu.h_n, ref.h_n));
        EXPECT_TRUE(bitwise_equal("c_n", cpu.c_n, ref.c_n));
        cpu.saved = ref.saved;
        ASSERT_EQ(ref.backward(TSRNN_BACKEND_REF), TSRNN_OK);
        ASSERT_EQ(cpu.backward(TSRNN_BACKEND_CPU), TSRNN_OK);
        EXPECT_TRUE(bitwise_equal("grad_x", cpu.grad_x, ref.grad_x));
        EXPECT_TRUE(bitwise_equal("grad_h0", cpu.grad_h0, ref.grad_h0));
        EXPECT_TRUE(bitwise_equal("grad_c0", cpu.grad_c0, ref.grad_c0));
        EXPECT_TRUE(bitwise_equal("grad_w_ih", cpu.grad_w_ih, ref.grad_w_ih));
        EXPECT_TRUE(bitwise_equal("grad_w_hh", cpu.grad_w_hh, ref.grad_w_hh));
        EXPECT_TRUE(bitwise_equal("grad_b_ih", cpu.grad_b_ih, ref.grad_b_ih));
        EXPECT_TRUE(bitwise_equal("grad_b_hh", cpu.grad_b_hh, ref.grad_b_hh));
        for (const std::vector<real> *g : {&ref.grad_w_ih, &ref.grad_w_hh, &ref.grad_b_ih, &ref.grad_b_hh})
            for (real v : *g) ASSERT_EQ(v, real(0));
    }
}

TEST_P(EmptyBackward, MatchesTheReference) {
    if (GetParam().dtype == TSRNN_F32) check_empty<float>(GetParam());
    else check_empty<double>(GetParam());
}

std::vector<EmptyParam> empty_params() {
    std::vector<EmptyParam> out;
    for (Cell cell : {Cell::Lstm, Cell::Gru0, Cell::Gru1})
        for (tsrnn_dtype dtype : {TSRNN_F32, TSRNN_F64})
            for (auto [T, B] : {std::pair<int64_t, int64_t>{0, 3}, {4, 0}, {0, 0}})
                out.push_back(EmptyParam{cell, dtype, T, B});
    return out;
}

INSTANTIATE_TEST_SUITE_P(Regressions, EmptyBackward, ::testing::ValuesIn(empty_params()), empty_name);

// ---- B * H must fit, also when T = 0 -------------------------------------------------------------------------

// Found by the fuzz target: the desc check (kernels/common/api.c) bounded T*B*7H, T*B*D and the weights, but not
// the states' B*R / B*H elements, which the call touches even when T = 0. With T = 0, B = 2^60, H = 1 every check
// passed and the reference wrote h_n[b] for b up to 2^60 (and b * R could overflow int64). tsrnn.h: sizes whose
// element counts overflow (bytes in f64 past INT64_MAX) are TSRNN_ERR_SHAPE. The calls get 1-element buffers: a
// refused call must not touch them (ASan would report it).
template <class real> void check_state_overflow(int64_t B, int64_t H) {
    using F = Fns<real>;
    tsrnn_desc d{};
    d.T = 0, d.B = B, d.D = 1, d.H = H;
    d.x_stride_t = 1, d.x_stride_b = 1, d.y_stride_t = H, d.y_stride_b = H;
    d.num_threads = 1;
    real in[1] = {0}, out[8] = {0}, grad[8] = {0};
    alignas(TSRNN_WORKSPACE_ALIGN) unsigned char ws[256];
    for (tsrnn_cell cell : {TSRNN_CELL_LSTM, TSRNN_CELL_GRU})
        for (tsrnn_pass pass : {TSRNN_PASS_FWD, TSRNN_PASS_BWD})
            for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU}) {
                size_t bytes = 0;
                EXPECT_EQ(tsrnn_workspace_size(cell, pass, backend, F::dtype, &d, &bytes), TSRNN_ERR_SHAPE)
                    << "cell " << cell << " pass " << pass << " backend " << backend;
            }
    EXPECT_EQ(F::lstm_fwd_ref(&d, in, in, in, in, in, in, in, nullptr, out, out + 2, out + 4, out + 6, ws, sizeof ws),
              TSRNN_ERR_SHAPE);
    EXPECT_EQ(F::lstm_fwd_cpu(&d, in, in, in, in, in, in, in, nullptr, out, out + 2, out + 4, out + 6, ws, sizeof ws),
              TSRNN_ERR_SHAPE);
    EXPECT_EQ(F::gru_fwd_ref(&d, in, in, in, in, in, in, out, out + 2, out + 4, ws, sizeof ws), TSRNN_ERR_SHAPE);
    EXPECT_EQ(F::gru_fwd_cpu(&d, in, in, in, in, in, in, out, out + 2, out + 4, ws, sizeof ws), TSRNN_ERR_SHAPE);
    EXPECT_EQ(F::lstm_bwd_ref(&d, in, in, in, in, in, nullptr, in, in, in, in, grad, grad + 1, grad + 2, grad + 3,
                              grad + 4, grad + 5, grad + 6, nullptr, ws, sizeof ws),
              TSRNN_ERR_SHAPE);
    EXPECT_EQ(F::lstm_bwd_cpu(&d, in, in, in, in, in, nullptr, in, in, in, in, grad, grad + 1, grad + 2, grad + 3,
                              grad + 4, grad + 5, grad + 6, nullptr, ws, sizeof ws),
              TSRNN_ERR_SHAPE);
    EXPECT_EQ(F::gru_bwd_ref(&d, in, in, in, in, in, in, in, grad, grad + 1, grad + 2, grad + 3, grad + 4, grad + 5,
                             ws, sizeof ws),
              TSRNN_ERR_SHAPE);
    EXPECT_EQ(F::gru_bwd_cpu(&d, in, in, in, in, in, in, in, grad, grad + 1, grad + 2, grad + 3, grad + 4, grad + 5,
                             ws, sizeof ws),
              TSRNN_ERR_SHAPE);
    for (real v : out) EXPECT_EQ(v, real(0));
    for (real v : grad) EXPECT_EQ(v, real(0));
}

TEST(StateOverflow, BatchTimesHiddenMustFitAlsoWithoutSteps) {
    const int64_t limit = TSRNN_MAX_ELEMENTS; // largest element count tsrnn.h accepts
    for (auto [B, H] : {std::pair<int64_t, int64_t>{limit + 1, 1}, {int64_t(1) << 59, 2}, {int64_t(1) << 40, 1 << 21},
                        {INT64_MAX, 1}}) {
        SCOPED_TRACE("B = " + std::to_string(B) + ", H = " + std::to_string(H));
        check_state_overflow<float>(B, H);
        check_state_overflow<double>(B, H);
    }
    // the largest B that fits is a valid desc (only the query: no buffer that large exists)
    tsrnn_desc d{};
    d.T = 0, d.B = limit, d.D = 1, d.H = 1, d.num_threads = 1;
    size_t bytes = 0;
    EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_GRU, TSRNN_PASS_FWD, TSRNN_BACKEND_REF, TSRNN_F64, &d, &bytes), TSRNN_OK);
}

// ---- saturated gates ------------------------------------------------------------------------------------

// Infinite and huge inputs saturate the gates. The fast sigmoid / tanh of the CPU kernels must saturate exactly
// as the reference's libm (sigmoid 0 or 1, tanh +-1), so that the derivatives s (1 - s) and 1 - tanh^2 are exactly
// 0 there: a tiny nonzero one times an infinite input gives NaN in the weight gradients where the reference (and
// nn.*) has a finite value. Found by tests/python/test_bad_inputs.py after the nonlinearities were made cheaper.
class SaturatedGates : public ::testing::TestWithParam<Cell> {};

TEST_P(SaturatedGates, MatchTheReference) {
    Case c;
    c.cell = GetParam();
    c.T = 3, c.B = 5, c.D = 4, c.H = 20;
    const float inf = std::numeric_limits<float>::infinity();
    // one special element of x (t = 2, b = 1, d = 1) or of h0 (b = 1, unit 2) at a time, as test_bad_inputs.py
    for (const bool in_x : {true, false})
        for (const float v : {inf, -inf, 1e30f, -1e30f, 3e38f, -3e38f, -90.0f, 90.0f}) {
            SCOPED_TRACE(std::string(in_x ? "x" : "h0") + " = " + std::to_string(v));
            Problem<float> ref(c, 11), cpu(c, 11);
            const size_t at = in_x ? size_t((2 * c.B + 1) * c.D + 1) : size_t(1 * c.H + 2);
            (in_x ? ref.x : ref.h0)[at] = v;
            (in_x ? cpu.x : cpu.h0)[at] = v;
            ASSERT_EQ(ref.forward(TSRNN_BACKEND_REF), TSRNN_OK);
            ASSERT_EQ(cpu.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
            ASSERT_EQ(ref.backward(TSRNN_BACKEND_REF), TSRNN_OK);
            ASSERT_EQ(cpu.backward(TSRNN_BACKEND_CPU), TSRNN_OK);
            for (auto [name, a, b] :
                 {std::tuple{"y", &cpu.y, &ref.y}, {"h_n", &cpu.h_n, &ref.h_n}, {"c_n", &cpu.c_n, &ref.c_n},
                  {"saved", &cpu.saved, &ref.saved}, {"grad_x", &cpu.grad_x, &ref.grad_x},
                  {"grad_h0", &cpu.grad_h0, &ref.grad_h0}, {"grad_w_ih", &cpu.grad_w_ih, &ref.grad_w_ih},
                  {"grad_w_hh", &cpu.grad_w_hh, &ref.grad_w_hh}, {"grad_b_ih", &cpu.grad_b_ih, &ref.grad_b_ih}})
                // NaN matches only NaN; atol 1e-4: with h0 = +-90 the weight gradients sum terms 90 times larger
                EXPECT_TRUE(all_close(name, *a, *b, 1e-4, 1e-4));
        }
}

INSTANTIATE_TEST_SUITE_P(Cells, SaturatedGates, ::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                         [](const ::testing::TestParamInfo<Cell> &info) { return std::string(cell_name(info.param)); });

} // namespace
} // namespace tsrnn_test
