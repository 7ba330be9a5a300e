// The CPU registration's memory policy: transparent huge pages for large new tensors (TSRNN_CPU_HUGEPAGES) and a
// workspace kept per thread between calls. shim/ops_cpu.cpp allocates through it (prepare.h's Memory); the
// registration itself only checks, allocates, calls and translates.
#pragma once

#include <torch/csrc/stable/tensor.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace tsrnn_shim::cpu_memory {

// A new uninitialized contiguous CPU tensor (prepare.h's allocate), with huge pages asked for when it is large.
// A bad TSRNN_CPU_HUGEPAGES throws, before anything is allocated.
torch::stable::Tensor empty(const torch::stable::Tensor &like, const std::vector<int64_t> &shape,
                            std::optional<int32_t> dtype);

// The calling thread's kept workspace, grown to at least `bytes` (> 0) and TSRNN_WORKSPACE_ALIGN-aligned; NULL when
// `bytes` is more than a thread keeps, for a new buffer from empty(). `op` names the op in an out-of-memory error.
// *kept: the buffer is the one the thread's previous call got, as that call left it (only tsrnn's CPU calls on
// this thread use it), false when it is new or NULL is returned.
void *kept_workspace(const char *op, size_t bytes, bool *kept);

} // namespace tsrnn_shim::cpu_memory
