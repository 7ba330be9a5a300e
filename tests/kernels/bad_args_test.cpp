// Every status of tsrnn.h reached through the public API, for each of the 16 reference and CPU functions:
// NULL desc / required pointers, sizes out of range or overflowing, negative or overlapping strides, lengths out
// of range, a short / misaligned / missing workspace, num_threads, flags not 0 / 1; the order the checks run
// in; tsrnn_status_string for every value; tsrnn_workspace_size and tsrnn_saved_row.
#include <string>

#include "bad_calls.h"
#include "test_util.h"

namespace tsrnn_test {
namespace {

// One of the 16 functions: cell x pass x backend x dtype.
struct Target {
    Cell cell; // Gru1 stands for GRU (reset_after = 1 in the valid call)
    tsrnn_pass pass;
    tsrnn_backend backend;
    tsrnn_dtype dtype;
};

std::string target_string(const Target &t) {
    return std::string(t.backend == TSRNN_BACKEND_REF ? "ref_" : "cpu_") + (t.cell == Cell::Lstm ? "lstm_" : "gru_") +
           (t.pass == TSRNN_PASS_FWD ? "fwd_" : "bwd_") + (t.dtype == TSRNN_F32 ? "f32" : "f64");
}
std::string target_name(const ::testing::TestParamInfo<Target> &info) { return target_string(info.param); }
void PrintTo(const Target &t, std::ostream *os) { *os << target_string(t); }

std::vector<Target> all_targets() {
    std::vector<Target> out;
    for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU})
        for (Cell cell : {Cell::Lstm, Cell::Gru1})
            for (tsrnn_pass pass : {TSRNN_PASS_FWD, TSRNN_PASS_BWD})
                for (tsrnn_dtype dtype : {TSRNN_F32, TSRNN_F64}) out.push_back(Target{cell, pass, backend, dtype});
    return out;
}

tsrnn_status query(const Target &tg, const tsrnn_desc &desc, size_t *bytes) {
    return tsrnn_workspace_size(cell_of(tg.cell), tg.pass, tg.backend, tg.dtype, &desc, bytes);
}

// Makes the call after `mutate` has changed it. The workspace is sized for the desc the call will see (what the
// CPU kernels need may depend on num_threads, reset_after, ...), or for the valid desc when the query refuses
// the changed one.
template <class real, class Mutate> tsrnn_status run(const Target &tg, Mutate &&mutate) {
    size_t need = 0;
    {
        CallUnderTest<real> valid(tg.cell, 0, 0);
        EXPECT_EQ(query(tg, valid.desc, &need), TSRNN_OK);
        CallUnderTest<real> probe(tg.cell, 0, need);
        mutate(probe);
        size_t changed = 0;
        if (query(tg, probe.desc, &changed) == TSRNN_OK) need = changed;
    }
    CallUnderTest<real> call(tg.cell, 0, need);
    mutate(call);
    if (tg.pass == TSRNN_PASS_FWD) return call_fwd(cell_of(tg.cell), tg.backend, call.fwd);
    return call_bwd(cell_of(tg.cell), tg.backend, call.bwd);
}

template <class Mutate> tsrnn_status run_any(const Target &tg, Mutate &&mutate) {
    return tg.dtype == TSRNN_F32 ? run<float>(tg, mutate) : run<double>(tg, mutate);
}

// Applies the same change to the forward and the backward arguments.
#define BOTH(field, value) [&](auto &call) { call.fwd.field = value, call.bwd.field = value; }
#define DESC(stmt) [&](auto &call) { auto &d = call.desc; stmt; }

class BadArgs : public ::testing::TestWithParam<Target> {
  protected:
    const Target &tg() const { return GetParam(); }
    bool fwd() const { return tg().pass == TSRNN_PASS_FWD; }
    bool lstm() const { return tg().cell == Cell::Lstm; }
    bool cpu() const { return tg().backend == TSRNN_BACKEND_CPU; }
};

TEST_P(BadArgs, ValidCallSucceeds) { EXPECT_EQ(run_any(tg(), [](auto &) {}), TSRNN_OK); }

