/*
 * CUDA backward of one LSTM / GRU layer in one direction (fp32): the row table, one persistent kernel walking the
 * steps backwards (cuda_impl.cuh describes the block layout; the stepwise path of cuda_step.cu where its plan does
 * not fit), then the GEMMs for grad_x and the parameter gradients.
 *
 * Per step, for the rows still inside their sequence (the reference's formulas, kernels/ref/):
 *   phase A  (local)  from dh = dh_carried + grad_y and the saved activations: d_gates of the block's units
 *                     -> dgx (and dghn for GRU), the direct part of dh_{t-1} (GRU: dh * z), dc_{t-1} (LSTM)
 *   [GRU reset_after = 0, phase A2]  d(r h) = dn_pre W_hn over every unit -> dr -> dgx's r columns
 *   phase B           dh_{t-1} = d_gates_h W_hh: each block its own units, summing over all G*H gate rows
 * with a group barrier before each phase that reads what other blocks wrote.
 *
 * Shared memory of one block (floats):
 *   w_s    (G*H x U4)      w_s[j][ul] = W_hh[j][u0 + ul]: the block's COLUMNS of W_hh (zero for ul >= U)
 *   in_s   (BC x (G*H|1))  d_gates_h of BC batch rows (or dn_pre in phase A2)
 *   part_s (16 x 256)      split-K partial sums of block_matmul
 *   out_s  (BC x U4)       the block's units of d_gates_h W_hh
 */
#include "cuda_gemm.cuh"

