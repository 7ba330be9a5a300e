/*
 * The optimized CPU kernels' public entry points: the common argument checks (kernels/common: tsrnn__check_fwd /
 * _bwd), the workspace layout and size, and the choice of the instruction-set variant that runs the call.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cpu_impl.h"

/* ---- sizes --------------------------------------------------------------------------------------------- */

/* Saturating size arithmetic: an impossible size stays impossible instead of wrapping. */
static size_t mul_sz(size_t a, size_t b) {
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

static size_t round_up_sz(size_t n, size_t to) {
    size_t r;
    if (__builtin_add_overflow(n, to - 1, &r)) return SIZE_MAX;
    return r / to * to;
}

/* Reserves bytes at the end of the layout (64-byte aligned) and returns its offset. */
static size_t take(tsrnn__cpu_layout *l, size_t bytes) {
    size_t at = l->total, end;
    if (bytes == 0) return 0;
    if (__builtin_add_overflow(at, round_up_sz(bytes, TSRNN_CPU_PAD_BYTES), &end)) end = SIZE_MAX;
    l->total = end;
    return at;
}

/* Threads worth starting for the call's arithmetic: a thread costs tens of microseconds to start and join.
 * Per (t, b): 4H x (D + R) gate products and P x H for the projection. */
static int64_t threads_for_work(const tsrnn_desc *d) {
    const double R = (double)tsrnn__out_width(d);
    const double fma_lanes =
        (double)d->T * (double)d->B * (double)d->H * (4.0 * ((double)d->D + R) + (double)d->P);
    const double per_thread = (double)TSRNN_CPU_MIN_WORK_PER_THREAD;
    if (fma_lanes < per_thread) return 1;
    return fma_lanes / per_thread > TSRNN_CPU_MAX_THREADS ? TSRNN_CPU_MAX_THREADS : (int64_t)(fma_lanes / per_thread);
}

int tsrnn__cpu_sweep_threads(const tsrnn_desc *d) {
    int64_t n = d->num_threads, by_rows = d->B / TSRNN_CPU_MIN_ROWS_PER_THREAD, by_work = threads_for_work(d);
    if (by_rows < n) n = by_rows;
    if (by_work < n) n = by_work;
    if (n > TSRNN_CPU_MAX_THREADS) n = TSRNN_CPU_MAX_THREADS;
    return n < 1 ? 1 : (int)n;
}

int tsrnn__cpu_product_threads(const tsrnn_desc *d) {
    int64_t n = d->num_threads, by_work = threads_for_work(d);
    if (by_work < n) n = by_work;
    if (n > TSRNN_CPU_MAX_THREADS) n = TSRNN_CPU_MAX_THREADS;
    return n < 1 ? 1 : (int)n;
}

/* Bytes of one core's L2 (the largest private cache on the x86 parts we run on), from the C library's cpuid
 * reading; 1 MiB when it cannot tell. */
static int64_t l2_bytes(void) {
    static int64_t cached;
    if (cached == 0) {
        long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
        cached = v > 0 ? (int64_t)v : (int64_t)1 << 20;
    }
    return cached;
}

int tsrnn__cpu_unit_threads(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *d) {
    const int64_t es = dtype == TSRNN_F64 ? 8 : 4, pad = TSRNN_CPU_PAD_BYTES / es;
    const int64_t groups = (d->H + pad - 1) / pad; /* every variant has at least this many blocks of units */
    const int64_t G = tsrnn__gates(cell), R = tsrnn__out_width(d), Hp = groups * pad;
    const int64_t Dp = (d->D + pad - 1) / pad * pad, step_lanes = G * d->H * R * d->B;
    /* packed weights a step reads. Forward: W_hh^T, and W_ih^T unless the input projection is hoisted out of the
     * loop. Backward: W_hh (dh_{t-1}) and W_ih (grad_x) as column panels. */
    const int64_t step_weight_bytes =
        pass == TSRNN_PASS_FWD ? G * Hp * (R + (tsrnn__cpu_fwd_hoist(cell, d) ? 0 : d->D)) * es
                               : G * d->H * (Hp + Dp) * es;
    const int gru0 = cell == TSRNN_CELL_GRU && d->reset_after == 0;
    int64_t n = d->num_threads;
    if (!d->parallel || d->P > 0 || (pass == TSRNN_PASS_BWD && gru0) || n < 2) return 1;
    if (step_lanes < TSRNN_CPU_MIN_STEP_WORK * n) return 1;
    const int idle = tsrnn__cpu_sweep_threads(d) < n;
    const int streamed = step_weight_bytes > l2_bytes() / 2 && d->B <= TSRNN_CPU_UNIT_MAX_ROWS * n;
    if (!idle && !streamed) return 1;
    if (n > groups) n = groups;
    if (n > TSRNN_CPU_MAX_THREADS) n = TSRNN_CPU_MAX_THREADS;
    return n < 2 ? 1 : (int)n;
}

int tsrnn__cpu_fwd_hoist(tsrnn_cell cell, const tsrnn_desc *d) {
    const int64_t pad = TSRNN_CPU_PAD_BYTES / sizeof(float), nx = cell == TSRNN_CELL_LSTM ? 4 : 3;
    const int64_t Hp = (d->H + pad - 1) / pad * pad;
    if (d->B < 1 || d->B >= TSRNN_CPU_HOIST_MAX_B || d->T < 2 || d->D < 1) return 0;
    return d->T <= TSRNN_CPU_HOIST_MAX_ELEMS / d->B / (nx * Hp);
}

void tsrnn__cpu_layout_of(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *d,
                          tsrnn__cpu_layout *l) {
    const size_t es = dtype == TSRNN_F64 ? sizeof(double) : sizeof(float);
    const size_t pad = TSRNN_CPU_PAD_BYTES / es;
    const size_t B = (size_t)d->B, T = (size_t)d->T, D = (size_t)d->D, H = (size_t)d->H;
    const size_t P = (size_t)d->P, R = (size_t)tsrnn__out_width(d);
    const size_t G = (size_t)tsrnn__gates(cell), M = mul_sz(T, B);
    const size_t Hp = round_up_sz(H, pad), Rp = round_up_sz(R, pad), Pp = round_up_sz(P, pad);
    const size_t LDG = (size_t)tsrnn__cpu_ld((int64_t)(4 * H), (int64_t)pad);
    const size_t Dp = round_up_sz(D, pad);
    const int gru0 = cell == TSRNN_CELL_GRU && d->reset_after == 0, lstm = cell == TSRNN_CELL_LSTM, proj = P > 0;
    const size_t row = mul_sz(Hp, es); /* bytes of one padded state row */
    *l = (tsrnn__cpu_layout){0};
    l->memo = take(l, sizeof(tsrnn__cpu_memo)); /* offset 0 */
    if (pass == TSRNN_PASS_FWD) {
        l->wx = take(l, mul_sz(mul_sz(D, G), row));
        l->wh = take(l, mul_sz(mul_sz(R, G), row));
        l->whn = gru0 ? take(l, mul_sz(H, row)) : 0;
        l->whr = proj ? take(l, mul_sz(mul_sz(H, Pp), es)) : 0;
        l->bias = take(l, mul_sz(4, row));
        {
            const size_t raw = mul_sz(mul_sz(G * H, D + R + 2) + mul_sz(P, H), es);
            l->wraw = raw <= TSRNN_CPU_MEMO_MAX_BYTES ? take(l, raw) : 0;
        }
        l->hbuf = take(l, mul_sz(2 * B, row));
        l->cbuf = lstm ? take(l, mul_sz(B, row)) : 0;
        l->mbuf = proj ? take(l, mul_sz(B, row)) : 0;
        l->gscr = gru0 ? take(l, mul_sz(3 * B, row)) : 0;
        l->rh = gru0 ? take(l, mul_sz(B, row)) : 0;
        l->xp = tsrnn__cpu_fwd_hoist(cell, d) ? take(l, mul_sz(mul_sz(M, lstm ? 4 : 3), row)) : 0;
    } else {
        const size_t LDH = (size_t)tsrnn__cpu_ld((int64_t)R, (int64_t)pad);
        const size_t LDX = (size_t)tsrnn__cpu_ld((int64_t)D, (int64_t)pad);
        const size_t LDM = (size_t)tsrnn__cpu_ld((int64_t)H, (int64_t)pad);
        l->dg = take(l, mul_sz(mul_sz(M, LDG), es));
        l->hprev = take(l, mul_sz(mul_sz(M, LDH), es));
        l->rhprev = gru0 ? take(l, mul_sz(mul_sz(M, LDH), es)) : 0;
        l->x_copy = take(l, mul_sz(mul_sz(M, LDX), es));
        l->dhs = proj ? take(l, mul_sz(mul_sz(M, LDH), es)) : 0;
        l->m_copy = proj ? take(l, mul_sz(mul_sz(M, LDM), es)) : 0;
        l->whhp = take(l, mul_sz(mul_sz(G * H, Rp), es));
        l->whrp = proj ? take(l, mul_sz(P, row)) : 0;
        {   /* W_ih as column panels of Dp for grad_x, or W_ih^T (D x G*H rounded up) for its small-D form */
            size_t panels = mul_sz(G * H, Dp), rows = mul_sz(D, round_up_sz(G * H, pad));
            l->wihp = take(l, mul_sz(panels > rows ? panels : rows, es));
        }
        l->dhbuf = take(l, mul_sz(2 * B, row));
        l->dcbuf = lstm ? take(l, mul_sz(B, row)) : 0;
        l->dmbuf = proj ? take(l, mul_sz(B, row)) : 0;
        l->drh = gru0 ? take(l, mul_sz(B, row)) : 0;
        {
            const size_t weights = mul_sz(G * H, R) + mul_sz(G * H, D) + mul_sz(P, H);
            const size_t levels = (size_t)tsrnn__cpu_wgrad_levels((int64_t)M);
            l->wsum = levels ? take(l, mul_sz(mul_sz(levels, weights), es)) : 0;
        }
    }
    l->rows = take(l, mul_sz(B, sizeof(int64_t)));
}

/* ---- packed-weight reuse (cpu_impl.h) ------------------------------------------------------------------ */

int tsrnn__cpu_memo_hit(const tsrnn_desc *d, const tsrnn__cpu_layout *l, const void *ws, const tsrnn__cpu_memo *key,
                        const tsrnn__cpu_sources *src) {
    if (!d->workspace_kept || !l->wraw) return 0;
    if (memcmp((const char *)ws + l->memo, key, sizeof(*key)) != 0) return 0;
    const char *raw = (const char *)ws + l->wraw;
    for (int i = 0; i < 5; ++i) {
        if (src->bytes[i] && memcmp(raw, src->p[i], src->bytes[i]) != 0) return 0;
        raw += src->bytes[i];
    }
    return 1;
}

void tsrnn__cpu_memo_forget(const tsrnn__cpu_layout *l, void *ws) {
    ((tsrnn__cpu_memo *)((char *)ws + l->memo))->magic = 0;
}

void tsrnn__cpu_memo_keep(const tsrnn__cpu_layout *l, void *ws, const tsrnn__cpu_memo *key,
                          const tsrnn__cpu_sources *src) {
    if (!l->wraw) return;
    char *raw = (char *)ws + l->wraw;
    for (int i = 0; i < 5; ++i) {
        if (src->bytes[i]) memcpy(raw, src->p[i], src->bytes[i]);
        raw += src->bytes[i];
    }
    memcpy((char *)ws + l->memo, key, sizeof(*key));
}

size_t tsrnn__cpu_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc) {
    tsrnn__cpu_layout l;
    tsrnn__cpu_layout_of(cell, pass, dtype, desc, &l);
    return l.total;
}

