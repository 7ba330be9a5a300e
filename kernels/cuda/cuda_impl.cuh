/*
 * Private to kernels/cuda: what the forward, backward and API translation units share. Not installed.
 *
 * Shape letters as in tsrnn.h (T, B, D, H, G, S). fp32 only; every pointer is device memory except desc->lengths.
 *
 * The plan of one call
 * --------------------
 *   forward   [lengths -> workspace] -> input projection GEMM: xproj (T*B x G*H) = x W_ih^T + b_ih
 *             -> ONE persistent recurrent kernel: every step of every sequence (rnn_fwd_kernel)
 *   backward  [lengths -> workspace] -> row table (per (t, b): x offset, previous-state offset, active)
 *             -> ONE persistent recurrent kernel walking the steps backwards: d_gates (T*B x G*H), grad_h0, grad_c0
 *             -> GEMMs: grad_x = d_gates W_ih, grad_w_ih / grad_w_hh = d_gates^T [x | h_prev], the bias
 *                gradients as an extra all-ones column of those products (so they share the fixed summation order)
 *
 * The recurrent kernels. Block (ub, bg) of a 1-D grid of nU * nBG blocks owns the hidden units
 * [ub*U, ub*U + U) (all G gates of them, so the cell update is local) for the batch rows [bg*BG, bg*BG + BG).
 * Its slice of W_hh stays in shared memory for the whole launch. Each step it reads h_{t-1} of its rows (all H
 * units, written by the nU blocks of its batch group) from a global ping-pong buffer, multiplies, updates its
 * units and writes them back; the nU blocks of a group meet at a grid barrier (group_sync) after each exchange.
 *   small H (the whole W_hh fits one block's shared memory): nU = 1, no barrier at all, batch split over blocks
 *   large H (512, 1024): W_hh split over nU blocks; launched cooperatively, so every block is co-resident or the
 *   launch fails (the plan checks occupancy first and answers TSRNN_ERR_UNSUPPORTED when it cannot fit).
 *   larger still (W_hh does not fit on the chip, about H > 1056 for LSTM on an H100), or a device that refuses the
 *   cooperative launch: the stepwise path (cuda_step.cu), one tiled GEMM h_{t-1} W_hh^T and one element-wise gate
 *   kernel per step, W_hh read from L2 / memory each step. Same formulas, any H.
 *
 * Determinism: every sum has a fixed order (no floating-point atomics); the only atomics are the barrier counters.
 */
#ifndef TSRNN_CUDA_IMPL_CUH
#define TSRNN_CUDA_IMPL_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include <type_traits>
#include <utility>

#include "internal.h"

