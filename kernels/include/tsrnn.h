/*
 * tsrnn.h — the one public C API of tsrnn: fused LSTM and GRU layers, forward and backward.
 *
 * General notes
 * -------------
 * Shape letters (used in every comment below):
 *   T  time steps            B  batch size          D  input features      H  hidden size
 *   P  LSTM projection size (PyTorch's proj_size): 0 = no projection, else 1 <= P < H; always 0 for GRU
 *   R  width of the hidden state h and of the output y: P when P > 0, else H
 *   G  gates: 4 for LSTM (PyTorch order i, f, g, o), 3 for GRU (PyTorch order r, z, n)
 *   S  width of one row of saved activations: 6H + P for LSTM, 5H for GRU (layout below)
 *
 * One call = one layer, one direction, one cell type. Layers, directions, dropout and packing are composed by
 * the caller. Weights and biases are PyTorch's own tensors, unchanged:
 *   w_ih (G*H x D) row-major, w_hh (G*H x R) row-major, b_ih (G*H), b_hh (G*H), and for an LSTM with P > 0
 *   w_hr (P x H) row-major.
 *
 * Cell equations (PyTorch's; sigma = logistic sigmoid):
 *   LSTM  [i f g o] = x W_ih^T + b_ih + h W_hh^T + b_hh, with sigma on i, f, o and tanh on g
 *         c' = f * c + i * g                h' = o * tanh(c')                       (P = 0)
 *         c' = f * c + i * g     m' = o * tanh(c')     h' = m' W_hr^T              (P > 0: h' has P values)
 *   GRU   [r z] = sigma(x W_ih[r z]^T + b_ih[r z] + h W_hh[r z]^T + b_hh[r z])
 *         reset_after = 1 (PyTorch):  n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
 *         reset_after = 0 (Keras v1 / the seed notebook):  n = tanh(x W_in^T + b_in + (r * h) W_hn^T + b_hn)
 *         h' = (1 - z) * n + z * h   (both forms)
 *
 * Layout and strides. Every matrix is row-major with its last dimension contiguous. The sequence tensors x,
 * grad_x (T x B x D) and y, grad_y (T x B x R) carry their own strides, in elements, for the t and b
 * dimensions, so time-major (stride_t = B*D, stride_b = D) and batch-first (stride_t = D, stride_b = T*D) both
 * work without a copy, as does writing one direction into half of a (T x B x 2R) buffer (stride_b = 2R).
 * Element (t, b, k) of x is x[t * x_stride_t + b * x_stride_b + k]. Input strides may be 0 (broadcast);
 * output rows (y, and grad_x under x's strides) must be nested so that none overlaps another: time-major
 * (stride_b >= W or B = 1, and stride_t >= (B-1) stride_b + W or T = 1) or batch-first (the same with t and b
 * swapped), W the row width; tsrnn_rows_nested() below states the rule as code. States h0, h_n (B x R) and c0,
 * c_n (B x H), and the gradients of states (same shapes), are contiguous. Saved activations are (T x B x S)
 * contiguous, indexed by the real time index t.
 *
 * Sizes. Every element count a call touches (each buffer, each strided extent) is at most TSRNN_MAX_ELEMENTS, so
 * its size in bytes fits int64 even in fp64; larger sizes are refused with TSRNN_ERR_SHAPE.
 *
 * Direction and lengths. reverse = 0 walks t = 0 .. L-1, reverse = 1 walks t = L-1 .. 0, where L = lengths[b]
 * for sequence b (or T when lengths is NULL). A sequence stops updating past its length: y rows and saved rows
 * with t >= L are written as zero, and h_n / c_n hold the state after its last valid step (h0 / c0 when L = 0),
 * exactly as PyTorch's PackedSequence. 0 <= lengths[b] <= T; lengths need not be sorted.
 *
 * Saved activations, one row of S values for each (t, b) with t < L (written by forward, read by backward):
 *   LSTM  [ i f g o (4H, after activation) | c_t (H) | h_t (H) ]                    (P = 0, S = 6H)
 *         [ i f g o (4H, after activation) | c_t (H) | m_t (H) | h_t (P) ]       (P > 0, S = 6H + P)
 *   GRU   [ r z n (3H, after activation) | hn (H) | h_t (H) ]
 *         hn = h_{t-1} W_hn^T + b_hn when reset_after = 1, (r * h_{t-1}) W_hn^T + b_hn when reset_after = 0.
 *
 * Memory. The caller owns all memory: inputs, outputs and scratch (query tsrnn_workspace_size and pass at least
 * that many bytes, 64-byte aligned). The library allocates nothing and keeps no global state; what a call leaves
 * in its workspace is read again only by a CPU forward told that the buffer is kept (desc.workspace_kept), which
 * checks it first. CPU functions
 * take host pointers and run on num_threads threads (>= 1); results do not depend on num_threads, nor on
 * whether those threads are the library's own or the caller's (desc.parallel, below).
 *
 * Optional pointers are marked [opt]: NULL means "absent" (zero state, no bias, gradient not wanted).
 * No output may alias any input or another output.
 *
 * Errors. Every function returns a tsrnn_status; tsrnn_status_string() gives its text. On error nothing is
 * guaranteed about the outputs, and no input is modified. Every backend checks a call in the same order and
 * returns the status of the first rule broken, so a bad call gets the same status from each:
 *   1. desc: NULL (NULL); T < 0, B < 0, D < 1 or H < 1 (SHAPE); P not 0 for a GRU (ARGUMENT), not 0 and not in
 *      [1, H) for an LSTM (SHAPE); reverse, or a GRU's reset_after, not 0 or 1 (ARGUMENT); num_threads < 1 (THREADS,
 *      the CPU functions only: the others ignore it); an element count over TSRNN_MAX_ELEMENTS (SHAPE); a negative
 *      stride (STRIDE); the extent of x or y over TSRNN_MAX_ELEMENTS (SHAPE); y rows not nested (STRIDE)
 *   2. a required pointer is NULL (NULL)
 *   3. the projection: w_hr NULL with P > 0 (NULL); w_hr, or grad_w_hr, given with P = 0 (ARGUMENT)
 *   4. backward with grad_x: its rows, under x's strides, not nested (STRIDE)
 *   5. lengths: a value outside [0, T] (LENGTHS)
 *   6. a valid request this backend does not serve (UNSUPPORTED; e.g. CUDA: fp64, an LSTM with P > 0)
 *   7. the workspace, against tsrnn_workspace_size for this backend: NULL, short or misaligned (WORKSPACE)
 * Only then does the work start; what fails while it runs (the caller's pool: THREADS; CUDA: CUDA) comes last.
 */
