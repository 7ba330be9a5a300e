// A host emulation of the part of the CUDA runtime that kernels/cuda and tests/kernels/cuda_vs_ref_test.cu use, so
// that the CUDA kernels' logic runs (and is tested against the reference) on a machine without a GPU. It stands in
// for <cuda_runtime.h> when those sources are compiled as C++ (tests/cuda_emu/*.cpp, cmake target
// tsrnn_cuda_emu_tests). Not a GPU model: it checks what the program asks of the device, not how fast.
//
// Execution: every CUDA thread is a fiber (its own small stack) and one OS thread runs them in turn, switching at
// __syncthreads and at the spin-waits of a grid barrier (__nanosleep). A plain launch runs its blocks one after
// another; a cooperative launch runs all of its blocks together, so blocks that wait for each other make progress.
// Work is done when it is queued (streams are trivially in order); a stream being captured records its work into a
// graph instead, and a replay runs it again.
//
// What it checks, as the real runtime would refuse it: dynamic shared memory above 48 KiB without the kernel's
// cudaFuncAttributeMaxDynamicSharedMemorySize, or above the opt-in limit; empty or oversized grids and blocks; a
// cooperative grid larger than can be co-resident; a host-to-device copy from pageable memory inside a capture
// (the capture is then invalidated, as CUDA does). Host code touching device memory outside a copy or a kernel
// faults: device allocations are inaccessible except while a kernel or copy runs. An allocation ends where its
// page ends, so a kernel writing past its end faults too.
//
// The emulated device: TSRNN_CUDA_EMU_SMS multiprocessors (default 32), H100 limits otherwise (227 KiB of opt-in
// shared memory per block, 228 KiB per SM, 2048 threads per SM). Device code gets libm's expf / tanhf.
#ifndef TSRNN_CUDA_EMU_RUNTIME_H
#define TSRNN_CUDA_EMU_RUNTIME_H

#define __CUDACC__ 1
#define TSRNN_CUDA_EMU 1

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Static shared arrays: one copy per kernel, which is per block because plain launches run their blocks one at a
// time (cooperative kernels must use dynamic shared memory, which is per block; the emulator refuses nothing here,
// so keep it that way).
#define __shared__ static
#define TSRNN_DYNAMIC_SMEM(name) float *name = static_cast<float *>(::cuda_emu::dynamic_smem())

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorCooperativeLaunchTooLarge = 720,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};
enum cudaDeviceAttr {
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrCooperativeLaunch = 95,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaLaunchAttributeID { cudaLaunchAttributeCooperative = 2 };
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2
};
#define cudaStreamNonBlocking 0x01

struct cudaLaunchAttributeValue {
    int cooperative;
};
struct cudaLaunchAttribute {
    cudaLaunchAttributeID id;
    cudaLaunchAttributeValue val;
};
typedef struct CUstream_st *cudaStream_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;

struct cudaLaunchConfig_t {
    dim3 gridDim;
    dim3 blockDim;
    size_t dynamicSmemBytes;
    cudaStream_t stream;
    cudaLaunchAttribute *attrs;
    unsigned int numAttrs;
};

namespace cuda_emu {

void *dynamic_smem();    // the running block's dynamic shared memory
void sync_block();      // __syncthreads
void yield();           // lets the other fibers of the launch run (spin-waits)

// Queues (or, while its stream is captured, records) one launch of body on every thread of cfg's grid.
cudaError_t launch(const cudaLaunchConfig_t &cfg, const void *kernel, std::function<void()> body);

} // namespace cuda_emu

// The running thread's coordinates: plain variables, set by the scheduler each time it resumes a fiber.
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

inline void __syncthreads() { ::cuda_emu::sync_block(); }
inline void __threadfence() {}
inline void __nanosleep(unsigned) { ::cuda_emu::yield(); }
template <class T> inline T __ldcg(const T *p) { return *p; }
inline unsigned atomicAdd(unsigned *p, unsigned v) {
    const unsigned old = *p;
    *p = old + v;
    return old;
}

template <class... Params, class... Args>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t *cfg, void (*kernel)(Params...), Args &&...args) {
    // the arguments converted to the kernel's parameter types and copied, as the runtime copies them at launch
    auto packed = std::make_shared<std::tuple<std::decay_t<Params>...>>(std::forward<Args>(args)...);
    return ::cuda_emu::launch(*cfg, reinterpret_cast<const void *>(kernel), [kernel, packed] { std::apply(kernel, *packed); });
}

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value);
template <class F> cudaError_t cudaFuncSetAttribute(F *func, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, const void *func, int block_size,
                                                          size_t dynamic_smem);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char *cudaGetErrorString(cudaError_t e);

cudaError_t cudaMalloc(void **ptr, size_t bytes);
template <class T> cudaError_t cudaMalloc(T **ptr, size_t bytes) { return cudaMalloc(reinterpret_cast<void **>(ptr), bytes); }
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaDeviceSynchronize();

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

#endif
