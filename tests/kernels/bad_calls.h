// The same bad calls for every backend. tsrnn.h ("Errors") has every backend check a call in one order, so each call
// here must get the same status, `want`, from each of them: same_status_test.cpp feeds them to the reference and the
// CPU kernels, cuda_vs_ref_test.cu to those and the CUDA kernels. Every one is refused before any data is read, so
// the CUDA functions get the host buffers and need no device. C++17 (cuda_vs_ref_test.cu is compiled by nvcc).
//
// num_threads < 1 is not among them: only the CPU functions read it (TSRNN_ERR_THREADS there, ignored elsewhere;
// bad_args_test.cpp covers it).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

namespace tsrnn_test {

// One call in the making: a valid problem (T = 3, B = 2, D = 2, H = 3, the given P, lengths {3, 1}, every optional
// argument present), its own desc, and a workspace of `need` bytes as the backend asks for it (with room to move the
// pointer). A change breaks it before it is made. Holds pointers into itself: built in place, never copied.
template <class real> struct CallUnderTest {
    Problem<real> p;
    tsrnn_desc desc{};
    int64_t lengths[2] = {3, 1};
    size_t need;
    Workspace ws;
    FwdArgs<real> fwd{};
    BwdArgs<real> bwd{};

    CallUnderTest(Cell cell, int64_t P, size_t need_bytes)
        : p(valid_case(cell, P), 7), need(need_bytes), ws(need_bytes + TSRNN_WORKSPACE_ALIGN) {
        desc = p.desc;
        desc.lengths = lengths;
        fwd = p.fwd_args(ws.data(), need);
        bwd = p.bwd_args(ws.data(), need);
        fwd.desc = bwd.desc = &desc;
    }
    CallUnderTest(const CallUnderTest &) = delete;
    CallUnderTest &operator=(const CallUnderTest &) = delete;

    static Case valid_case(Cell cell, int64_t P) {
        Case c;
        c.cell = cell;
        c.T = 3, c.B = 2, c.D = 2, c.H = 3, c.P = P;
        c.num_threads = 1;
        return c;
    }
    int64_t R() const { return p.c.R(); }
    void set_x(const real *v) { fwd.x = bwd.x = v; }
    void set_w_ih(const real *v) { fwd.w_ih = bwd.w_ih = v; }
    void set_w_hh(const real *v) { fwd.w_hh = bwd.w_hh = v; }
    void set_w_hr(const real *v) { fwd.w_hr = bwd.w_hr = v; }
    void set_workspace(void *v, size_t bytes) {
        fwd.workspace = bwd.workspace = v;
        fwd.workspace_bytes = bwd.workspace_bytes = bytes;
    }
};

template <class real> struct BadCall {
    std::string name;
    Cell cell;
    tsrnn_pass pass;
    int64_t P; // of the valid call it starts from
    tsrnn_status want;
    std::function<void(CallUnderTest<real> &)> change;
};

// Every bad call, for LSTM and GRU, forward and backward.
template <class real> std::vector<BadCall<real>> bad_calls() {
    using C = CallUnderTest<real>;
    std::vector<BadCall<real>> out;
    for (Cell cell : {Cell::Lstm, Cell::Gru1})
        for (tsrnn_pass pass : {TSRNN_PASS_FWD, TSRNN_PASS_BWD}) {
            const bool lstm = cell == Cell::Lstm, fwd = pass == TSRNN_PASS_FWD;
            const std::string prefix = std::string(lstm ? "Lstm" : "Gru") + (fwd ? "Fwd_" : "Bwd_");
            auto add = [&](const char *name, tsrnn_status want, std::function<void(C &)> change, int64_t P = 0) {
                out.push_back(BadCall<real>{prefix + name, cell, pass, P, want, std::move(change)});
            };
            // step 1: the desc
            add("DescNull", TSRNN_ERR_NULL, [](C &c) { c.fwd.desc = c.bwd.desc = nullptr; });
            add("HZero", TSRNN_ERR_SHAPE, [](C &c) { c.desc.H = 0; });
            add("TNegative", TSRNN_ERR_SHAPE, [](C &c) { c.desc.T = -1; });
            add("DZero", TSRNN_ERR_SHAPE, [](C &c) { c.desc.D = 0; });
            add("CountsOverflow", TSRNN_ERR_SHAPE, [](C &c) {
                c.desc.T = c.desc.B = int64_t(1) << 40;
                c.desc.lengths = nullptr;
            });
            add("ReverseTwo", TSRNN_ERR_ARGUMENT, [](C &c) { c.desc.reverse = 2; });
            add("YStrideNegative", TSRNN_ERR_STRIDE, [](C &c) { c.desc.y_stride_b = -1; });
            add("XExtentOverflows", TSRNN_ERR_SHAPE, [](C &c) { c.desc.x_stride_t = INT64_MAX / 2; });
            add("YRowsOverlap", TSRNN_ERR_STRIDE, [](C &c) { c.desc.y_stride_b = c.R() - 1; });
            add("YStepsOverlap", TSRNN_ERR_STRIDE, [](C &c) { c.desc.y_stride_t = 0; });
            if (lstm) {
                add("PEqualsH", TSRNN_ERR_SHAPE, [](C &c) { c.desc.P = c.desc.H; });
                add("PNegative", TSRNN_ERR_SHAPE, [](C &c) { c.desc.P = -1; });
            } else {
                add("PGiven", TSRNN_ERR_ARGUMENT, [](C &c) { c.desc.P = 1; });
                add("ResetAfterTwo", TSRNN_ERR_ARGUMENT, [](C &c) { c.desc.reset_after = 2; });
            }
            // step 2: required pointers
            add("XNull", TSRNN_ERR_NULL, [](C &c) { c.set_x(nullptr); });
            add("WIhNull", TSRNN_ERR_NULL, [](C &c) { c.set_w_ih(nullptr); });
            add("WHhNull", TSRNN_ERR_NULL, [](C &c) { c.set_w_hh(nullptr); });
            if (fwd) {
                add("YNull", TSRNN_ERR_NULL, [](C &c) { c.fwd.y = nullptr; });
                add("HnNull", TSRNN_ERR_NULL, [](C &c) { c.fwd.h_n = nullptr; });
                if (lstm) add("CnNull", TSRNN_ERR_NULL, [](C &c) { c.fwd.c_n = nullptr; });
            } else {
                add("SavedNull", TSRNN_ERR_NULL, [](C &c) { c.bwd.saved = nullptr; });
            }
            // step 3: the projection (CUDA has none, but these calls are bad before that matters)
            if (lstm) {
                add("WHrWithoutProjection", TSRNN_ERR_ARGUMENT, [](C &c) { c.set_w_hr(c.p.w_ih.data()); });
                if (!fwd)
                    add("GradWHrWithoutProjection", TSRNN_ERR_ARGUMENT,
                        [](C &c) { c.bwd.grad_w_hr = c.p.grad_w_ih.data(); });
                add("ProjectionWithoutWHr", TSRNN_ERR_NULL, [](C &c) { c.set_w_hr(nullptr); }, 2);
                add("ProjectionXNull", TSRNN_ERR_NULL, [](C &c) { c.set_x(nullptr); }, 2);
                add("ProjectionYRowsOverlap", TSRNN_ERR_STRIDE, [](C &c) { c.desc.y_stride_b = c.R() - 1; }, 2);
                add("ProjectionBadLengths", TSRNN_ERR_LENGTHS, [](C &c) { c.lengths[0] = 9; }, 2);
                if (!fwd)
                    add("ProjectionGradXBroadcast", TSRNN_ERR_STRIDE, [](C &c) { c.desc.x_stride_t = 0; }, 2);
            }
            // step 4: grad_x's layout
            if (!fwd) add("GradXBroadcast", TSRNN_ERR_STRIDE, [](C &c) { c.desc.x_stride_t = 0; });
            // step 5: lengths
            add("LengthNegative", TSRNN_ERR_LENGTHS, [](C &c) { c.lengths[0] = -1; });
            add("LengthPastT", TSRNN_ERR_LENGTHS, [](C &c) { c.lengths[1] = 4; });
            // step 7: the workspace, as each backend sizes it
            add("WorkspaceNull", TSRNN_ERR_WORKSPACE, [](C &c) { c.set_workspace(nullptr, c.need); });
            add("WorkspaceShort", TSRNN_ERR_WORKSPACE, [](C &c) { c.set_workspace(c.ws.data(), c.need - 1); });
            add("WorkspaceMisaligned", TSRNN_ERR_WORKSPACE,
                [](C &c) { c.set_workspace(static_cast<char *>(c.ws.data()) + 8, c.need); });
            // several things wrong: the first step decides
            add("ShapeBeforeNull", TSRNN_ERR_SHAPE, [](C &c) {
                c.desc.H = 0;
                c.set_x(nullptr);
            });
            add("NullBeforeLengthsAndWorkspace", TSRNN_ERR_NULL, [](C &c) {
                c.set_w_hh(nullptr);
                c.lengths[0] = -1;
                c.set_workspace(nullptr, 0);
            });
            if (lstm)
                add("ProjectionBeforeLengths", TSRNN_ERR_ARGUMENT, [](C &c) {
                    c.set_w_hr(c.p.w_ih.data());
                    c.lengths[0] = -1;
                });
            if (!fwd)
                add("GradXLayoutBeforeLengths", TSRNN_ERR_STRIDE, [](C &c) {
                    c.desc.x_stride_t = 0;
                    c.lengths[0] = -1;
                });
            add("LengthsBeforeWorkspace", TSRNN_ERR_LENGTHS, [](C &c) {
                c.lengths[0] = 9;
                c.set_workspace(nullptr, 0);
            });
        }
    return out;
}

// Makes bad call `bc` through `call(backend, cell, pass, CallUnderTest &)`, with a workspace of the size `backend`
// asks for the changed desc (or for the valid one, when it refuses the changed one; 256 bytes when it refuses both).
template <class real, class Call>
tsrnn_status make_bad_call(const BadCall<real> &bc, tsrnn_backend backend, Call &&call) {
    const tsrnn_cell cell = cell_of(bc.cell);
    const tsrnn_dtype dtype = Fns<real>::dtype;
    size_t need = 256;
    {
        CallUnderTest<real> probe(bc.cell, bc.P, 0);
        size_t bytes = 0;
        if (tsrnn_workspace_size(cell, bc.pass, backend, dtype, &probe.desc, &bytes) == TSRNN_OK) need = bytes;
        bc.change(probe);
        if (tsrnn_workspace_size(cell, bc.pass, backend, dtype, &probe.desc, &bytes) == TSRNN_OK) need = bytes;
    }
    EXPECT_GT(need, 0u) << "the workspace changes below mean nothing without a workspace";
    CallUnderTest<real> c(bc.cell, bc.P, need);
    bc.change(c);
    return call(backend, cell, bc.pass, c);
}

// The reference and the CPU kernels.
template <class real>
tsrnn_status call_host(tsrnn_backend backend, tsrnn_cell cell, tsrnn_pass pass, const CallUnderTest<real> &c) {
    return pass == TSRNN_PASS_FWD ? call_fwd(cell, backend, c.fwd) : call_bwd(cell, backend, c.bwd);
}

inline const char *backend_name(tsrnn_backend b) {
    return b == TSRNN_BACKEND_REF ? "ref" : b == TSRNN_BACKEND_CPU ? "cpu" : "cuda";
}

} // namespace tsrnn_test
