/*
 * The stepwise recurrences (fp32): what rnn_fwd_kernel / rnn_bwd_kernel do, one group of launches per step, for the
 * sizes whose W_hh cannot stay on chip across co-resident blocks (about H > 1056 for LSTM on an H100) and for devices
 * that refuse the cooperative launch. W_hh is read through L2 every step; the cell arithmetic is the persistent
 * kernels' own (cuda_impl.cuh), and every sum has a fixed order, so results are bitwise the same run to run.
 *
 * Per forward step s (rows b at t = s, or L_b - 1 - s when reverse; rows with s >= L_b keep their state):
 *   hproj (B x NG) = h_{t-1} W_hh[0, NG)^T          the tiled GEMM of cuda_gemm.cuh (NG = G*H, or 2H for r, z)
 *   gate kernel                                    h, c, y, saved of every (b, u)
 *   [GRU reset_after = 0] hproj[:, 2H..3H) = (r * h_{t-1}) W_hn^T, then the second gate kernel (n, h)
 * Per backward step s, from the last down:
 *   phase A kernel                                 d_gates of every (b, u) into dgx / dghn, dc, the direct part of dh
 *   [GRU reset_after = 0] d(r h) = dn_pre W_hn (GEMM into drh), then dgx's r columns
 *   phase B GEMM                                   dh_{t-1} = d_gates_h W_hh, combined into dh by its store
 */
#include "cuda_gemm.cuh"

namespace tsrnn_cuda {
namespace {

/* Row t * B + b of the sequence tensors that sequence b reaches at step s; false when b has ended by then. */
__device__ __forceinline__ bool step_row(const int64_t *lengths, int64_t T, int64_t B, int reverse, int64_t s, int64_t b,
                                         int64_t *row) {
    const int64_t L = seq_length(lengths, b, T);
    if (s >= L) return false;
    *row = (reverse ? L - 1 - s : s) * B + b;
    return true;
}

/* Grid-stride launch of an element-wise kernel over n items. */
template <class... Params, class... Args>
tsrnn_status launch_elementwise(void (*kernel)(Params...), int64_t n, cudaStream_t stream, Args... args) {
    if (n == 0) return TSRNN_OK;
    cudaLaunchConfig_t cfg = {};
    const int64_t blocks = ceil_div(n, kThreads);
    cfg.gridDim = dim3((unsigned)(blocks < 4096 ? blocks : 4096));
    cfg.blockDim = dim3(kThreads);
    cfg.stream = stream;
    TSRNN_CUDA_TRY(cudaLaunchKernelEx(&cfg, kernel, args...));
    return TSRNN_OK;
}

#define TSRNN_GRID_STRIDE(idx, n)                                                                                  \
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < (n); idx += (int64_t)gridDim.x * blockDim.x)

/* ---- forward ------------------------------------------------------------------------------------------------- */

/* Initial states, and zeros in y and saved past each sequence's length (as rnn_fwd_kernel's prologue). */
template <int CELL>
__global__ void __launch_bounds__(kThreads) step_fwd_init_kernel(const FwdArgs a) {
    constexpr int G = gates_of(CELL);
    const int64_t T = a.T, B = a.B, H = a.H, S = saved_width_of(CELL) * H;
    TSRNN_GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, u = idx - b * H, L = seq_length(a.lengths, b, T);
        a.hbuf[idx] = a.h0 ? a.h0[idx] : 0.f;
        if (CELL == kLstm) a.cbuf[idx] = a.c0 ? a.c0[idx] : 0.f;
        for (int64_t t = L; t < T; ++t) {
            a.y[t * a.y_stride_t + b * a.y_stride_b + u] = 0.f;
            if (a.saved)
                for (int g = 0; g < G + 2; ++g) a.saved[(t * B + b) * S + g * H + u] = 0.f;
        }
    }
}

/*
 * The gates of step s from hproj (B x G*H: h_{t-1} W_hh^T without b_hh). phase 0: every cell's update, except
 * GRU reset_after = 0, which computes r, z and r * h_{t-1} there and n, h in phase 1.
 */