namespace tsrnn_cuda {

/* ---- constants and small helpers ------------------------------------------------------------------------- */

constexpr int kThreads = 256;            /* threads of every block we launch */
constexpr size_t kPieceAlign = 256;      /* alignment of each workspace piece, bytes */
constexpr int kMaxChunkRows = 64;        /* batch rows a recurrent block stages in shared memory at once */

/* The three cell variants, a template parameter of the recurrent kernels. */
enum Cell : int { kLstm = 0, kGruAfter = 1, kGruBefore = 2 }; /* GRU reset_after = 1 (PyTorch) / 0 (notebook) */

inline int cell_of(tsrnn_cell cell, int reset_after) {
    return cell == TSRNN_CELL_LSTM ? kLstm : reset_after ? kGruAfter : kGruBefore;
}
__host__ __device__ constexpr int gates_of(int cell) { return cell == kLstm ? 4 : 3; }
__host__ __device__ constexpr int saved_width_of(int cell) { return cell == kLstm ? 6 : 5; } /* S = this * H */

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
__host__ __device__ inline int64_t round_up(int64_t a, int64_t to) { return ceil_div(a, to) * to; }

/* ---- errors ------------------------------------------------------------------------------------------------ */

/* A failed CUDA call's status. The runtime's last-error state is left alone here: ErrorScope settles it. */
inline tsrnn_status cuda_failure(cudaError_t e) {
    return e == cudaErrorCooperativeLaunchTooLarge ? TSRNN_ERR_UNSUPPORTED : TSRNN_ERR_CUDA;
}

/*
 * One public call's claim on the runtime's last-error state (cudaGetLastError). Our failures are reported through
 * the returned status, so a call that found no error pending clears the one its own failed calls left (including a
 * cooperative launch that was too large and fell back to the stepwise path), and the caller's next check does not
 * see it. A call that found an error pending leaves the state alone: that error is the caller's to collect.
 */
struct ErrorScope {
    const bool was_clean = cudaPeekAtLastError() == cudaSuccess;
    ~ErrorScope() {
        if (was_clean) (void)cudaGetLastError();
    }
};

#define TSRNN_CUDA_TRY(call)                                                                                       \
    do {                                                                                                           \
        const cudaError_t tsrnn_cuda_err_ = (call);                                                                \
        if (tsrnn_cuda_err_ != cudaSuccess) return ::tsrnn_cuda::cuda_failure(tsrnn_cuda_err_);                     \
    } while (0)

#define TSRNN_STATUS_TRY(call)                                                                                     \
    do {                                                                                                           \
        const tsrnn_status tsrnn_status_ = (call);                                                                 \
        if (tsrnn_status_ != TSRNN_OK) return tsrnn_status_;                                                       \
    } while (0)

/* ---- workspace ------------------------------------------------------------------------------------------------ */

/* Carves a workspace into 256-byte aligned pieces; the same code sizes it (base = NULL) and uses it. */
struct Carver {
    char *base;
    size_t total = 0;
    explicit Carver(void *b) : base(static_cast<char *>(b)) {}
    template <class E> E *take(size_t count) {
        const size_t at = total;
        if (count == 0) return nullptr;
        total += (count * sizeof(E) + kPieceAlign - 1) / kPieceAlign * kPieceAlign;
        return base ? reinterpret_cast<E *>(base + at) : nullptr;
    }
};

/* What the backward GEMMs need to know about row (t, b) = t * B + b of the sequence tensors. */
struct RowInfo {
    int64_t x_off;   /* t * x_stride_t + b * x_stride_b: row (t, b) of x and grad_x */
    int64_t h_off;   /* the state this step started from: offset into saved (h_{t-1} of its row) or into h0 */
    int32_t active;  /* t < lengths[b] */
    int32_t from_h0; /* first step of its sequence: h_off indexes h0 (which may be absent: zeros) */
};

struct FwdWorkspace {
    int64_t *lengths;    /* (B) device copy of desc->lengths, or NULL */
    unsigned *counters;  /* (B + 1) grid-barrier counters, one per batch group */
    float *xproj;        /* (T*B x G*H) x W_ih^T + b_ih */
    float *hbuf;         /* (2 x B x H) h ping-pong buffers exchanged between the blocks of a batch group */
    float *hproj;        /* (B x G*H) stepwise path: h_{t-1} W_hh^T of the current step (GRU reset_after = 0: the
                            r, z columns, then (r * h_{t-1}) W_hn^T in the n columns) */
    float *cbuf;         /* (B x H) LSTM cell state, owner-only */
    float *rbuf, *zbuf;  /* (B x H) GRU reset_after = 0: r and z of the current step, owner-only */
    float *rhbuf;        /* (B x H) GRU reset_after = 0: r * h_{t-1}, exchanged */
    float *partial;      /* split-K partial sums of the projection GEMM and of the stepwise path's step GEMMs */
    size_t bytes;
};

struct BwdWorkspace {
    int64_t *lengths;
    unsigned *counters;
    RowInfo *rows;       /* (T*B) */
    float *dgx;          /* (T*B x G*H) dL/d(pre-activation), input side (LSTM: the one d_gates); 0 past lengths */
    float *dghn;         /* (T*B x H) GRU: dL/dhn (hidden side of n), 0 past lengths */
    float *dh;           /* (B x H) dL/dh carried backwards, owner-only */
    float *dc;           /* (B x H) LSTM dL/dc carried backwards, owner-only */
    float *drh;          /* (B x H) GRU reset_after = 0: dL/d(r * h_{t-1}), owner-only */
    float *partial;      /* split-K partial sums of the GEMMs (the stepwise path's step GEMMs included) */
    size_t bytes;
};

FwdWorkspace fwd_workspace(int cell, const tsrnn_desc *d, void *base);
BwdWorkspace bwd_workspace(int cell, const tsrnn_desc *d, void *base);

/* ---- GEMM split-K plan (from sizes only, so workspace sizes never depend on the device) ------------------- */

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kFan = 16; /* sums per level of the GEMMs' summation tree (cuda_gemm.cuh) */

struct SplitK {
    int64_t splits;   /* blockIdx.z count */
    int64_t k_per;    /* K range of one split, a multiple of kTileK */
};

inline SplitK split_k_of(int64_t M, int64_t N, int64_t K) {
    const int64_t tiles = ceil_div(M, kTileM) * ceil_div(N, kTileN);
    int64_t want = ceil_div(264, tiles > 0 ? tiles : 1); /* about two blocks per SM of a 132-SM H100 */
    int64_t most = K / 256;                               /* each split at least 256 deep */
    if (most > 64) most = 64;
    if (want > most) want = most;
    if (want < 1) want = 1;
    SplitK s;
    s.k_per = K > 0 ? round_up(ceil_div(K, want), kTileK) : kTileK;
    s.splits = K > 0 ? ceil_div(K, s.k_per) : 1;
    return s;
}

/* Floats of partial sums a GEMM of these sizes needs (0 when it runs unsplit). */
inline int64_t partial_floats(int64_t M, int64_t N, int64_t K) {
    const SplitK s = split_k_of(M, N, K);
    return s.splits > 1 ? s.splits * M * N : 0;
}

/* ---- recurrent-kernel plan ---------------------------------------------------------------------------------- */

struct RecPlan {
    int U;           /* hidden units per block (the last block of a group may have fewer) */
    int U4;          /* U rounded up to 4: the column count of each gate in the block's weight slice */
    int nU;          /* blocks per batch group = ceil(H / U) */
    int BG;          /* batch rows per group */
    int nBG;         /* batch groups = ceil(B / BG) */
    int BC;          /* batch rows staged in shared memory at once, a multiple of 4 */
    size_t smem;     /* dynamic shared memory bytes per block */
    bool cooperative;
};

/* Shared-memory floats of one recurrent block (layouts in cuda_fwd.cu / cuda_bwd.cu). */
__host__ __device__ inline int64_t in_stride_of(int64_t K) { return K | 1; } /* odd: rows land in different banks */
inline size_t fwd_smem_bytes(int cell, int64_t H, int U4, int BC) {
    const int64_t ldw = gates_of(cell) * (int64_t)U4;
    return sizeof(float) * (size_t)(H * ldw + BC * in_stride_of(H) + 16 * kThreads + BC * ldw);
}
inline size_t bwd_smem_bytes(int cell, int64_t H, int U4, int BC) {
    const int64_t GH = gates_of(cell) * H;
    return sizeof(float) * (size_t)(GH * U4 + BC * in_stride_of(GH) + 16 * kThreads + (int64_t)BC * U4);
}

/* Picks the block layout for the current device; TSRNN_ERR_UNSUPPORTED when H is too large to keep W_hh on chip. */
tsrnn_status plan_recurrence(bool backward, int cell, int64_t H, int64_t B, const void *kernel, RecPlan *plan);
/* The plan of the persistent forward / backward kernel of a cell (cuda_fwd.cu, cuda_bwd.cu). */
tsrnn_status persistent_fwd_plan(int cell, int64_t H, int64_t B, RecPlan *plan);
tsrnn_status persistent_bwd_plan(int cell, int64_t H, int64_t B, RecPlan *plan);

/* Launches kernel on plan's grid (cooperatively when plan->cooperative) with one by-value argument. */
template <class Args>
inline tsrnn_status launch_recurrence(void (*kernel)(Args), const RecPlan &plan, const Args &args,
                                      cudaStream_t stream) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)(plan.nU * plan.nBG));
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = plan.smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
    cfg.attrs = attr;
    cfg.numAttrs = plan.cooperative ? 1 : 0;
    TSRNN_CUDA_TRY(cudaLaunchKernelEx(&cfg, kernel, args));
    return TSRNN_OK;
}

