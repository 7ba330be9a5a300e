// The host emulation of the CUDA runtime declared in cuda_runtime.h (what it does and checks is described there).
// x86-64 only: the fibers switch with a few instructions of assembly (callee-saved registers and the stack pointer,
// as the SysV ABI defines them), not swapcontext, which makes a system call per switch.
#include "cuda_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#if !defined(__x86_64__)
#error "the CUDA emulation's fibers are written for x86-64"
#endif

// tsrnn_emu_switch(save, next): saves the callee-saved registers on the current stack, stores the stack pointer in
// *save and resumes the context whose stack pointer is next.
asm(R"(
    .text
    .globl tsrnn_emu_switch
    .type tsrnn_emu_switch, @function
tsrnn_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size tsrnn_emu_switch, .-tsrnn_emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
extern "C" void tsrnn_emu_switch(void **save, void *next);

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace cuda_emu {
namespace {

// ---- the emulated device ------------------------------------------------------------------------------------------

constexpr int kOptinSmem = 232448;       // H100: cudaDevAttrMaxSharedMemoryPerBlockOptin
constexpr int kSmemPerSm = 233472;       // shared memory of one SM
constexpr int kDefaultSmem = 48 * 1024;  // dynamic shared memory a kernel may use without opting in
constexpr int kThreadsPerSm = 2048;

int multiprocessors() {
    static const int sms = [] {
        const char *env = std::getenv("TSRNN_CUDA_EMU_SMS");
        const int n = env ? std::atoi(env) : 32;
        return n > 0 ? n : 32;
    }();
    return sms;
}

cudaError_t g_last_error = cudaSuccess;
cudaError_t fail(cudaError_t e) {
    g_last_error = e;
    return e;
}

std::map<const void *, int> g_max_dynamic_smem; // per kernel, from cudaFuncSetAttribute

int occupancy(int block_size, size_t smem) {
    if (block_size <= 0 || block_size > 1024 || smem > (size_t)kOptinSmem) return 0;
    const int by_threads = kThreadsPerSm / block_size;
    const int by_smem = (int)(kSmemPerSm / (smem + 1024)); // the runtime reserves 1 KiB per block
    return std::min(by_threads, by_smem);
}

// ---- device memory: inaccessible to the host except while a kernel or copy runs -------------------------------------

struct Allocation {
    char *map;          // mapping start (page aligned)
    size_t data_pages;  // pages that may become accessible; a PROT_NONE guard page follows
};
std::map<char *, Allocation> g_allocations; // by device pointer
const size_t kPage = (size_t)sysconf(_SC_PAGESIZE);

void set_device_access(bool on) {
    for (auto &[ptr, a] : g_allocations)
        if (mprotect(a.map, a.data_pages * kPage, on ? PROT_READ | PROT_WRITE : PROT_NONE) != 0) std::abort();
}

struct DeviceAccess { // RAII: device memory readable and writable for the scope
    DeviceAccess() { set_device_access(true); }
    ~DeviceAccess() { set_device_access(false); }
};

bool is_device(const void *p) {
    const char *c = static_cast<const char *>(p);
    auto it = g_allocations.upper_bound(const_cast<char *>(c));
    if (it == g_allocations.begin()) return false;
    --it;
    const Allocation &a = it->second;
    return c >= a.map && c < a.map + a.data_pages * kPage;
}

// ---- fibers -------------------------------------------------------------------------------------------------------

constexpr size_t kStackBytes = 64 * 1024;

struct Block {
    uint3 idx;
    char *smem = nullptr;
    unsigned arrived = 0, generation = 0, live = 0;
};

struct Fiber {
    void *sp = nullptr;
    char *stack = nullptr;
    uint3 tid{};
    Block *block = nullptr;
    bool done = false;
};

std::vector<char *> g_stacks; // reused across launches
Fiber *g_current = nullptr;
void *g_scheduler_sp = nullptr;
dim3 g_grid, g_block_dim;
const std::function<void()> *g_body = nullptr;
uint64_t g_progress = 0; // barrier releases and finished threads: a launch with none for long is deadlocked

char *stack_at(size_t i) {
    while (g_stacks.size() <= i) {
        void *m = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            std::fprintf(stderr, "cuda_emu: out of memory for fiber stacks\n");
            std::abort();
        }
        g_stacks.push_back(static_cast<char *>(m));
    }
    return g_stacks[i];
}

void release_barrier(Block *b) {
    b->arrived = 0;
    ++b->generation;
    ++g_progress;
}

[[noreturn]] void fiber_entry() {
    (*g_body)();
    Fiber *f = g_current;
    f->done = true;
    ++g_progress;
    Block *b = f->block;
    --b->live;
    if (b->arrived > 0 && b->arrived == b->live) release_barrier(b); // the rest waited only for threads that exited
    tsrnn_emu_switch(&f->sp, g_scheduler_sp);
    std::abort(); // a finished fiber is never resumed
}

// Runs the fibers of these blocks until all are done.
void run_blocks(std::vector<Block> &blocks) {
    const unsigned per_block = g_block_dim.x * g_block_dim.y * g_block_dim.z;
    std::vector<Fiber> fibers(blocks.size() * per_block);
    size_t n = 0;
    for (Block &b : blocks) {
        b.live = per_block;
        for (unsigned z = 0; z < g_block_dim.z; ++z)
            for (unsigned y = 0; y < g_block_dim.y; ++y)
                for (unsigned x = 0; x < g_block_dim.x; ++x, ++n) {
                    Fiber &f = fibers[n];
                    f.tid = uint3{x, y, z};
                    f.block = &b;
                    f.stack = stack_at(n);
                    // a frame as tsrnn_emu_switch leaves it: six saved registers, then fiber_entry as the return
                    // address; fiber_entry starts with the stack aligned as after a call
                    void **sp = reinterpret_cast<void **>(f.stack + kStackBytes - 64);
                    for (int r = 0; r < 6; ++r) sp[r] = nullptr;
                    sp[6] = reinterpret_cast<void *>(&fiber_entry);
                    sp[7] = nullptr;
                    f.sp = sp;
                }
    }
    size_t left = fibers.size();
    uint64_t idle_rounds = 0, seen = g_progress;
    while (left > 0) {
        for (Fiber &f : fibers) {
            if (f.done) continue;
            g_current = &f;
            threadIdx = f.tid, blockIdx = f.block->idx;
            tsrnn_emu_switch(&g_scheduler_sp, f.sp);
            if (f.done) --left;
        }
        g_current = nullptr;
        if (g_progress != seen) {
            seen = g_progress, idle_rounds = 0;
        } else if (++idle_rounds > 1000000) {
            std::fprintf(stderr, "cuda_emu: deadlock: %zu threads wait at a barrier or spin that never ends\n", left);
            std::abort();
        }
    }
}

void execute(const cudaLaunchConfig_t &cfg, bool cooperative, const std::function<void()> &body) {
    DeviceAccess access;
    gridDim = g_grid = cfg.gridDim, blockDim = g_block_dim = cfg.blockDim, g_body = &body;
    const size_t smem_bytes = (cfg.dynamicSmemBytes + 15) / 16 * 16;
    std::vector<Block> all;
    for (unsigned z = 0; z < cfg.gridDim.z; ++z)
        for (unsigned y = 0; y < cfg.gridDim.y; ++y)
            for (unsigned x = 0; x < cfg.gridDim.x; ++x) all.push_back(Block{uint3{x, y, z}});
    // shared memory starts as NaN bytes, so reading what no thread wrote shows in the results
    const size_t together = cooperative ? all.size() : 1;
    std::vector<std::unique_ptr<float4[]>> smem(together);
    for (auto &s : smem) {
        s.reset(new float4[smem_bytes / 16 + 1]);
        std::memset(s.get(), 0xFF, smem_bytes);
    }
    if (cooperative) {
        for (size_t i = 0; i < all.size(); ++i) all[i].smem = reinterpret_cast<char *>(smem[i].get());
        run_blocks(all);
    } else {
        for (Block &b : all) {
            std::vector<Block> one{b};
            std::memset(smem[0].get(), 0xFF, smem_bytes);
            one[0].smem = reinterpret_cast<char *>(smem[0].get());
            run_blocks(one);
        }
    }
    g_body = nullptr;
}

// ---- streams and graphs ----------------------------------------------------------------------------------------------

using Op = std::function<void()>;

} // namespace

} // namespace cuda_emu