#ifndef TSRNN_H
#define TSRNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TSRNN_VERSION_MAJOR 0
#define TSRNN_VERSION_MINOR 4

/* Alignment, in bytes, the workspace pointer must have. */
#define TSRNN_WORKSPACE_ALIGN 64

/* Largest element count of any buffer or strided extent a call accepts: its size in bytes fits int64 in fp64. */
#define TSRNN_MAX_ELEMENTS (INT64_MAX / 8)

typedef enum tsrnn_status {
    TSRNN_OK = 0,
    TSRNN_ERR_NULL = 1,        /* a required pointer is NULL */
    TSRNN_ERR_SHAPE = 2,       /* a size is out of range, or sizes overflow int64 element counts */
    TSRNN_ERR_STRIDE = 3,      /* a stride is negative, or output rows would overlap */
    TSRNN_ERR_LENGTHS = 4,     /* some lengths[b] is outside [0, T] */
    TSRNN_ERR_WORKSPACE = 5,   /* workspace too small or misaligned */
    TSRNN_ERR_THREADS = 6,     /* num_threads < 1, or the caller's pool (desc.parallel) reported a failure */
    TSRNN_ERR_ARGUMENT = 7,    /* any other bad argument (unknown enum value, flag not 0/1) */
    TSRNN_ERR_CUDA = 8,        /* a CUDA runtime call or kernel launch failed */
    TSRNN_ERR_UNSUPPORTED = 9  /* valid request this build cannot serve */
} tsrnn_status;