TEST_P(BadArgs, NullDescAndRequiredPointers) {
    EXPECT_EQ(run_any(tg(), BOTH(desc, nullptr)), TSRNN_ERR_NULL);
    EXPECT_EQ(run_any(tg(), BOTH(x, nullptr)), TSRNN_ERR_NULL);
    EXPECT_EQ(run_any(tg(), BOTH(w_ih, nullptr)), TSRNN_ERR_NULL);
    EXPECT_EQ(run_any(tg(), BOTH(w_hh, nullptr)), TSRNN_ERR_NULL);
    if (fwd()) {
        EXPECT_EQ(run_any(tg(), [](auto &call) { call.fwd.y = nullptr; }), TSRNN_ERR_NULL);
        EXPECT_EQ(run_any(tg(), [](auto &call) { call.fwd.h_n = nullptr; }), TSRNN_ERR_NULL);
        if (lstm()) {
            EXPECT_EQ(run_any(tg(), [](auto &call) { call.fwd.c_n = nullptr; }), TSRNN_ERR_NULL);
        }
    } else {
        EXPECT_EQ(run_any(tg(), [](auto &call) { call.bwd.saved = nullptr; }), TSRNN_ERR_NULL);
    }
}

TEST_P(BadArgs, OptionalPointersMayBeNull) {
    EXPECT_EQ(run_any(tg(), BOTH(h0, nullptr)), TSRNN_OK);
    EXPECT_EQ(run_any(tg(), BOTH(c0, nullptr)), TSRNN_OK);
    if (fwd()) {
        EXPECT_EQ(run_any(tg(), [](auto &call) {
                      call.fwd.b_ih = call.fwd.b_hh = nullptr;
                      call.fwd.saved = nullptr;
                  }),
                  TSRNN_OK);
    } else {
        EXPECT_EQ(run_any(tg(), [](auto &call) {
                      auto &a = call.bwd;
                      a.grad_y = a.grad_h_n = a.grad_c_n = nullptr;
                      a.grad_x = a.grad_h0 = a.grad_c0 = nullptr;
                      a.grad_w_ih = a.grad_w_hh = a.grad_b_ih = a.grad_b_hh = nullptr;
                  }),
                  TSRNN_OK);
    }
}

TEST_P(BadArgs, SizesOutOfRange) {
    EXPECT_EQ(run_any(tg(), DESC(d.T = -1)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.B = -1)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.D = 0)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.H = 0)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.D = -5)), TSRNN_ERR_SHAPE);
}

// P: 0 or 1 <= P < H for LSTM (else TSRNN_ERR_SHAPE), 0 for GRU (else TSRNN_ERR_ARGUMENT); w_hr is required
// exactly when P > 0, and neither w_hr nor grad_w_hr may be given with P = 0.
TEST_P(BadArgs, Projection) {
    if (!lstm()) {
        EXPECT_EQ(run_any(tg(), DESC(d.P = 1)), TSRNN_ERR_ARGUMENT);
        return;
    }
    EXPECT_EQ(run_any(tg(), DESC(d.P = -1)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.P = d.H)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.P = d.H + 4)), TSRNN_ERR_SHAPE);
    // P = 2 with every pointer sized for P = 0 would be a bad call in other ways; only w_hr's presence matters
    // here, and the NULL check comes before any data is read.
    EXPECT_EQ(run_any(tg(), DESC(d.P = 2)), TSRNN_ERR_NULL);
    EXPECT_EQ(run_any(tg(), BOTH(w_hr, call.p.w_ih.data())), TSRNN_ERR_ARGUMENT);
    if (!fwd()) {
        EXPECT_EQ(run_any(tg(), [](auto &call) { call.bwd.grad_w_hr = call.p.grad_w_ih.data(); }),
                  TSRNN_ERR_ARGUMENT);
    }
}

TEST_P(BadArgs, SizesThatOverflow) {
    // element counts past int64 (or past what an f64 byte count can hold); the call must refuse, not compute
    const int64_t big = int64_t(1) << 40;
    EXPECT_EQ(run_any(tg(), DESC(d.T = big; d.B = big; d.lengths = nullptr)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.H = big)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.D = int64_t(1) << 61)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.T = INT64_MAX; d.lengths = nullptr)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.x_stride_t = INT64_MAX / 2)), TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), DESC(d.y_stride_b = INT64_MAX)), TSRNN_ERR_SHAPE);
}

