/*
 * Private to kernels/cuda: one tiled SGEMM with pluggable operand loaders and output stores, for the input
 * projection, grad_x and the weight gradients (no cuBLAS: the library needs nothing beyond the CUDA runtime).
 *
 *   C[m][n] = sum_k a(m, k) * b(n, k),   0 <= m < M, 0 <= n < N, 0 <= k < K
 *
 * A 64 x 64 tile of C per block of 256 threads, 4 x 4 outputs per thread, K in steps of 16 through shared memory.
 * Each output's sum over its split's k is a fixed tree, not one running sum (whose rounding error grows with K: the
 * weight gradients sum over all T*B rows): each step of 16 k is summed from zero, kFan of those make a level-1 sum,
 * kFan level-1 sums a level-2 sum, and the level-2 sums are added in order. With split-K (blockIdx.z) the splits'
 * partial sums go to a workspace buffer and splitk_reduce adds them pairwise. Every order depends on the
 * sizes alone, so every result is deterministic.
 *
 * A loader is a small struct with `float operator()(int64_t i, int64_t k) const` (i = m or n) and
 * `static constexpr bool k_contiguous`, which says whether consecutive k are adjacent in memory (the tile load then
 * walks k fastest across threads, else i fastest). A store has `void operator()(int64_t m, int64_t n, float v) const`.
 */
#ifndef TSRNN_CUDA_GEMM_CUH
#define TSRNN_CUDA_GEMM_CUH

#include "cuda_impl.cuh"

namespace tsrnn_cuda {

/* ---- loaders ------------------------------------------------------------------------------------------------- */

/* p[i * ld + k]: a row-major matrix read along its rows. */
struct RowMajor {
    const float *p;
    int64_t ld;
    static constexpr bool k_contiguous = true;
    __device__ float operator()(int64_t i, int64_t k) const { return p[i * ld + k]; }
};

/* p[k * ld + i]: a row-major matrix read along its columns (its transpose). */
struct ColMajor {
    const float *p;
    int64_t ld;
    static constexpr bool k_contiguous = false;
    __device__ float operator()(int64_t i, int64_t k) const { return p[k * ld + i]; }
};

/* x as the forward projection's A: row m = t * B + b is x's row (t, b) under its strides. */
struct SeqRows {
    const float *x;
    int64_t B, stride_t, stride_b;
    static constexpr bool k_contiguous = true;
    __device__ float operator()(int64_t m, int64_t k) const {
        const int64_t t = m / B, b = m - t * B;
        return x[t * stride_t + b * stride_b + k];
    }
};

/*
 * Right operand of grad_w_ih (with its bias column): b(n, row) = x(row)[n] for n < width, 1 for n = width (the
 * all-ones column whose product is the bias gradient), and 0 for rows past their sequence's length (their x may
 * hold anything, NaN included).
 */
struct MaskedSeqCols {
    const float *x;
    const RowInfo *rows;
    int64_t width;
    static constexpr bool k_contiguous = false;
    __device__ float operator()(int64_t n, int64_t row) const {
        const RowInfo r = rows[row];
        if (!r.active) return 0.f;
        return n < width ? x[r.x_off + n] : 1.f;
    }
};

/*
 * Right operand of grad_w_hh: b(n, row) = h_{t-1}(row)[n] (from saved, or h0 at a sequence's first step), times
 * r(row)[n] for the n rows of a reset_after = 0 GRU (W_hn is applied to r * h_{t-1} there); 1 for n = width.
 */
struct MaskedPrevState {
    const float *saved, *h0;
    const RowInfo *rows;
    int64_t width, S;
    int scale_by_r;
    static constexpr bool k_contiguous = false;
    __device__ float operator()(int64_t n, int64_t row) const {
        const RowInfo r = rows[row];
        if (!r.active) return 0.f;
        if (n >= width) return 1.f;
        float v = r.from_h0 ? (h0 ? h0[r.h_off + n] : 0.f) : saved[r.h_off + n];
        if (scale_by_r) v *= saved[row * S + n]; /* r sits at column n of the row's own saved activations */
        return v;
    }
};

/* ---- stores -------------------------------------------------------------------------------------------------- */

/* Forward projection: xproj[m][n] = v + b_ih[n]. */
struct ProjStore {
    float *out;
    const float *bias;
    int64_t ld;
    __device__ void operator()(int64_t m, int64_t n, float v) const { out[m * ld + n] = v + (bias ? bias[n] : 0.f); }
};

/* A plain row-major store: out[m][n] = v (ld = row length). */
struct RowStore {
    float *out;
    int64_t ld;
    __device__ void operator()(int64_t m, int64_t n, float v) const { out[m * ld + n] = v; }
};

/* grad_x row (t, b) under the x strides; rows past a sequence's length are zero. */
struct GradXStore {
    float *grad_x;
    const RowInfo *rows;
    __device__ void operator()(int64_t m, int64_t n, float v) const {
        const RowInfo r = rows[m];
        grad_x[r.x_off + n] = r.active ? v : 0.f;
    }
};

/* Weight gradient columns n < width into w (ld = width), the ones column n = width into bias; either may be absent. */
struct WeightStore {
    float *w, *bias;
    int64_t width;
    __device__ void operator()(int64_t m, int64_t n, float v) const {
        if (n < width) {
            if (w) w[m * width + n] = v;
        } else if (bias) {
            bias[m] = v;
        }
    }
};

/* ---- kernels ------------------------------------------------------------------------------------------------- */

template <class LoadA, class LoadB, class Store>
__global__ void __launch_bounds__(kThreads) gemm_kernel(const LoadA a, const LoadB b, const Store store, int64_t M,
                                                          int64_t N, int64_t K, int64_t k_per_split, float *partial) {
    __shared__ __align__(16) float As[kTileK][kTileM + 4]; /* As[k][m] */
    __shared__ __align__(16) float Bs[kTileK][kTileN + 4]; /* Bs[k][n] */
    const int64_t tiles_m = ceil_div(M, kTileM);
    const int64_t m0 = (int64_t)(blockIdx.x % tiles_m) * kTileM, n0 = (int64_t)(blockIdx.x / tiles_m) * kTileN;
    const int64_t k_begin = (int64_t)blockIdx.z * k_per_split;
    const int64_t k_end = k_begin + k_per_split < K ? k_begin + k_per_split : K;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16; /* outputs m0 + 4 ty + i, n0 + 4 tx + j */

    float acc[4][4], level1[4][4], level2[4][4], top[4][4]; /* the tree of the file's opening comment */
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = level1[i][j] = level2[i][j] = top[i][j] = 0.f;
    int64_t step = 0; /* steps of kTileK done in this split */

    for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK, ++step) {
#pragma unroll
        for (int e = 0; e < (kTileM * kTileK) / kThreads; ++e) {
            const int idx = threadIdx.x + e * kThreads;
            const int mm = LoadA::k_contiguous ? idx / kTileK : idx % kTileM;
            const int kk = LoadA::k_contiguous ? idx % kTileK : idx / kTileM;
            const int64_t m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < k_end) ? a(m, k) : 0.f;
        }
#pragma unroll
        for (int e = 0; e < (kTileN * kTileK) / kThreads; ++e) {
            const int idx = threadIdx.x + e * kThreads;
            const int nn = LoadB::k_contiguous ? idx / kTileK : idx % kTileN;
            const int kk = LoadB::k_contiguous ? idx % kTileK : idx / kTileN;
            const int64_t n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < N && k < k_end) ? b(n, k) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kTileK; ++kk) {
            const float4 av = *reinterpret_cast<const float4 *>(&As[kk][ty * 4]);
            const float4 bv = *reinterpret_cast<const float4 *>(&Bs[kk][tx * 4]);
            const float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += ar[i] * br[j];
        }
        __syncthreads();
        /* the step's sum joins level 1; a full level 1 joins level 2, a full level 2 the top */
        const bool full1 = (step + 1) % kFan == 0, full2 = full1 && ((step + 1) / kFan) % kFan == 0;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                level1[i][j] += acc[i][j];
                acc[i][j] = 0.f;
                if (full1) level2[i][j] += level1[i][j], level1[i][j] = 0.f;
                if (full2) top[i][j] += level2[i][j], level2[i][j] = 0.f;
            }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = (top[i][j] + level2[i][j]) + level1[i][j];

