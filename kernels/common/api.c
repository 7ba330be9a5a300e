/* Status strings, the argument checks every backend runs first, and the workspace-size dispatch. */
#include <stdint.h>

#include "internal.h"

const char *tsrnn_status_string(tsrnn_status status) {
    switch (status) {
    case TSRNN_OK: return "ok";
    case TSRNN_ERR_NULL: return "a required pointer is NULL";
    case TSRNN_ERR_SHAPE: return "a size is out of range (T >= 0, B >= 0, D >= 1, H >= 1) or element counts overflow";
    case TSRNN_ERR_STRIDE: return "a stride is negative, or output rows would overlap";
    case TSRNN_ERR_LENGTHS: return "a sequence length is outside [0, T]";
    case TSRNN_ERR_WORKSPACE: return "workspace too small or not 64-byte aligned";
    case TSRNN_ERR_THREADS: return "num_threads must be >= 1, or the caller's thread pool (desc.parallel) failed";
    case TSRNN_ERR_ARGUMENT: return "bad argument (unknown enum value, or a flag that is not 0 or 1)";
    case TSRNN_ERR_CUDA: return "a CUDA call or kernel launch failed";
    case TSRNN_ERR_UNSUPPORTED: return "not supported by this build";
    }
    return "unknown tsrnn status";
}

int64_t tsrnn__gates(tsrnn_cell cell) { return cell == TSRNN_CELL_LSTM ? 4 : 3; }

int64_t tsrnn_saved_row(tsrnn_cell cell, int64_t H, int64_t P) {
    if (cell == TSRNN_CELL_GRU) return P == 0 ? 5 * H : -1;
    if (cell != TSRNN_CELL_LSTM || P < 0 || (P > 0 && P >= H)) return -1;
    return 6 * H + P;
}

/* *out = a * b, and whether it fits TSRNN_MAX_ELEMENTS (tsrnn.h). */
static int mul_ok(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out) && *out <= TSRNN_MAX_ELEMENTS;
}

/* Last element + 1 of a (T x B x W) strided tensor; 0 when it is empty. Returns 0 on overflow. */
static int extent_ok(int64_t T, int64_t B, int64_t W, int64_t st, int64_t sb, int64_t *out) {
    int64_t a, b, s;
    if (T == 0 || B == 0) { *out = 0; return 1; }
    if (!mul_ok(T - 1, st, &a) || !mul_ok(B - 1, sb, &b)) return 0;
    if (__builtin_add_overflow(a, b, &s) || __builtin_add_overflow(s, W, out)) return 0;
    return *out <= TSRNN_MAX_ELEMENTS;
}

int tsrnn_rows_nested(int64_t T, int64_t B, int64_t W, int64_t st, int64_t sb) {
    int64_t span;
    if (T < 0 || B < 0 || W < 1 || st < 0 || sb < 0) return 0;
    if (T == 0 || B == 0) return 1;
    /* time-major: b inner, t outer */
    if ((B == 1 || sb >= W) && !__builtin_mul_overflow(B - 1, sb, &span) && span <= INT64_MAX - W &&
        (T == 1 || st >= span + W))
        return 1;
    /* batch-first: t inner, b outer */
    if ((T == 1 || st >= W) && !__builtin_mul_overflow(T - 1, st, &span) && span <= INT64_MAX - W &&
        (B == 1 || sb >= span + W))
        return 1;
    return 0;
}

/* ---- the checks of tsrnn.h's "Errors", steps 1-7 --------------------------------------------------------- */

