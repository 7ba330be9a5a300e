/* Internal helpers shared by every backend: the argument checks and workspace sizes. Not installed. */
#ifndef TSRNN_INTERNAL_H
#define TSRNN_INTERNAL_H

#include "tsrnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of gates G of a cell: 4 (LSTM) or 3 (GRU). */
int64_t tsrnn__gates(tsrnn_cell cell);

/*
 * The argument checks of one call, the only copy of them: every backend's entry point calls one of these first and
 * returns its status unless it is TSRNN_OK. They run steps 1-7 of tsrnn.h's "Errors" in that order: the desc, the
 * required pointers, the projection's pointers, grad_x's layout (backward), the lengths' values, whether backend
 * serves the request (for CUDA: tsrnn__cuda_serves), and the workspace against the size backend asks for.
 * Parameters a cell does not have are passed as NULL (GRU: w_hr, c_n, grad_w_hr). Pointers are only compared with
 * NULL, never read, so the CUDA functions pass device pointers.
 */
tsrnn_status tsrnn__check_fwd(tsrnn_cell cell, tsrnn_backend backend, tsrnn_dtype dtype, const tsrnn_desc *desc,
                              const void *x, const void *w_ih, const void *w_hh, const void *w_hr, const void *y,
                              const void *h_n, const void *c_n, const void *workspace, size_t workspace_bytes);
tsrnn_status tsrnn__check_bwd(tsrnn_cell cell, tsrnn_backend backend, tsrnn_dtype dtype, const tsrnn_desc *desc,
                              const void *x, const void *w_ih, const void *w_hh, const void *w_hr, const void *saved,
                              const void *grad_x, const void *grad_w_hr, const void *workspace,
                              size_t workspace_bytes);

/* Width R of h and y: P when the LSTM projects (P > 0), else H. */
static inline int64_t tsrnn__out_width(const tsrnn_desc *desc) { return desc->P > 0 ? desc->P : desc->H; }

/* Length of sequence b (T when desc->lengths is NULL). */
static inline int64_t tsrnn__length(const tsrnn_desc *desc, int64_t b) {
    return desc->lengths ? desc->lengths[b] : desc->T;
}

/* Per-backend workspace sizes (desc already checked, and served). Each backend defines its own. */
size_t tsrnn__ref_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc);
size_t tsrnn__cpu_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc);
/* kernels/cuda, linked only when the library is built with TSRNN_WITH_CUDA. */
size_t tsrnn__cuda_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc);
/* kernels/cuda: TSRNN_ERR_UNSUPPORTED for the valid requests the CUDA kernels do not serve (step 6 of "Errors"). */
tsrnn_status tsrnn__cuda_serves(tsrnn_dtype dtype, const tsrnn_desc *desc);

#ifdef __cplusplus
}
#endif

#endif