/* ---- variant choice -------------------------------------------------------------------------------------- */

typedef tsrnn_status (*fwd_impl)(const tsrnn__cpu_fwd_args *);
typedef tsrnn_status (*bwd_impl)(const tsrnn__cpu_bwd_args *);

/* 2: AVX-512F (+AVX2, FMA), 1: AVX2 + FMA, 0: the portable variant. Decided per call from the CPU we run on. */
static int isa_level(void) {
#ifdef TSRNN_CPU_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_supports("avx512f") ? 2 : 1;
#endif
    return 0;
}

static fwd_impl pick_fwd(tsrnn_dtype dtype) {
    int level = isa_level();
#ifdef TSRNN_CPU_X86
    if (level == 2) return dtype == TSRNN_F32 ? tsrnn__cpu_fwd_f32_avx512 : tsrnn__cpu_fwd_f64_avx512;
    if (level == 1) return dtype == TSRNN_F32 ? tsrnn__cpu_fwd_f32_avx2 : tsrnn__cpu_fwd_f64_avx2;
#endif
    (void)level;
    return dtype == TSRNN_F32 ? tsrnn__cpu_fwd_f32_generic : tsrnn__cpu_fwd_f64_generic;
}

static bwd_impl pick_bwd(tsrnn_dtype dtype) {
    int level = isa_level();
#ifdef TSRNN_CPU_X86
    if (level == 2) return dtype == TSRNN_F32 ? tsrnn__cpu_bwd_f32_avx512 : tsrnn__cpu_bwd_f64_avx512;
    if (level == 1) return dtype == TSRNN_F32 ? tsrnn__cpu_bwd_f32_avx2 : tsrnn__cpu_bwd_f64_avx2;
#endif
    (void)level;
    return dtype == TSRNN_F32 ? tsrnn__cpu_bwd_f32_generic : tsrnn__cpu_bwd_f64_generic;
}