/* Host-side facts of one call shared by forward and backward. */
int64_t steps_of(const tsrnn_desc *d); /* max lengths[b] (T without lengths): the steps the kernel runs */

/*
 * dst[0, B) = lengths[0, B) (host), queued on stream. The values travel as kernel arguments (kLengthsPerLaunch per
 * launch), not as a host-to-device copy: a copy from pageable memory blocks the host and cannot be captured into a
 * CUDA graph, while kernel arguments are captured by value, so a captured call replays its own lengths.
 */
constexpr int kLengthsPerLaunch = 256;
tsrnn_status upload_lengths(int64_t *dst, const int64_t *lengths, int64_t B, cudaStream_t stream);

/* ---- the step functions (arguments already checked by cuda_api.cu) ------------------------------------------------ */

/* Which recurrent kernels run: the persistent one when its plan fits the device (else stepwise), or one forced. */
enum class Path { Auto, Persistent, Stepwise };

tsrnn_status lstm_forward(const tsrnn_desc *d, const float *x, const float *h0, const float *c0, const float *w_ih,
                          const float *w_hh, const float *b_ih, const float *b_hh, float *y, float *h_n, float *c_n,
                          float *saved, void *workspace, Path path = Path::Auto);
tsrnn_status gru_forward(const tsrnn_desc *d, const float *x, const float *h0, const float *w_ih, const float *w_hh,
                         const float *b_ih, const float *b_hh, float *y, float *h_n, float *saved, void *workspace,
                         Path path = Path::Auto);
