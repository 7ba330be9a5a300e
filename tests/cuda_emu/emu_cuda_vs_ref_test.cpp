// tests/kernels/cuda_vs_ref_test.cu against the emulated runtime.
#include "../kernels/cuda_vs_ref_test.cu"
