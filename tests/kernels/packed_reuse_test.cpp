// The CPU forward's packed-weight reuse (kernels/cpu/cpu_impl.h, tsrnn_desc.workspace_kept): a forward given the
// workspace of an earlier call skips packing only when that call packed bitwise the same weights of the same
// shape, so every call's results are bitwise those of a fresh workspace, whatever ran in the buffer before: the
// same weights, weights changed in place by one element, another problem, or a backward.
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "../../kernels/cpu/cpu_impl.h"
#include "test_util.h"

namespace tsrnn_test {
namespace {

struct ReuseParam {
    Cell cell;
    int64_t P;
};

std::string reuse_name(const ::testing::TestParamInfo<std::tuple<ReuseParam, bool>> &info) {
    const ReuseParam p = std::get<0>(info.param);
    return std::string(cell_name(p.cell)) + (p.P > 0 ? "_proj" : "") + (std::get<1>(info.param) ? "_f64" : "_f32");
}

Case reuse_case(const ReuseParam &p) {
    Case c;
    c.cell = p.cell;
    c.T = 3, c.B = 2, c.D = 5, c.H = 19, c.P = p.P; // H not a multiple of any vector length: padded blocks
    c.num_threads = 2;
    return c;
}

template <class real> size_t bytes_of(Problem<real> &p, tsrnn_pass pass) {
    size_t bytes = 0;
    EXPECT_EQ(tsrnn_workspace_size(cell_of(p.c.cell), pass, TSRNN_BACKEND_CPU, Fns<real>::dtype, &p.desc, &bytes),
              TSRNN_OK);
    return bytes;
}

// The outputs of a forward in a fresh workspace (workspace_kept 0).
template <class real> std::vector<std::vector<real>> fresh(Problem<real> &p) {
    p.reset_fwd_outputs();
    p.desc.workspace_kept = 0;
    EXPECT_EQ(p.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
    return {p.y, p.h_n, p.c_n, p.saved};
}

// The outputs of a forward in ws, told that ws is kept.
template <class real> std::vector<std::vector<real>> kept(Problem<real> &p, Workspace &ws) {
    p.reset_fwd_outputs();
    p.desc.workspace_kept = 1;
    EXPECT_EQ(call_fwd(cell_of(p.c.cell), TSRNN_BACKEND_CPU, p.fwd_args(ws.data(), ws.bytes())), TSRNN_OK);
    p.desc.workspace_kept = 0;
    EXPECT_TRUE(ws.guard_intact());
    return {p.y, p.h_n, p.c_n, p.saved};
}

// Whether ws starts with a valid key (cpu_impl.h's tsrnn__cpu_memo, at offset 0 of every layout).
template <class real> bool key_valid(const Problem<real> &p, const Workspace &ws) {
    tsrnn__cpu_layout lay;
    tsrnn__cpu_layout_of(cell_of(p.c.cell), TSRNN_PASS_FWD, Fns<real>::dtype, &p.desc, &lay);
    tsrnn__cpu_memo key;
    std::memcpy(&key, static_cast<const char *>(ws.data()) + lay.memo, sizeof(key));
    return key.magic == TSRNN_CPU_MEMO_MAGIC;
}

template <class real>
::testing::AssertionResult same(const std::string &what, const std::vector<std::vector<real>> &a,
                                const std::vector<std::vector<real>> &b) {
    static const char *names[] = {"y", "h_n", "c_n", "saved"};
    for (size_t i = 0; i < a.size(); ++i) {
        auto r = bitwise_equal(what + ": " + names[i], a[i], b[i]);
        if (!r) return r;
    }
    return ::testing::AssertionSuccess();
}

template <class real> void run_reuse(const ReuseParam &param) {
    const Case c = reuse_case(param);
    Problem<real> p(c, 11), q(c, 12); // same shape, other weights
    Workspace ws(std::max(bytes_of(p, TSRNN_PASS_FWD), bytes_of(p, TSRNN_PASS_BWD)));

    const auto want_p = fresh(p), want_q = fresh(q);
    EXPECT_TRUE(same("first call", kept(p, ws), want_p)); // ws is new: whatever it holds must not be trusted
    EXPECT_TRUE(same("same weights again", kept(p, ws), want_p));
    EXPECT_TRUE(same("another problem's weights", kept(q, ws), want_q));
    EXPECT_TRUE(same("back to the first", kept(p, ws), want_p));

    // a backward in the same buffer overwrites packed weights, and forgets the key first: also a small one, whose
    // buffers may end before the copy of the weights (which then could not tell)
    Case small = c;
    small.T = 1, small.B = 1;
    Problem<real> s(small, 13);
    fresh(s);
    EXPECT_TRUE(key_valid(p, ws));
    ASSERT_EQ(call_bwd(cell_of(c.cell), TSRNN_BACKEND_CPU, s.bwd_args(ws.data(), ws.bytes())), TSRNN_OK);
    EXPECT_FALSE(key_valid(p, ws)) << "a backward left the forward's key";
    EXPECT_TRUE(same("after a backward", kept(p, ws), want_p));
    EXPECT_TRUE(key_valid(p, ws));
    ASSERT_EQ(call_bwd(cell_of(c.cell), TSRNN_BACKEND_CPU, p.bwd_args(ws.data(), ws.bytes())), TSRNN_OK);
    EXPECT_TRUE(same("after its own backward", kept(p, ws), want_p));

    // one element changed in place, first or last, of every weight: packed anew
    std::vector<std::pair<const char *, std::vector<real> *>> weights = {
        {"w_ih", &p.w_ih}, {"w_hh", &p.w_hh}, {"b_ih", &p.b_ih}, {"b_hh", &p.b_hh}};
    if (c.P > 0) weights.push_back({"w_hr", &p.w_hr});
    for (auto &[name, w] : weights) {
        for (const size_t at : {size_t(0), w->size() - 1}) {
            EXPECT_TRUE(same(std::string("before changing ") + name, kept(p, ws), fresh(p)));
            (*w)[at] += real(0.25);
            const auto want = fresh(p);
            EXPECT_FALSE(same("the change shows", want, want_p)) << name << "[" << at << "] changed nothing";
            EXPECT_TRUE(same(std::string(name) + "[" + std::to_string(at) + "] changed", kept(p, ws), want));
        }
    }
    // a forward whose weights are too large to copy leaves no key
    if (c.cell == Cell::Lstm && c.P == 0 && sizeof(real) == 4) {
        Case wide = c;
        wide.T = 1, wide.B = 1, wide.D = wide.H = 512; // 4 * 512 * 1024 floats: past TSRNN_CPU_MEMO_MAX_BYTES
        Problem<real> w(wide, 14);
        Workspace big(bytes_of(w, TSRNN_PASS_FWD));
        ASSERT_GE(big.bytes(), ws.bytes());
        kept(p, big);
        EXPECT_TRUE(key_valid(p, big));
        EXPECT_TRUE(same("a wide call", kept(w, big), fresh(w)));
        EXPECT_FALSE(key_valid(p, big)) << "a forward without a copy of its weights left a key";
        EXPECT_TRUE(same("after a wide call", kept(p, big), fresh(p)));
    }
    // a bias dropped: the same weight bytes otherwise
    Problem<real> q2(c, 12);
    EXPECT_TRUE(same("its weights again", kept(q2, ws), want_q));
    q2.c.has_b_hh = false;
    const auto want_q2 = fresh(q2);
    EXPECT_TRUE(same("without b_hh", kept(q2, ws), want_q2));
}

class PackedReuse : public ::testing::TestWithParam<std::tuple<ReuseParam, bool>> {};

TEST_P(PackedReuse, ResultsAreAFreshWorkspaces) {
    if (std::get<1>(GetParam()))
        run_reuse<double>(std::get<0>(GetParam()));
    else
        run_reuse<float>(std::get<0>(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Cpu, PackedReuse,
                         ::testing::Combine(::testing::Values(ReuseParam{Cell::Lstm, 0}, ReuseParam{Cell::Lstm, 7},
                                                              ReuseParam{Cell::Gru0, 0}, ReuseParam{Cell::Gru1, 0}),
                                            ::testing::Bool()),
                         reuse_name);

} // namespace
} // namespace tsrnn_test