tsrnn_status lstm_backward(const tsrnn_desc *d, const float *x, const float *h0, const float *c0, const float *w_ih,
                           const float *w_hh, const float *saved, const float *grad_y, const float *grad_h_n,
                           const float *grad_c_n, float *grad_x, float *grad_h0, float *grad_c0, float *grad_w_ih,
                           float *grad_w_hh, float *grad_b_ih, float *grad_b_hh, void *workspace,
                           Path path = Path::Auto);
tsrnn_status gru_backward(const tsrnn_desc *d, const float *x, const float *h0, const float *w_ih, const float *w_hh,
                          const float *saved, const float *grad_y, const float *grad_h_n, float *grad_x,
                          float *grad_h0, float *grad_w_ih, float *grad_w_hh, float *grad_b_ih, float *grad_b_hh,
                          void *workspace, Path path = Path::Auto);

/* The recurrent kernels' arguments (one by-value block per launch), filled once by forward() / backward(). */
struct FwdArgs {
    int64_t T, B, H, y_stride_t, y_stride_b, steps;
    const int64_t *lengths; /* device, or NULL */
    int reverse;
    const float *h0, *c0, *w_hh, *b_hh, *xproj;
    float *y, *h_n, *c_n, *saved;
    float *hbuf, *cbuf, *rbuf, *zbuf, *rhbuf;
    unsigned *counters;
    int U, U4, nU, BG, BC; /* the persistent plan (unused by the stepwise path) */
};

struct BwdArgs {
    int64_t T, B, H, y_stride_t, y_stride_b, steps;
    const int64_t *lengths;
    int reverse;
    const float *h0, *c0, *w_hh, *saved, *grad_y, *grad_h_n, *grad_c_n;
    float *grad_h0, *grad_c0;
    float *dgx, *dghn, *dh, *dc, *drh;
    unsigned *counters;
    int U, U4, nU, BG, BC;
};

/*
 * The stepwise recurrences (cuda_step.cu): what the persistent kernels do with the same arguments, one group of
 * launches per step. hproj is FwdWorkspace::hproj; partial holds stepwise_partial_floats(cell, B, H) floats.
 */
tsrnn_status stepwise_forward(int cell, const FwdArgs &a, float *hproj, float *partial, cudaStream_t stream);
tsrnn_status stepwise_backward(int cell, const BwdArgs &a, float *partial, cudaStream_t stream);

/* Floats of split-K partial sums the stepwise GEMMs need (so the workspace covers both paths, whatever the device):
   h_{t-1} W_hh^T over the gate rows that read h_{t-1} (all, or r and z for GRU reset_after = 0), d_gates_h W_hh
   over the same rows, and for reset_after = 0 the W_hn products both ways. */
inline int64_t stepwise_partial_floats(int cell, int64_t B, int64_t H) {
    const int64_t rows = cell == kGruBefore ? 2 * H : gates_of(cell) * H;
    int64_t most = partial_floats(B, rows, H);
    if (partial_floats(B, H, rows) > most) most = partial_floats(B, H, rows);
    if (cell == kGruBefore && partial_floats(B, H, H) > most) most = partial_floats(B, H, H);
    return most;
}

/* ---- device helpers ------------------------------------------------------------------------------------------- */

#ifdef __CUDACC__

/* PyTorch's formulas with accurate expf / tanhf (never __expf), so fp32 results match closely. */
__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

__device__ __forceinline__ int64_t seq_length(const int64_t *lengths, int64_t b, int64_t T) {
    return lengths ? lengths[b] : T;
}