namespace tsrnn_cuda {
namespace {

/* Row table of the GEMMs: row (t, b) = t * B + b. */
__global__ void __launch_bounds__(kThreads) row_info_kernel(RowInfo *rows, int64_t T, int64_t B,
                                                            const int64_t *lengths, int reverse, int64_t x_stride_t,
                                                            int64_t x_stride_b, int64_t H, int64_t S, int64_t h_col) {
    for (int64_t row = (int64_t)blockIdx.x * kThreads + threadIdx.x; row < T * B; row += (int64_t)gridDim.x * kThreads) {
        const int64_t t = row / B, b = row - t * B, L = lengths ? lengths[b] : T;
        const int64_t step = reverse ? L - 1 - t : t; /* the step at which the sequence reached t */
        RowInfo r;
        r.x_off = t * x_stride_t + b * x_stride_b;
        r.active = t < L;
        r.from_h0 = step == 0;
        const int64_t t_prev = reverse ? t + 1 : t - 1;
        r.h_off = step == 0 ? b * H : (t_prev * B + b) * S + h_col; /* h0 row b, or h of saved row (t_prev, b) */
        rows[row] = r;
    }
}

template <int CELL>
__global__ void __launch_bounds__(kThreads, 1) rnn_bwd_kernel(const BwdArgs a) {
    constexpr int G = gates_of(CELL);
    TSRNN_DYNAMIC_SMEM(smem);

    const int64_t T = a.T, B = a.B, H = a.H, GH = G * H, S = saved_width_of(CELL) * H;
    const int64_t h_col = (G + 1) * H; /* h_t in a saved row: 5H (LSTM), 4H (GRU) */
    const int ub = (int)(blockIdx.x % (unsigned)a.nU), bg = (int)(blockIdx.x / (unsigned)a.nU);
    const int64_t u0 = (int64_t)ub * a.U;
    const int U = (int)(H - u0 < a.U ? H - u0 : a.U);
    const int64_t b0 = (int64_t)bg * a.BG;
    const int BG = (int)(B - b0 < a.BG ? B - b0 : a.BG);
    const int U4 = a.U4;
    const int64_t ldi = in_stride_of(GH);

    float *w_s = smem;
    float *in_s = w_s + GH * U4;
    float *part_s = in_s + (int64_t)a.BC * ldi;
    float *out_s = part_s + 16 * kThreads;
    unsigned *counter = a.counters + bg;
    unsigned generation = 0;

    /* the block's columns of W_hh: w_s[j][ul] = W_hh[j][u0 + ul] */
    for (int64_t idx = threadIdx.x; idx < GH * U4; idx += kThreads) {
        const int64_t j = idx / U4;
        const int ul = (int)(idx - j * U4);
        w_s[idx] = ul < U ? a.w_hh[j * H + u0 + ul] : 0.f;
    }

    /* carried gradients start from grad_h_n / grad_c_n; d_gates rows past a sequence's length are zero */
    for (int idx = threadIdx.x; idx < BG * U; idx += kThreads) {
        const int bl = idx / U, ul = idx - bl * U;
        const int64_t b = b0 + bl, u = u0 + ul, L = seq_length(a.lengths, b, T);
        a.dh[b * H + u] = a.grad_h_n ? a.grad_h_n[b * H + u] : 0.f;
        if (CELL == kLstm) a.dc[b * H + u] = a.grad_c_n ? a.grad_c_n[b * H + u] : 0.f;
        for (int64_t t = L; t < T; ++t) {
            for (int g = 0; g < G; ++g) a.dgx[(t * B + b) * GH + g * H + u] = 0.f;
            if (CELL != kLstm) a.dghn[(t * B + b) * H + u] = 0.f;
        }
    }
    __syncthreads();

    /* h_{t-1} (or c_{t-1}) of row b at step s: the previous step's saved row, or the initial state */
    auto prev_state = [&](const float *init, int64_t col, int64_t s, int64_t t, int64_t b, int64_t u) -> float {
        if (s == 0) return init ? init[b * H + u] : 0.f;
        const int64_t t_prev = a.reverse ? t + 1 : t - 1;
        return a.saved[(t_prev * B + b) * S + col + u];
    };

    for (int64_t s = a.steps - 1; s >= 0; --s) {
        /* ---- phase A: d_gates of the block's units, local ---- */
        for (int idx = threadIdx.x; idx < BG * U; idx += kThreads) {
            const int bl = idx / U, ul = idx - bl * U;
            const int64_t b = b0 + bl, u = u0 + ul, L = seq_length(a.lengths, b, T);
            if (s >= L) continue;
            const int64_t t = a.reverse ? L - 1 - s : s, row = t * B + b;
            const float *sv = a.saved + row * S; /* saved row (t, b) */
            float *dg = a.dgx + row * GH;
            const float dh = a.dh[b * H + u] + (a.grad_y ? a.grad_y[t * a.y_stride_t + b * a.y_stride_b + u] : 0.f);

            if (CELL == kLstm) {
                float dg4[4], dc_prev;
                lstm_unit_backward(sv + u, H, dh, a.dc[b * H + u], prev_state(a.c0, 4 * H, s, t, b, u), dg4, &dc_prev);
                for (int g = 0; g < 4; ++g) dg[g * H + u] = dg4[g];
                a.dc[b * H + u] = dc_prev;
            } else {
                float dg3[3], dghn, dh_direct;
                gru_unit_backward(sv + u, H, CELL == kGruAfter, dh, prev_state(a.h0, h_col, s, t, b, u), dg3, &dghn,
                                  &dh_direct);
                if (CELL == kGruAfter) dg[0 * H + u] = dg3[0];
                dg[1 * H + u] = dg3[1];
                dg[2 * H + u] = dg3[2];
                a.dghn[row * H + u] = dghn;
                a.dh[b * H + u] = dh_direct; /* phase B adds the rest */
            }
        }
        group_sync(counter, a.nU, generation);

        /* ---- phase A2 (GRU reset_after = 0): d(r h) = dn_pre W_hn over every unit, then dr ---- */
        if (CELL == kGruBefore) {
            for (int c0 = 0; c0 < BG; c0 += a.BC) {
                const int rows = BG - c0 < a.BC ? BG - c0 : a.BC, rows4 = (int)round_up(rows, 4);
                for (int64_t idx = threadIdx.x; idx < (int64_t)rows4 * H; idx += kThreads) {
                    const int r = (int)(idx / H);
                    const int64_t k = idx - (int64_t)r * H, b = b0 + c0 + r;
                    float v = 0.f;
                    if (r < rows) {
                        const int64_t L = seq_length(a.lengths, b, T);
                        if (s < L) v = __ldcg(a.dghn + ((a.reverse ? L - 1 - s : s) * B + b) * H + k);
                    }
                    in_s[r * ldi + k] = v;
                }
                __syncthreads();
                block_matmul(in_s, ldi, w_s + 2 * H * U4, U4, H, rows4, U4, part_s, out_s, U4);

                for (int idx = threadIdx.x; idx < rows * U; idx += kThreads) {
                    const int bl = idx / U, ul = idx - bl * U;
                    const int64_t b = b0 + c0 + bl, u = u0 + ul, L = seq_length(a.lengths, b, T);
                    if (s >= L) continue;
                    const int64_t t = a.reverse ? L - 1 - s : s, row = t * B + b;
                    const float d_rh = out_s[bl * U4 + ul];
                    a.dgx[row * GH + u] = gru_reset_grad(d_rh, prev_state(a.h0, h_col, s, t, b, u), a.saved[row * S + u]);
                    a.drh[b * H + u] = d_rh;
                }
                __syncthreads();
            }
            group_sync(counter, a.nU, generation);
        }

        /* ---- phase B: dh_{t-1} for the block's units = d_gates_h (all gate rows) W_hh ---- */
        /* the gate rows that read h_{t-1}: all of them, except n when reset_after = 0 (it reads r * h_{t-1}) */
        const int64_t K = CELL == kGruBefore ? 2 * H : GH;
        for (int c0 = 0; c0 < BG; c0 += a.BC) {
            const int rows = BG - c0 < a.BC ? BG - c0 : a.BC, rows4 = (int)round_up(rows, 4);
            for (int64_t idx = threadIdx.x; idx < (int64_t)rows4 * K; idx += kThreads) {
                const int r = (int)(idx / K);
                const int64_t j = idx - (int64_t)r * K, b = b0 + c0 + r;
                float v = 0.f;
                if (r < rows) {
                    const int64_t L = seq_length(a.lengths, b, T);
                    if (s < L) {
                        const int64_t row = (a.reverse ? L - 1 - s : s) * B + b;
                        /* d_gates_h: d_gates_x for LSTM and for GRU's r, z; dghn for GRU's n */
                        v = (CELL == kLstm || j < 2 * H) ? __ldcg(a.dgx + row * GH + j)
                                                         : __ldcg(a.dghn + row * H + (j - 2 * H));
                    }
                }
                in_s[r * ldi + j] = v;
            }
            __syncthreads();
            block_matmul(in_s, ldi, w_s, U4, K, rows4, U4, part_s, out_s, U4);

            for (int idx = threadIdx.x; idx < rows * U; idx += kThreads) {
                const int bl = idx / U, ul = idx - bl * U;
                const int64_t b = b0 + c0 + bl, u = u0 + ul, L = seq_length(a.lengths, b, T);
                if (s >= L) continue;
                const float sum = out_s[bl * U4 + ul];
                if (CELL == kLstm) {
                    a.dh[b * H + u] = sum;
                } else if (CELL == kGruAfter) {
                    a.dh[b * H + u] = a.dh[b * H + u] + sum;
                } else {
                    const int64_t row = (a.reverse ? L - 1 - s : s) * B + b;
                    a.dh[b * H + u] = (a.dh[b * H + u] + sum) + a.drh[b * H + u] * a.saved[row * S + u];
                }
            }
            __syncthreads();
        }
        /*
         * No barrier here: the next step's phase A writes only the block's own carried values and d_gates rows of
         * other time steps, which no block is still reading.
         */
    }

    for (int idx = threadIdx.x; idx < BG * U; idx += kThreads) {
        const int bl = idx / U, ul = idx - bl * U;
        const int64_t b = b0 + bl, u = u0 + ul;
        if (a.grad_h0) a.grad_h0[b * H + u] = a.dh[b * H + u];
        if (CELL == kLstm && a.grad_c0) a.grad_c0[b * H + u] = a.dc[b * H + u];
    }
}

} // namespace

tsrnn_status persistent_bwd_plan(int cell, int64_t H, int64_t B, RecPlan *plan) {
    const void *kernel = cell == kLstm      ? (const void *)rnn_bwd_kernel<kLstm>
                         : cell == kGruAfter ? (const void *)rnn_bwd_kernel<kGruAfter>
                                             : (const void *)rnn_bwd_kernel<kGruBefore>;
    return plan_recurrence(true, cell, H, B, kernel, plan);
}

namespace {

template <int CELL>
tsrnn_status backward(const tsrnn_desc *d, const float *x, const float *h0, const float *c0, const float *w_ih,
                      const float *w_hh, const float *saved, const float *grad_y, const float *grad_h_n,
                      const float *grad_c_n, float *grad_x, float *grad_h0, float *grad_c0, float *grad_w_ih,
                      float *grad_w_hh, float *grad_b_ih, float *grad_b_hh, void *workspace, Path path) {
    constexpr int G = gates_of(CELL);
    const int64_t T = d->T, B = d->B, D = d->D, H = d->H, GH = G * H, S = saved_width_of(CELL) * H;
    cudaStream_t stream = static_cast<cudaStream_t>(d->stream);

    if (B == 0) { /* no rows: the parameter gradients are sums over nothing */
        if (grad_w_ih) TSRNN_CUDA_TRY(cudaMemsetAsync(grad_w_ih, 0, (size_t)(GH * D) * sizeof(float), stream));
        if (grad_w_hh) TSRNN_CUDA_TRY(cudaMemsetAsync(grad_w_hh, 0, (size_t)(GH * H) * sizeof(float), stream));
        if (grad_b_ih) TSRNN_CUDA_TRY(cudaMemsetAsync(grad_b_ih, 0, (size_t)GH * sizeof(float), stream));
        if (grad_b_hh) TSRNN_CUDA_TRY(cudaMemsetAsync(grad_b_hh, 0, (size_t)GH * sizeof(float), stream));
        return TSRNN_OK;
    }

    RecPlan plan;
    bool persistent = false;
    if (path != Path::Stepwise) { /* as forward(): a plan that does not fit goes stepwise unless forced */
        const tsrnn_status planned = persistent_bwd_plan(CELL, H, B, &plan);
        if (planned != TSRNN_OK && (planned != TSRNN_ERR_UNSUPPORTED || path == Path::Persistent)) return planned;
        persistent = planned == TSRNN_OK;
    }

    const BwdWorkspace ws = bwd_workspace(CELL, d, workspace);
    if (d->lengths) TSRNN_STATUS_TRY(upload_lengths(ws.lengths, d->lengths, B, stream));
    const int64_t *lengths = d->lengths ? ws.lengths : nullptr;

    if (T * B > 0) {
        cudaLaunchConfig_t cfg = {};
        const int64_t blocks = ceil_div(T * B, kThreads);
        cfg.gridDim = dim3((unsigned)(blocks < 4096 ? blocks : 4096));
        cfg.blockDim = dim3(kThreads);
        cfg.stream = stream;
        TSRNN_CUDA_TRY(cudaLaunchKernelEx(&cfg, row_info_kernel, ws.rows, T, B, lengths, d->reverse, d->x_stride_t,
                                          d->x_stride_b, H, S, (int64_t)(G + 1) * H));
    }

    BwdArgs a;
    a.T = T, a.B = B, a.H = H, a.y_stride_t = d->y_stride_t, a.y_stride_b = d->y_stride_b, a.steps = steps_of(d);
    a.lengths = lengths;
    a.reverse = d->reverse;
    a.h0 = h0, a.c0 = c0, a.w_hh = w_hh, a.saved = saved, a.grad_y = grad_y, a.grad_h_n = grad_h_n;
    a.grad_c_n = grad_c_n, a.grad_h0 = grad_h0, a.grad_c0 = grad_c0;
    a.dgx = ws.dgx, a.dghn = ws.dghn, a.dh = ws.dh, a.dc = ws.dc, a.drh = ws.drh;
    a.counters = ws.counters;
    tsrnn_status launched = TSRNN_ERR_UNSUPPORTED;
    if (persistent) {
        a.U = plan.U, a.U4 = plan.U4, a.nU = plan.nU, a.BG = plan.BG, a.BC = plan.BC;
        if (plan.nU > 1) TSRNN_CUDA_TRY(cudaMemsetAsync(ws.counters, 0, (size_t)plan.nBG * sizeof(unsigned), stream));
        launched = launch_recurrence(rnn_bwd_kernel<CELL>, plan, a, stream);
        if (launched != TSRNN_OK && (launched != TSRNN_ERR_UNSUPPORTED || path == Path::Persistent)) return launched;
    }
    if (launched != TSRNN_OK) TSRNN_STATUS_TRY(stepwise_backward(CELL, a, ws.partial, stream)); /* see forward() */

    const int64_t M = T * B; /* rows of the sequence tensors: the reduction length of the parameter gradients */

    /* grad_x = d_gates_x W_ih (dgx is zero past each length, and the store writes zero there anyway) */
    if (grad_x)
        TSRNN_STATUS_TRY(gemm(stream, RowMajor{ws.dgx, GH}, ColMajor{w_ih, D}, GradXStore{grad_x, ws.rows}, M, D, GH,
                              ws.partial));

    /*
     * grad_w_hh (GH x H) and grad_b_hh = sum over rows of d_gates_h^T [h_{t-1} | 1]. Bias sums ride along as an
     * all-ones column of the weight products, so they share their fixed summation order.
     */
    if (grad_w_hh || grad_b_hh) {
        const int64_t width = grad_w_hh ? H : 0, N = width + (grad_b_hh ? 1 : 0);
        if (CELL == kLstm) {
            TSRNN_STATUS_TRY(gemm(stream, ColMajor{ws.dgx, GH}, MaskedPrevState{saved, h0, ws.rows, width, S, 0},
                                  WeightStore{grad_w_hh, grad_b_hh, width}, GH, N, M, ws.partial));
        } else {
            /* rows r, z: d_gates_h = d_gates_x there */
            TSRNN_STATUS_TRY(gemm(stream, ColMajor{ws.dgx, GH}, MaskedPrevState{saved, h0, ws.rows, width, S, 0},
                                  WeightStore{grad_w_hh, grad_b_hh, width}, 2 * H, N, M, ws.partial));
            /* rows n: dL/dhn against h_{t-1} (reset_after = 1) or r * h_{t-1} (reset_after = 0) */
            TSRNN_STATUS_TRY(gemm(stream, ColMajor{ws.dghn, H},
                                  MaskedPrevState{saved, h0, ws.rows, width, S, CELL == kGruBefore ? 1 : 0},
                                  WeightStore{grad_w_hh ? grad_w_hh + 2 * H * H : nullptr,
                                              grad_b_hh ? grad_b_hh + 2 * H : nullptr, width},
                                  H, N, M, ws.partial));
        }
    }

    /*
     * grad_w_ih (GH x D) and grad_b_ih = sum over rows of d_gates_x^T [x | 1]. Where d_gates_x = d_gates_h (every
     * LSTM row; GRU rows r, z) grad_b_ih is a copy of grad_b_hh, bit for bit, as in the reference.
     */
    const int64_t shared_bias = CELL == kLstm ? GH : 2 * H; /* leading bias entries equal in both */
    const bool copy_bias = grad_b_ih && grad_b_hh;
    const bool bias_column = grad_b_ih && !(copy_bias && shared_bias == GH);
    if (grad_w_ih || bias_column) {
        const int64_t width = grad_w_ih ? D : 0;
        TSRNN_STATUS_TRY(gemm(stream, ColMajor{ws.dgx, GH}, MaskedSeqCols{x, ws.rows, width},
                              WeightStore{grad_w_ih, bias_column ? grad_b_ih : nullptr, width}, GH,
                              width + (bias_column ? 1 : 0), M, ws.partial));
    }
    if (copy_bias)
        TSRNN_CUDA_TRY(cudaMemcpyAsync(grad_b_ih, grad_b_hh, (size_t)shared_bias * sizeof(float),
                                       cudaMemcpyDeviceToDevice, stream));
    return TSRNN_OK;
}

} // namespace

tsrnn_status lstm_backward(const tsrnn_desc *d, const float *x, const float *h0, const float *c0, const float *w_ih,
                           const float *w_hh, const float *saved, const float *grad_y, const float *grad_h_n,
                           const float *grad_c_n, float *grad_x, float *grad_h0, float *grad_c0, float *grad_w_ih,
                           float *grad_w_hh, float *grad_b_ih, float *grad_b_hh, void *workspace, Path path) {
    return backward<kLstm>(d, x, h0, c0, w_ih, w_hh, saved, grad_y, grad_h_n, grad_c_n, grad_x, grad_h0, grad_c0,
                           grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, workspace, path);
}

tsrnn_status gru_backward(const tsrnn_desc *d, const float *x, const float *h0, const float *w_ih, const float *w_hh,
                          const float *saved, const float *grad_y, const float *grad_h_n, float *grad_x,
                          float *grad_h0, float *grad_w_ih, float *grad_w_hh, float *grad_b_ih, float *grad_b_hh,
                          void *workspace, Path path) {
    if (d->reset_after)
        return backward<kGruAfter>(d, x, h0, nullptr, w_ih, w_hh, saved, grad_y, grad_h_n, nullptr, grad_x, grad_h0,
                                   nullptr, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, workspace, path);
    return backward<kGruBefore>(d, x, h0, nullptr, w_ih, w_hh, saved, grad_y, grad_h_n, nullptr, grad_x, grad_h0,
                                nullptr, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, workspace, path);
}

} // namespace tsrnn_cuda