template <int CELL>
__global__ void __launch_bounds__(kThreads) step_fwd_gates_kernel(const FwdArgs a, const float *hproj, int64_t s,
                                                                  int phase) {
    const int64_t T = a.T, B = a.B, H = a.H, GH = gates_of(CELL) * H, S = saved_width_of(CELL) * H;
    const float *h_cur = a.hbuf + (s & 1) * B * H;
    float *h_nxt = a.hbuf + ((s + 1) & 1) * B * H;
    TSRNN_GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, u = idx - b * H;
        const float h_prev = h_cur[idx];
        int64_t row;
        if (!step_row(a.lengths, T, B, a.reverse, s, b, &row)) { /* finished sequence: its state stays */
            if (phase == 0) {
                h_nxt[idx] = h_prev;
                if (CELL == kGruBefore) a.rhbuf[idx] = 0.f;
            }
            continue;
        }
        const int64_t t = row / B;
        const float *xp = a.xproj + row * GH + u; /* x W_ih^T + b_ih of row (t, b), unit u of gate 0 */
        const float *hp = hproj + b * GH + u;
        auto b_hh = [&](int g) { return a.b_hh ? a.b_hh[g * H + u] : 0.f; };
        float *sv = a.saved ? a.saved + row * S + u : nullptr;
        float *y = a.y + t * a.y_stride_t + b * a.y_stride_b + u;

        if (CELL == kLstm) {
            const float xg[4] = {xp[0], xp[H], xp[2 * H], xp[3 * H]};
            const float hg[4] = {hp[0] + b_hh(0), hp[H] + b_hh(1), hp[2 * H] + b_hh(2), hp[3 * H] + b_hh(3)};
            const LstmUnit st = lstm_unit(xg, hg, a.cbuf[idx]);
            a.cbuf[idx] = st.c;
            h_nxt[idx] = st.h;
            *y = st.h;
            if (sv) save_lstm(sv, H, st);
        } else if (CELL == kGruAfter) {
            const float r = sigmoid(xp[0] + (hp[0] + b_hh(0)));
            const float z = sigmoid(xp[H] + (hp[H] + b_hh(1)));
            const float hn = hp[2 * H] + b_hh(2);
            const float n = gru_candidate(xp[2 * H], r * hn);
            const float h = gru_state(n, z, h_prev);
            h_nxt[idx] = h;
            *y = h;
            if (sv) save_gru(sv, H, r, z, n, hn, h);
        } else if (phase == 0) { /* reset_after = 0: r, z and r * h_{t-1} */
            const float r = sigmoid(xp[0] + (hp[0] + b_hh(0)));
            const float z = sigmoid(xp[H] + (hp[H] + b_hh(1)));
            a.rbuf[idx] = r;
            a.zbuf[idx] = z;
            a.rhbuf[idx] = r * h_prev;
        } else { /* reset_after = 0: hproj's n columns hold (r * h_{t-1}) W_hn^T */
            const float r = a.rbuf[idx], z = a.zbuf[idx];
            const float hn = hp[2 * H] + b_hh(2);
            const float n = gru_candidate(xp[2 * H], hn);
            const float h = gru_state(n, z, h_prev);
            h_nxt[idx] = h;
            *y = h;
            if (sv) save_gru(sv, H, r, z, n, hn, h);
        }
    }
}

template <int CELL>
tsrnn_status forward_steps(const FwdArgs &a, float *hproj, float *partial, cudaStream_t stream) {
    const int64_t B = a.B, H = a.H, GH = gates_of(CELL) * H;
    const int64_t NG = CELL == kGruBefore ? 2 * H : GH; /* the gate rows that multiply h_{t-1} itself */
    TSRNN_STATUS_TRY(launch_elementwise(step_fwd_init_kernel<CELL>, B * H, stream, a));
    for (int64_t s = 0; s < a.steps; ++s) {
        const float *h_cur = a.hbuf + (s & 1) * B * H;
        TSRNN_STATUS_TRY(gemm(stream, RowMajor{h_cur, H}, RowMajor{a.w_hh, H}, RowStore{hproj, GH}, B, NG, H, partial));
        TSRNN_STATUS_TRY(launch_elementwise(step_fwd_gates_kernel<CELL>, B * H, stream, a, (const float *)hproj, s, 0));
        if (CELL == kGruBefore) {
            TSRNN_STATUS_TRY(gemm(stream, RowMajor{a.rhbuf, H}, RowMajor{a.w_hh + 2 * H * H, H},
                                  RowStore{hproj + 2 * H, GH}, B, H, H, partial));
            TSRNN_STATUS_TRY(
                launch_elementwise(step_fwd_gates_kernel<CELL>, B * H, stream, a, (const float *)hproj, s, 1));
        }
    }
    const size_t state_bytes = (size_t)(B * H) * sizeof(float);
    TSRNN_CUDA_TRY(cudaMemcpyAsync(a.h_n, a.hbuf + (a.steps & 1) * B * H, state_bytes, cudaMemcpyDeviceToDevice,
                                   stream));
    if (CELL == kLstm) TSRNN_CUDA_TRY(cudaMemcpyAsync(a.c_n, a.cbuf, state_bytes, cudaMemcpyDeviceToDevice, stream));
    return TSRNN_OK;
}