/* Step 1: everything about desc that needs no data. cell and backend are the caller's, so checked here too. */
static tsrnn_status check_desc(tsrnn_cell cell, tsrnn_backend backend, const tsrnn_desc *d) {
    int64_t G, R, n, e;
    if (!d) return TSRNN_ERR_NULL;
    if (cell != TSRNN_CELL_LSTM && cell != TSRNN_CELL_GRU) return TSRNN_ERR_ARGUMENT;
    if (backend != TSRNN_BACKEND_REF && backend != TSRNN_BACKEND_CPU && backend != TSRNN_BACKEND_CUDA)
        return TSRNN_ERR_ARGUMENT;
    if (d->T < 0 || d->B < 0 || d->D < 1 || d->H < 1) return TSRNN_ERR_SHAPE;
    if (cell == TSRNN_CELL_GRU && d->P != 0) return TSRNN_ERR_ARGUMENT;
    if (d->P < 0 || (d->P > 0 && d->P >= d->H)) return TSRNN_ERR_SHAPE;
    if (d->reverse != 0 && d->reverse != 1) return TSRNN_ERR_ARGUMENT;
    if (cell == TSRNN_CELL_GRU && d->reset_after != 0 && d->reset_after != 1) return TSRNN_ERR_ARGUMENT;
    if (backend == TSRNN_BACKEND_CPU && d->num_threads < 1) return TSRNN_ERR_THREADS;
    G = tsrnn__gates(cell);
    R = tsrnn__out_width(d);
    /* every element count the call touches must fit: weights, saved (T*B*S with S <= 7H), x */
    if (!mul_ok(G, d->H, &n) || !mul_ok(n, d->D, &e) || !mul_ok(n, d->H, &e)) return TSRNN_ERR_SHAPE;
    if (!mul_ok(7, d->H, &n) || !mul_ok(d->T, d->B, &e) || !mul_ok(e, n, &e)) return TSRNN_ERR_SHAPE;
    if (!mul_ok(d->T, d->B, &e) || !mul_ok(e, d->D, &e)) return TSRNN_ERR_SHAPE;
    if (!mul_ok(d->B, d->H, &e)) return TSRNN_ERR_SHAPE; /* states (B x R, B x H) and lengths (B), also when T = 0 */
    if (d->x_stride_t < 0 || d->x_stride_b < 0 || d->y_stride_t < 0 || d->y_stride_b < 0) return TSRNN_ERR_STRIDE;
    if (!extent_ok(d->T, d->B, d->D, d->x_stride_t, d->x_stride_b, &e)) return TSRNN_ERR_SHAPE;
    if (!extent_ok(d->T, d->B, R, d->y_stride_t, d->y_stride_b, &e)) return TSRNN_ERR_SHAPE;
    if (!tsrnn_rows_nested(d->T, d->B, R, d->y_stride_t, d->y_stride_b)) return TSRNN_ERR_STRIDE;
    return TSRNN_OK;
}

/* Step 3: w_hr given exactly when P > 0; grad_w_hr only when P > 0. */
static tsrnn_status check_projection(const tsrnn_desc *d, const void *w_hr, const void *grad_w_hr) {
    if (d->P > 0 && !w_hr) return TSRNN_ERR_NULL;
    if (d->P == 0 && (w_hr || grad_w_hr)) return TSRNN_ERR_ARGUMENT;
    return TSRNN_OK;
}

/* Step 5: host lengths, each in [0, T]. NULL is fine. */
static tsrnn_status check_lengths(const tsrnn_desc *d) {
    if (!d->lengths) return TSRNN_OK;
    for (int64_t b = 0; b < d->B; ++b)
        if (d->lengths[b] < 0 || d->lengths[b] > d->T) return TSRNN_ERR_LENGTHS;
    return TSRNN_OK;
}

/* Step 6, and the size step 7 checks against: what backend needs for a request it serves (desc checked). */
static tsrnn_status backend_workspace(tsrnn_cell cell, tsrnn_pass pass, tsrnn_backend backend, tsrnn_dtype dtype,
                                      const tsrnn_desc *desc, size_t *bytes) {
    switch (backend) {
    case TSRNN_BACKEND_REF: *bytes = tsrnn__ref_workspace_bytes(cell, pass, dtype, desc); return TSRNN_OK;
    case TSRNN_BACKEND_CPU: *bytes = tsrnn__cpu_workspace_bytes(cell, pass, dtype, desc); return TSRNN_OK;
#ifdef TSRNN_WITH_CUDA /* defined for this file only when kernels/cuda is part of the library */
    case TSRNN_BACKEND_CUDA: {
        const tsrnn_status st = tsrnn__cuda_serves(dtype, desc);
        if (st != TSRNN_OK) return st;
        *bytes = tsrnn__cuda_workspace_bytes(cell, pass, dtype, desc);
        return TSRNN_OK;
    }
#endif
    default: return TSRNN_ERR_UNSUPPORTED; /* a backend this build has not got */
    }
}

