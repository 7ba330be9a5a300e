// kernels/cuda/cuda_fwd.cu compiled as C++ against the emulated runtime (cuda_runtime.h here).
#include "../../kernels/cuda/cuda_fwd.cu"