/* ---- backward ------------------------------------------------------------------------------------------------ */

/* Carried gradients from grad_h_n / grad_c_n; d_gates rows past a sequence's length zero (as rnn_bwd_kernel). */
template <int CELL>
__global__ void __launch_bounds__(kThreads) step_bwd_init_kernel(const BwdArgs a) {
    constexpr int G = gates_of(CELL);
    const int64_t T = a.T, B = a.B, H = a.H, GH = G * H;
    TSRNN_GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, u = idx - b * H, L = seq_length(a.lengths, b, T);
        a.dh[idx] = a.grad_h_n ? a.grad_h_n[idx] : 0.f;
        if (CELL == kLstm) a.dc[idx] = a.grad_c_n ? a.grad_c_n[idx] : 0.f;
        for (int64_t t = L; t < T; ++t) {
            for (int g = 0; g < G; ++g) a.dgx[(t * B + b) * GH + g * H + u] = 0.f;
            if (CELL != kLstm) a.dghn[(t * B + b) * H + u] = 0.f;
        }
    }
}

/* h_{t-1} (or c_{t-1}) of row b at step s, saved column col: the previous step's saved row or the initial state. */
__device__ __forceinline__ float step_prev_state(const BwdArgs &a, int64_t S, const float *init, int64_t col,
                                                 int64_t s, int64_t row, int64_t u) {
    const int64_t B = a.B, t = row / B, b = row - t * B;
    if (s == 0) return init ? init[b * a.H + u] : 0.f;
    const int64_t t_prev = a.reverse ? t + 1 : t - 1;
    return a.saved[(t_prev * B + b) * S + col + u];
}

/* Phase A of step s: every (b, u) of the rows still inside their sequence. */
template <int CELL>
__global__ void __launch_bounds__(kThreads) step_bwd_gates_kernel(const BwdArgs a, int64_t s) {
    const int64_t T = a.T, B = a.B, H = a.H, GH = gates_of(CELL) * H, S = saved_width_of(CELL) * H;
    const int64_t h_col = (gates_of(CELL) + 1) * H;
    TSRNN_GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, u = idx - b * H;
        int64_t row;
        if (!step_row(a.lengths, T, B, a.reverse, s, b, &row)) continue;
        const int64_t t = row / B;
        const float *sv = a.saved + row * S + u;
        float *dg = a.dgx + row * GH + u;
        const float dh = a.dh[idx] + (a.grad_y ? a.grad_y[t * a.y_stride_t + b * a.y_stride_b + u] : 0.f);
        if (CELL == kLstm) {
            float dg4[4], dc_prev;
            lstm_unit_backward(sv, H, dh, a.dc[idx], step_prev_state(a, S, a.c0, 4 * H, s, row, u), dg4, &dc_prev);
            for (int g = 0; g < 4; ++g) dg[g * H] = dg4[g];
            a.dc[idx] = dc_prev;
        } else {
            float dg3[3], dghn, dh_direct;
            gru_unit_backward(sv, H, CELL == kGruAfter, dh, step_prev_state(a, S, a.h0, h_col, s, row, u), dg3, &dghn,
                              &dh_direct);
            if (CELL == kGruAfter) dg[0] = dg3[0];
            dg[H] = dg3[1];
            dg[2 * H] = dg3[2];
            a.dghn[row * H + u] = dghn;
            a.dh[idx] = dh_direct; /* phase B adds the rest */
        }
    }
}

/* GRU reset_after = 0, after d(r h) (drh) of every unit: dgx's r columns. */
__global__ void __launch_bounds__(kThreads) step_bwd_reset_kernel(const BwdArgs a, int64_t s) {
    const int64_t T = a.T, B = a.B, H = a.H, GH = 3 * H, S = 5 * H;
    TSRNN_GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, u = idx - b * H;
        int64_t row;
        if (!step_row(a.lengths, T, B, a.reverse, s, b, &row)) continue;
        a.dgx[row * GH + u] = gru_reset_grad(a.drh[idx], step_prev_state(a, S, a.h0, 4 * H, s, row, u),
                                             a.saved[row * S + u]);
    }
}

