/*
 * The CUDA kernels' public entry points (tsrnn.h): the common argument checks (kernels/common: tsrnn__check_fwd /
 * _bwd), the workspace layout and size, and the choice of the recurrent kernels' block layout for the current device.
 *
 * Scope of this build (tsrnn__cuda_serves): fp32, any H (the stepwise path takes the sizes whose W_hh cannot stay on
 * chip); LSTM projections (desc->P > 0, nn.LSTM's proj_size) are not served yet and return TSRNN_ERR_UNSUPPORTED
 * once every common check has passed.
 */
#include "cuda_impl.cuh"

namespace tsrnn_cuda {

/* ---- workspace ------------------------------------------------------------------------------------------------ */

FwdWorkspace fwd_workspace(int cell, const tsrnn_desc *d, void *base) {
    const int64_t T = d->T, B = d->B, D = d->D, H = d->H, GH = gates_of(cell) * H;
    Carver c(base);
    FwdWorkspace w;
    w.lengths = c.take<int64_t>(d->lengths ? (size_t)B : 0);
    w.counters = c.take<unsigned>((size_t)B + 1);
    w.xproj = c.take<float>((size_t)(T * B * GH));
    w.hbuf = c.take<float>((size_t)(2 * B * H));
    w.hproj = c.take<float>((size_t)(B * GH));
    w.cbuf = c.take<float>(cell == kLstm ? (size_t)(B * H) : 0);
    w.rbuf = c.take<float>(cell == kGruBefore ? (size_t)(B * H) : 0);
    w.zbuf = c.take<float>(cell == kGruBefore ? (size_t)(B * H) : 0);
    w.rhbuf = c.take<float>(cell == kGruBefore ? (size_t)(B * H) : 0);
    const int64_t proj = partial_floats(T * B, GH, D), step = stepwise_partial_floats(cell, B, H);
    w.partial = c.take<float>((size_t)(proj > step ? proj : step));
    w.bytes = c.total;
    return w;
}

BwdWorkspace bwd_workspace(int cell, const tsrnn_desc *d, void *base) {
    const int64_t T = d->T, B = d->B, D = d->D, H = d->H, GH = gates_of(cell) * H, M = T * B;
    Carver c(base);
    BwdWorkspace w;
    w.lengths = c.take<int64_t>(d->lengths ? (size_t)B : 0);
    w.counters = c.take<unsigned>((size_t)B + 1);
    w.rows = c.take<RowInfo>((size_t)M);
    w.dgx = c.take<float>((size_t)(M * GH));
    w.dghn = c.take<float>(cell != kLstm ? (size_t)(M * H) : 0);
    w.dh = c.take<float>((size_t)(B * H));
    w.dc = c.take<float>(cell == kLstm ? (size_t)(B * H) : 0);
    w.drh = c.take<float>(cell == kGruBefore ? (size_t)(B * H) : 0);
    /* the largest split-K buffer of any product backward may run, for every choice of wanted gradients */
    int64_t most = partial_floats(M, D, GH); /* grad_x */
    const int64_t hh_rows[2] = {cell == kLstm ? GH : 2 * H, cell == kLstm ? 0 : H};
    for (int64_t width : {H + 1, H, (int64_t)1})
        for (int64_t rows : hh_rows)
            if (rows > 0 && partial_floats(rows, width, M) > most) most = partial_floats(rows, width, M);
    for (int64_t width : {D + 1, D, (int64_t)1})
        if (partial_floats(GH, width, M) > most) most = partial_floats(GH, width, M);
    if (stepwise_partial_floats(cell, B, H) > most) most = stepwise_partial_floats(cell, B, H);
    w.partial = c.take<float>((size_t)most);
    w.bytes = c.total;
    return w;
}

/* ---- host-side facts ---------------------------------------------------------------------------------------------- */

int64_t steps_of(const tsrnn_desc *d) {
    if (!d->lengths) return d->T;
    int64_t most = 0;
    for (int64_t b = 0; b < d->B; ++b)
        if (d->lengths[b] > most) most = d->lengths[b];
    return most;
}

namespace {

/* Copies up to kLengthsPerLaunch lengths from the kernel's own argument block. */
struct LengthsChunk {
    int64_t v[kLengthsPerLaunch];
};
__global__ void __launch_bounds__(kLengthsPerLaunch) set_lengths_kernel(int64_t *dst, const LengthsChunk chunk,
                                                                         int count) {
    if ((int)threadIdx.x < count) dst[threadIdx.x] = chunk.v[threadIdx.x];
}

} // namespace

tsrnn_status upload_lengths(int64_t *dst, const int64_t *lengths, int64_t B, cudaStream_t stream) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(1);
    cfg.blockDim = dim3(kLengthsPerLaunch);
    cfg.stream = stream;
    for (int64_t b0 = 0; b0 < B; b0 += kLengthsPerLaunch) {
        LengthsChunk chunk;
        const int count = (int)(B - b0 < kLengthsPerLaunch ? B - b0 : kLengthsPerLaunch);
        for (int i = 0; i < count; ++i) chunk.v[i] = lengths[b0 + i];
        TSRNN_CUDA_TRY(cudaLaunchKernelEx(&cfg, set_lengths_kernel, dst + b0, chunk, count));
    }
    return TSRNN_OK;
}