/*
 * The cell arithmetic of one (row, unit), shared by the persistent and the stepwise kernels. xg[g]: x W_ih^T + b_ih
 * of gate g; hg[g]: h_{t-1} W_hh^T + b_hh of gate g (GRU reset_after = 0: hn = (r * h_{t-1}) W_hn^T + b_hn).
 */
struct LstmUnit {
    float i, f, g, o, c, h;
};
__device__ __forceinline__ LstmUnit lstm_unit(const float xg[4], const float hg[4], float c_prev) {
    LstmUnit s;
    s.i = sigmoid(xg[0] + hg[0]);
    s.f = sigmoid(xg[1] + hg[1]);
    s.g = tanhf(xg[2] + hg[2]);
    s.o = sigmoid(xg[3] + hg[3]);
    s.c = s.f * c_prev + s.i * s.g;
    s.h = s.o * tanhf(s.c);
    return s;
}

/* GRU candidate and new state: n = tanh(x_n + rhn), h = (1 - z) n + z h_prev (rhn = r * hn or hn, by form) */
__device__ __forceinline__ float gru_candidate(float xn, float rhn) { return tanhf(xn + rhn); }
__device__ __forceinline__ float gru_state(float n, float z, float h_prev) { return n + z * (h_prev - n); }

/* Saved row layouts (tsrnn.h): LSTM [i f g o | c | h], GRU [r z n | hn | h]; sv points at unit u of the row. */
__device__ __forceinline__ void save_lstm(float *sv, int64_t H, const LstmUnit &s) {
    sv[0 * H] = s.i, sv[1 * H] = s.f, sv[2 * H] = s.g, sv[3 * H] = s.o, sv[4 * H] = s.c, sv[5 * H] = s.h;
}
__device__ __forceinline__ void save_gru(float *sv, int64_t H, float r, float z, float n, float hn, float h) {
    sv[0 * H] = r, sv[1 * H] = z, sv[2 * H] = n, sv[3 * H] = hn, sv[4 * H] = h;
}

/*
 * Backward of one (row, unit) from its saved activations. LSTM: dh (carried + grad_y) and the carried dc give the
 * pre-activation gradients dg[0..3] and dc_{t-1}. GRU: dg[1] (z), dg[2] (n, input side), dghn (n, hidden side),
 * dg[0] (r; reset_after = 1 only: reset_after = 0 needs d(r h) from every unit first) and the direct part of
 * dh_{t-1} (dh z).
 */
__device__ __forceinline__ void lstm_unit_backward(const float *sv, int64_t H, float dh, float dc, float c_prev,
                                                   float dg[4], float *dc_prev) {
    const float i = sv[0 * H], f = sv[1 * H], g = sv[2 * H], o = sv[3 * H];
    const float tanh_c = tanhf(sv[4 * H]);
    /* h = o tanh(c): dc gets dh o (1 - tanh(c)^2) on top of what flows back from c_{t+1} */
    const float dc_total = dc + dh * o * (1.f - tanh_c * tanh_c);
    const float di = dc_total * g, df = dc_total * c_prev, dgg = dc_total * i, d_o = dh * tanh_c;
    dg[0] = di * i * (1.f - i);
    dg[1] = df * f * (1.f - f);
    dg[2] = dgg * (1.f - g * g);
    dg[3] = d_o * o * (1.f - o);
    *dc_prev = dc_total * f;
}
__device__ __forceinline__ void gru_unit_backward(const float *sv, int64_t H, bool reset_after, float dh,
                                                  float h_prev, float dg[3], float *dghn, float *dh_direct) {
    const float r = sv[0 * H], z = sv[1 * H], n = sv[2 * H], hn = sv[3 * H];
    /* h = (1 - z) n + z h_prev */
    const float dn = dh * (1.f - z), dz = dh * (h_prev - n);
    const float dn_pre = dn * (1.f - n * n), dz_pre = dz * z * (1.f - z);
    dg[1] = dz_pre;
    dg[2] = dn_pre;
    *dghn = reset_after ? dn_pre * r : dn_pre;
    *dh_direct = dh * z;
    if (reset_after) {
        const float dr = dn_pre * hn;
        dg[0] = dr * r * (1.f - r);
    }
}
/* GRU reset_after = 0: dr from d(r h_{t-1}) (d_rh), pre-activation gradient of r */
__device__ __forceinline__ float gru_reset_grad(float d_rh, float h_prev, float r) {
    const float dr = d_rh * h_prev;
    return dr * r * (1.f - r);
}

