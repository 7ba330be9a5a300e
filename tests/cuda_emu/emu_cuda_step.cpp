// kernels/cuda/cuda_step.cu compiled as C++ against the emulated runtime (cuda_runtime.h here).
#include "../../kernels/cuda/cuda_step.cu"
