/*
 * Private to kernels/ref: how the reference carves its workspace. Every piece is a vector of H reals, so the
 * workspace is (count x H) reals, independent of T and B (the reference walks one sequence at a time).
 *
 *   LSTM fwd  h, c, m | gates (4H)                                      -> 7 vectors
 *   LSTM bwd  dh, dc, dh_prev, h_prev, c_prev, dm | d_gates (4H)        -> 10 vectors
 * (h, dh, dh_prev, h_prev hold R <= H values: P with a projection.)
 *   GRU  fwd  h, rh | gates_x (3H) | gates_h (3H)                       -> 8 vectors
 *   GRU  bwd  dh, dh_prev, h_prev, d_rh | d_gates_x (3H) | d_gates_h (3H) -> 10 vectors
 */
#ifndef TSRNN_REF_LAYOUT_H
#define TSRNN_REF_LAYOUT_H

#include "internal.h"

static inline int64_t tsrnn__ref_vectors(tsrnn_cell cell, tsrnn_pass pass) {
    if (cell == TSRNN_CELL_LSTM) return pass == TSRNN_PASS_FWD ? 7 : 10;
    return pass == TSRNN_PASS_FWD ? 8 : 10;
}

#endif
