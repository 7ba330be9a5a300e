/*
 * Internal to kernels/cpu: what the public entry points (cpu_api.c) hand to one instruction-set variant of the
 * kernels (cpu_<dtype>_<isa>.c, each a copy of cpu_kernels.inc and the four files it includes compiled for one
 * vector width), the workspace layout they share, and the thread helper. Not installed.
 *
 * Shape letters as in tsrnn.h; in addition
 *   M   = T*B rows of the sequence matrices, row m = t*B + b
 *   Hp  = H rounded up to TSRNN_CPU_PAD_BYTES / sizeof(real) (16 floats, 8 doubles): width of internal state rows
 *   Dp, Rp, Pp = D, R, P rounded up the same way (Rp <= Hp: rows of h fit in rows of Hp)
 *   LDG, LDH, LDX, LDM = tsrnn__cpu_ld(4H), (R), (D), (H): leading dimensions of the backward's rows of gate
 *                   gradients (LSTM [di df dg do], GRU [dr dz dn dhn]), of h_{t-1} (and of dh with a projection),
 *                   of x, and of m with a projection
 */
#ifndef TSRNN_CPU_IMPL_H
#define TSRNN_CPU_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Internal rows are padded to this many bytes (the widest vector); every buffer starts 64-byte aligned. */
#define TSRNN_CPU_PAD_BYTES 64
/* More threads than this are not started (the fork-join keeps their handles on its stack). */
#define TSRNN_CPU_MAX_THREADS 256
/* Batch rows per thread below which the time loop does not get another thread. */
#define TSRNN_CPU_MIN_ROWS_PER_THREAD 4
/* Multiply-adds (vector lanes) a call needs per thread before another thread is started: 2^18 lanes is about
 * 5 us of one core, a fraction of what starting and joining a thread costs, so only trivial calls stay on one
 * thread (and the thread partitions are still exercised by small tests). */
#define TSRNN_CPU_MIN_WORK_PER_THREAD (1 << 18)
/* Rows m per block of the weight-gradient products: each block's sum starts from zero. */
#define TSRNN_CPU_WGRAD_BLOCK_ROWS 256
/*
 * Block sums of the weight gradients are added up in a fixed tree, not one running sum over all M rows (whose
 * rounding error grows with M): TSRNN_CPU_WGRAD_FAN block sums make a level-1 sum, as many level-1 sums a level-2
 * sum, and the output adds up the top level's sums. tsrnn__cpu_wgrad_levels(M) is how many levels sit between the
 * blocks and the output (0: the output adds the block sums itself), each a buffer the size of the weight
 * gradients in the workspace. The bias gradients (column sums of dg) are pairwise sums over leaves of
 * TSRNN_CPU_BIAS_LEAF_ROWS rows. Either way the order depends on M alone.
 */
#define TSRNN_CPU_WGRAD_FAN 16
#define TSRNN_CPU_BIAS_LEAF_ROWS 16
static inline int tsrnn__cpu_wgrad_levels(int64_t M) {
    const int64_t blocks = (M + TSRNN_CPU_WGRAD_BLOCK_ROWS - 1) / TSRNN_CPU_WGRAD_BLOCK_ROWS;
    return blocks <= TSRNN_CPU_WGRAD_FAN ? 0 : blocks <= TSRNN_CPU_WGRAD_FAN * TSRNN_CPU_WGRAD_FAN ? 1 : 2;
}

/*
 * Leading dimension (elements) of an internal row of n values with pad elements per 64 bytes: n rounded up to
 * whole 64-byte lines (so whole vectors can be read from any row), and an odd number of lines, so that walking
 * down a column does not hit the same cache sets (or a new page) on every row.
 */
static inline int64_t tsrnn__cpu_ld(int64_t n, int64_t pad) {
    int64_t r = (n + pad - 1) / pad * pad;
    if ((r / pad) % 2 == 0) r += pad;
    return r;
}

