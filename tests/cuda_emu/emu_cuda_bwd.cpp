// kernels/cuda/cuda_bwd.cu compiled as C++ against the emulated runtime (cuda_runtime.h here).
#include "../../kernels/cuda/cuda_bwd.cu"
