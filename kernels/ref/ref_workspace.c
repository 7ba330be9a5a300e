/* Workspace size of the reference kernels: a few H-vectors of the call's own precision (see ref_layout.h). */
#include "ref_layout.h"

size_t tsrnn__ref_workspace_bytes(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc) {
    size_t elem = dtype == TSRNN_F64 ? sizeof(double) : sizeof(float);
    /* desc is checked: G*H*H fits int64/8, so this product cannot overflow size_t */
    return (size_t)tsrnn__ref_vectors(cell, pass) * (size_t)desc->H * elem;
}