struct CUstream_st {
    bool capturing = false;
    bool invalidated = false;
    std::vector<cuda_emu::Op> captured;
};
struct CUgraph_st {
    std::vector<cuda_emu::Op> ops;
};
struct CUgraphExec_st {
    std::vector<cuda_emu::Op> ops;
};

namespace cuda_emu {
namespace {

// Runs op now, or records it when stream is being captured.
cudaError_t enqueue(cudaStream_t stream, Op op) {
    if (stream && stream->capturing) {
        stream->captured.push_back(std::move(op));
        return cudaSuccess;
    }
    op();
    return cudaSuccess;
}

bool capturing(cudaStream_t stream) { return stream && stream->capturing; }

cudaError_t copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    const bool dst_dev = is_device(dst), src_dev = is_device(src);
    const bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToHost && !dst_dev && !src_dev) ||
                    (kind == cudaMemcpyHostToDevice && dst_dev && !src_dev) ||
                    (kind == cudaMemcpyDeviceToHost && !dst_dev && src_dev) ||
                    (kind == cudaMemcpyDeviceToDevice && dst_dev && src_dev);
    if (!ok) return fail(cudaErrorInvalidValue);
    if (bytes == 0) return cudaSuccess;
    DeviceAccess access;
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

} // namespace