/* Byte offsets of the workspace buffers of one call; 0-sized buffers get offset 0 and must not be used. */
typedef struct tsrnn__cpu_layout {
    size_t memo;   /* both passes, at offset 0: a tsrnn__cpu_memo, the key of the packed weights in wx .. bias */
    /* forward; wx .. wraw depend only on (cell, dtype, D, H, P, reset_after), never on T or B */
    size_t wx;     /* packed W_ih^T: per block of VL hidden units, D rows of G gate vectors (D*G*Hp) */
    size_t wh;     /* packed W_hh^T: the same with R rows (GRU reset_after=0: r, z only) */
    size_t whn;    /* GRU reset_after=0: W_hn^T packed the same, H*Hp */
    size_t whr;    /* LSTM P > 0: W_hr^T (H x P) as column panels of Pp (B operand of h = m W_hr^T), H*Pp */
    size_t bias;   /* packed folded biases: 4*Hp */
    size_t wraw;   /* the weights wx .. bias were packed from, [w_ih | w_hh | w_hr | b_ih | b_hh] as given, when
                      they take at most TSRNN_CPU_MEMO_MAX_BYTES (else 0: no reuse) */
    size_t hbuf;   /* 2 x B x Hp hidden state (R values a row), double buffered by step parity */
    size_t cbuf;   /* B x Hp LSTM cell state */
    size_t mbuf;   /* LSTM P > 0: B x Hp m = o * tanh(c) of the step, before the projection */
    size_t gscr;   /* GRU reset_after=0: B x 3Hp [n_x r z] between the two products of a step */
    size_t rh;     /* GRU reset_after=0: B x Hp r * h_{t-1} */
    size_t xp;     /* tsrnn__cpu_fwd_hoist: M x NX*Hp bias + x W_ih^T of every row (NX = 4 LSTM, 3 GRU x slots) */
    /* backward */
    size_t dg;     /* M x LDG pre-activation gate gradients */
    size_t hprev;  /* M x LDH h_{t-1} of each row */
    size_t rhprev; /* GRU reset_after=0: M x LDH r * h_{t-1} */
    size_t x_copy; /* M x LDX x, zero past a sequence's length */
    size_t dhs;    /* LSTM P > 0: M x LDH dh_t of each row (grad_y added), zero past a sequence's length */
    size_t m_copy; /* LSTM P > 0: M x LDM m_t of each row, zero past a sequence's length */
    size_t whhp;   /* W_hh (G*H x R) as column panels of Rp, padded with zeros (B operand of dh = dg W_hh) */
    size_t whrp;   /* LSTM P > 0: W_hr (P x H) as column panels of Hp (B operand of dm = dh W_hr) */
    size_t wihp;   /* W_ih as column panels of Dp (grad_x = dg W_ih), or W_ih^T when D is small */
    size_t dhbuf;  /* 2 x B x Hp dh carried between steps (R values a row), double buffered */
    size_t dcbuf;  /* B x Hp LSTM dc carried between steps */
    size_t dmbuf;  /* LSTM P > 0: B x Hp dm = dh W_hr of the step */
    size_t drh;    /* GRU reset_after=0: B x Hp d(r*h) */
    size_t wsum;   /* tsrnn__cpu_wgrad_levels(M) x [G*H x R | G*H x D | P x H]: the tree's levels of the weight
                      gradients, laid out as grad_w_hh, grad_w_ih, grad_w_hr */
    /* both */
    size_t rows;   /* B int64: active rows of each thread's batch slice */
    size_t total;
} tsrnn__cpu_layout;

void tsrnn__cpu_layout_of(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc,
                          tsrnn__cpu_layout *layout);

/*
 * Packed-weight reuse. Packing the forward's weights (a transpose of every weight, and the bias fold) costs about
 * as much as the whole step of a B = 1, T = 1 call, and small calls repeat with the same weights (streaming
 * inference, a rollout). So a forward leaves, beside its packed weights, a copy of the weights it packed and this
 * key at the start of the workspace; a later forward whose caller says the workspace is kept (desc.workspace_kept)
 * skips the packing when the key is its own and its weights are bitwise the copy (memcmp: a fraction of the
 * transpose's cost). The packed bytes are then exactly what packing would write, so results are unchanged.
 * Every other use of a workspace forgets the key before it writes there (a backward, or a forward whose weights
 * are too large to copy).
 */
#define TSRNN_CPU_MEMO_MAX_BYTES ((size_t)8 << 20)
typedef struct tsrnn__cpu_memo {
    uint64_t magic;      /* TSRNN_CPU_MEMO_MAGIC when the rest is a valid key, else anything */
    const void *variant; /* the variant's forward that packed (its vector length sets the packing) */
    int64_t cell, D, H, P, reset_after, has_b_ih, has_b_hh;
} tsrnn__cpu_memo;
#define TSRNN_CPU_MEMO_MAGIC UINT64_C(0x7473726e6e6d656d)

/* The sources of a forward's packed weights, in wraw's order: w_ih, w_hh, w_hr, b_ih, b_hh (absent: 0 bytes). */
typedef struct tsrnn__cpu_sources {
    const void *p[5];
    size_t bytes[5];
} tsrnn__cpu_sources;

/* 1 when the workspace already holds key's weights packed from src (see above); 0: pack them. */
int tsrnn__cpu_memo_hit(const tsrnn_desc *desc, const tsrnn__cpu_layout *layout, const void *workspace,
                        const tsrnn__cpu_memo *key, const tsrnn__cpu_sources *src);
/* Before anything else is written to the workspace. */
void tsrnn__cpu_memo_forget(const tsrnn__cpu_layout *layout, void *workspace);
/* After the packing: the copy of src and the key (nothing when the layout has no wraw). */
void tsrnn__cpu_memo_keep(const tsrnn__cpu_layout *layout, void *workspace, const tsrnn__cpu_memo *key,
                          const tsrnn__cpu_sources *src);

/* Threads for the time loop (batch slices) and for the products partitioned over outputs. */
int tsrnn__cpu_sweep_threads(const tsrnn_desc *desc);
int tsrnn__cpu_product_threads(const tsrnn_desc *desc);