/*
 * Left operand of step s's GEMMs: a(b, j) = the gradient row that sequence b reaches at step s (0 once it ended).
 * Columns j < split come from first (ld_first wide), j >= split from second (ld_second wide): d_gates_h is dgx for
 * LSTM and GRU's r, z, and dghn for GRU's n.
 */
struct StepGrads {
    const float *first, *second;
    int64_t ld_first, ld_second, split;
    const int64_t *lengths;
    int64_t T, B, s;
    int reverse;
    static constexpr bool k_contiguous = true;
    __device__ float operator()(int64_t b, int64_t j) const {
        int64_t row;
        if (!step_row(lengths, T, B, reverse, s, b, &row)) return 0.f;
        return j < split ? first[row * ld_first + j] : second[row * ld_second + (j - split)];
    }
};

/* Phase B's result into dh for the rows still inside their sequence (cuda_bwd.cu's phase B, per cell). */
template <int CELL>
struct DhStore {
    BwdArgs a;
    int64_t s;
    __device__ void operator()(int64_t b, int64_t u, float sum) const {
        int64_t row;
        if (!step_row(a.lengths, a.T, a.B, a.reverse, s, b, &row)) return;
        float *dh = a.dh + b * a.H + u;
        if (CELL == kLstm)
            *dh = sum;
        else if (CELL == kGruAfter)
            *dh = *dh + sum;
        else
            *dh = (*dh + sum) + a.drh[b * a.H + u] * a.saved[row * 5 * a.H + u];
    }
};

template <int CELL>
tsrnn_status backward_steps(const BwdArgs &a, float *partial, cudaStream_t stream) {
    const int64_t B = a.B, H = a.H, GH = gates_of(CELL) * H;
    TSRNN_STATUS_TRY(launch_elementwise(step_bwd_init_kernel<CELL>, B * H, stream, a));
    for (int64_t s = a.steps - 1; s >= 0; --s) {
        TSRNN_STATUS_TRY(launch_elementwise(step_bwd_gates_kernel<CELL>, B * H, stream, a, s));
        if (CELL == kGruBefore) {
            /* d(r h_{t-1}) = dn_pre W_hn: out[b][u] = sum_j dghn[row_b][j] W_hh[2H + j][u] */
            const StepGrads dn{a.dghn, a.dghn, H, H, H, a.lengths, a.T, B, s, a.reverse};
            TSRNN_STATUS_TRY(gemm(stream, dn, ColMajor{a.w_hh + 2 * H * H, H}, RowStore{a.drh, H}, B, H, H, partial));
            TSRNN_STATUS_TRY(launch_elementwise(step_bwd_reset_kernel, B * H, stream, a, s));
        }
        /* dh_{t-1}[b][u] = sum_j d_gates_h[row_b][j] W_hh[j][u] over the gate rows that read h_{t-1} */
        const int64_t K = CELL == kGruBefore ? 2 * H : GH, split = CELL == kLstm ? GH : 2 * H;
        const StepGrads dgh{a.dgx, a.dghn, GH, H, split, a.lengths, a.T, B, s, a.reverse};
        TSRNN_STATUS_TRY(gemm(stream, dgh, ColMajor{a.w_hh, H}, DhStore<CELL>{a, s}, B, H, K, partial));
    }
    const size_t state_bytes = (size_t)(B * H) * sizeof(float);
    if (a.grad_h0) TSRNN_CUDA_TRY(cudaMemcpyAsync(a.grad_h0, a.dh, state_bytes, cudaMemcpyDeviceToDevice, stream));
    if (CELL == kLstm && a.grad_c0)
        TSRNN_CUDA_TRY(cudaMemcpyAsync(a.grad_c0, a.dc, state_bytes, cudaMemcpyDeviceToDevice, stream));
    return TSRNN_OK;
}

} // namespace

tsrnn_status stepwise_forward(int cell, const FwdArgs &a, float *hproj, float *partial, cudaStream_t stream) {
    if (cell == kLstm) return forward_steps<kLstm>(a, hproj, partial, stream);
    if (cell == kGruAfter) return forward_steps<kGruAfter>(a, hproj, partial, stream);
    return forward_steps<kGruBefore>(a, hproj, partial, stream);
}

tsrnn_status stepwise_backward(int cell, const BwdArgs &a, float *partial, cudaStream_t stream) {
    if (cell == kLstm) return backward_steps<kLstm>(a, partial, stream);
    if (cell == kGruAfter) return backward_steps<kGruAfter>(a, partial, stream);
    return backward_steps<kGruBefore>(a, partial, stream);
}

} // namespace tsrnn_cuda