void *dynamic_smem() { return g_current->block->smem; }

void yield() { tsrnn_emu_switch(&g_current->sp, g_scheduler_sp); }

void sync_block() {
    Block *b = g_current->block;
    const unsigned generation = b->generation;
    if (++b->arrived == b->live) {
        release_barrier(b);
        return;
    }
    while (b->generation == generation) yield();
}

cudaError_t launch(const cudaLaunchConfig_t &cfg, const void *kernel, std::function<void()> body) {
    const dim3 g = cfg.gridDim, t = cfg.blockDim;
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535 || t.x == 0 || t.y == 0 || t.z == 0 ||
        (uint64_t)t.x * t.y * t.z > 1024 || t.z > 64)
        return fail(cudaErrorInvalidConfiguration);
    const auto attr = g_max_dynamic_smem.find(kernel);
    const size_t smem_limit = attr != g_max_dynamic_smem.end() ? (size_t)attr->second : (size_t)kDefaultSmem;
    if (cfg.dynamicSmemBytes > smem_limit) return fail(cudaErrorInvalidValue);
    bool cooperative = false;
    for (unsigned i = 0; i < cfg.numAttrs; ++i)
        if (cfg.attrs[i].id == cudaLaunchAttributeCooperative && cfg.attrs[i].val.cooperative) cooperative = true;
    if (cooperative) {
        const uint64_t blocks = (uint64_t)g.x * g.y * g.z;
        const int per_sm = occupancy((int)(t.x * t.y * t.z), cfg.dynamicSmemBytes);
        if (blocks > (uint64_t)per_sm * multiprocessors()) return fail(cudaErrorCooperativeLaunchTooLarge);
    }
    auto shared_body = std::make_shared<std::function<void()>>(std::move(body));
    return enqueue(cfg.stream, [cfg, cooperative, shared_body] { execute(cfg, cooperative, *shared_body); });
}

} // namespace cuda_emu

using namespace cuda_emu;

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = multiprocessors(); return cudaSuccess;
    case cudaDevAttrCooperativeLaunch: *value = 1; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kOptinSmem; return cudaSuccess;
    }
    return fail(cudaErrorInvalidValue);
}
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > kOptinSmem)
        return fail(cudaErrorInvalidValue);
    g_max_dynamic_smem[func] = value;
    return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, const void *, int block_size, size_t smem) {
    *blocks = occupancy(block_size, smem);
    return cudaSuccess;
}
cudaError_t cudaGetLastError() {
    const cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return g_last_error; }
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorCooperativeLaunchTooLarge: return "too many blocks in cooperative launch";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    }
    return "unknown error";
}

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    *ptr = nullptr;
    if (bytes == 0) return cudaSuccess;
    const size_t data = (bytes + 255) / 256 * 256;
    const size_t pages = (data + kPage - 1) / kPage;
    void *m = mmap(nullptr, (pages + 1) * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
    char *map = static_cast<char *>(m);
    char *p = map + pages * kPage - data; // the data ends at the guard page
    g_allocations[p] = Allocation{map, pages};
    *ptr = p;
    return cudaSuccess;
}
cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    auto it = g_allocations.find(static_cast<char *>(ptr));
    if (it == g_allocations.end()) return fail(cudaErrorInvalidValue);
    munmap(it->second.map, (it->second.data_pages + 1) * kPage);
    g_allocations.erase(it);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    return copy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    if (bytes && (!is_device(dst) || !is_device(static_cast<char *>(dst) + bytes - 1))) return fail(cudaErrorInvalidValue);
    DeviceAccess access;
    std::memset(dst, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (capturing(stream) && (!is_device(dst) || !is_device(src))) {
        // pageable host memory cannot be part of a graph (there is no pinned memory in this emulation)
        stream->invalidated = true;
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    if (!capturing(stream)) return copy(dst, src, bytes, kind);
    return enqueue(stream, [=] { (void)copy(dst, src, bytes, kind); });
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    if (bytes && (!is_device(dst) || !is_device(static_cast<char *>(dst) + bytes - 1))) return fail(cudaErrorInvalidValue);
    return enqueue(stream, [=] {
        DeviceAccess access;
        std::memset(dst, value, bytes);
    });
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned) {
    *stream = new CUstream_st;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    delete stream;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    return capturing(stream) ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
    if (!stream || stream->capturing) return fail(cudaErrorStreamCaptureUnsupported);
    stream->capturing = true, stream->invalidated = false;
    stream->captured.clear();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    *graph = nullptr;
    if (!stream || !stream->capturing) return fail(cudaErrorInvalidValue);
    stream->capturing = false;
    if (stream->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    *graph = new CUgraph_st{std::move(stream->captured)};
    stream->captured.clear();
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
    if (!graph) return fail(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{graph->ops};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (!exec) return fail(cudaErrorInvalidValue);
    for (const Op &op : exec->ops) (void)enqueue(stream, op);
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}