/*
 * Threads for a pass whose time loop is split over hidden units (each step a parallel phase over ranges of unit
 * blocks or output columns, all rows in each; the backward's sweep adds a phase for the rows' own part), or 1 for
 * the batch split (each thread its own rows for the whole loop, no barrier). The batch split has every thread read
 * all of a step's packed weights for its own rows; the unit split has each read its share of them for all rows.
 * Not for an LSTM with a projection, nor the backward of a GRU with reset_after = 0 (more phases a step).
 * The unit split is chosen, with the caller's pool only (desc.parallel: starting threads every step would cost more
 * than a step) and when a step holds TSRNN_CPU_MIN_STEP_WORK lanes a thread to pay for a phase's start and end,
 * where the batch split would
 *  - leave threads idle (B < TSRNN_CPU_MIN_ROWS_PER_THREAD per thread), or
 *  - stream a step's weights from beyond the L2 for few rows: more than half a core's L2 of them (sysconf), and at
 *    most TSRNN_CPU_UNIT_MAX_ROWS rows a thread to use each weight loaded (measured, Intel Xeon 2 threads, same
 *    bits: LSTM B64 H256 0.89x the batch split's time, B64 H1024 0.79x, B128 H512 0.93x; B256 H512 1.00x, and
 *    B64 H128, whose weights fit, 1.12x).
 * Results are the same bits either way.
 */
#define TSRNN_CPU_MIN_STEP_WORK ((int64_t)1 << 16)
#define TSRNN_CPU_UNIT_MAX_ROWS 64
int tsrnn__cpu_unit_threads(tsrnn_cell cell, tsrnn_pass pass, tsrnn_dtype dtype, const tsrnn_desc *desc);

/* Batches below this many rows hoist the forward's input projection (see tsrnn__cpu_fwd_hoist). */
#define TSRNN_CPU_HOIST_MAX_B (2 * TSRNN_CPU_MIN_ROWS_PER_THREAD)
/* Most elements of the hoisted projection's buffer (M x NX*Hp): larger calls keep the fused step. */
#define TSRNN_CPU_HOIST_MAX_ELEMS ((int64_t)1 << 24)
/*
 * 1 when the forward computes bias + x W_ih^T for all M rows before the time loop (one blocked product over
 * multi-row tiles, split over threads by rows) instead of inside each step: small batches, whose steps are
 * one-row tiles bound by the latency of the chain over K = D + R and run on one thread. Depends only on the
 * shape (never on the thread count), so the workspace size and the results do not depend on num_threads; the
 * results are bitwise those of the fused step (same operations per element, in the same order).
 */
int tsrnn__cpu_fwd_hoist(tsrnn_cell cell, const tsrnn_desc *desc);

/*
 * Runs task(ctx, i, count) for i = 0 .. count-1 (count capped at TSRNN_CPU_MAX_THREADS; the pieces must not
 * depend on count beyond what they are told) on desc's pool, or on the library's own threads. The pieces never
 * wait for each other. TSRNN_ERR_THREADS when the pool reports a failure.
 */
tsrnn_status tsrnn__cpu_parallel(const tsrnn_desc *desc, int count, tsrnn_task task, void *ctx);

/* Arguments of one call, already checked; the real type (float or double) is the variant's. */
typedef struct tsrnn__cpu_fwd_args {
    tsrnn_cell cell;
    const tsrnn_desc *desc;
    const void *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh, *w_hr;
    void *y, *h_n, *c_n, *saved;
    void *workspace;
} tsrnn__cpu_fwd_args;

typedef struct tsrnn__cpu_bwd_args {
    tsrnn_cell cell;
    const tsrnn_desc *desc;
    const void *x, *h0, *c0, *w_ih, *w_hh, *w_hr, *saved, *grad_y, *grad_h_n, *grad_c_n;
    void *grad_x, *grad_h0, *grad_c0, *grad_w_ih, *grad_w_hh, *grad_b_ih, *grad_b_hh, *grad_w_hr;
    void *workspace;
} tsrnn__cpu_bwd_args;

/* The variants. avx512 and avx2 exist on x86 only; generic everywhere. */
#define TSRNN__CPU_VARIANT(dt, isa)                                                                        \
    tsrnn_status tsrnn__cpu_fwd_##dt##_##isa(const tsrnn__cpu_fwd_args *args);                            \
    tsrnn_status tsrnn__cpu_bwd_##dt##_##isa(const tsrnn__cpu_bwd_args *args);
TSRNN__CPU_VARIANT(f32, generic)
TSRNN__CPU_VARIANT(f64, generic)
#if defined(__x86_64__) && defined(__GNUC__)
#define TSRNN_CPU_X86 1
TSRNN__CPU_VARIANT(f32, avx2)
TSRNN__CPU_VARIANT(f64, avx2)
TSRNN__CPU_VARIANT(f32, avx512)
TSRNN__CPU_VARIANT(f64, avx512)
#endif
#undef TSRNN__CPU_VARIANT

#ifdef __cplusplus
}
#endif

#endif