/* Step 7: workspace non-NULL when bytes > 0, aligned to TSRNN_WORKSPACE_ALIGN, and large enough. */
static tsrnn_status check_workspace(const void *workspace, size_t have, size_t need) {
    if (need == 0) return TSRNN_OK;
    if (!workspace || have < need || ((uintptr_t)workspace % TSRNN_WORKSPACE_ALIGN) != 0)
        return TSRNN_ERR_WORKSPACE;
    return TSRNN_OK;
}

/* Steps 5-7, the same for both passes. */
static tsrnn_status check_rest(tsrnn_cell cell, tsrnn_pass pass, tsrnn_backend backend, tsrnn_dtype dtype,
                               const tsrnn_desc *desc, const void *workspace, size_t workspace_bytes) {
    size_t need = 0;
    tsrnn_status st = check_lengths(desc);
    if (st == TSRNN_OK) st = backend_workspace(cell, pass, backend, dtype, desc, &need);
    if (st == TSRNN_OK) st = check_workspace(workspace, workspace_bytes, need);
    return st;
}

tsrnn_status tsrnn__check_fwd(tsrnn_cell cell, tsrnn_backend backend, tsrnn_dtype dtype, const tsrnn_desc *desc,
                              const void *x, const void *w_ih, const void *w_hh, const void *w_hr, const void *y,
                              const void *h_n, const void *c_n, const void *workspace, size_t workspace_bytes) {
    tsrnn_status st = check_desc(cell, backend, desc);
    if (st != TSRNN_OK) return st;
    if (!x || !w_ih || !w_hh || !y || !h_n || (cell == TSRNN_CELL_LSTM && !c_n)) return TSRNN_ERR_NULL;
    st = check_projection(desc, w_hr, NULL);
    if (st != TSRNN_OK) return st;
    return check_rest(cell, TSRNN_PASS_FWD, backend, dtype, desc, workspace, workspace_bytes);
}

tsrnn_status tsrnn__check_bwd(tsrnn_cell cell, tsrnn_backend backend, tsrnn_dtype dtype, const tsrnn_desc *desc,
                              const void *x, const void *w_ih, const void *w_hh, const void *w_hr, const void *saved,
                              const void *grad_x, const void *grad_w_hr, const void *workspace,
                              size_t workspace_bytes) {
    tsrnn_status st = check_desc(cell, backend, desc);
    if (st != TSRNN_OK) return st;
    if (!x || !w_ih || !w_hh || !saved) return TSRNN_ERR_NULL;
    st = check_projection(desc, w_hr, grad_w_hr);
    if (st != TSRNN_OK) return st;
    /* step 4: grad_x is written under x's strides, which may broadcast (0) for an input */
    if (grad_x && !tsrnn_rows_nested(desc->T, desc->B, desc->D, desc->x_stride_t, desc->x_stride_b))
        return TSRNN_ERR_STRIDE;
    return check_rest(cell, TSRNN_PASS_BWD, backend, dtype, desc, workspace, workspace_bytes);
}

tsrnn_status tsrnn_workspace_size(tsrnn_cell cell, tsrnn_pass pass, tsrnn_backend backend, tsrnn_dtype dtype,
                                  const tsrnn_desc *desc, size_t *bytes) {
    tsrnn_status st;
    if (!bytes) return TSRNN_ERR_NULL;
    *bytes = 0;
    if ((pass != TSRNN_PASS_FWD && pass != TSRNN_PASS_BWD) || (dtype != TSRNN_F32 && dtype != TSRNN_F64))
        return TSRNN_ERR_ARGUMENT;
    st = check_desc(cell, backend, desc);
    if (st != TSRNN_OK) return st;
    st = backend_workspace(cell, pass, backend, dtype, desc, bytes);
    if (st != TSRNN_OK) *bytes = 0;
    return st;
}