#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int64_t m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
            if (m >= M || n >= N) continue;
            if (partial)
                partial[((int64_t)blockIdx.z * M + m) * N + n] = acc[i][j];
            else
                store(m, n, acc[i][j]);
        }
    }
}

/* Adds the splits' partial sums pairwise (split z + w into split z, w = 1, 2, 4, ...: an order set by the split
   count alone; the buffer is scratch) and stores them. */
template <class Store>
__global__ void __launch_bounds__(kThreads) splitk_reduce_kernel(float *partial, int64_t splits, int64_t M,
                                                                   int64_t N, const Store store) {
    const int64_t total = M * N;
    for (int64_t idx = (int64_t)blockIdx.x * kThreads + threadIdx.x; idx < total; idx += (int64_t)gridDim.x * kThreads) {
        for (int64_t w = 1; w < splits; w *= 2)
            for (int64_t z = 0; z + w < splits; z += 2 * w) partial[z * total + idx] += partial[(z + w) * total + idx];
        store(idx / N, idx % N, partial[idx]);
    }
}

/*
 * Queues C = a b^T on stream; partial must hold partial_floats(M, N, K) floats. K = 0 stores zeros. Returns the
 * status of the launches.
 */
template <class LoadA, class LoadB, class Store>
tsrnn_status gemm(cudaStream_t stream, const LoadA &a, const LoadB &b, const Store &store, int64_t M, int64_t N,
                  int64_t K, float *partial) {
    if (M == 0 || N == 0) return TSRNN_OK;
    const SplitK split = split_k_of(M, N, K);
    const int64_t tiles = ceil_div(M, kTileM) * ceil_div(N, kTileN);
    if (tiles > INT32_MAX) return TSRNN_ERR_UNSUPPORTED;
    float *part = split.splits > 1 ? partial : nullptr;

    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)tiles, 1, (unsigned)split.splits);
    cfg.blockDim = dim3(kThreads);
    cfg.stream = stream;
    TSRNN_CUDA_TRY(cudaLaunchKernelEx(&cfg, gemm_kernel<LoadA, LoadB, Store>, a, b, store, M, N, K, split.k_per, part));
    if (part) {
        const int64_t blocks = ceil_div(M * N, kThreads);
        cfg.gridDim = dim3((unsigned)(blocks < 4096 ? blocks : 4096));
        TSRNN_CUDA_TRY(cudaLaunchKernelEx(&cfg, splitk_reduce_kernel<Store>, part, split.splits, M, N, store));
    }
    return TSRNN_OK;
}

} // namespace tsrnn_cuda

#endif