tsrnn_status plan_recurrence(bool backward, int cell, int64_t H, int64_t B, const void *kernel, RecPlan *plan) {
    int device = 0, sms = 0, smem_optin = 0, cooperative = 0;
    TSRNN_CUDA_TRY(cudaGetDevice(&device));
    TSRNN_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    TSRNN_CUDA_TRY(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    TSRNN_CUDA_TRY(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device));
    TSRNN_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_optin));
    const size_t limit = (size_t)smem_optin;
    auto smem = [&](int U4, int BC) {
        return backward ? bwd_smem_bytes(cell, H, U4, BC) : fwd_smem_bytes(cell, H, U4, BC);
    };
    auto occupancy = [&](size_t bytes, int *blocks_per_sm) -> tsrnn_status {
        TSRNN_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, kernel, kThreads, bytes));
        return TSRNN_OK;
    };
    /* the largest chunk of batch rows (multiple of 4, at most `rows`) whose staging still fits */
    auto chunk_rows = [&](int U4, int64_t rows) {
        int BC = (int)round_up(rows < kMaxChunkRows ? rows : kMaxChunkRows, 4);
        while (BC > 4 && smem(U4, BC) > limit) BC -= 4;
        return BC;
    };
    if (H > INT32_MAX / 16 || B > INT32_MAX / 2) return TSRNN_ERR_UNSUPPORTED;

    RecPlan p;
    const int U4_all = (int)round_up(H, 4);
    if (smem(U4_all, 4) <= limit) {
        /* every unit in one block: batch groups are independent, no barrier, any number of blocks */
        p.U = (int)H, p.U4 = U4_all, p.nU = 1, p.cooperative = false;
        p.BG = (int)round_up(ceil_div(B, sms), 4);
        p.nBG = (int)ceil_div(B, p.BG);
        p.BC = chunk_rows(p.U4, p.BG);
        p.smem = smem(p.U4, p.BC);
    } else {
        /* W_hh split over nU co-resident blocks, a grid barrier per exchange */
        if (!cooperative) return TSRNN_ERR_UNSUPPORTED;
        int per_sm = 0;
        int U = (int)round_up(ceil_div(H, sms), 4);
        for (;; U += 4) {
            if (smem(U, 4) > limit) return TSRNN_ERR_UNSUPPORTED; /* W_hh does not fit on chip */
            TSRNN_STATUS_TRY(occupancy(smem(U, 4), &per_sm));
            if ((int64_t)per_sm * sms >= ceil_div(H, U)) break;
        }
        p.U = U, p.U4 = U, p.nU = (int)ceil_div(H, U), p.cooperative = true;
        p.BC = chunk_rows(p.U4, B);
        TSRNN_STATUS_TRY(occupancy(smem(p.U4, p.BC), &per_sm));
        if ((int64_t)per_sm * sms < p.nU) { /* a wider chunk cost the co-residency: back to the narrowest */
            p.BC = 4;
            TSRNN_STATUS_TRY(occupancy(smem(p.U4, p.BC), &per_sm));
        }
        const int64_t resident = (int64_t)per_sm * sms;
        int64_t groups = resident / p.nU;
        if (groups > ceil_div(B, 4)) groups = ceil_div(B, 4);
        if (groups < 1) groups = 1;
        p.BG = (int)round_up(ceil_div(B, groups), 4);
        p.nBG = (int)ceil_div(B, p.BG);
        if (p.BC > p.BG) p.BC = p.BG;
        p.smem = smem(p.U4, p.BC);
    }
    *plan = p;
    return TSRNN_OK;
}

} // namespace tsrnn_cuda

