/*
 * CUDA forward of one LSTM / GRU layer in one direction (fp32): the input projection GEMM, then every step in one
 * persistent kernel (the block layout is described in cuda_impl.cuh), or in the stepwise path (cuda_step.cu) where
 * the persistent plan does not fit the device.
 *
 * Shared memory of one block (floats):
 *   w_s    (H x G*U4)      w_s[k][g*U4 + ul] = W_hh[g*H + u0 + ul][k]; columns ul >= U are zero
 *   in_s   (BC x (H|1))    h_{t-1} of BC batch rows (all H units), or r * h_{t-1} in the second phase of a
 *                          reset_after = 0 GRU
 *   part_s (16 x 256)      split-K partial sums of block_matmul
 *   out_s  (BC x G*U4)     h_{t-1} W_hh^T for the block's gate columns
 */
#include "cuda_gemm.cuh"

namespace tsrnn_cuda {
namespace {

/* in[r][k] = src[(row0 + r) * H + k] for r < rows, zero for rows <= r < rows4 (read through L2: other blocks wrote it). */
__device__ __forceinline__ void stage_rows(float *in, int64_t ldi, const float *src, int64_t H, int rows, int rows4) {
    for (int64_t idx = threadIdx.x; idx < (int64_t)rows4 * H; idx += kThreads) {
        const int r = (int)(idx / H);
        const int64_t k = idx - (int64_t)r * H;
        in[r * ldi + k] = r < rows ? __ldcg(src + (int64_t)r * H + k) : 0.f;
    }
}

template <int CELL>
__global__ void __launch_bounds__(kThreads, 1) rnn_fwd_kernel(const FwdArgs a) {
    constexpr int G = gates_of(CELL);
    TSRNN_DYNAMIC_SMEM(smem);

    const int64_t T = a.T, B = a.B, H = a.H, GH = G * H, S = saved_width_of(CELL) * H;
    const int ub = (int)(blockIdx.x % (unsigned)a.nU), bg = (int)(blockIdx.x / (unsigned)a.nU);
    const int64_t u0 = (int64_t)ub * a.U;                              /* first unit of this block */
    const int U = (int)(H - u0 < a.U ? H - u0 : a.U);                 /* its units */
    const int64_t b0 = (int64_t)bg * a.BG;                             /* first batch row of its group */
    const int BG = (int)(B - b0 < a.BG ? B - b0 : a.BG);              /* its rows */
    const int U4 = a.U4;
    const int64_t ldw = (int64_t)G * U4, ldi = in_stride_of(H);

    float *w_s = smem;
    float *in_s = w_s + H * ldw;
    float *part_s = in_s + (int64_t)a.BC * ldi;
    float *out_s = part_s + 16 * kThreads;
    unsigned *counter = a.counters + bg;
    unsigned generation = 0;

    /* the block's slice of W_hh, transposed: read along W_hh's rows (coalesced), written down w_s's columns */
    for (int64_t idx = threadIdx.x; idx < ldw * H; idx += kThreads) {
        const int col = (int)(idx / H);
        const int64_t k = idx - (int64_t)col * H;
        const int g = col / U4, ul = col - g * U4;
        w_s[k * ldw + col] = ul < U ? a.w_hh[(g * H + u0 + ul) * H + k] : 0.f;
    }

    /* initial states of the block's (row, unit) pairs; rows past a sequence's length are zero in y and saved */
    for (int idx = threadIdx.x; idx < BG * U; idx += kThreads) {
        const int bl = idx / U, ul = idx - bl * U;
        const int64_t b = b0 + bl, u = u0 + ul, L = seq_length(a.lengths, b, T);
        a.hbuf[b * H + u] = a.h0 ? a.h0[b * H + u] : 0.f;
        if (CELL == kLstm) a.cbuf[b * H + u] = a.c0 ? a.c0[b * H + u] : 0.f;
        for (int64_t t = L; t < T; ++t) {
            a.y[t * a.y_stride_t + b * a.y_stride_b + u] = 0.f;
            if (a.saved) {
                float *row = a.saved + (t * B + b) * S; /* saved row (t, b) */
                for (int g = 0; g < G + 2; ++g) row[g * H + u] = 0.f;
            }
        }
    }
    group_sync(counter, a.nU, generation);

    for (int64_t s = 0; s < a.steps; ++s) {
        const float *h_cur = a.hbuf + (s & 1) * B * H; /* h after step s - 1 (h0 before step 0) */
        float *h_nxt = a.hbuf + ((s + 1) & 1) * B * H;

        /* LSTM, GRU reset_after = 1: every gate column against h_{t-1}. GRU reset_after = 0: r and z only. */
        const int cols4 = CELL == kGruBefore ? 2 * U4 : G * U4;
        for (int c0 = 0; c0 < BG; c0 += a.BC) {
            const int rows = BG - c0 < a.BC ? BG - c0 : a.BC, rows4 = (int)round_up(rows, 4);
            stage_rows(in_s, ldi, h_cur + (b0 + c0) * H, H, rows, rows4);
            __syncthreads();
            block_matmul(in_s, ldi, w_s, ldw, H, rows4, cols4, part_s, out_s, ldw);

            for (int idx = threadIdx.x; idx < rows * U; idx += kThreads) {
                const int bl = idx / U, ul = idx - bl * U;
                const int64_t b = b0 + c0 + bl, u = u0 + ul, L = seq_length(a.lengths, b, T);
                const float h_prev = in_s[bl * ldi + u];
                if (s >= L) { /* finished sequence: its state stays */
                    h_nxt[b * H + u] = h_prev;
                    if (CELL == kGruBefore) a.rhbuf[b * H + u] = 0.f;
                    continue;
                }
                const int64_t t = a.reverse ? L - 1 - s : s;
                const float *xp = a.xproj + (t * B + b) * GH; /* x W_ih^T + b_ih of row (t, b) */
                const float *hp = out_s + bl * ldw;          /* h_{t-1} W_hh^T, this block's columns */
                auto b_hh = [&](int g) { return a.b_hh ? a.b_hh[g * H + u] : 0.f; };
                float *sv = a.saved ? a.saved + (t * B + b) * S : nullptr; /* saved row (t, b) */

                if (CELL == kLstm) {
                    const float xg[4] = {xp[0 * H + u], xp[1 * H + u], xp[2 * H + u], xp[3 * H + u]};
                    const float hg[4] = {hp[0 * U4 + ul] + b_hh(0), hp[1 * U4 + ul] + b_hh(1),
                                         hp[2 * U4 + ul] + b_hh(2), hp[3 * U4 + ul] + b_hh(3)};
                    const LstmUnit st = lstm_unit(xg, hg, a.cbuf[b * H + u]);
                    a.cbuf[b * H + u] = st.c;
                    h_nxt[b * H + u] = st.h;
                    a.y[t * a.y_stride_t + b * a.y_stride_b + u] = st.h;
                    if (sv) save_lstm(sv + u, H, st);
                } else if (CELL == kGruAfter) {
                    const float r = sigmoid(xp[0 * H + u] + (hp[0 * U4 + ul] + b_hh(0)));
                    const float z = sigmoid(xp[1 * H + u] + (hp[1 * U4 + ul] + b_hh(1)));
                    const float hn = hp[2 * U4 + ul] + b_hh(2);
                    const float n = gru_candidate(xp[2 * H + u], r * hn);
                    const float h = gru_state(n, z, h_prev);
                    h_nxt[b * H + u] = h;
                    a.y[t * a.y_stride_t + b * a.y_stride_b + u] = h;
                    if (sv) save_gru(sv + u, H, r, z, n, hn, h);
                } else { /* reset_after = 0, first phase: r, z and r * h_{t-1} */
                    const float r = sigmoid(xp[0 * H + u] + (hp[0 * U4 + ul] + b_hh(0)));
                    const float z = sigmoid(xp[1 * H + u] + (hp[1 * U4 + ul] + b_hh(1)));
                    a.rbuf[b * H + u] = r;
                    a.zbuf[b * H + u] = z;
                    a.rhbuf[b * H + u] = r * h_prev;
                }
            }
            __syncthreads(); /* in_s and out_s are reused by the next chunk */
        }

        if (CELL == kGruBefore) {
            /* second phase: hn = (r * h_{t-1}) W_hn^T + b_hn needs r * h_{t-1} of every unit of the row */
            group_sync(counter, a.nU, generation);
            for (int c0 = 0; c0 < BG; c0 += a.BC) {
                const int rows = BG - c0 < a.BC ? BG - c0 : a.BC, rows4 = (int)round_up(rows, 4);
                stage_rows(in_s, ldi, a.rhbuf + (b0 + c0) * H, H, rows, rows4);
                __syncthreads();
                block_matmul(in_s, ldi, w_s + 2 * U4, ldw, H, rows4, U4, part_s, out_s, ldw);

                for (int idx = threadIdx.x; idx < rows * U; idx += kThreads) {
                    const int bl = idx / U, ul = idx - bl * U;
                    const int64_t b = b0 + c0 + bl, u = u0 + ul, L = seq_length(a.lengths, b, T);
                    if (s >= L) continue; /* h_nxt was carried over in the first phase */
                    const int64_t t = a.reverse ? L - 1 - s : s;
                    const float *xp = a.xproj + (t * B + b) * GH;
                    const float h_prev = __ldcg(h_cur + b * H + u);
                    const float r = a.rbuf[b * H + u], z = a.zbuf[b * H + u];
                    const float hn = out_s[bl * ldw + ul] + (a.b_hh ? a.b_hh[2 * H + u] : 0.f);
                    const float n = gru_candidate(xp[2 * H + u], hn);
                    const float h = gru_state(n, z, h_prev);
                    h_nxt[b * H + u] = h;
                    a.y[t * a.y_stride_t + b * a.y_stride_b + u] = h;
                    if (a.saved) save_gru(a.saved + (t * B + b) * S + u, H, r, z, n, hn, h);
                }
                __syncthreads();
            }
        }
        group_sync(counter, a.nU, generation); /* h_nxt complete for every unit of the group's rows */
    }

    /* final states: each block its own (row, unit) pairs, which it wrote itself */
    const float *h_last = a.hbuf + (a.steps & 1) * B * H;
    for (int idx = threadIdx.x; idx < BG * U; idx += kThreads) {
        const int bl = idx / U, ul = idx - bl * U;
        const int64_t b = b0 + bl, u = u0 + ul;
        a.h_n[b * H + u] = h_last[b * H + u];
        if (CELL == kLstm) a.c_n[b * H + u] = a.cbuf[b * H + u];
    }
}

} // namespace

tsrnn_status persistent_fwd_plan(int cell, int64_t H, int64_t B, RecPlan *plan) {
    const void *kernel = cell == kLstm      ? (const void *)rnn_fwd_kernel<kLstm>
                         : cell == kGruAfter ? (const void *)rnn_fwd_kernel<kGruAfter>
                                             : (const void *)rnn_fwd_kernel<kGruBefore>;
    return plan_recurrence(false, cell, H, B, kernel, plan);
}

namespace {

template <int CELL>
tsrnn_status forward(const tsrnn_desc *d, const float *x, const float *h0, const float *c0, const float *w_ih,
                     const float *w_hh, const float *b_ih, const float *b_hh, float *y, float *h_n, float *c_n,
                     float *saved, void *workspace, Path path) {
    const int64_t T = d->T, B = d->B, D = d->D, H = d->H, GH = gates_of(CELL) * H;
    if (B == 0) return TSRNN_OK; /* nothing to write */
    cudaStream_t stream = static_cast<cudaStream_t>(d->stream);

    /* plan first: a failing device query must fail before anything is queued; a plan that does not fit goes
       stepwise (unless the persistent kernel is forced, which then answers TSRNN_ERR_UNSUPPORTED) */
    RecPlan plan;
    bool persistent = false;
    if (path != Path::Stepwise) {
        const tsrnn_status planned = persistent_fwd_plan(CELL, H, B, &plan);
        if (planned != TSRNN_OK && (planned != TSRNN_ERR_UNSUPPORTED || path == Path::Persistent)) return planned;
        persistent = planned == TSRNN_OK;
    }

    const FwdWorkspace ws = fwd_workspace(CELL, d, workspace);
    if (d->lengths) TSRNN_STATUS_TRY(upload_lengths(ws.lengths, d->lengths, B, stream));

    /* xproj = x W_ih^T + b_ih for all T*B rows (rows past a length are computed and never read) */
    TSRNN_STATUS_TRY(gemm(stream, SeqRows{x, B, d->x_stride_t, d->x_stride_b}, RowMajor{w_ih, D},
                          ProjStore{ws.xproj, b_ih, GH}, T * B, GH, D, ws.partial));

    FwdArgs a;
    a.T = T, a.B = B, a.H = H, a.y_stride_t = d->y_stride_t, a.y_stride_b = d->y_stride_b, a.steps = steps_of(d);
    a.lengths = d->lengths ? ws.lengths : nullptr;
    a.reverse = d->reverse;
    a.h0 = h0, a.c0 = c0, a.w_hh = w_hh, a.b_hh = b_hh, a.xproj = ws.xproj;
    a.y = y, a.h_n = h_n, a.c_n = c_n, a.saved = saved;
    a.hbuf = ws.hbuf, a.cbuf = ws.cbuf, a.rbuf = ws.rbuf, a.zbuf = ws.zbuf, a.rhbuf = ws.rhbuf;
    a.counters = ws.counters;
    if (persistent) {
        a.U = plan.U, a.U4 = plan.U4, a.nU = plan.nU, a.BG = plan.BG, a.BC = plan.BC;
        if (plan.nU > 1) TSRNN_CUDA_TRY(cudaMemsetAsync(ws.counters, 0, (size_t)plan.nBG * sizeof(unsigned), stream));
        const tsrnn_status launched = launch_recurrence(rnn_fwd_kernel<CELL>, plan, a, stream);
        /* UNSUPPORTED: the device refused the cooperative launch as too large (a partitioned or shared device);
           nothing ran, so the stepwise path starts from the same state */
        if (launched != TSRNN_ERR_UNSUPPORTED || path == Path::Persistent) return launched;
    }
    return stepwise_forward(CELL, a, ws.hproj, ws.partial, stream);
}

} // namespace

tsrnn_status lstm_forward(const tsrnn_desc *d, const float *x, const float *h0, const float *c0, const float *w_ih,
                          const float *w_hh, const float *b_ih, const float *b_hh, float *y, float *h_n, float *c_n,
                          float *saved, void *workspace, Path path) {
    return forward<kLstm>(d, x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, h_n, c_n, saved, workspace, path);
}

tsrnn_status gru_forward(const tsrnn_desc *d, const float *x, const float *h0, const float *w_ih, const float *w_hh,
                         const float *b_ih, const float *b_hh, float *y, float *h_n, float *saved, void *workspace,
                         Path path) {
    if (d->reset_after)
        return forward<kGruAfter>(d, x, h0, nullptr, w_ih, w_hh, b_ih, b_hh, y, h_n, nullptr, saved, workspace, path);
    return forward<kGruBefore>(d, x, h0, nullptr, w_ih, w_hh, b_ih, b_hh, y, h_n, nullptr, saved, workspace, path);
}

} // namespace tsrnn_cuda
