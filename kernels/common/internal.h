/* Internal helpers shared by every backend: argument checks and workspace sizes. Not installed. */
#ifndef TSRNN_INTERNAL_H
#define TSRNN_INTERNAL_H

#include "tsrnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of gates G of a cell: 4 (LSTM) or 3 (GRU). */
int64_t tsrnn__gates(tsrnn_cell cell);

/*
 * Checks everything about desc that does not need data: sizes, int64 overflow of every element count the
 * call touches (T*B*S, G*H*max(D,H), B*H, strided extents of x and y), strides (>= 0; y rows non-overlapping),
 * flags 0/1, num_threads >= 1 when the backend uses it, P (0 for GRU, else 0 or 1 <= P < H).
 */
tsrnn_status tsrnn__check_desc(tsrnn_cell cell, tsrnn_backend backend, const tsrnn_desc *desc);

/* Same as above plus: grad_x (when wanted) must have non-overlapping rows under the x strides. */
tsrnn_status tsrnn__check_grad_x_layout(const tsrnn_desc *desc);

/* Width R of h and y: P when the LSTM projects (P > 0), else H. */
static inline int64_t tsrnn__out_width(const tsrnn_desc *desc) { return desc->P > 0 ? desc->P : desc->H; }

/* w_hr given exactly when P > 0 (TSRNN_ERR_NULL if missing, TSRNN_ERR_ARGUMENT if given with P = 0); grad_w_hr
 * only when P > 0. */
tsrnn_status tsrnn__check_projection(const tsrnn_desc *desc, const void *w_hr, const void *grad_w_hr);

/* Host lengths: each in [0, T]. NULL is fine. */
tsrnn_status tsrnn__check_lengths_host(const tsrnn_desc *desc);

/* workspace non-NULL when bytes > 0, aligned to TSRNN_WORKSPACE_ALIGN, and large enough. */
tsrnn_status tsrnn__check_workspace(const void *workspace, size_t have, size_t need);

/* Length of sequence b (T when desc->lengths is NULL). */
static inline int64_t tsrnn__length(const tsrnn_desc *desc, int64_t b) {
    return desc->lengths ? desc->lengths[b] : desc->T;
}

/* Per-backend workspace sizes (desc already checked). Each backend defines its own. */
size_t tsrnn__ref_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc);
size_t tsrnn__cpu_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc);
/* kernels/cuda, linked only when the library is built with TSRNN_WITH_CUDA (fp32 only: dtype is ignored). */
size_t tsrnn__cuda_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc);

#ifdef __cplusplus
}
#endif

#endif