/* ---- the C API --------------------------------------------------------------------------------------------------- */

using namespace tsrnn_cuda;

extern "C" tsrnn_status tsrnn__cuda_serves(tsrnn_dtype dtype, const tsrnn_desc *desc) {
    if (dtype != TSRNN_F32 || desc->P != 0) return TSRNN_ERR_UNSUPPORTED;
    return TSRNN_OK;
}

extern "C" size_t tsrnn__cuda_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype,
                                              const tsrnn_desc *desc) {
    (void)dtype; /* fp32: tsrnn__cuda_serves refuses the rest */
    const int c = cell_of(cell, desc->reset_after);
    return pass == TSRNN_PASS_FWD ? fwd_workspace(c, desc, nullptr).bytes : bwd_workspace(c, desc, nullptr).bytes;
}

extern "C" {

TSRNN_DECLARE_LSTM_FWD(tsrnn_lstm_fwd_cuda_f32, float) {
    TSRNN_STATUS_TRY(tsrnn__check_fwd(TSRNN_CELL_LSTM, TSRNN_BACKEND_CUDA, TSRNN_F32, desc, x, w_ih, w_hh, w_hr, y, h_n,
                                      c_n, workspace, workspace_bytes));
    const ErrorScope errors;
    return lstm_forward(desc, x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, h_n, c_n, saved, workspace);
}

TSRNN_DECLARE_LSTM_BWD(tsrnn_lstm_bwd_cuda_f32, float) {
    TSRNN_STATUS_TRY(tsrnn__check_bwd(TSRNN_CELL_LSTM, TSRNN_BACKEND_CUDA, TSRNN_F32, desc, x, w_ih, w_hh, w_hr, saved,
                                      grad_x, grad_w_hr, workspace, workspace_bytes));
    const ErrorScope errors;
    return lstm_backward(desc, x, h0, c0, w_ih, w_hh, saved, grad_y, grad_h_n, grad_c_n, grad_x, grad_h0, grad_c0,
                         grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, workspace);
}

TSRNN_DECLARE_GRU_FWD(tsrnn_gru_fwd_cuda_f32, float) {
    TSRNN_STATUS_TRY(tsrnn__check_fwd(TSRNN_CELL_GRU, TSRNN_BACKEND_CUDA, TSRNN_F32, desc, x, w_ih, w_hh, nullptr, y,
                                      h_n, nullptr, workspace, workspace_bytes));
    const ErrorScope errors;
    return gru_forward(desc, x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, saved, workspace);
}

TSRNN_DECLARE_GRU_BWD(tsrnn_gru_bwd_cuda_f32, float) {
    TSRNN_STATUS_TRY(tsrnn__check_bwd(TSRNN_CELL_GRU, TSRNN_BACKEND_CUDA, TSRNN_F32, desc, x, w_ih, w_hh, nullptr,
                                      saved, grad_x, nullptr, workspace, workspace_bytes));
    const ErrorScope errors;
    return gru_backward(desc, x, h0, w_ih, w_hh, saved, grad_y, grad_h_n, grad_x, grad_h0, grad_w_ih, grad_w_hh,
                        grad_b_ih, grad_b_hh, workspace);
}

} /* extern "C" */