/* Static text for a status; never NULL (unknown values give "unknown tsrnn status"). */
const char *tsrnn_status_string(tsrnn_status status);

typedef enum tsrnn_cell { TSRNN_CELL_LSTM = 0, TSRNN_CELL_GRU = 1 } tsrnn_cell;
typedef enum tsrnn_pass { TSRNN_PASS_FWD = 0, TSRNN_PASS_BWD = 1 } tsrnn_pass;
typedef enum tsrnn_backend { TSRNN_BACKEND_REF = 0, TSRNN_BACKEND_CPU = 1, TSRNN_BACKEND_CUDA = 2 } tsrnn_backend;
typedef enum tsrnn_dtype { TSRNN_F32 = 0, TSRNN_F64 = 1 } tsrnn_dtype;

/*
 * The caller's thread pool, for the CPU functions (optional). A call splits its work into phases; each phase is
 * count independent pieces. parallel(pool, count, task, task_ctx) must run task(task_ctx, i, count) once for
 * every i in [0, count), in any order, on any threads, concurrently or one after another, and return 0 once all
 * of them have returned; nonzero if it could not run them (the call then fails with TSRNN_ERR_THREADS). A piece
 * never waits for another piece, so a pool that runs them serially (nested inside its own parallel region, say)
 * is correct, only slower. Without a pool (parallel = NULL) the library starts and joins its own threads for
 * each phase.
 */
typedef void (*tsrnn_task)(void *task_ctx, int index, int count);
typedef int (*tsrnn_parallel_fn)(void *pool, int count, tsrnn_task task, void *task_ctx);

/* Everything about one call except the data pointers. */
typedef struct tsrnn_desc {
    int64_t T;              /* time steps, >= 0 */
    int64_t B;              /* batch size, >= 0 */
    int64_t D;              /* input features, >= 1 */
    int64_t H;              /* hidden size, >= 1 */
    int64_t x_stride_t;     /* element strides of x and grad_x, >= 0 */
    int64_t x_stride_b;
    int64_t y_stride_t;     /* element strides of y and grad_y, >= 0 */
    int64_t y_stride_b;
    const int64_t *lengths; /* [opt] (B): per-sequence lengths, host memory for every backend */
    int reverse;            /* 0: t ascending, 1: t descending */
    int reset_after;        /* GRU only (ignored for LSTM): 1 = PyTorch form, 0 = notebook/Keras v1 form */
    int num_threads;        /* CPU functions: threads to use, >= 1 (ignored by the reference and CUDA) */
    void *stream;           /* CUDA functions: the cudaStream_t to run on (NULL = legacy default stream) */
    int64_t P;              /* LSTM projection size: 0 = none, else 1 <= P < H; must be 0 for GRU. A
                               zero-initialized desc means "no projection". */
    tsrnn_parallel_fn parallel; /* CPU functions: [opt] the caller's pool (above); NULL = the library's threads */
    void *pool;             /* passed to parallel as its first argument */
    int workspace_kept;     /* CPU functions: [opt] nonzero when workspace is the buffer the previous CPU call
                               given it wrote to, unchanged since (a buffer the caller keeps for these calls alone):
                               a forward may then reuse weights that call packed, after checking that they are
                               bitwise the same. 0 (a zero-initialized desc) for any other buffer. */
} tsrnn_desc;

/* Number of elements in one row of saved activations: 6H + P (LSTM), 5H (GRU, P must be 0); -1 if P is invalid. */
int64_t tsrnn_saved_row(tsrnn_cell cell, int64_t H, int64_t P);

/*
 * 1 when rows (t, b) of W elements at t * stride_t + b * stride_b (0 <= t < T, 0 <= b < B) are nested time-major
 * or batch-first (General notes, "Layout and strides"), the layout output rows must have; 0 otherwise, and for
 * T < 0, B < 0, W < 1 or a negative stride. 1 when T = 0 or B = 0 (no rows). Never overflows.
 */
