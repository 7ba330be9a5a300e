// One step of one unit (T = B = H = D = 1), worked out by hand in the test, pins the reference's formulas:
// forward values, the saved row layout, and every gradient, for LSTM and both GRU forms, in f64 and f32.
// The LSTM and GRU (reset_after = 1) hand values are also pinned to numbers printed by PyTorch 2.13
// (nn.LSTM / nn.GRU in float64 with the same weights; loss = y + 0.5 h_n - 0.25 c_n, then .backward()).
#include <cmath>

#include "test_util.h"

namespace tsrnn_test {
namespace {

double sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

// Inputs of the tiny case. Loss = 1 * y + 0.5 * h_n - 0.25 * c_n.
constexpr double kX = 0.5, kH0 = -0.3, kC0 = 0.8;
constexpr double kWih[4] = {0.1, -0.2, 0.3, 0.4}, kWhh[4] = {-0.5, 0.6, 0.7, -0.8};
constexpr double kBih[4] = {0.01, 0.02, 0.03, 0.04}, kBhh[4] = {0.05, -0.06, 0.07, -0.08};
constexpr double kGradY = 1.0, kGradHn = 0.5, kGradCn = -0.25;

// Every value the forward and backward produce, in the API's layout.
struct Expected {
    double y, h_n, c_n;
    std::vector<double> saved;
    double grad_x, grad_h0, grad_c0;
    std::vector<double> grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh;
};

Expected lstm_by_hand() {
    double pre[4];
    for (int j = 0; j < 4; ++j) pre[j] = kWih[j] * kX + kBih[j] + kWhh[j] * kH0 + kBhh[j];
    const double i = sigmoid(pre[0]), f = sigmoid(pre[1]), g = std::tanh(pre[2]), o = sigmoid(pre[3]);
    const double c = f * kC0 + i * g, h = o * std::tanh(c);

    const double dh = kGradY + kGradHn;                                    // y and h_n are the same h
    const double dc = kGradCn + dh * o * (1 - std::tanh(c) * std::tanh(c)); // through h = o tanh(c)
    const double d_pre[4] = {dc * g * i * (1 - i), dc * kC0 * f * (1 - f), dc * i * (1 - g * g),
                             dh * std::tanh(c) * o * (1 - o)};
    Expected e;
    e.y = e.h_n = h;
    e.c_n = c;
    e.saved = {i, f, g, o, c, h};
    e.grad_x = e.grad_h0 = 0;
    for (int j = 0; j < 4; ++j) {
        e.grad_x += d_pre[j] * kWih[j];
        e.grad_h0 += d_pre[j] * kWhh[j];
        e.grad_w_ih.push_back(d_pre[j] * kX);
        e.grad_w_hh.push_back(d_pre[j] * kH0);
        e.grad_b_ih.push_back(d_pre[j]);
        e.grad_b_hh.push_back(d_pre[j]);
    }
    e.grad_c0 = dc * f;
    return e;
}

Expected gru_by_hand(bool reset_after) {
    const double r = sigmoid(kWih[0] * kX + kBih[0] + kWhh[0] * kH0 + kBhh[0]);
    const double z = sigmoid(kWih[1] * kX + kBih[1] + kWhh[1] * kH0 + kBhh[1]);
    const double hn = reset_after ? kWhh[2] * kH0 + kBhh[2] : kWhh[2] * (r * kH0) + kBhh[2];
    const double n = std::tanh(kWih[2] * kX + kBih[2] + (reset_after ? r * hn : hn));
    const double h = (1 - z) * n + z * kH0;

    const double dh = kGradY + kGradHn;
    const double dn_pre = dh * (1 - z) * (1 - n * n);
    const double dz_pre = dh * (kH0 - n) * z * (1 - z);
    double dr_pre, grad_h0, grad_w_hh_n, grad_b_hh_n;
    if (reset_after) { // n_pre = ... + r * (w_hn h0 + b_hn)
        dr_pre = dn_pre * hn * r * (1 - r);
        grad_h0 = dh * z + dr_pre * kWhh[0] + dz_pre * kWhh[1] + dn_pre * r * kWhh[2];
        grad_w_hh_n = dn_pre * r * kH0;
        grad_b_hh_n = dn_pre * r;
    } else { // n_pre = ... + w_hn (r h0) + b_hn
        const double d_rh = dn_pre * kWhh[2];
        dr_pre = d_rh * kH0 * r * (1 - r);
        grad_h0 = dh * z + dr_pre * kWhh[0] + dz_pre * kWhh[1] + d_rh * r;
        grad_w_hh_n = dn_pre * r * kH0;
        grad_b_hh_n = dn_pre;
    }
    Expected e;
    e.y = e.h_n = h;
    e.c_n = 0;
    e.saved = {r, z, n, hn, h};
    e.grad_x = dr_pre * kWih[0] + dz_pre * kWih[1] + dn_pre * kWih[2];
    e.grad_h0 = grad_h0;
    e.grad_c0 = 0;
    e.grad_w_ih = {dr_pre * kX, dz_pre * kX, dn_pre * kX};
    e.grad_w_hh = {dr_pre * kH0, dz_pre * kH0, grad_w_hh_n};
    e.grad_b_ih = {dr_pre, dz_pre, dn_pre};
    e.grad_b_hh = {dr_pre, dz_pre, grad_b_hh_n};
    return e;
}

Expected by_hand(Cell cell) { return cell == Cell::Lstm ? lstm_by_hand() : gru_by_hand(cell == Cell::Gru1); }

template <class real> void expect_reference_matches_hand(Cell cell, double tol) {
    Case c;
    c.cell = cell;
    Problem<real> p(c, 1);
    const int64_t G = c.G();
    p.x = {real(kX)};
    p.h0 = {real(kH0)};
    p.c0 = {real(kC0)};
    for (int64_t j = 0; j < G; ++j) {
        p.w_ih[j] = real(kWih[j]), p.w_hh[j] = real(kWhh[j]);
        p.b_ih[j] = real(kBih[j]), p.b_hh[j] = real(kBhh[j]);
    }
    p.grad_y = {real(kGradY)};
    p.grad_h_n = {real(kGradHn)};
    p.grad_c_n = {real(kGradCn)};
    ASSERT_EQ(p.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(p.backward(TSRNN_BACKEND_REF), TSRNN_OK);

    const Expected e = by_hand(cell);
    auto as_real = [](const std::vector<double> &v) { return std::vector<real>(v.begin(), v.end()); };
    EXPECT_TRUE(all_close("y", p.y, as_real({e.y}), tol, tol));
    EXPECT_TRUE(all_close("h_n", p.h_n, as_real({e.h_n}), tol, tol));
    if (c.lstm()) {
        EXPECT_TRUE(all_close("c_n", p.c_n, as_real({e.c_n}), tol, tol));
    }
    EXPECT_TRUE(all_close("saved", p.saved, as_real(e.saved), tol, tol));
    EXPECT_TRUE(all_close("grad_x", p.grad_x, as_real({e.grad_x}), tol, tol));
    EXPECT_TRUE(all_close("grad_h0", p.grad_h0, as_real({e.grad_h0}), tol, tol));
    if (c.lstm()) {
        EXPECT_TRUE(all_close("grad_c0", p.grad_c0, as_real({e.grad_c0}), tol, tol));
    }
    EXPECT_TRUE(all_close("grad_w_ih", p.grad_w_ih, as_real(e.grad_w_ih), tol, tol));
    EXPECT_TRUE(all_close("grad_w_hh", p.grad_w_hh, as_real(e.grad_w_hh), tol, tol));
    EXPECT_TRUE(all_close("grad_b_ih", p.grad_b_ih, as_real(e.grad_b_ih), tol, tol));
    EXPECT_TRUE(all_close("grad_b_hh", p.grad_b_hh, as_real(e.grad_b_hh), tol, tol));
}

TEST(RefHand, LstmF64) { expect_reference_matches_hand<double>(Cell::Lstm, 1e-14); }
TEST(RefHand, Gru0F64) { expect_reference_matches_hand<double>(Cell::Gru0, 1e-14); }
TEST(RefHand, Gru1F64) { expect_reference_matches_hand<double>(Cell::Gru1, 1e-14); }
TEST(RefHand, LstmF32) { expect_reference_matches_hand<float>(Cell::Lstm, 1e-6); }
TEST(RefHand, Gru0F32) { expect_reference_matches_hand<float>(Cell::Gru0, 1e-6); }
TEST(RefHand, Gru1F32) { expect_reference_matches_hand<float>(Cell::Gru1, 1e-6); }

// The hand formulas themselves against PyTorch (numbers printed by torch 2.13, float64).
TEST(RefHand, LstmHandValuesArePyTorchs) {
    const Expected e = lstm_by_hand();
    EXPECT_NEAR(e.y, 0.20620802227411814, 1e-14);
    EXPECT_NEAR(e.c_n, 0.35911401208307464, 1e-14);
    EXPECT_NEAR(e.grad_x, 0.12064741720423418, 1e-14);
    EXPECT_NEAR(e.grad_h0, 0.17505939190564818, 1e-14);
    EXPECT_NEAR(e.grad_c0, 0.2277934341811256, 1e-14);
    const double w_ih[4] = {0.002660805914868035, 0.052786504360550386, 0.15262927235339124, 0.06206536794180747};
    const double w_hh[4] = {-0.001596483548920821, -0.03167190261633023, -0.09157756341203474, -0.03723922076508448};
    const double bias[4] = {0.00532161182973607, 0.10557300872110077, 0.3052585447067825, 0.12413073588361494};
    for (int j = 0; j < 4; ++j) {
        EXPECT_NEAR(e.grad_w_ih[j], w_ih[j], 1e-14) << j;
        EXPECT_NEAR(e.grad_w_hh[j], w_hh[j], 1e-14) << j;
        EXPECT_NEAR(e.grad_b_ih[j], bias[j], 1e-14) << j;
        EXPECT_NEAR(e.grad_b_hh[j], bias[j], 1e-14) << j;
    }
}

TEST(RefHand, Gru1HandValuesArePyTorchs) {
    const Expected e = gru_by_hand(true);
    EXPECT_NEAR(e.y, -0.06791727162045286, 1e-14);
    EXPECT_NEAR(e.grad_x, 0.2843862040995904, 1e-14);
    EXPECT_NEAR(e.grad_h0, 0.8979332280565357, 1e-14);
    const double w_ih[3] = {-0.014801767729703237, -0.07322368149331848, 0.43009514174700614};
    const double w_hh[3] = {0.008881060637821942, 0.04393420889599109, -0.14570839557511664};
    const double b_ih[3] = {-0.029603535459406475, -0.14644736298663696, 0.8601902834940123};
    const double b_hh[3] = {-0.029603535459406475, -0.14644736298663696, 0.4856946519170555};
    for (int j = 0; j < 3; ++j) {
        EXPECT_NEAR(e.grad_w_ih[j], w_ih[j], 1e-14) << j;
        EXPECT_NEAR(e.grad_w_hh[j], w_hh[j], 1e-14) << j;
        EXPECT_NEAR(e.grad_b_ih[j], b_ih[j], 1e-14) << j;
        EXPECT_NEAR(e.grad_b_hh[j], b_hh[j], 1e-14) << j;
    }
}

// The two GRU forms really differ on this case (so the Gru0 test pins something of its own).
TEST(RefHand, GruFormsDiffer) {
    const Expected a = gru_by_hand(false), b = gru_by_hand(true);
    EXPECT_GT(std::fabs(a.y - b.y), 1e-3);
    EXPECT_GT(std::fabs(a.grad_h0 - b.grad_h0), 1e-3);
}

} // namespace
} // namespace tsrnn_test