TEST_P(BadArgs, NegativeAndOverlappingStrides) {
    EXPECT_EQ(run_any(tg(), DESC(d.x_stride_t = -1)), TSRNN_ERR_STRIDE);
    EXPECT_EQ(run_any(tg(), DESC(d.x_stride_b = -2)), TSRNN_ERR_STRIDE);
    EXPECT_EQ(run_any(tg(), DESC(d.y_stride_t = -6)), TSRNN_ERR_STRIDE);
    EXPECT_EQ(run_any(tg(), DESC(d.y_stride_b = -3)), TSRNN_ERR_STRIDE);
    // output rows of y would overlap
    EXPECT_EQ(run_any(tg(), DESC(d.y_stride_b = d.H - 1)), TSRNN_ERR_STRIDE);
    EXPECT_EQ(run_any(tg(), DESC(d.y_stride_t = 0)), TSRNN_ERR_STRIDE);
    EXPECT_EQ(run_any(tg(), DESC(d.y_stride_t = d.H; d.y_stride_b = d.H)), TSRNN_ERR_STRIDE);
}

TEST_P(BadArgs, BroadcastOrOverlappingXIsAnInputOnly) {
    // x rows may repeat or overlap: fine for reading. grad_x has x's strides, so it cannot be wanted then.
    const tsrnn_status with_grad_x = fwd() ? TSRNN_OK : TSRNN_ERR_STRIDE;
    EXPECT_EQ(run_any(tg(), DESC(d.x_stride_t = 0)), with_grad_x);
    EXPECT_EQ(run_any(tg(), DESC(d.x_stride_b = 1)), with_grad_x);
    if (!fwd()) {
        EXPECT_EQ(run_any(tg(), [](auto &call) {
                      call.desc.x_stride_t = 0;
                      call.bwd.grad_x = nullptr;
                  }),
                  TSRNN_OK);
    }
}

TEST_P(BadArgs, LengthsOutOfRange) {
    EXPECT_EQ(run_any(tg(), [](auto &call) { call.lengths[0] = -1; }), TSRNN_ERR_LENGTHS);
    EXPECT_EQ(run_any(tg(), [](auto &call) { call.lengths[1] = 4; }), TSRNN_ERR_LENGTHS); // T + 1
    EXPECT_EQ(run_any(tg(), [](auto &call) { call.lengths[0] = INT64_MIN; }), TSRNN_ERR_LENGTHS);
    EXPECT_EQ(run_any(tg(), [](auto &call) { call.lengths[0] = 0, call.lengths[1] = 3; }), TSRNN_OK);
}

TEST_P(BadArgs, Workspace) {
    size_t need = 0;
    run_any(tg(), [&](auto &call) { need = call.need; });
    if (need == 0) {
        // nothing needed: no workspace at all is fine
        EXPECT_EQ(run_any(tg(), BOTH(workspace, nullptr)), TSRNN_OK);
        return;
    }
    EXPECT_EQ(run_any(tg(), BOTH(workspace_bytes, call.need - 1)), TSRNN_ERR_WORKSPACE);
    EXPECT_EQ(run_any(tg(), BOTH(workspace_bytes, 0)), TSRNN_ERR_WORKSPACE);
    EXPECT_EQ(run_any(tg(), BOTH(workspace, nullptr)), TSRNN_ERR_WORKSPACE);
    auto shift = [](size_t bytes) {
        return [bytes](auto &call) {
            void *moved = static_cast<char *>(call.fwd.workspace) + bytes;
            call.fwd.workspace = call.bwd.workspace = moved;
        };
    };
    EXPECT_EQ(run_any(tg(), shift(8)), TSRNN_ERR_WORKSPACE);
    EXPECT_EQ(run_any(tg(), shift(TSRNN_WORKSPACE_ALIGN / 2)), TSRNN_ERR_WORKSPACE);
    EXPECT_EQ(run_any(tg(), shift(TSRNN_WORKSPACE_ALIGN)), TSRNN_OK);
    // more than needed is fine
    EXPECT_EQ(run_any(tg(), BOTH(workspace_bytes, call.need + TSRNN_WORKSPACE_ALIGN)), TSRNN_OK);
}

TEST_P(BadArgs, NumThreads) {
    // the CPU kernels need at least one thread; the reference ignores num_threads
    const tsrnn_status want = cpu() ? TSRNN_ERR_THREADS : TSRNN_OK;
    EXPECT_EQ(run_any(tg(), DESC(d.num_threads = 0)), want);
    EXPECT_EQ(run_any(tg(), DESC(d.num_threads = -3)), want);
    EXPECT_EQ(run_any(tg(), DESC(d.num_threads = 64)), TSRNN_OK);
}

