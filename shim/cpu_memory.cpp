// The CPU memory policy (shim/cpu_memory.h): when to ask the OS for huge pages, and what workspace a thread keeps.
#include "cpu_memory.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "prepare.h"
#include "tsrnn.h"

namespace tsrnn_shim::cpu_memory {
namespace {

// Huge pages for a large new CPU buffer, asked for before anything touches it. A fresh large tensor (glibc maps
// every allocation past 32 MB anew) faults on the first touch of each 4 KiB page, and the kernels then write it in
// full at once (the saved activations of a training forward are tens of MB): with 2 MiB pages that costs a
// fraction of the faults (a fresh 39 MB saved tensor filled in 3.3 ms instead of 13.6 ms). But where the kernel's
// THP defrag setting makes a fault in an advised region compact memory on the spot (defrag "always", "madvise"
// or "defer+madvise"), a call right after other code freed and fragmented memory stalls on it: an LSTM training
// step at B64 T256 H512 interleaved with nn.LSTM took 1.41 s advised and 0.91 s not (Intel Xeon, defrag
// "madvise"). So by default the advice is given only where it cannot stall (defrag "defer" or "never"). Only the
// 2 MiB-aligned inside of the buffer is advised, so no other allocation is affected; the advice is a hint (an
// error or a kernel without THP changes nothing). TSRNN_CPU_HUGEPAGES=1 always advises, 0 never.
constexpr size_t kHugePageHintBytes = size_t(4) << 20;

// The bracketed choice of /sys/kernel/mm/transparent_hugepage/defrag ("" when there is none to read).
std::string thp_defrag_mode() {
    std::string text;
    if (FILE *f = std::fopen("/sys/kernel/mm/transparent_hugepage/defrag", "r")) {
        char buf[256];
        const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
        std::fclose(f);
        text.assign(buf, n);
    }
    const size_t open = text.find('['), close = text.find(']');
    return open != std::string::npos && close != std::string::npos && close > open
               ? text.substr(open + 1, close - open - 1)
               : std::string();
}

// TSRNN_CPU_HUGEPAGES: unset the default above, "1" on, "0" off; anything else fails every CPU call with this
// message.
bool huge_page_hints_enabled() {
    static const std::optional<std::string> value = []() -> std::optional<std::string> {
        const char *v = std::getenv("TSRNN_CPU_HUGEPAGES");
        return v ? std::optional<std::string>(v) : std::nullopt;
    }();
    STD_TORCH_CHECK(!value || *value == "0" || *value == "1",
                    "tsrnn: the environment variable TSRNN_CPU_HUGEPAGES must be 0 or 1 (or unset), got '",
                    value.value_or(""), "'");
    if (value) return *value == "1";
    static const bool cannot_stall = [] {
        const std::string mode = thp_defrag_mode();
        return mode == "defer" || mode == "never";
    }();
    return cannot_stall;
}

void advise_huge_pages(void *data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
    if (end > begin) (void)madvise(reinterpret_cast<void *>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)data;
    (void)bytes;
#endif
}

// The CPU workspace: one buffer per calling thread, kept between calls and grown when a call needs more. Fresh
// memory for every call is what malloc maps anew past 32 MB, and every page of it would fault again on first
// touch in every call (thousands of faults per large backward). Workspaces larger than kScratchKeep are allocated
// per call and not kept, so a thread holds at most that much between calls. A call never overlaps another call of
// the same thread (the pieces on torch's pool are part of the call), and only these calls use the buffer, so a
// buffer that was not grown is exactly what the previous call left: the kernels may then reuse the weights it
// packed (tsrnn_desc.workspace_kept), which they check first; nothing else is read before it is written.
constexpr size_t kScratchKeep = size_t(256) << 20;

struct Scratch {
    void *data = nullptr;
    size_t bytes = 0;
    Scratch() = default;
    Scratch(const Scratch &) = delete;
    Scratch &operator=(const Scratch &) = delete;
    ~Scratch() { std::free(data); }
};

} // namespace

torch::stable::Tensor empty(const torch::stable::Tensor &like, const std::vector<int64_t> &shape,
                            std::optional<int32_t> dtype) {
    const bool hint = huge_page_hints_enabled(); // before allocating: a bad setting throws, leaking nothing
    torch::stable::Tensor made = allocate(like, shape, dtype);
    if (!hint) return made;
    int32_t dt = 0;
    TORCH_ERROR_CODE_CHECK(aoti_torch_get_dtype(made.get(), &dt));
    int64_t numel = 1;
    for (const int64_t n : shape) numel *= n;
    // the dtypes the shim allocates: x's (float32 or float64) and the uint8 workspace
    const size_t elem = dt == aoti_torch_dtype_float32() ? 4 : dt == aoti_torch_dtype_float64() ? 8 : 1;
    const size_t bytes = static_cast<size_t>(numel) * elem;
    if (bytes >= kHugePageHintBytes) {
        void *data = nullptr;
        TORCH_ERROR_CODE_CHECK(aoti_torch_get_data_ptr(made.get(), &data));
        advise_huge_pages(data, bytes);
    }
    return made;
}

void *kept_workspace(const char *op, size_t bytes, bool *kept) {
    *kept = false;
    if (bytes > kScratchKeep) return nullptr;
    thread_local Scratch scratch;
    *kept = scratch.bytes >= bytes;
    if (!*kept) {
        std::free(scratch.data);
        scratch.data = nullptr;
        scratch.bytes = 0;
        const size_t rounded = (bytes + TSRNN_WORKSPACE_ALIGN - 1) / TSRNN_WORKSPACE_ALIGN * TSRNN_WORKSPACE_ALIGN;
        void *p = std::aligned_alloc(TSRNN_WORKSPACE_ALIGN, rounded);
        STD_TORCH_CHECK(p != nullptr, op, ": could not allocate a workspace of ", rounded, " bytes (out of memory?)");
        scratch.data = p;
        scratch.bytes = rounded;
    }
    return scratch.data;
}

} // namespace tsrnn_shim::cpu_memory