/* ---- entry points ---------------------------------------------------------------------------------------- */

static tsrnn_status fwd(tsrnn_cell cell, tsrnn_dtype dtype, const tsrnn_desc *desc, const void *x, const void *h0,
                        const void *c0, const void *w_ih, const void *w_hh, const void *b_ih, const void *b_hh,
                        const void *w_hr, void *y, void *h_n, void *c_n, void *saved, void *workspace,
                        size_t workspace_bytes) {
    const tsrnn_status st = tsrnn__check_fwd(cell, TSRNN_BACKEND_CPU, dtype, desc, x, w_ih, w_hh, w_hr, y, h_n, c_n,
                                             workspace, workspace_bytes);
    if (st != TSRNN_OK) return st;
    const tsrnn__cpu_fwd_args args = {cell, desc, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, h_n, c_n, saved,
                                      workspace};
    return pick_fwd(dtype)(&args);
}

static tsrnn_status bwd(tsrnn_cell cell, tsrnn_dtype dtype, const tsrnn_desc *desc, const void *x, const void *h0,
                        const void *c0, const void *w_ih, const void *w_hh, const void *w_hr, const void *saved,
                        const void *grad_y, const void *grad_h_n, const void *grad_c_n, void *grad_x, void *grad_h0,
                        void *grad_c0, void *grad_w_ih, void *grad_w_hh, void *grad_b_ih, void *grad_b_hh,
                        void *grad_w_hr, void *workspace, size_t workspace_bytes) {
    const tsrnn_status st = tsrnn__check_bwd(cell, TSRNN_BACKEND_CPU, dtype, desc, x, w_ih, w_hh, w_hr, saved, grad_x,
                                             grad_w_hr, workspace, workspace_bytes);
    if (st != TSRNN_OK) return st;
    const tsrnn__cpu_bwd_args args = {cell,      desc,      x,         h0,        c0,        w_ih,
                                      w_hh,      w_hr,      saved,     grad_y,    grad_h_n,  grad_c_n,
                                      grad_x,    grad_h0,   grad_c0,   grad_w_ih, grad_w_hh, grad_b_ih,
                                      grad_b_hh, grad_w_hr, workspace};
    return pick_bwd(dtype)(&args);
}

