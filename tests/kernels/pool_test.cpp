// The caller's thread pool (tsrnn_desc.parallel): with any pool that keeps tsrnn.h's contract (every piece run
// once, in any order, concurrently or one by one) the CPU kernels give bit-identical results to their own
// threads; the pool is really used when a call has more than one piece; and a pool that reports a failure makes
// the call fail with TSRNN_ERR_THREADS without touching an input.
#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "test_util.h"

namespace tsrnn_test {
namespace {

// What a pool saw: calls made, pieces run, the largest count asked for.
struct PoolLog {
    std::atomic<int> calls{0}, pieces{0}, max_count{0};
    void record(int count) {
        ++calls;
        int seen = max_count.load();
        while (count > seen && !max_count.compare_exchange_weak(seen, count)) {
        }
    }
};

int serial_pool(void *pool, int count, tsrnn_task task, void *ctx) {
    PoolLog *log = static_cast<PoolLog *>(pool);
    log->record(count);
    for (int i = 0; i < count; ++i, ++log->pieces) task(ctx, i, count);
    return 0;
}

int reverse_pool(void *pool, int count, tsrnn_task task, void *ctx) {
    PoolLog *log = static_cast<PoolLog *>(pool);
    log->record(count);
    for (int i = count - 1; i >= 0; --i, ++log->pieces) task(ctx, i, count);
    return 0;
}

// Every piece on its own thread, all started before any is joined (the most concurrency a pool can give).
int thread_pool(void *pool, int count, tsrnn_task task, void *ctx) {
    PoolLog *log = static_cast<PoolLog *>(pool);
    log->record(count);
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i)
        threads.emplace_back([&, i] {
            task(ctx, i, count);
            ++log->pieces;
        });
    for (auto &t : threads) t.join();
    return 0;
}

// Runs nothing and reports a failure.
int failing_pool(void *pool, int count, tsrnn_task, void *) {
    static_cast<PoolLog *>(pool)->record(count);
    return 1;
}

enum class Pool { Serial, Reverse, Threads };
const char *pool_name(Pool p) { return p == Pool::Serial ? "serial" : p == Pool::Reverse ? "reverse" : "threads"; }
tsrnn_parallel_fn pool_fn(Pool p) {
    return p == Pool::Serial ? serial_pool : p == Pool::Reverse ? reverse_pool : thread_pool;
}

// Shapes with enough work per call for 3 threads (tsrnn__cpu_sweep_threads), and the empty ones.
struct PoolShape {
    int64_t T, B, D, H, P;
    bool lengths;
};
const PoolShape kShapes[] = {
    {20, 16, 10, 40, 0, false}, {20, 16, 10, 40, 0, true}, {13, 24, 3, 33, 0, true},
    {20, 16, 10, 40, 7, true},  {0, 16, 10, 40, 0, false}, {20, 0, 10, 40, 0, false},
};

using PoolParam = std::tuple<Cell, tsrnn_dtype, int /*shape index*/, Pool>;

Case case_of(const PoolParam &pp) {
    const auto &[cell, dtype, si, pool] = pp;
    const PoolShape &s = kShapes[si];
    Case c;
    c.cell = cell;
    c.T = s.T, c.B = s.B, c.D = s.D, c.H = s.H, c.P = cell == Cell::Lstm ? s.P : 0;
    c.use_lengths = s.lengths;
    c.lengths = mixed_lengths(c.T, c.B);
    c.num_threads = 3;
    return c;
}

template <class real> std::vector<const std::vector<real> *> outputs_of(const Problem<real> &p) {
    return {&p.y,         &p.h_n,       &p.c_n,       &p.saved,     &p.grad_x,    &p.grad_h0,
            &p.grad_c0,   &p.grad_w_ih, &p.grad_w_hh, &p.grad_b_ih, &p.grad_b_hh, &p.grad_w_hr};
}
const char *const kOutputNames[] = {"y",         "h_n",       "c_n",       "saved",     "grad_x",    "grad_h0",
                                    "grad_c0",   "grad_w_ih", "grad_w_hh", "grad_b_ih", "grad_b_hh", "grad_w_hr"};

template <class real> void run_pool_case(const PoolParam &pp) {
    const Case c = case_of(pp);
    const Pool pool = std::get<3>(pp);
    const uint64_t seed = 0x9001 + uint64_t(c.T * 31 + c.B * 7 + c.H + c.P);

    Problem<real> own(c, seed); // the library's own threads
    ASSERT_EQ(own.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
    ASSERT_EQ(own.backward(TSRNN_BACKEND_CPU), TSRNN_OK);

    PoolLog log;
    Problem<real> pooled(c, seed);
    pooled.desc.parallel = pool_fn(pool);
    pooled.desc.pool = &log;
    ASSERT_EQ(pooled.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
    const int fwd_calls = log.calls.load();
    ASSERT_EQ(pooled.backward(TSRNN_BACKEND_CPU), TSRNN_OK);

    const auto a = outputs_of(pooled), b = outputs_of(own);
    for (size_t i = 0; i < a.size(); ++i)
        EXPECT_TRUE(bitwise_equal(std::string(kOutputNames[i]) + " on the caller's pool", *a[i], *b[i]));

    // every piece handed out ran, and no call asked for more than num_threads pieces
    EXPECT_LE(log.max_count.load(), c.num_threads);
    if (c.B > 0 && c.T > 0) {
        EXPECT_EQ(fwd_calls, 1) << "the forward is one phase";
        EXPECT_EQ(log.calls.load(), 3) << "forward, then the backward's sweep and its weight gradients";
        EXPECT_GT(log.pieces.load(), log.calls.load()) << "the pieces were split over the pool";
    }
    if (c.B == 0) {
        EXPECT_EQ(fwd_calls, 0) << "an empty batch has no forward work";
    }
}

std::string pool_case_name(const ::testing::TestParamInfo<PoolParam> &info) {
    const auto &[cell, dtype, si, pool] = info.param;
    return std::string(cell_name(cell)) + (dtype == TSRNN_F32 ? "_f32" : "_f64") + "_shape" + std::to_string(si) +
           "_" + pool_name(pool);
}

class PoolVsOwnThreads : public ::testing::TestWithParam<PoolParam> {};

TEST_P(PoolVsOwnThreads, BitIdentical) {
    if (std::get<1>(GetParam()) == TSRNN_F32)
        run_pool_case<float>(GetParam());
    else
        run_pool_case<double>(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Pools, PoolVsOwnThreads,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Range(0, int(std::size(kShapes))),
                                            ::testing::Values(Pool::Serial, Pool::Reverse, Pool::Threads)),
                         pool_case_name);

// Forwards whose time loop is split over hidden units (tsrnn__cpu_fwd_unit_threads: small batches with a step
// large enough to share, on the caller's pool): every step is its own phase, and the results are bitwise those of
// the batch split the library's own threads run.
struct UnitShape {
    int64_t T, B, D, H;
    bool lengths;
};
const UnitShape kUnitShapes[] = {{7, 2, 12, 200, false}, {7, 3, 12, 200, true}, {5, 1, 300, 260, false}};

using UnitParam = PoolParam; // the shape index is into kUnitShapes

template <class real> void run_unit_case(const UnitParam &up) {
    const auto &[cell, dtype, si, pool] = up;
    const UnitShape &s = kUnitShapes[si];
    Case c;
    c.cell = cell;
    c.T = s.T, c.B = s.B, c.D = s.D, c.H = s.H;
    c.use_lengths = s.lengths;
    c.lengths = mixed_lengths(c.T, c.B);
    c.num_threads = 3;
    const uint64_t seed = 0x7001 + uint64_t(si);
    Problem<real> own(c, seed);
    ASSERT_EQ(own.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
    PoolLog log;
    Problem<real> pooled(c, seed);
    pooled.desc.parallel = pool_fn(pool);
    pooled.desc.pool = &log;
    ASSERT_EQ(pooled.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
    for (const char *name : {"y", "h_n", "c_n", "saved"}) {
        const auto &a = name[0] == 'y' ? pooled.y : name[0] == 'h' ? pooled.h_n : name[0] == 'c' ? pooled.c_n : pooled.saved;
        const auto &b = name[0] == 'y' ? own.y : name[0] == 'h' ? own.h_n : name[0] == 'c' ? own.c_n : own.saved;
        EXPECT_TRUE(bitwise_equal(std::string(name) + " split over units", a, b));
    }
    int64_t steps = 0;
    for (int64_t b = 0; b < c.B; ++b) steps = std::max(steps, c.use_lengths ? c.lengths[b] : c.T);
    const int64_t phases = steps * (cell == Cell::Gru0 ? 2 : 1);
    // one phase a step (two for reset_after = 0), after the hoisted input projection's phase
    EXPECT_GE(log.calls.load(), phases) << "the time loop was not split over units";
    EXPECT_LE(log.calls.load(), phases + 1);
    EXPECT_EQ(log.max_count.load(), c.num_threads);

    // the backward's sweep: two phases a step (the rows' own part, then the products by columns) for an LSTM and a
    // GRU with reset_after = 1; a GRU with reset_after = 0 keeps the batch split
    ASSERT_EQ(own.backward(TSRNN_BACKEND_CPU), TSRNN_OK);
    const int fwd_calls = log.calls.load();
    ASSERT_EQ(pooled.backward(TSRNN_BACKEND_CPU), TSRNN_OK);
    const auto a = outputs_of(pooled), b = outputs_of(own);
    for (size_t i = 0; i < a.size(); ++i)
        EXPECT_TRUE(bitwise_equal(std::string(kOutputNames[i]) + " after the backward split over units", *a[i], *b[i]));
    const int bwd_calls = log.calls.load() - fwd_calls;
    if (cell == Cell::Gru0)
        EXPECT_LE(bwd_calls, 2) << "reset_after = 0: batch split sweep, then the weight gradients";
    else
        EXPECT_GE(bwd_calls, steps) << "the backward's sweep was not split over units"; // the rows' phase needs 2+ rows
}

class UnitSplit : public ::testing::TestWithParam<UnitParam> {};

TEST_P(UnitSplit, BitIdenticalToTheBatchSplit) {
    if (std::get<1>(GetParam()) == TSRNN_F32)
        run_unit_case<float>(GetParam());
    else
        run_unit_case<double>(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Pools, UnitSplit,
                         ::testing::Combine(::testing::Values(Cell::Lstm, Cell::Gru0, Cell::Gru1),
                                            ::testing::Values(TSRNN_F32, TSRNN_F64),
                                            ::testing::Range(0, int(std::size(kUnitShapes))),
                                            ::testing::Values(Pool::Serial, Pool::Reverse, Pool::Threads)),
                         pool_case_name);

// A failing pool: TSRNN_ERR_THREADS from both passes, inputs unchanged. A call with a single piece never asks
// the pool, so it succeeds.
TEST(PoolFailure, ReportedAndInputsUnchanged) {
    for (Cell cell : {Cell::Lstm, Cell::Gru0, Cell::Gru1}) {
        SCOPED_TRACE(cell_name(cell));
        Case c = case_of(PoolParam{cell, TSRNN_F32, 0, Pool::Serial});
        Problem<float> ok(c, 7);
        ASSERT_EQ(ok.forward(TSRNN_BACKEND_CPU), TSRNN_OK); // saved activations for the backward below

        PoolLog log;
        Problem<float> p(c, 7);
        const Problem<float> pristine(c, 7);
        p.desc.parallel = failing_pool;
        p.desc.pool = &log;
        EXPECT_EQ(p.forward(TSRNN_BACKEND_CPU), TSRNN_ERR_THREADS);
        p.saved = ok.saved;
        EXPECT_EQ(p.backward(TSRNN_BACKEND_CPU), TSRNN_ERR_THREADS);
        EXPECT_EQ(log.calls.load(), 2) << "each pass stops at its first failed phase";
        EXPECT_TRUE(bitwise_equal("x", p.x, pristine.x));
        EXPECT_TRUE(bitwise_equal("w_ih", p.w_ih, pristine.w_ih));
        EXPECT_TRUE(bitwise_equal("w_hh", p.w_hh, pristine.w_hh));
        EXPECT_TRUE(bitwise_equal("h0", p.h0, pristine.h0));
        EXPECT_TRUE(bitwise_equal("grad_y", p.grad_y, pristine.grad_y));
        EXPECT_TRUE(bitwise_equal("saved (an input of the backward)", p.saved, ok.saved));

        Case one = c;
        one.num_threads = 1;
        Problem<float> single(one, 7);
        single.desc.parallel = failing_pool;
        single.desc.pool = &log;
        EXPECT_EQ(single.forward(TSRNN_BACKEND_CPU), TSRNN_OK);
        EXPECT_EQ(single.backward(TSRNN_BACKEND_CPU), TSRNN_OK);
        EXPECT_EQ(log.calls.load(), 2) << "one thread: the pool is not asked";
    }
}

} // namespace
} // namespace tsrnn_test
