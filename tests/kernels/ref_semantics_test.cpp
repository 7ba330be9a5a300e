// The reference's semantics, each checked against a plainer call of the same reference:
//   lengths      a batch with lengths == each sequence run alone with T = its length
//   reverse      reverse = 1 == reverse = 0 on the time-flipped sequence
//   layouts      batch-first / padded strides == time-major, and nothing outside the rows is written
//   optionals    NULL h0 / c0 / biases / grad inputs == zeros; NULL saved or grad outputs change nothing else
//   broadcast    x_stride_t = 0 == a time-major x with every step equal
//   empty        T = 0 and B = 0
// These compare bit for bit where the reference does the same arithmetic in the same order.
#include <string>

#include "test_util.h"

namespace tsrnn_test {
namespace {

using Vec = std::vector<double>;

Case base_case(Cell cell, int reverse) {
    Case c;
    c.cell = cell;
    c.T = 6, c.B = 5, c.D = 3, c.H = 4;
    c.reverse = reverse;
    c.use_lengths = true;
    c.lengths = {4, 0, 6, 1, 3}; // unsorted, with a 0 and a T
    return c;
}

// Element (t, b, k) of a y-shaped / x-shaped buffer, whatever the layout.
double y_at(const Problem<double> &p, const Vec &v, int64_t t, int64_t b, int64_t k) { return v[p.y_index(t, b, k)]; }
double x_at(const Problem<double> &p, const Vec &v, int64_t t, int64_t b, int64_t k) { return v[p.x_index(t, b, k)]; }
double saved_at(const Problem<double> &p, int64_t t, int64_t b, int64_t k) {
    return p.saved[(t * p.c.B + b) * p.c.S() + k];
}

// Bitwise equality of two values.
::testing::AssertionResult same_bits(double a, double b) {
    if (std::memcmp(&a, &b, sizeof(double)) == 0) return ::testing::AssertionSuccess();
    std::ostringstream msg;
    msg.precision(17);
    msg << a << " vs " << b;
    return ::testing::AssertionFailure() << msg.str();
}
#define EXPECT_SAME(a, b, what) EXPECT_TRUE(same_bits((a), (b))) << what

class RefSemantics : public ::testing::TestWithParam<std::tuple<Cell, int>> {
  protected:
    Cell cell() const { return std::get<0>(GetParam()); }
    int reverse() const { return std::get<1>(GetParam()); }
};

TEST_P(RefSemantics, LengthsEqualSeparateRuns) {
    const Case c = base_case(cell(), reverse());
    Problem<double> batch(c, 11);
    ASSERT_EQ(batch.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(batch.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    const int64_t D = c.D, H = c.H, S = c.S();

    Vec sum_w_ih(batch.grad_w_ih.size(), 0.0), sum_w_hh(batch.grad_w_hh.size(), 0.0);
    Vec sum_b_ih(batch.grad_b_ih.size(), 0.0), sum_b_hh(batch.grad_b_hh.size(), 0.0);
    for (int64_t b = 0; b < c.B; ++b) {
        const int64_t L = c.lengths[b];
        Case one = c;
        one.T = L, one.B = 1, one.use_lengths = false;
        Problem<double> p(one, 99);
        p.w_ih = batch.w_ih, p.w_hh = batch.w_hh, p.b_ih = batch.b_ih, p.b_hh = batch.b_hh;
        for (int64_t k = 0; k < H; ++k) {
            p.h0[k] = batch.h0[b * H + k], p.c0[k] = batch.c0[b * H + k];
            p.grad_h_n[k] = batch.grad_h_n[b * H + k], p.grad_c_n[k] = batch.grad_c_n[b * H + k];
        }
        for (int64_t t = 0; t < L; ++t) {
            for (int64_t k = 0; k < D; ++k) p.x[p.x_index(t, 0, k)] = x_at(batch, batch.x, t, b, k);
            for (int64_t k = 0; k < H; ++k) p.grad_y[p.y_index(t, 0, k)] = y_at(batch, batch.grad_y, t, b, k);
        }
        ASSERT_EQ(p.forward(TSRNN_BACKEND_REF), TSRNN_OK);
        ASSERT_EQ(p.backward(TSRNN_BACKEND_REF), TSRNN_OK);

        const std::string where = "sequence " + std::to_string(b) + " (length " + std::to_string(L) + ")";
        for (int64_t t = 0; t < c.T; ++t) {
            for (int64_t k = 0; k < H; ++k) {
                const double want = t < L ? y_at(p, p.y, t, 0, k) : 0.0;
                EXPECT_SAME(batch.y[batch.y_index(t, b, k)], want, where << " y t=" << t << " k=" << k);
            }
            for (int64_t k = 0; k < S; ++k) {
                const double want = t < L ? saved_at(p, t, 0, k) : 0.0;
                EXPECT_SAME(batch.saved[(t * c.B + b) * S + k], want, where << " saved t=" << t << " k=" << k);
            }
            for (int64_t k = 0; k < D; ++k) {
                const double want = t < L ? x_at(p, p.grad_x, t, 0, k) : 0.0;
                EXPECT_SAME(batch.grad_x[batch.x_index(t, b, k)], want, where << " grad_x t=" << t << " k=" << k);
            }
        }
        for (int64_t k = 0; k < H; ++k) {
            EXPECT_SAME(batch.h_n[b * H + k], p.h_n[k], where << " h_n k=" << k);
            EXPECT_SAME(batch.grad_h0[b * H + k], p.grad_h0[k], where << " grad_h0 k=" << k);
            if (c.lstm()) {
                EXPECT_SAME(batch.c_n[b * H + k], p.c_n[k], where << " c_n k=" << k);
                EXPECT_SAME(batch.grad_c0[b * H + k], p.grad_c0[k], where << " grad_c0 k=" << k);
            }
        }
        for (size_t j = 0; j < sum_w_ih.size(); ++j) sum_w_ih[j] += p.grad_w_ih[j];
        for (size_t j = 0; j < sum_w_hh.size(); ++j) sum_w_hh[j] += p.grad_w_hh[j];
        for (size_t j = 0; j < sum_b_ih.size(); ++j) sum_b_ih[j] += p.grad_b_ih[j];
        for (size_t j = 0; j < sum_b_hh.size(); ++j) sum_b_hh[j] += p.grad_b_hh[j];
    }
    // the batch's parameter gradients are the sums of the sequences' (summed in another order: not bitwise)
    EXPECT_TRUE(all_close("grad_w_ih", batch.grad_w_ih, sum_w_ih, 1e-13, 1e-14));
    EXPECT_TRUE(all_close("grad_w_hh", batch.grad_w_hh, sum_w_hh, 1e-13, 1e-14));
    EXPECT_TRUE(all_close("grad_b_ih", batch.grad_b_ih, sum_b_ih, 1e-13, 1e-14));
    EXPECT_TRUE(all_close("grad_b_hh", batch.grad_b_hh, sum_b_hh, 1e-13, 1e-14));
}

class RefReverse : public ::testing::TestWithParam<Cell> {};

TEST_P(RefReverse, EqualsForwardOnFlippedSequences) {
    const Case c = base_case(GetParam(), 1);
    Case fc = c;
    fc.reverse = 0;
    Problem<double> rev(c, 12), fwd(fc, 12);
    const int64_t D = c.D, H = c.H, S = c.S();
    // within each sequence, step s of the forward run reads what step s of the reverse run reads: t = L-1-s
    auto flip = [&](int64_t t, int64_t b) { return c.lengths[b] - 1 - t; };
    for (int64_t b = 0; b < c.B; ++b)
        for (int64_t t = 0; t < c.lengths[b]; ++t) {
            for (int64_t k = 0; k < D; ++k) fwd.x[fwd.x_index(t, b, k)] = x_at(rev, rev.x, flip(t, b), b, k);
            for (int64_t k = 0; k < H; ++k)
                fwd.grad_y[fwd.y_index(t, b, k)] = y_at(rev, rev.grad_y, flip(t, b), b, k);
        }
    ASSERT_EQ(rev.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(rev.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(fwd.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(fwd.backward(TSRNN_BACKEND_REF), TSRNN_OK);

    for (int64_t b = 0; b < c.B; ++b)
        for (int64_t t = 0; t < c.lengths[b]; ++t) {
            const std::string where = "b=" + std::to_string(b) + " t=" + std::to_string(t);
            for (int64_t k = 0; k < H; ++k)
                EXPECT_SAME(rev.y[rev.y_index(t, b, k)], fwd.y[fwd.y_index(flip(t, b), b, k)], "y " << where);
            for (int64_t k = 0; k < S; ++k)
                EXPECT_SAME(saved_at(rev, t, b, k), saved_at(fwd, flip(t, b), b, k), "saved " << where);
            for (int64_t k = 0; k < D; ++k)
                EXPECT_SAME(rev.grad_x[rev.x_index(t, b, k)], fwd.grad_x[fwd.x_index(flip(t, b), b, k)],
                            "grad_x " << where);
        }
    EXPECT_TRUE(bitwise_equal("h_n", rev.h_n, fwd.h_n));
    EXPECT_TRUE(bitwise_equal("grad_h0", rev.grad_h0, fwd.grad_h0));
    if (c.lstm()) {
        EXPECT_TRUE(bitwise_equal("c_n", rev.c_n, fwd.c_n));
        EXPECT_TRUE(bitwise_equal("grad_c0", rev.grad_c0, fwd.grad_c0));
    }
    EXPECT_TRUE(bitwise_equal("grad_w_ih", rev.grad_w_ih, fwd.grad_w_ih));
    EXPECT_TRUE(bitwise_equal("grad_w_hh", rev.grad_w_hh, fwd.grad_w_hh));
    EXPECT_TRUE(bitwise_equal("grad_b_ih", rev.grad_b_ih, fwd.grad_b_ih));
    EXPECT_TRUE(bitwise_equal("grad_b_hh", rev.grad_b_hh, fwd.grad_b_hh));
}

TEST_P(RefSemantics, LayoutsGiveTheSameResultsAndWriteOnlyTheirRows) {
    const Case c = base_case(cell(), reverse());
    Problem<double> tm(c, 13);
    ASSERT_EQ(tm.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(tm.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    for (Layout layout : {Layout::BatchFirst, Layout::Padded}) {
        SCOPED_TRACE(layout_name(layout));
        Case lc = c;
        lc.layout = layout;
        Problem<double> p(lc, 13);
        p.h0 = tm.h0, p.c0 = tm.c0, p.w_ih = tm.w_ih, p.w_hh = tm.w_hh, p.b_ih = tm.b_ih, p.b_hh = tm.b_hh;
        p.grad_h_n = tm.grad_h_n, p.grad_c_n = tm.grad_c_n;
        for (int64_t t = 0; t < c.T; ++t)
            for (int64_t b = 0; b < c.B; ++b) {
                for (int64_t k = 0; k < c.D; ++k) p.x[p.x_index(t, b, k)] = x_at(tm, tm.x, t, b, k);
                for (int64_t k = 0; k < c.H; ++k) p.grad_y[p.y_index(t, b, k)] = y_at(tm, tm.grad_y, t, b, k);
            }
        ASSERT_EQ(p.forward(TSRNN_BACKEND_REF), TSRNN_OK);
        ASSERT_EQ(p.backward(TSRNN_BACKEND_REF), TSRNN_OK);

        // same values at the same (t, b, k); every other element of the y / grad_x buffers untouched
        Vec y_want(p.y.size(), kSentinel), gx_want(p.grad_x.size(), kSentinel);
        for (int64_t t = 0; t < c.T; ++t)
            for (int64_t b = 0; b < c.B; ++b) {
                for (int64_t k = 0; k < c.H; ++k) y_want[p.y_index(t, b, k)] = y_at(tm, tm.y, t, b, k);
                for (int64_t k = 0; k < c.D; ++k) gx_want[p.x_index(t, b, k)] = x_at(tm, tm.grad_x, t, b, k);
            }
        EXPECT_TRUE(bitwise_equal("y", p.y, y_want));
        EXPECT_TRUE(bitwise_equal("grad_x", p.grad_x, gx_want));
        EXPECT_TRUE(bitwise_equal("saved", p.saved, tm.saved));
        EXPECT_TRUE(bitwise_equal("h_n", p.h_n, tm.h_n));
        EXPECT_TRUE(bitwise_equal("c_n", p.c_n, tm.c_n));
        EXPECT_TRUE(bitwise_equal("grad_h0", p.grad_h0, tm.grad_h0));
        EXPECT_TRUE(bitwise_equal("grad_c0", p.grad_c0, tm.grad_c0));
        EXPECT_TRUE(bitwise_equal("grad_w_ih", p.grad_w_ih, tm.grad_w_ih));
        EXPECT_TRUE(bitwise_equal("grad_w_hh", p.grad_w_hh, tm.grad_w_hh));
        EXPECT_TRUE(bitwise_equal("grad_b_ih", p.grad_b_ih, tm.grad_b_ih));
        EXPECT_TRUE(bitwise_equal("grad_b_hh", p.grad_b_hh, tm.grad_b_hh));
    }
}

TEST_P(RefSemantics, NullOptionalInputsMeanZeros) {
    Case absent = base_case(cell(), reverse());
    absent.has_h0 = absent.has_c0 = absent.has_b_ih = absent.has_b_hh = false;
    absent.has_grad_y = absent.has_grad_h_n = absent.has_grad_c_n = false;
    Problem<double> a(absent, 14);
    Case zero_case = base_case(cell(), reverse());
    Problem<double> z(zero_case, 14);
    for (Vec *v : {&z.h0, &z.c0, &z.b_ih, &z.b_hh, &z.grad_h_n, &z.grad_c_n}) v->assign(v->size(), 0.0);
    for (double &v : z.grad_y)
        if (!std::isnan(v)) v = 0.0; // keep the NaN in ignored rows
    ASSERT_EQ(a.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(z.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    EXPECT_TRUE(bitwise_equal("y", a.y, z.y));
    EXPECT_TRUE(bitwise_equal("saved", a.saved, z.saved));
    EXPECT_TRUE(bitwise_equal("h_n", a.h_n, z.h_n));
    EXPECT_TRUE(bitwise_equal("c_n", a.c_n, z.c_n));

    // all gradient inputs NULL: every gradient is zero
    ASSERT_EQ(a.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(z.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    for (auto [name, va, vz] : {std::tuple{"grad_x", &a.grad_x, &z.grad_x}, {"grad_h0", &a.grad_h0, &z.grad_h0},
                                {"grad_w_ih", &a.grad_w_ih, &z.grad_w_ih}, {"grad_w_hh", &a.grad_w_hh, &z.grad_w_hh},
                                {"grad_b_ih", &a.grad_b_ih, &z.grad_b_ih}, {"grad_b_hh", &a.grad_b_hh, &z.grad_b_hh}}) {
        EXPECT_TRUE(bitwise_equal(name, *va, *vz));
        EXPECT_TRUE(all_close(name, *va, Vec(va->size(), 0.0), 0, 0));
    }

    // one gradient input at a time: NULL == zeros
    for (int which = 0; which < 3; ++which) {
        if (which == 2 && !absent.lstm()) continue;
        SCOPED_TRACE(which == 0 ? "grad_y NULL" : which == 1 ? "grad_h_n NULL" : "grad_c_n NULL");
        Case ca = base_case(cell(), reverse());
        (which == 0 ? ca.has_grad_y : which == 1 ? ca.has_grad_h_n : ca.has_grad_c_n) = false;
        Problem<double> pa(ca, 15), pz(base_case(cell(), reverse()), 15);
        if (which == 0)
            for (double &v : pz.grad_y) v = std::isnan(v) ? v : 0.0;
        if (which == 1) pz.grad_h_n.assign(pz.grad_h_n.size(), 0.0);
        if (which == 2) pz.grad_c_n.assign(pz.grad_c_n.size(), 0.0);
        for (auto *p : {&pa, &pz}) {
            ASSERT_EQ(p->forward(TSRNN_BACKEND_REF), TSRNN_OK);
            ASSERT_EQ(p->backward(TSRNN_BACKEND_REF), TSRNN_OK);
        }
        EXPECT_TRUE(bitwise_equal("grad_x", pa.grad_x, pz.grad_x));
        EXPECT_TRUE(bitwise_equal("grad_h0", pa.grad_h0, pz.grad_h0));
        EXPECT_TRUE(bitwise_equal("grad_c0", pa.grad_c0, pz.grad_c0));
        EXPECT_TRUE(bitwise_equal("grad_w_hh", pa.grad_w_hh, pz.grad_w_hh));
    }
}

TEST_P(RefSemantics, NullOptionalOutputsChangeNothingElse) {
    const Case c = base_case(cell(), reverse());
    Problem<double> full(c, 16);
    ASSERT_EQ(full.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(full.backward(TSRNN_BACKEND_REF), TSRNN_OK);

    Case no_saved = c;
    no_saved.want_saved = false;
    Problem<double> ns(no_saved, 16);
    ASSERT_EQ(ns.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    EXPECT_TRUE(bitwise_equal("y without saved", ns.y, full.y));
    EXPECT_TRUE(bitwise_equal("h_n without saved", ns.h_n, full.h_n));
    EXPECT_TRUE(bitwise_equal("c_n without saved", ns.c_n, full.c_n));
    EXPECT_TRUE(all_close("saved untouched", ns.saved, Vec(ns.saved.size(), kSentinel), 0, 0));

    // each gradient output left out in turn: the others are unchanged, the left-out buffer untouched
    const char *names[7] = {"grad_x", "grad_h0", "grad_c0", "grad_w_ih", "grad_w_hh", "grad_b_ih", "grad_b_hh"};
    for (int skip = 0; skip < 7; ++skip) {
        SCOPED_TRACE(std::string("without ") + names[skip]);
        Case sc = c;
        bool *wants[7] = {&sc.want_grad_x, &sc.want_grad_h0, &sc.want_grad_c0, &sc.want_grad_w_ih,
                          &sc.want_grad_w_hh, &sc.want_grad_b_ih, &sc.want_grad_b_hh};
        *wants[skip] = false;
        Problem<double> p(sc, 16);
        ASSERT_EQ(p.forward(TSRNN_BACKEND_REF), TSRNN_OK);
        ASSERT_EQ(p.backward(TSRNN_BACKEND_REF), TSRNN_OK);
        Vec *got[7] = {&p.grad_x, &p.grad_h0, &p.grad_c0, &p.grad_w_ih, &p.grad_w_hh, &p.grad_b_ih, &p.grad_b_hh};
        Vec *want[7] = {&full.grad_x,    &full.grad_h0,   &full.grad_c0,  &full.grad_w_ih,
                        &full.grad_w_hh, &full.grad_b_ih, &full.grad_b_hh};
        for (int i = 0; i < 7; ++i) {
            if (i == 2 && !c.lstm()) continue;
            if (i == skip)
                EXPECT_TRUE(all_close(names[i], *got[i], Vec(got[i]->size(), kSentinel), 0, 0));
            else
                EXPECT_TRUE(bitwise_equal(names[i], *got[i], *want[i]));
        }
    }
}

TEST_P(RefSemantics, BroadcastXEqualsRepeatedRows) {
    Case bc = base_case(cell(), reverse());
    bc.layout = Layout::Broadcast;
    bc.want_grad_x = false;
    Case tc = bc;
    tc.layout = Layout::TimeMajor;
    Problem<double> pb(bc, 17), pt(tc, 17);
    pt.h0 = pb.h0, pt.c0 = pb.c0, pt.w_ih = pb.w_ih, pt.w_hh = pb.w_hh, pt.b_ih = pb.b_ih, pt.b_hh = pb.b_hh;
    pt.grad_y = pb.grad_y, pt.grad_h_n = pb.grad_h_n, pt.grad_c_n = pb.grad_c_n;
    for (int64_t t = 0; t < bc.T; ++t)
        for (int64_t b = 0; b < bc.B; ++b)
            for (int64_t k = 0; k < bc.D; ++k) pt.x[pt.x_index(t, b, k)] = pb.x[b * bc.D + k];
    for (auto *p : {&pb, &pt}) {
        ASSERT_EQ(p->forward(TSRNN_BACKEND_REF), TSRNN_OK);
        ASSERT_EQ(p->backward(TSRNN_BACKEND_REF), TSRNN_OK);
    }
    EXPECT_TRUE(bitwise_equal("y", pb.y, pt.y));
    EXPECT_TRUE(bitwise_equal("saved", pb.saved, pt.saved));
    EXPECT_TRUE(bitwise_equal("h_n", pb.h_n, pt.h_n));
    EXPECT_TRUE(bitwise_equal("grad_h0", pb.grad_h0, pt.grad_h0));
    EXPECT_TRUE(bitwise_equal("grad_w_ih", pb.grad_w_ih, pt.grad_w_ih));
    EXPECT_TRUE(bitwise_equal("grad_w_hh", pb.grad_w_hh, pt.grad_w_hh));
}

TEST_P(RefSemantics, EmptySequencesAndBatches) {
    // T = 0: the state passes through, the gradient of the state passes back, parameter gradients are zero
    Case c = base_case(cell(), reverse());
    c.T = 0;
    c.lengths.assign(size_t(c.B), 0);
    Problem<double> p(c, 18);
    ASSERT_EQ(p.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(p.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    EXPECT_TRUE(bitwise_equal("h_n", p.h_n, p.h0));
    EXPECT_TRUE(bitwise_equal("grad_h0", p.grad_h0, p.grad_h_n));
    if (c.lstm()) {
        EXPECT_TRUE(bitwise_equal("c_n", p.c_n, p.c0));
        EXPECT_TRUE(bitwise_equal("grad_c0", p.grad_c0, p.grad_c_n));
    }
    EXPECT_TRUE(all_close("grad_w_ih", p.grad_w_ih, Vec(p.grad_w_ih.size(), 0.0), 0, 0));
    EXPECT_TRUE(all_close("grad_b_hh", p.grad_b_hh, Vec(p.grad_b_hh.size(), 0.0), 0, 0));

    // B = 0: nothing to do, but the parameter gradients are still written (as zeros)
    c = base_case(cell(), reverse());
    c.B = 0;
    c.use_lengths = false;
    Problem<double> q(c, 19);
    ASSERT_EQ(q.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(q.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    EXPECT_TRUE(all_close("grad_w_hh", q.grad_w_hh, Vec(q.grad_w_hh.size(), 0.0), 0, 0));
    EXPECT_TRUE(all_close("grad_b_ih", q.grad_b_ih, Vec(q.grad_b_ih.size(), 0.0), 0, 0));
}

// f32 and f64 references compute the same function: they agree to f32 accuracy on a longer sequence.
TEST_P(RefSemantics, F32AgreesWithF64) {
    Case c = base_case(cell(), reverse());
    c.T = 40, c.B = 3, c.D = 5, c.H = 8, c.lengths = {40, 0, 23};
    Problem<float> pf(c, 20);
    Problem<double> pd(c, 20);
    for (auto &v : pd.x) v = double(float(v)); // the same (f32-representable) inputs in both
    for (Vec *v : {&pd.h0, &pd.c0, &pd.w_ih, &pd.w_hh, &pd.b_ih, &pd.b_hh, &pd.grad_y, &pd.grad_h_n, &pd.grad_c_n})
        for (auto &e : *v) e = double(float(e));
    ASSERT_EQ(pf.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(pf.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(pd.forward(TSRNN_BACKEND_REF), TSRNN_OK);
    ASSERT_EQ(pd.backward(TSRNN_BACKEND_REF), TSRNN_OK);
    auto widen = [](const std::vector<float> &v) { return Vec(v.begin(), v.end()); };
    EXPECT_TRUE(all_close("y", widen(pf.y), pd.y, 1e-5, 1e-6, c.H));
    EXPECT_TRUE(all_close("saved", widen(pf.saved), pd.saved, 1e-5, 1e-6, c.S()));
    EXPECT_TRUE(all_close("grad_x", widen(pf.grad_x), pd.grad_x, 1e-4, 1e-5, c.D));
    EXPECT_TRUE(all_close("grad_w_hh", widen(pf.grad_w_hh), pd.grad_w_hh, 1e-4, 1e-5, c.H));
    EXPECT_TRUE(all_close("grad_h0", widen(pf.grad_h0), pd.grad_h0, 1e-4, 1e-5, c.H));
}

INSTANTIATE_TEST_SUITE_P(Ref, RefReverse, ::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                         [](const ::testing::TestParamInfo<Cell> &info) { return std::string(cell_name(info.param)); });

INSTANTIATE_TEST_SUITE_P(Ref, RefSemantics,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(0, 1)),
                         [](const ::testing::TestParamInfo<std::tuple<Cell, int>> &info) {
                             return std::string(cell_name(std::get<0>(info.param))) +
                                    (std::get<1>(info.param) ? "_reverse" : "_forward");
                         });

} // namespace
} // namespace tsrnn_test