#define DEFINE_ENTRY_POINTS(real, dt, DT)                                                                     \
    TSRNN_DECLARE_LSTM_FWD(tsrnn_lstm_fwd_cpu_##dt, real) {                                                   \
        return fwd(TSRNN_CELL_LSTM, DT, desc, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, h_n, c_n, saved,    \
                   workspace, workspace_bytes);                                                               \
    }                                                                                                         \
    TSRNN_DECLARE_GRU_FWD(tsrnn_gru_fwd_cpu_##dt, real) {                                                     \
        return fwd(TSRNN_CELL_GRU, DT, desc, x, h0, NULL, w_ih, w_hh, b_ih, b_hh, NULL, y, h_n, NULL, saved,   \
                   workspace, workspace_bytes);                                                               \
    }                                                                                                         \
    TSRNN_DECLARE_LSTM_BWD(tsrnn_lstm_bwd_cpu_##dt, real) {                                                   \
        return bwd(TSRNN_CELL_LSTM, DT, desc, x, h0, c0, w_ih, w_hh, w_hr, saved, grad_y, grad_h_n, grad_c_n, \
                   grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_w_hr, workspace, \
                   workspace_bytes);                                                                          \
    }                                                                                                         \
    TSRNN_DECLARE_GRU_BWD(tsrnn_gru_bwd_cpu_##dt, real) {                                                     \
        return bwd(TSRNN_CELL_GRU, DT, desc, x, h0, NULL, w_ih, w_hh, NULL, saved, grad_y, grad_h_n, NULL,     \
                   grad_x, grad_h0, NULL, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, NULL, workspace,        \
                   workspace_bytes);                                                                          \
    }

DEFINE_ENTRY_POINTS(float, f32, TSRNN_F32)
DEFINE_ENTRY_POINTS(double, f64, TSRNN_F64)
