// One check sequence for every backend (tsrnn.h, "Errors"): each bad call of bad_calls.h gets the same status from
// the reference and from the CPU kernels, in fp32 and fp64. cuda_vs_ref_test.cu feeds the same calls to the CUDA
// kernels as well.
#include "bad_calls.h"

namespace tsrnn_test {
namespace {

class SameStatus : public ::testing::TestWithParam<size_t> {};

template <class real> void expect_same_status(size_t index) {
    const BadCall<real> bc = bad_calls<real>()[index];
    for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU})
        EXPECT_EQ(make_bad_call(bc, backend, call_host<real>), bc.want)
            << backend_name(backend) << " " << Fns<real>::name << ": " << tsrnn_status_string(bc.want) << " expected";
}

TEST_P(SameStatus, RefAndCpu) {
    expect_same_status<float>(GetParam());
    expect_same_status<double>(GetParam());
}

INSTANTIATE_TEST_SUITE_P(BadCalls, SameStatus, ::testing::Range(size_t(0), bad_calls<float>().size()),
                         [](const ::testing::TestParamInfo<size_t> &info) {
                             return bad_calls<float>()[info.param].name;
                         });

// The valid calls the bad ones start from (with and without a projection) succeed, so each status above is the
// change's own.
TEST(SameStatus, ValidCallsSucceed) {
    for (Cell cell : {Cell::Lstm, Cell::Gru1})
        for (tsrnn_pass pass : {TSRNN_PASS_FWD, TSRNN_PASS_BWD})
            for (int64_t P : {int64_t(0), int64_t(2)}) {
                if (cell != Cell::Lstm && P > 0) continue;
                const BadCall<double> valid{"valid", cell, pass, P, TSRNN_OK, [](CallUnderTest<double> &) {}};
                for (tsrnn_backend backend : {TSRNN_BACKEND_REF, TSRNN_BACKEND_CPU})
                    EXPECT_EQ(make_bad_call(valid, backend, call_host<double>), TSRNN_OK)
                        << backend_name(backend) << " " << cell_name(cell) << " pass " << pass << " P " << P;
            }
}

} // namespace
} // namespace tsrnn_test
