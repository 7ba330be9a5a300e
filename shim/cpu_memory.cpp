// The CPU memory policy (shim/cpu_memory.h): when to ask the OS for huge pages, and what workspace a thread keeps.
#include "cpu_memory.h"

#include <cstdint>
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
// fraction of the faults. Only the 2 MiB-aligned inside of the buffer is advised, so no other allocation is
// affected; the advice is a hint (an error or a kernel without THP changes nothing). TSRNN_CPU_HUGEPAGES=0 turns
// it off.
constexpr size_t kHugePageHintBytes = size_t(4) << 20;

// TSRNN_CPU_HUGEPAGES: unset or "1" on, "0" off; anything else fails every CPU call with this message.
bool huge_page_hints_enabled() {
    static const std::optional<std::string> value = []() -> std::optional<std::string> {
        const char *v = std::getenv("TSRNN_CPU_HUGEPAGES");
        return v ? std::optional<std::string>(v) : std::nullopt;
    }();
    STD_TORCH_CHECK(!value || *value == "0" || *value == "1",
                    "tsrnn: the environment variable TSRNN_CPU_HUGEPAGES must be 0 or 1 (or unset), got '",
                    value.value_or(""), "'");
    return !value || *value == "1";
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
// touch in every call (thousands of faults per large backward). Workspaces larger than kScratchKeep are allocated per call and not kept, so a thread holds at most that much between calls.
// Nothing reads a workspace before writing it, so reusing one is safe; a call never overlaps another call of
// the same thread (the pieces on torch's pool are part of the call).
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

void *kept_workspace(const char *op, size_t bytes) {
    if (bytes > kScratchKeep) return nullptr;
    thread_local Scratch scratch;
    if (scratch.bytes < bytes) {
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