TEST_P(BadArgs, FlagsMustBeZeroOrOne) {
    EXPECT_EQ(run_any(tg(), DESC(d.reverse = 2)), TSRNN_ERR_ARGUMENT);
    EXPECT_EQ(run_any(tg(), DESC(d.reverse = -1)), TSRNN_ERR_ARGUMENT);
    EXPECT_EQ(run_any(tg(), DESC(d.reverse = 1)), TSRNN_OK);
    // reset_after is GRU's; LSTM ignores it
    EXPECT_EQ(run_any(tg(), DESC(d.reset_after = 2)), lstm() ? TSRNN_OK : TSRNN_ERR_ARGUMENT);
    EXPECT_EQ(run_any(tg(), DESC(d.reset_after = -1)), lstm() ? TSRNN_OK : TSRNN_ERR_ARGUMENT);
    EXPECT_EQ(run_any(tg(), DESC(d.reset_after = 0)), TSRNN_OK);
}

// With several things wrong, the first check in the order desc, required pointers, grad_x layout, lengths,
// workspace decides.
TEST_P(BadArgs, ChecksRunInOrder) {
    EXPECT_EQ(run_any(tg(), [](auto &call) {
                  call.desc.H = 0;
                  call.fwd.x = call.bwd.x = nullptr;
              }),
              TSRNN_ERR_SHAPE);
    EXPECT_EQ(run_any(tg(), [](auto &call) {
                  call.fwd.w_hh = call.bwd.w_hh = nullptr;
                  call.lengths[0] = -1;
                  call.fwd.workspace = call.bwd.workspace = nullptr;
              }),
              TSRNN_ERR_NULL);
    if (!fwd()) {
        EXPECT_EQ(run_any(tg(), [](auto &call) {
                      call.desc.x_stride_t = 0;
                      call.lengths[0] = -1;
                  }),
                  TSRNN_ERR_STRIDE);
    }
    size_t need = 0;
    run_any(tg(), [&](auto &call) { need = call.need; });
    if (need > 0) {
        EXPECT_EQ(run_any(tg(), [](auto &call) {
                      call.lengths[0] = 9;
                      call.fwd.workspace = call.bwd.workspace = nullptr;
                  }),
                  TSRNN_ERR_LENGTHS);
    }
}

INSTANTIATE_TEST_SUITE_P(All, BadArgs, ::testing::ValuesIn(all_targets()), target_name);

TEST(StatusString, EveryStatusHasItsOwnText) {
    const tsrnn_status all[] = {TSRNN_OK,           TSRNN_ERR_NULL,    TSRNN_ERR_SHAPE,    TSRNN_ERR_STRIDE,
                                TSRNN_ERR_LENGTHS,  TSRNN_ERR_WORKSPACE, TSRNN_ERR_THREADS, TSRNN_ERR_ARGUMENT,
                                TSRNN_ERR_CUDA,     TSRNN_ERR_UNSUPPORTED};
    std::vector<std::string> seen;
    for (tsrnn_status s : all) {
        const char *text = tsrnn_status_string(s);
        ASSERT_NE(text, nullptr) << int(s);
        EXPECT_GT(std::strlen(text), 0u) << int(s);
        EXPECT_STRNE(text, "unknown tsrnn status") << int(s);
        for (const std::string &other : seen) EXPECT_NE(other, text) << int(s);
        seen.emplace_back(text);
    }
    EXPECT_STREQ(tsrnn_status_string(TSRNN_OK), "ok");
}

TEST(StatusString, UnknownValues) {
    EXPECT_STREQ(tsrnn_status_string(static_cast<tsrnn_status>(10)), "unknown tsrnn status");
    EXPECT_STREQ(tsrnn_status_string(static_cast<tsrnn_status>(-1)), "unknown tsrnn status");
    EXPECT_STREQ(tsrnn_status_string(static_cast<tsrnn_status>(12345)), "unknown tsrnn status");
}

tsrnn_desc valid_desc() {
    tsrnn_desc d{};
    d.T = 4, d.B = 3, d.D = 5, d.H = 6;
    d.x_stride_t = d.B * d.D, d.x_stride_b = d.D, d.y_stride_t = d.B * d.H, d.y_stride_b = d.H;
    d.reset_after = 1, d.num_threads = 1;
    return d;
}

