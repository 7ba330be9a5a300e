// The fp64 reference backward against central finite differences of the fp64 reference forward, for every
// element of every input and parameter, for each cell (LSTM, GRU reset_after 0 / 1), direction, and with and
// without lengths (the lengths include a 0 and a full-length sequence), and for LSTM with a projection (P = 2).
//
// Loss = sum over valid (t, b) of y * grad_y  +  sum h_n * grad_h_n  +  sum c_n * grad_c_n (LSTM),
// so the backward called with (grad_y, grad_h_n, grad_c_n) returns dLoss / d(everything).
#include <string>

#include "test_util.h"

namespace tsrnn_test {
namespace {

constexpr double kEps = 1e-6;
constexpr double kRtol = 1e-6;
constexpr double kAtol = 1e-8; // central differences of an O(1) loss carry ~1e-10 of rounding

double loss(Problem<double> &p) {
    p.reset_fwd_outputs();
    EXPECT_EQ(p.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    double sum = 0;
    const int64_t H = p.c.H, R = p.c.R();
    for (int64_t b = 0; b < p.c.B; ++b) {
        for (int64_t t = 0; t < p.c.length(b); ++t)
            for (int64_t k = 0; k < R; ++k) sum += p.y[p.y_index(t, b, k)] * p.grad_y[p.y_index(t, b, k)];
        for (int64_t k = 0; k < R; ++k) sum += p.h_n[b * R + k] * p.grad_h_n[b * R + k];
        if (p.c.lstm())
            for (int64_t k = 0; k < H; ++k) sum += p.c_n[b * H + k] * p.grad_c_n[b * H + k];
    }
    return sum;
}

// Perturbs each of the first n elements of `param` and compares the central difference with `analytic`.
::testing::AssertionResult check_param(const std::string &name, Problem<double> &p, std::vector<double> &param,
                                       const std::vector<double> &analytic, size_t n) {
    std::vector<double> numeric(n), an(analytic.begin(), analytic.begin() + n);
    for (size_t i = 0; i < n; ++i) {
        const double saved_value = param[i];
        param[i] = saved_value + kEps;
        const double up = loss(p);
        param[i] = saved_value - kEps;
        const double down = loss(p);
        param[i] = saved_value;
        numeric[i] = (up - down) / (2 * kEps);
    }
    return all_close("d loss / d " + name + " (analytic vs central difference)", an, numeric, kRtol, kAtol);
}

struct GradcheckParam {
    Cell cell;
    int reverse;
    bool use_lengths;
    int64_t P = 0;
};

class RefGradcheck : public ::testing::TestWithParam<GradcheckParam> {};

TEST_P(RefGradcheck, BackwardMatchesFiniteDifferences) {
    const GradcheckParam gp = GetParam();
    Case c;
    c.cell = gp.cell;
    c.T = 5, c.B = 4, c.D = 3, c.H = 3;
    c.reverse = gp.reverse;
    c.use_lengths = gp.use_lengths;
    c.P = gp.P;
    c.lengths = {3, 0, 5, 1}; // unsorted, with a 0 and a T
    Problem<double> p(c, 20240611);
    ASSERT_EQ(p.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(p.backward(TSRNN_BACKEND_REF), TSRNN_OK);

    // copies: loss() overwrites the forward outputs
    const std::vector<double> grad_x = p.grad_x, grad_h0 = p.grad_h0, grad_c0 = p.grad_c0, grad_w_ih = p.grad_w_ih,
                              grad_w_hh = p.grad_w_hh, grad_b_ih = p.grad_b_ih, grad_b_hh = p.grad_b_hh,
                              grad_w_hr = p.grad_w_hr;
    const size_t BH = size_t(c.B * c.H), BR = size_t(c.B * c.R()), GH = size_t(c.G() * c.H);

    EXPECT_TRUE(check_param("x", p, p.x, grad_x, size_t(c.T * c.B * c.D)));
    EXPECT_TRUE(check_param("h0", p, p.h0, grad_h0, BR));
    if (c.lstm()) {
        EXPECT_TRUE(check_param("c0", p, p.c0, grad_c0, BH));
    }
    EXPECT_TRUE(check_param("w_ih", p, p.w_ih, grad_w_ih, GH * size_t(c.D)));
    EXPECT_TRUE(check_param("w_hh", p, p.w_hh, grad_w_hh, GH * size_t(c.R())));
    if (c.P > 0) {
        EXPECT_TRUE(check_param("w_hr", p, p.w_hr, grad_w_hr, size_t(c.P * c.H)));
    }
    EXPECT_TRUE(check_param("b_ih", p, p.b_ih, grad_b_ih, GH));
    EXPECT_TRUE(check_param("b_hh", p, p.b_hh, grad_b_hh, GH));

    // not a vacuous pass: the loss really depends on the recurrent weights
    double norm = 0;
    for (double v : grad_w_hh) norm += v * v;
    EXPECT_GT(norm, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(
    Ref, RefGradcheck,
    ::testing::Values(GradcheckParam{Cell::Lstm, 0, false}, GradcheckParam{Cell::Lstm, 1, false},
                      GradcheckParam{Cell::Lstm, 0, true}, GradcheckParam{Cell::Lstm, 1, true},
                      GradcheckParam{Cell::Lstm, 0, false, 2}, GradcheckParam{Cell::Lstm, 1, true, 2},
                      GradcheckParam{Cell::Lstm, 0, true, 1},
                      GradcheckParam{Cell::Gru0, 0, false}, GradcheckParam{Cell::Gru0, 1, false},
                      GradcheckParam{Cell::Gru0, 0, true}, GradcheckParam{Cell::Gru0, 1, true},
                      GradcheckParam{Cell::Gru1, 0, false}, GradcheckParam{Cell::Gru1, 1, false},
                      GradcheckParam{Cell::Gru1, 0, true}, GradcheckParam{Cell::Gru1, 1, true}),
    [](const ::testing::TestParamInfo<GradcheckParam> &info) {
        return std::string(cell_name(info.param.cell)) + (info.param.reverse ? "_reverse" : "_forward") +
               (info.param.use_lengths ? "_lengths" : "_full") +
               (info.param.P ? "_proj" + std::to_string(info.param.P) : "");
    });

} // namespace
} // namespace tsrnn_test