int tsrnn_rows_nested(int64_t T, int64_t B, int64_t W, int64_t stride_t, int64_t stride_b);

/*
 * Bytes of workspace the function (cell, pass, backend, dtype) needs for desc. Checks what the function itself
 * checks of desc alone, in the same order (steps 1 and 6 of "Errors"; not lengths' values), and returns that
 * status; pass or dtype out of range, or an unknown backend, is TSRNN_ERR_ARGUMENT, and bytes NULL is TSRNN_ERR_NULL.
 */
tsrnn_status tsrnn_workspace_size(tsrnn_cell cell, tsrnn_pass pass, tsrnn_backend backend, tsrnn_dtype dtype,
                                  const tsrnn_desc *desc, size_t *bytes);

/*
 * LSTM forward.
 *   x      in   (T x B x D) strided as x_stride_*
 *   h0     in   [opt] (B x R) initial hidden state; NULL = zeros
 *   c0     in   [opt] (B x H) initial cell state; NULL = zeros
 *   w_ih   in   (4H x D)      w_hh  in  (4H x R)
 *   b_ih   in   [opt] (4H)    b_hh  in  [opt] (4H)
 *   w_hr   in   (P x H) projection when P > 0 (required then); must be NULL when P = 0
 *   y      out  (T x B x R) strided as y_stride_*: h_t for every step, zero past a sequence's length
 *   h_n    out  (B x R) final hidden state       c_n  out  (B x H) final cell state
 *   saved  out  [opt] (T x B x S) activations for backward (layout above); NULL when no backward follows
 *   workspace   scratch of tsrnn_workspace_size(LSTM, FWD, backend, dtype) bytes
 */
#define TSRNN_DECLARE_LSTM_FWD(name, real)                                                                    \
    tsrnn_status name(const tsrnn_desc *desc, const real *x, const real *h0, const real *c0,                 \
                      const real *w_ih, const real *w_hh, const real *b_ih, const real *b_hh,                 \
                      const real *w_hr, real *y, real *h_n, real *c_n, real *saved, void *workspace,           \
                      size_t workspace_bytes)

/*
 * LSTM backward. Reads the forward's inputs and its saved activations (saved is required here).
 *   w_hr        in   (P x H) when P > 0 (required then); must be NULL when P = 0
 *   grad_y      in   [opt] (T x B x R) strided as y_stride_*; rows past a sequence's length are ignored
 *   grad_h_n    in   [opt] (B x R)      grad_c_n  in  [opt] (B x H)
 *   grad_x      out  [opt] (T x B x D) strided as x_stride_* (must not be a broadcast layout); zero past length
 *   grad_h0     out  [opt] (B x R)      grad_c0   out [opt] (B x H)
 *   grad_w_ih   out  [opt] (4H x D)     grad_w_hh out [opt] (4H x R)
 *   grad_b_ih   out  [opt] (4H)         grad_b_hh out [opt] (4H)
 *   grad_w_hr   out  [opt] (P x H); must be NULL when P = 0
 * Every output is overwritten (not accumulated into).
 */
#define TSRNN_DECLARE_LSTM_BWD(name, real)                                                                    \
    tsrnn_status name(const tsrnn_desc *desc, const real *x, const real *h0, const real *c0,                 \
                      const real *w_ih, const real *w_hh, const real *w_hr, const real *saved,                \
                      const real *grad_y, const real *grad_h_n, const real *grad_c_n, real *grad_x,           \
                      real *grad_h0, real *grad_c0, real *grad_w_ih, real *grad_w_hh, real *grad_b_ih,        \
                      real *grad_b_hh, real *grad_w_hr, void *workspace, size_t workspace_bytes)

/*
 * GRU forward (desc->P must be 0): as LSTM forward without c0 / c_n / w_hr; w_ih (3H x D), w_hh (3H x H), biases (3H), saved (T x B x 5H).
 * desc->reset_after chooses the form of n (see the top of this file).
 */