TEST(WorkspaceSize, BadQueries) {
    const tsrnn_desc d = valid_desc();
    size_t bytes = 123;
    EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_LSTM, TSRNN_PASS_FWD, TSRNN_BACKEND_REF, TSRNN_F32, &d, nullptr),
              TSRNN_ERR_NULL);
    EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_LSTM, TSRNN_PASS_FWD, TSRNN_BACKEND_REF, TSRNN_F32, nullptr, &bytes),
              TSRNN_ERR_NULL);
    EXPECT_EQ(bytes, 0u) << "bytes is zeroed on error";
    const auto bad_cell = static_cast<tsrnn_cell>(2);
    const auto bad_pass = static_cast<tsrnn_pass>(2);
    const auto bad_backend = static_cast<tsrnn_backend>(7);
    EXPECT_EQ(tsrnn_workspace_size(bad_cell, TSRNN_PASS_FWD, TSRNN_BACKEND_REF, TSRNN_F32, &d, &bytes),
              TSRNN_ERR_ARGUMENT);
    EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_GRU, bad_pass, TSRNN_BACKEND_REF, TSRNN_F32, &d, &bytes),
              TSRNN_ERR_ARGUMENT);
    EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_GRU, TSRNN_PASS_BWD, bad_backend, TSRNN_F32, &d, &bytes),
              TSRNN_ERR_ARGUMENT);
    EXPECT_EQ(tsrnn_workspace_size(TSRNN_CELL_GRU, TSRNN_PASS_BWD, TSRNN_BACKEND_CPU, static_cast<tsrnn_dtype>(2), &d,
                                   &bytes),
              TSRNN_ERR_ARGUMENT);
}

TEST(WorkspaceSize, ChecksTheDescLikeTheFunctions) {
    for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU}) {
        SCOPED_TRACE(backend == TSRNN_BACKEND_REF ? "ref" : "cpu");
        for (tsrnn_cell cell : {TSRNN_CELL_LSTM, TSRNN_CELL_GRU}) {
            size_t bytes = 123;
            tsrnn_desc d = valid_desc();
            d.H = 0;
            EXPECT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_FWD, backend, TSRNN_F32, &d, &bytes), TSRNN_ERR_SHAPE);
            EXPECT_EQ(bytes, 0u);
            d = valid_desc();
            d.y_stride_b = -1;
            EXPECT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_BWD, backend, TSRNN_F64, &d, &bytes), TSRNN_ERR_STRIDE);
            d = valid_desc();
            d.reverse = 3;
            EXPECT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_FWD, backend, TSRNN_F64, &d, &bytes), TSRNN_ERR_ARGUMENT);
            d = valid_desc();
            d.num_threads = 0;
            EXPECT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_FWD, backend, TSRNN_F32, &d, &bytes),
                      backend == TSRNN_BACKEND_CPU ? TSRNN_ERR_THREADS : TSRNN_OK);
            // lengths' values are not looked at
            const int64_t bad_lengths[3] = {-1, 99, 2};
            d = valid_desc();
            d.lengths = bad_lengths;
            EXPECT_EQ(tsrnn_workspace_size(cell, TSRNN_PASS_BWD, backend, TSRNN_F32, &d, &bytes), TSRNN_OK);
        }
    }
}

// The reference does need scratch, so BadArgs.Workspace exercises the workspace checks on it.
TEST(WorkspaceSize, ReferenceNeedsAWorkspace) {
    const tsrnn_desc d = valid_desc();
    for (tsrnn_cell cell : {TSRNN_CELL_LSTM, TSRNN_CELL_GRU})
        for (tsrnn_pass pass : {TSRNN_PASS_FWD, TSRNN_PASS_BWD}) {
            for (tsrnn_dtype dtype : {TSRNN_F32, TSRNN_F64}) {
                size_t bytes = 0;
                ASSERT_EQ(tsrnn_workspace_size(cell, pass, TSRNN_BACKEND_REF, dtype, &d, &bytes), TSRNN_OK);
                EXPECT_GT(bytes, 0u);
            }
        }
}

TEST(SavedRow, Widths) {
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_LSTM, 7, 0), 42);
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_GRU, 7, 0), 35);
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_LSTM, 1, 0), 6);
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_GRU, 1, 0), 5);
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_LSTM, 7, 3), 45); // [i f g o | c | m] 6H, then h (P)
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_LSTM, 7, 6), 48);
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_LSTM, 7, 7), -1); // P < H
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_LSTM, 7, -1), -1);
    EXPECT_EQ(tsrnn_saved_row(TSRNN_CELL_GRU, 7, 2), -1); // GRU has no projection
    EXPECT_EQ(tsrnn_saved_row(static_cast<tsrnn_cell>(5), 7, 0), -1);
}

} // namespace
} // namespace tsrnn_test