/*
 * The block's dynamic shared memory as a float pointer (16-byte aligned). A host emulation of the CUDA runtime (used
 * to run these kernels' logic on a machine without a GPU) may predefine it.
 */
#ifndef TSRNN_DYNAMIC_SMEM
#define TSRNN_DYNAMIC_SMEM(name)                                                                                   \
    extern __shared__ float4 name##_f4[];                                                                          \
    float *name = reinterpret_cast<float *>(name##_f4)
#endif

/*
 * Barrier of the nblocks blocks of one batch group (all co-resident: cooperative launch). The counter only grows:
 * the g-th barrier waits for g * nblocks arrivals, so it needs no reset inside a launch (the host zeroes it before).
 * Every thread fences its own global writes before the arrival (release); thread 0 arrives, spins on volatile loads
 * (which read L2) and fences after seeing the count (acquire), as cooperative_groups' grid sync does; the closing
 * __syncthreads hands that on to the block. Data exchanged through global memory is also read with __ldcg (L2, never
 * a possibly stale L1 line).
 */
__device__ __forceinline__ void group_sync(unsigned *counter, int nblocks, unsigned &generation) {
    if (nblocks == 1) {
        __syncthreads();
        return;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        ++generation;
        const unsigned target = generation * (unsigned)nblocks;
        atomicAdd(counter, 1u);
        while (*reinterpret_cast<volatile unsigned *>(counter) < target) __nanosleep(20);
        __threadfence();
    }
    __syncthreads();
}

/*
 * out[b * ldo + c] = sum_k in[b * ldi + k] * w[k * ldw + c] for b < rows4, c < cols4 (both multiples of 4), all in
 * shared memory; w and out 16-byte aligned, ldw and ldo multiples of 4.
 *
 * Each thread owns 4 x 4 outputs (a 4-row, 4-column tile). When the tiles are fewer than the threads, K is split
 * into ks slices over the spare threads and the slices' partial sums (part, 16 * kThreads floats) are added in slice
 * order: the result does not depend on timing. Ends with __syncthreads.
 */
__device__ __forceinline__ void block_matmul(const float *in, int64_t ldi, const float *w, int64_t ldw, int64_t K,
                                             int rows4, int cols4, float *part, float *out, int64_t ldo) {
    const int col_tiles = cols4 / 4, tiles = (rows4 / 4) * col_tiles;
    int ks = tiles >= kThreads ? 1 : kThreads / tiles;
    const int64_t ks_useful = ceil_div(K, 8); /* at least 8 terms per slice */
    if (ks > ks_useful) ks = (int)(ks_useful > 0 ? ks_useful : 1);
    const int64_t k_chunk = ceil_div(K, ks);
    for (int item = threadIdx.x; item < tiles * ks; item += kThreads) {
        const int tile = item % tiles, slice = item / tiles;
        const int ct = tile % col_tiles, bt = tile / col_tiles;
        const int64_t k_begin = slice * k_chunk;
        const int64_t k_end = k_begin + k_chunk < K ? k_begin + k_chunk : K;
        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
        const float *in_rows = in + (int64_t)bt * 4 * ldi; /* row 4 bt of in */
        const float *w_cols = w + ct * 4;                  /* column 4 ct of w */
        for (int64_t k = k_begin; k < k_end; ++k) {
            const float4 wv = *reinterpret_cast<const float4 *>(w_cols + k * ldw);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float a = in_rows[i * ldi + k];
                acc[i][0] += a * wv.x;
                acc[i][1] += a * wv.y;
                acc[i][2] += a * wv.z;
                acc[i][3] += a * wv.w;
            }
        }
        float *dst;
        int64_t ld;
        if (ks == 1) {
            dst = out + (int64_t)bt * 4 * ldo + ct * 4, ld = ldo;
        } else {
            dst = part + ((int64_t)slice * rows4 + bt * 4) * cols4 + ct * 4, ld = cols4;
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
            *reinterpret_cast<float4 *>(dst + i * ld) = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    }
    if (ks > 1) {
        __syncthreads();
        const int n = rows4 * cols4;
        for (int o = threadIdx.x; o < n; o += kThreads) {
            float sum = 0.f;
            for (int s = 0; s < ks; ++s) sum += part[(int64_t)s * n + o];
            out[(int64_t)(o / cols4) * ldo + o % cols4] = sum;
        }
    }
    __syncthreads();
}

#endif /* __CUDACC__ */

} // namespace tsrnn_cuda

#endif