#define TSRNN_DECLARE_GRU_FWD(name, real)                                                                     \
    tsrnn_status name(const tsrnn_desc *desc, const real *x, const real *h0, const real *w_ih,               \
                      const real *w_hh, const real *b_ih, const real *b_hh, real *y, real *h_n, real *saved,   \
                      void *workspace, size_t workspace_bytes)

/* GRU backward: as LSTM backward without c0, grad_c_n, grad_c0. Needs no biases (saved holds hn). */
#define TSRNN_DECLARE_GRU_BWD(name, real)                                                                     \
    tsrnn_status name(const tsrnn_desc *desc, const real *x, const real *h0, const real *w_ih,               \
                      const real *w_hh, const real *saved, const real *grad_y, const real *grad_h_n,           \
                      real *grad_x, real *grad_h0, real *grad_w_ih, real *grad_w_hh, real *grad_b_ih,          \
                      real *grad_b_hh, void *workspace, size_t workspace_bytes)

/* The plain reference (kernels/ref): nested loops, one thread; the specification the others are tested against. */
TSRNN_DECLARE_LSTM_FWD(tsrnn_lstm_fwd_ref_f32, float);
TSRNN_DECLARE_LSTM_FWD(tsrnn_lstm_fwd_ref_f64, double);
TSRNN_DECLARE_LSTM_BWD(tsrnn_lstm_bwd_ref_f32, float);
TSRNN_DECLARE_LSTM_BWD(tsrnn_lstm_bwd_ref_f64, double);
TSRNN_DECLARE_GRU_FWD(tsrnn_gru_fwd_ref_f32, float);
TSRNN_DECLARE_GRU_FWD(tsrnn_gru_fwd_ref_f64, double);
TSRNN_DECLARE_GRU_BWD(tsrnn_gru_bwd_ref_f32, float);
TSRNN_DECLARE_GRU_BWD(tsrnn_gru_bwd_ref_f64, double);

/* The optimized CPU kernels (kernels/cpu): host pointers, desc->num_threads threads. */
TSRNN_DECLARE_LSTM_FWD(tsrnn_lstm_fwd_cpu_f32, float);
TSRNN_DECLARE_LSTM_FWD(tsrnn_lstm_fwd_cpu_f64, double);
TSRNN_DECLARE_LSTM_BWD(tsrnn_lstm_bwd_cpu_f32, float);
TSRNN_DECLARE_LSTM_BWD(tsrnn_lstm_bwd_cpu_f64, double);
TSRNN_DECLARE_GRU_FWD(tsrnn_gru_fwd_cpu_f32, float);
TSRNN_DECLARE_GRU_FWD(tsrnn_gru_fwd_cpu_f64, double);
TSRNN_DECLARE_GRU_BWD(tsrnn_gru_bwd_cpu_f32, float);
TSRNN_DECLARE_GRU_BWD(tsrnn_gru_bwd_cpu_f64, double);

/*
 * The CUDA kernels (kernels/cuda), built only when CUDA is enabled: every data pointer and the workspace are
 * device memory of the current device, except desc->lengths, which is HOST memory for every backend (checked on
 * the host, then passed to the device by value in kernel arguments, so a call with lengths can be captured into a
 * CUDA graph and replays the lengths it was captured with). Any H: sizes whose W_hh does not fit on the chip take a
 * slower stepwise path. No LSTM projection yet: a call with P > 0 that passes steps 1-5 of "Errors" returns
 * TSRNN_ERR_UNSUPPORTED. Work is queued on desc->stream and the functions return without synchronizing; a failed
 * launch or CUDA call returns TSRNN_ERR_CUDA. The runtime's last-error state (cudaGetLastError) is left as the
 * call found it: an error the caller had pending stays pending, and none of the call's own is left behind.
 */
TSRNN_DECLARE_LSTM_FWD(tsrnn_lstm_fwd_cuda_f32, float);
TSRNN_DECLARE_LSTM_BWD(tsrnn_lstm_bwd_cuda_f32, float);
TSRNN_DECLARE_GRU_FWD(tsrnn_gru_fwd_cuda_f32, float);
TSRNN_DECLARE_GRU_BWD(tsrnn_gru_bwd_cuda_f32, float);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TSRNN_H */
